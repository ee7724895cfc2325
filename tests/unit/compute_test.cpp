// Compute's pure parts: command templates, the two container specs, port
// allocation, the first-run folder, state names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compute/container_spec.hpp"
#include "compute/port_allocator.hpp"
#include "compute/state.hpp"
#include "compute/workspace_folder.hpp"
#include "compute/workspace_manager.hpp"
#include "support/process.hpp"

using namespace feuille::compute;
using ::testing::ElementsAre;
namespace fs = std::filesystem;

TEST(Compute, CommandTemplatesSplitLikeAShellThenSubstitute) {
  EXPECT_THAT(expand_command("node /app/cli.js --port {port} --host 127.0.0.1 --token {token} /home/user",
                             {{"port", "20001"}, {"token", "t0k"}}),
              ElementsAre("node", "/app/cli.js", "--port", "20001", "--host", "127.0.0.1", "--token", "t0k",
                          "/home/user"));
  // Quotes are respected and nothing is expanded; a value with spaces stays one word.
  EXPECT_THAT(expand_command("bash -lc 'rm -f ~/.x && exec run --id {user_id}'", {{"user_id", "u 1"}}),
              ElementsAre("bash", "-lc", "rm -f ~/.x && exec run --id u 1"));
  EXPECT_THAT(expand_command("run --base={base_path} {unknown} $HOME", {{"base_path", "/u/abc/"}}),
              ElementsAre("run", "--base=/u/abc/", "{unknown}", "$HOME"));
  EXPECT_THROW(expand_command("run 'unterminated", {}), std::invalid_argument);
}

namespace {
Owner owner() { return Owner{"0b1e", "alice", "Alice A", "alice@example.org", "pro"}; }
SpecBase base(const std::string& command) {
  return SpecBase{"inst-1", "/data/users/0b1e", "runc", "mrmd-runtime:latest", command, "tok"};
}
}  // namespace

TEST(Compute, RuntimeSpec) {
  auto s = runtime_spec(RuntimeParams{base("run --port {port} --token {token}"), owner(), "10.0.0.5", 41234, 512ull << 20, 1.0});
  EXPECT_EQ(s["name"], "feuille-rt-0b1e");
  EXPECT_EQ(s["image"], "mrmd-runtime:latest");
  EXPECT_EQ(s["command"], nlohmann::json({"run", "--port", "8888", "--token", "tok"}));
  EXPECT_EQ(s["labels"], nlohmann::json({{"io.feuille.user", "0b1e"},
                                         {"io.feuille.role", "runtime"},
                                         {"io.feuille.port", "41234"},
                                         {"io.feuille.instance", "inst-1"}}));
  EXPECT_EQ(s["portmappings"], nlohmann::json::parse(
                                   R"([{"host_ip":"10.0.0.5","host_port":41234,"container_port":8888,"protocol":"tcp"}])"));
  EXPECT_FALSE(s.contains("netns"));  // its own network, only the port published
  EXPECT_EQ(s["resource_limits"]["memory"]["limit"], 512ull << 20);
  EXPECT_EQ(s["resource_limits"]["cpu"]["quota"], 100000);
  EXPECT_EQ(s["resource_limits"]["cpu"]["period"], 100000);
  EXPECT_EQ(s["apparmor_profile"], "unconfined");
  EXPECT_EQ(s["oci_runtime"], "runc");
  EXPECT_EQ(s["mounts"], nlohmann::json::parse(
                             R"([{"destination":"/home/user","source":"/data/users/0b1e","type":"bind","options":["rbind"]}])"));
  EXPECT_EQ(s["restart_policy"], "no");
  auto half = runtime_spec(RuntimeParams{base("run"), owner(), "127.0.0.1", 40000, 256ull << 20, 0.5});
  EXPECT_EQ(half["resource_limits"]["cpu"]["quota"], 50000);
}

TEST(Compute, EditorSpec) {
  auto b = base("node cli.js --port {port} --token {token} --base {base_path}");
  b.image = "mrmd-editor:latest";
  auto s = editor_spec(EditorParams{b, owner(), 23456, "10.0.0.5", 41234});
  EXPECT_EQ(s["name"], "feuille-ed-0b1e");
  EXPECT_EQ(s["command"], nlohmann::json({"node", "cli.js", "--port", "23456", "--token", "tok", "--base", "/u/0b1e/"}));
  EXPECT_EQ(s["netns"], nlohmann::json({{"nsmode", "host"}}));
  EXPECT_FALSE(s.contains("portmappings"));
  EXPECT_EQ(s["labels"]["io.feuille.role"], "editor");
  EXPECT_EQ(s["labels"]["io.feuille.port"], "23456");
  EXPECT_EQ(s["resource_limits"], nlohmann::json({{"memory", {{"limit", 512ull << 20}}}}));
  EXPECT_EQ(s["env"], nlohmann::json({{"CLOUD_MODE", "1"},
                                      {"PORT", "23456"},
                                      {"RUNTIME_PORT", "41234"},
                                      {"RUNTIME_HOST", "10.0.0.5"},
                                      {"BASE_PATH", "/u/0b1e/"},
                                      {"HOME", "/home/user"},
                                      {"CLOUD_USER_ID", "0b1e"},
                                      {"CLOUD_USER_NAME", "Alice A"},
                                      {"CLOUD_USER_USERNAME", "alice"},
                                      {"CLOUD_USER_EMAIL", "alice@example.org"},
                                      {"CLOUD_USER_PLAN", "pro"}}));
  EXPECT_EQ(s["apparmor_profile"], "unconfined");
  EXPECT_EQ(s["oci_runtime"], "runc");
}

TEST(Compute, PortsAreHandedOutOnceWithinTheirRange) {
  PortAllocator a;
  PortAllocator::Range r{30000, 30004};
  std::set<std::uint16_t> got;
  a.mark_taken(30002);
  for (int i = 0; i < 4; ++i) {
    auto p = a.allocate(r, nullptr);
    ASSERT_TRUE(p);
    EXPECT_GE(*p, 30000);
    EXPECT_LE(*p, 30004);
    EXPECT_NE(*p, 30002);
    EXPECT_TRUE(got.insert(*p).second) << *p;
  }
  EXPECT_FALSE(a.allocate(r, nullptr));  // used up
  a.release(30003);
  EXPECT_EQ(a.allocate(r, nullptr), std::optional<std::uint16_t>(30003));
  // Ports the host check refuses are skipped.
  PortAllocator b;
  auto p = b.allocate(r, [](std::uint16_t port) { return port == 30004; });
  EXPECT_EQ(p, std::optional<std::uint16_t>(30004));
  EXPECT_FALSE(b.allocate(r, [](std::uint16_t port) { return port == 30004; }));
}

TEST(Compute, BusyPortsOnThisMachineAreSeen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const auto port = ntohs(a.sin_port);
  EXPECT_FALSE(port_free_on_host("127.0.0.1", port));
  close(fd);
  EXPECT_TRUE(port_free_on_host("127.0.0.1", port));
  // An address this machine does not have (a remote host's): cannot tell here.
  EXPECT_TRUE(port_free_on_host("192.0.2.1", port));
}

TEST(Compute, TheFirstRunFolderIsMadeOnceAndNeverOverwritten) {
  feuille::test::TempDir dir;
  const std::string data = dir.path() + "/users";
  auto home = ensure_workspace_folder(data, "u1", 1234, 2345);
  EXPECT_EQ(home, data + "/u1");
  const std::string scratch = home + "/Projects/Scratch";
  for (const auto& p : {home, home + "/Projects", scratch, scratch + "/mrmd.md", scratch + "/01-index.md"}) {
    struct stat st {};
    ASSERT_EQ(stat(p.c_str(), &st), 0) << p;
    if (geteuid() == 0) {
      EXPECT_EQ(st.st_uid, 1234u) << p;
      EXPECT_EQ(st.st_gid, 2345u) << p;
    }
  }
  std::ofstream(scratch + "/01-index.md") << "mine";
  ensure_workspace_folder(data, "u1", 1234, 2345);
  std::ifstream in(scratch + "/01-index.md");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "mine");
  // A Scratch project the user deleted is not brought back.
  fs::remove_all(scratch);
  ensure_workspace_folder(data, "u1", 1234, 2345);
  EXPECT_FALSE(fs::exists(scratch));
  // A file where the folder should be is an error naming it.
  std::ofstream(data + "/u2") << "x";
  EXPECT_THROW(ensure_workspace_folder(data, "u2", 1234, 2345), std::runtime_error);
}

TEST(Compute, StateNamesRoundTrip) {
  for (auto s : kAllStates) EXPECT_EQ(parse_state(to_string(s)), s);
  EXPECT_FALSE(parse_state("asleep"));
  EXPECT_EQ(std::string(to_string(State::migrating)), "migrating");
}

TEST(Compute, ExitCodesAreExplained) {
  EXPECT_EQ(exit_description(1, false), "exited with code 1");
  EXPECT_EQ(exit_description(137, true), "exited with code 137 (out of memory)");
  EXPECT_EQ(exit_description(137, false), "exited with code 137 (killed: out of memory, or stopped from outside)");
}
