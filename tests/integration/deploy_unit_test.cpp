// deploy/feuilled.service's capability set is enough, and needed: the daemon
// run under exactly the unit's CapabilityBoundingSet and NoNewPrivileges
// (setpriv: systemd is not PID 1 on the test machines, so the unit itself
// cannot be started here) installs the egress rules, starts a workspace and
// reaches the runtime through the gateway. Without CAP_SYS_ADMIN or
// CAP_NET_ADMIN the daemon refuses to start, saying which.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "support/daemon.hpp"
#include "support/podman.hpp"
#include "support/process.hpp"
#include "support/test_db.hpp"
#include "support/workspace_daemon.hpp"
#include "util/child_process.hpp"

using namespace feuille;
using namespace feuille::test;
using ::testing::HasSubstr;
using json = nlohmann::json;

namespace {

// The unit's CapabilityBoundingSet, as setpriv names them (chown, sys_admin, ...).
std::vector<std::string> unit_capabilities() {
  std::ifstream in(std::string(FEUILLE_SOURCE_DIR) + "/deploy/feuilled.service");
  std::string line;
  std::vector<std::string> caps;
  while (std::getline(in, line)) {
    if (line.rfind("CapabilityBoundingSet=", 0) != 0) continue;
    std::istringstream words(line.substr(line.find('=') + 1));
    for (std::string w; words >> w;) {
      std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
      caps.push_back(w.rfind("cap_", 0) == 0 ? w.substr(4) : w);
    }
  }
  return caps;
}

std::vector<std::string> setpriv_without(const std::string& dropped) {
  std::string set = "-all";
  for (const auto& c : unit_capabilities())
    if (c != dropped) set += ",+" + c;
  return {"/usr/bin/setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=" + set, "--"};
}

bool has_line(const std::string& key_value) {
  std::ifstream in(std::string(FEUILLE_SOURCE_DIR) + "/deploy/feuilled.service");
  for (std::string line; std::getline(in, line);)
    if (line == key_value) return true;
  return false;
}

}  // namespace

TEST(DeployUnit, TheUnitsCapabilitiesStartAnIsolatedWorkspace) {
  auto caps = unit_capabilities();
  ASSERT_THAT(caps, ::testing::IsSupersetOf({"sys_admin", "net_admin", "chown"}));
  EXPECT_TRUE(has_line("RestrictNamespaces=net"));
  EXPECT_TRUE(has_line("NoNewPrivileges=yes"));

  WorkspaceDaemon w({}, "", setpriv_without(""));
  // The daemon's bounding set is the unit's, nothing more (capsh names them).
  std::ifstream status("/proc/" + std::to_string(w.daemon->process().pid()) + "/status");
  std::string line, bounding;
  while (std::getline(status, line))
    if (line.rfind("CapBnd:", 0) == 0) bounding = line.substr(line.find_first_not_of(" \t", 7));
  auto decoded = run_command({"capsh", "--decode=" + bounding}, {}, std::chrono::seconds(10)).output;
  std::vector<std::string> names;
  std::istringstream list(decoded.substr(decoded.find('=') + 1));
  for (std::string n; std::getline(list, n, ',');) names.push_back(n.substr(0, n.find_last_not_of("\n") + 1).substr(4));
  EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(caps)) << decoded;

  auto alice = w.login("alice");
  w.post("/api/workspace/start", alice);
  ASSERT_TRUE(w.wait_state(alice, "running")) << w.workspace(alice).dump();
  auto me = json::parse(w.daemon->get("/api/me", w.as(alice)).body);
  auto r = w.daemon->get("/u/" + me["id"].get<std::string>() + "/api/_standin/runtime", w.in(alice, me["id"]));
  EXPECT_EQ(r.status, 200) << r.body;  // the editor reached its runtime through the gateway
}

TEST(DeployUnit, WithoutSysAdminTheDaemonRefusesToStart) {
  TestDatabase db;
  auto argv = setpriv_without("sys_admin");
  argv.insert(argv.end(), {feuilled_path(), "--database-url", db.url(), "--listen", "127.0.0.1:0", "--compute-host",
                           compute_host_arg(), "--egress-address", "198.18.0.6"});
  Process p(argv);
  EXPECT_NE(p.wait(std::chrono::seconds(60)).value_or(0), 0);
  EXPECT_THAT(p.stderr_text(), HasSubstr("lacks CAP_SYS_ADMIN"));
  EXPECT_EQ(run_command({"nft", "list", "table", "ip", "feuille_egress_198_18_0_6"}, {}, std::chrono::seconds(10)).status,
            1);  // it stopped before anything was installed
}

TEST(DeployUnit, WithoutNetAdminTheDaemonRefusesToStart) {
  TestDatabase db;
  auto argv = setpriv_without("net_admin");
  // An egress address of its own: the fixture's rules are installed already.
  argv.insert(argv.end(), {feuilled_path(), "--database-url", db.url(), "--listen", "127.0.0.1:0", "--compute-host",
                           compute_host_arg(), "--egress-address", "198.18.0.5"});
  Process p(argv);
  EXPECT_NE(p.wait(std::chrono::seconds(60)).value_or(0), 0);
  EXPECT_THAT(p.stderr_text(), HasSubstr("CAP_NET_ADMIN"));
  EXPECT_EQ(run_command({"nft", "list", "table", "ip", "feuille_egress_198_18_0_5"}, {}, std::chrono::seconds(10)).status,
            1);  // nothing was installed
}
