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

#include "compute/checkpoint_probe.hpp"
#include "compute/container_spec.hpp"
#include "compute/egress.hpp"
#include "compute/port_allocator.hpp"
#include "compute/state.hpp"
#include "compute/workspace_folder.hpp"
#include "compute/workspace_manager.hpp"
#include "support/process.hpp"
#include "util/units.hpp"

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
  return SpecBase{"inst-1", "/data/users/0b1e", "runc", "mrmd-runtime:latest", command, "tok", Isolation{"198.18.0.1"}};
}
const nlohmann::json kSlirp = {"allow_host_loopback=false", "enable_ipv6=false", "outbound_addr=198.18.0.1"};
}  // namespace

TEST(Compute, RuntimeSpec) {
  auto s = runtime_spec(RuntimeParams{base("run --port {port} --token {token}"), owner(), 41234, 512ull << 20, 1.0, ""});
  EXPECT_EQ(s["name"], "feuille-rt-0b1e");
  EXPECT_EQ(s["image"], "mrmd-runtime:latest");
  EXPECT_EQ(s["command"], nlohmann::json({"run", "--port", "8888", "--token", "tok"}));
  EXPECT_EQ(s["labels"], nlohmann::json({{"io.feuille.user", "0b1e"},
                                         {"io.feuille.role", "runtime"},
                                         {"io.feuille.port", "41234"},
                                         {"io.feuille.instance", "inst-1"},
                                         {"io.feuille.net", "isolated"},
                                         {"io.feuille.egress", "198.18.0.1"}}));
  // Its own namespace, outbound through slirp4netns from the egress address,
  // and nothing published (portmappings publish even under slirp4netns).
  EXPECT_EQ(s["netns"], nlohmann::json({{"nsmode", "slirp4netns"}}));
  EXPECT_EQ(s["network_options"], nlohmann::json({{"slirp4netns", kSlirp}}));
  EXPECT_FALSE(s.contains("portmappings"));
  EXPECT_FALSE(s.contains("pod"));
  EXPECT_EQ(s["cap_drop"], nlohmann::json({"ALL"}));
  EXPECT_EQ(s["no_new_privileges"], true);
  EXPECT_EQ(s["resource_limits"]["memory"]["limit"], 512ull << 20);
  EXPECT_EQ(s["resource_limits"]["cpu"]["quota"], 100000);
  EXPECT_EQ(s["resource_limits"]["cpu"]["period"], 100000);
  EXPECT_EQ(s["apparmor_profile"], "unconfined");  // CRIU
  EXPECT_EQ(s["oci_runtime"], "runc");
  EXPECT_EQ(s["mounts"], nlohmann::json::parse(
                             R"([{"destination":"/home/user","source":"/data/users/0b1e","type":"bind","options":["rbind"]}])"));
  EXPECT_EQ(s["restart_policy"], "no");
  EXPECT_FALSE(s.contains("user"));  // the image's
  auto half = runtime_spec(RuntimeParams{base("run"), owner(), 40000, 256ull << 20, 0.5, ""});
  EXPECT_EQ(half["resource_limits"]["cpu"]["quota"], 50000);
  // Without an egress address (egress-address = off): no outbound_addr.
  auto b = base("run");
  b.isolation.egress_address.clear();
  EXPECT_EQ(runtime_spec(RuntimeParams{b, owner(), 40000, 256ull << 20, 0.5, ""})["network_options"],
            nlohmann::json({{"slirp4netns", {"allow_host_loopback=false", "enable_ipv6=false"}}}));
}

TEST(Compute, RuntimeUserAndTheCheckpointProbe) {
  const RuntimeParams p{base("run --port {port}"), owner(), 41234, 512ull << 20, 1.0, "0"};
  auto rt = runtime_spec(p);
  EXPECT_EQ(rt["user"], "0");
  // The probe is the runtime's container (image, command, user, namespace,
  // AppArmor) without the user's folder, environment or deployment label:
  // reconcile, which lists by io.feuille.instance, never sees it.
  auto probe = checkpoint_probe_spec(ProbeRuntime{"inst-1", "runc", "mrmd-runtime:latest", "run --port {port}", "0",
                                                  Isolation{"198.18.0.1"}});
  EXPECT_EQ(probe["name"], "feuille-criu-probe-inst-1");
  EXPECT_EQ(probe["labels"], nlohmann::json({{"io.feuille.probe", "checkpoint"}}));
  EXPECT_FALSE(probe.contains("mounts"));
  EXPECT_EQ(probe["env"], nlohmann::json({{"HOME", "/home/user"}}));
  rt = runtime_spec(RuntimeParams{p.base, p.owner, 0, 256ull << 20, 0, "0"});  // the probe's limit, no CPU quota
  for (const char* same : {"image", "command", "user", "netns", "network_options", "apparmor_profile", "cap_drop",
                           "no_new_privileges", "oci_runtime", "resource_limits"})
    EXPECT_EQ(probe[same], rt[same]) << same;
}

TEST(Compute, EditorSpecAndItsPod) {
  auto b = base("node cli.js --port {port} --token {token} --base {base_path}");
  b.image = "mrmd-editor:latest";
  const EditorParams params{b, owner(), 23456, 41234};
  auto s = editor_spec(params);
  EXPECT_EQ(s["name"], "feuille-ed-0b1e");
  EXPECT_EQ(s["command"], nlohmann::json({"node", "cli.js", "--port", "23456", "--token", "tok", "--base", "/u/0b1e/"}));
  // Its namespace is its pod's, made first.
  EXPECT_EQ(s["pod"], "feuille-pod-0b1e");
  EXPECT_FALSE(s.contains("netns"));
  EXPECT_FALSE(s.contains("portmappings"));
  EXPECT_EQ(s["labels"]["io.feuille.role"], "editor");
  EXPECT_EQ(s["labels"]["io.feuille.port"], "23456");
  EXPECT_EQ(s["labels"]["io.feuille.net"], "isolated");
  EXPECT_EQ(s["resource_limits"], nlohmann::json({{"memory", {{"limit", 512ull << 20}}}}));
  EXPECT_EQ(s["env"], nlohmann::json({{"CLOUD_MODE", "1"},
                                      {"PORT", "23456"},
                                      {"RUNTIME_PORT", "41234"},
                                      {"RUNTIME_HOST", "127.0.0.1"},
                                      {"BASE_PATH", "/u/0b1e/"},
                                      {"HOME", "/home/user"},
                                      {"CLOUD_USER_ID", "0b1e"},
                                      {"CLOUD_USER_NAME", "Alice A"},
                                      {"CLOUD_USER_USERNAME", "alice"},
                                      {"CLOUD_USER_EMAIL", "alice@example.org"},
                                      {"CLOUD_USER_PLAN", "pro"}}));
  EXPECT_EQ(s["cap_drop"], nlohmann::json({"ALL"}));
  EXPECT_EQ(s["no_new_privileges"], true);
  // The host's default AppArmor profile: naming one fails where there is none.
  EXPECT_FALSE(s.contains("apparmor_profile"));
  EXPECT_EQ(s["oci_runtime"], "runc");

  auto pod = editor_pod_spec(params);
  EXPECT_EQ(pod["name"], "feuille-pod-0b1e");
  EXPECT_EQ(pod["infra_name"], "feuille-ns-0b1e");
  EXPECT_EQ(pod["netns"], nlohmann::json({{"nsmode", "slirp4netns"}}));
  EXPECT_EQ(pod["network_options"], nlohmann::json({{"slirp4netns", kSlirp}}));
  EXPECT_EQ(pod["labels"]["io.feuille.role"], "netns");
  EXPECT_EQ(pod["labels"]["io.feuille.user"], "0b1e");
  EXPECT_EQ(pod["labels"]["io.feuille.instance"], "inst-1");
  EXPECT_FALSE(pod.contains("portmappings"));
}

TEST(Compute, PortsAreHandedOutOnceWithinTheirRange) {
  PortAllocator a;
  PortAllocator::Range r{30000, 30004};
  std::set<std::uint16_t> got;
  a.mark_taken(30002);
  for (int i = 0; i < 4; ++i) {
    auto p = a.allocate(r);
    ASSERT_TRUE(p);
    EXPECT_GE(*p, 30000);
    EXPECT_LE(*p, 30004);
    EXPECT_NE(*p, 30002);
    EXPECT_TRUE(got.insert(*p).second) << *p;
  }
  EXPECT_FALSE(a.allocate(r));  // used up
  a.release(30003);
  EXPECT_EQ(a.allocate(r), std::optional<std::uint16_t>(30003));
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
  // Symlinks are never followed: not for the user's folder, not below it.
  fs::create_directory(dir.path() + "/elsewhere");
  fs::create_directory_symlink(dir.path() + "/elsewhere", data + "/u3");
  EXPECT_THROW(ensure_workspace_folder(data, "u3", 1234, 2345), std::runtime_error);
  fs::create_directory(data + "/u4");
  fs::create_directory_symlink(dir.path() + "/elsewhere", data + "/u4/Projects");
  EXPECT_THROW(ensure_workspace_folder(data, "u4", 1234, 2345), std::runtime_error);
  EXPECT_TRUE(fs::is_empty(dir.path() + "/elsewhere"));
  if (geteuid() == 0) {
    struct stat st {};
    ASSERT_EQ(stat((dir.path() + "/elsewhere").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);  // not given away through the link
  }
  EXPECT_THROW(ensure_workspace_folder(data, "../x", 1234, 2345), std::invalid_argument);
}

TEST(Compute, EgressRulesAreKeyedOnTheAddressAndReplacedAsAWhole) {
  feuille::Config c;
  c.egress_address = "198.18.0.7";
  c.egress_allow = {*feuille::units::parse_cidr("10.20.0.0/16")};
  feuille::test::TempDir dir;
  std::ofstream(dir.path() + "/resolv.conf") << "# comment\nnameserver 10.0.0.2\nnameserver fd00::1\nsearch x\n";
  auto plan = egress_plan(c, dir.path() + "/resolv.conf");
  EXPECT_EQ(plan.resolvers, std::vector<std::string>{"10.0.0.2"});
  EXPECT_EQ(egress_table("198.18.0.7"), "feuille_egress_198_18_0_7");
  auto rules = egress_ruleset(plan);
  // One transaction: declare, delete, recreate.
  EXPECT_EQ(rules.find("table ip feuille_egress_198_18_0_7 {}\ndelete table ip feuille_egress_198_18_0_7\n"), 0u);
  EXPECT_THAT(rules, ::testing::HasSubstr("comment \"feuilled tenant egress " + egress_fingerprint(plan) + "\""));
  // The allow-list first, DNS to the resolvers only, then the host's own
  // addresses and the blocked ranges, all keyed on the source address; and
  // the way out masqueraded.
  auto at = [&](const std::string& needle) {
    auto p = rules.find(needle);
    EXPECT_NE(p, std::string::npos) << needle << "\n" << rules;
    return p;
  };
  auto allow = at("ip saddr 198.18.0.7 ip daddr { 10.20.0.0/16 } accept");
  auto dns = at("ip saddr 198.18.0.7 ip daddr { 10.0.0.2 } meta l4proto { tcp, udp } th dport 53 accept");
  auto local = at("ip saddr 198.18.0.7 fib daddr type local");
  auto blocked = at("169.254.0.0/16");
  EXPECT_LT(allow, local);
  EXPECT_LT(dns, local);
  EXPECT_LT(local, blocked);
  for (const char* range : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"})
    at(range);
  at("ip saddr 198.18.0.7 oifname != \"lo\" masquerade");
  // Another allow-list is another fingerprint (a check tells them apart).
  auto other = plan;
  other.allow.clear();
  EXPECT_NE(egress_fingerprint(other), egress_fingerprint(plan));
  EXPECT_EQ(egress_ruleset(other).find("10.20.0.0/16"), std::string::npos);
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
