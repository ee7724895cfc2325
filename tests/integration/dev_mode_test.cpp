// `feuilled --dev`: its own PostgreSQL (and podman service), data kept across
// runs, nothing left running after SIGTERM or after a SIGKILL and a new run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "support/daemon.hpp"

using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// Processes whose command line contains `needle`.
std::vector<int> processes_with(const std::string& needle) {
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find(needle) != std::string::npos && cmd.find("feuilled") == std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

bool none_left(const std::string& needle, std::chrono::milliseconds within = 10s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!processes_with(needle).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// The libpq URL of the dev cluster, from its "socket in DIR" log line.
std::string dev_database_url(Process& p) {
  auto line = p.wait_for_stderr("dev: PostgreSQL running from", 60s);
  if (!line) return "";
  std::smatch m;
  std::regex re(R"(\(socket in (.*)\))");
  if (!std::regex_search(*line, m, re)) return "";
  return "postgresql:///feuille?host=" + m[1].str() + "&user=feuille";
}

std::unique_ptr<Process> start_dev(const std::string& state) {
  auto p = std::make_unique<Process>(
      std::vector<std::string>{feuilled_path(), "--dev", "--state-dir", state, "--listen", "127.0.0.1:0"});
  return p;
}

}  // namespace

class DevMode : public ::testing::Test {
 protected:
  void SetUp() override { chmod(dir.path().c_str(), 0755); }
  std::string state() const { return dir.path() + "/state"; }
  TempDir dir;
};

TEST_F(DevMode, ComesUpKeepsItsDataAndLeavesNothingBehind) {
  {
    auto p = start_dev(state());
    int port = wait_for_port(*p, 90s);
    ASSERT_NE(port, 0) << p->stderr_text();
    EXPECT_EQ(http_request(port, "GET", "/healthz").body, "ok");
    auto ready = http_request(port, "GET", "/readyz");
    EXPECT_EQ(ready.status, 200) << ready.body;
    auto url = dev_database_url(*p);
    ASSERT_FALSE(url.empty());
    pqxx::connection c(url);
    pqxx::work w(c);
    w.exec("INSERT INTO users (handle) VALUES ('keepme')");
    w.commit();
    EXPECT_TRUE(fs::exists(state() + "/postgres/data/PG_VERSION"));  // the cluster lives in the state folder
    p->signal(SIGTERM);
    EXPECT_EQ(p->wait(30s), 0);
  }
  EXPECT_TRUE(none_left(state() + "/postgres/data"));
  EXPECT_TRUE(none_left(state() + "/podman"));

  // A second run (here the user list command) finds the data.
  Process list({feuilled_path(), "--dev", "--state-dir", state(), "user", "list"});
  EXPECT_EQ(list.wait(90s), 0) << list.stderr_text();
  EXPECT_THAT(list.stdout_text(), HasSubstr("keepme"));
  EXPECT_TRUE(none_left(state() + "/postgres/data"));
}

TEST_F(DevMode, ASigkilledRunLeavesNothingAfterTheNextRun) {
  {
    auto p = start_dev(state());
    ASSERT_NE(wait_for_port(*p, 90s), 0) << p->stderr_text();
    p->signal(SIGKILL);
    p->wait(10s);
  }
  // The kernel tells the children (parent-death signal); the next run would
  // also stop a survivor it finds.
  auto p = start_dev(state());
  int port = wait_for_port(*p, 90s);
  ASSERT_NE(port, 0) << p->stderr_text();
  EXPECT_EQ(http_request(port, "GET", "/readyz").status, 200);
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(30s), 0);
  EXPECT_TRUE(none_left(state() + "/postgres/data"));
  EXPECT_TRUE(none_left(state() + "/podman"));
}

TEST_F(DevMode, AStalePidFileIsRecovered) {
  {
    auto p = start_dev(state());
    ASSERT_NE(wait_for_port(*p, 90s), 0) << p->stderr_text();
    p->signal(SIGTERM);
    ASSERT_EQ(p->wait(30s), 0);
  }
  // A postmaster.pid naming a live process that is not PostgreSQL (pid 1).
  std::ofstream(state() + "/postgres/data/postmaster.pid") << "1\n" << state() << "/postgres/data\n";
  auto p = start_dev(state());
  ASSERT_NE(wait_for_port(*p, 90s), 0) << p->stderr_text();
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(30s), 0);
}

TEST(DevModeLayout, UnreachableStateFolderAndLongSocketPaths) {
  TempDir dir;  // mode 0700, owned by root: the PostgreSQL account cannot enter it
  std::string state = dir.path() + "/" + std::string(90, 'x');
  auto p = std::make_unique<Process>(
      std::vector<std::string>{feuilled_path(), "--dev", "--state-dir", state, "--listen", "127.0.0.1:0"});
  int port = wait_for_port(*p, 90s);
  ASSERT_NE(port, 0) << p->stderr_text();
  EXPECT_EQ(http_request(port, "GET", "/readyz").status, 200);
  if (geteuid() == 0) {
    std::ifstream loc(state + "/postgres/LOCATION");
    std::string where;
    ASSERT_TRUE(std::getline(loc, where));
    EXPECT_TRUE(fs::exists(where + "/data/PG_VERSION"));
  }
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(30s), 0);
  std::ifstream loc(state + "/postgres/LOCATION");
  std::string where;
  if (std::getline(loc, where)) {
    EXPECT_TRUE(none_left(where + "/data"));
    fs::remove_all(where);
  }
}
