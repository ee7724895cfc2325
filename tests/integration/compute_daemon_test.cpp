// Compute as the real feuilled shows it: a readiness check per host, the
// workspace metrics, `feuilled check` reaching every host, the workspace
// routes behind a sign-in, the egress rules `feuilled check` verifies, and
// dev mode's stand-in images.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <thread>

#include "compute/egress.hpp"
#include "support/daemon.hpp"
#include "support/podman.hpp"
#include "support/workspace_daemon.hpp"
#include "util/child_process.hpp"
#include "util/units.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {
const std::string kGoneHost = "name=gone,url=unix:///nonexistent/podman.sock";
}

TEST(ComputeDaemon, ReadyzHasACheckPerHost) {
  {
    Daemon d;
    auto r = d.get("/readyz");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"host:local\":{"));
  }
  Daemon d({"--compute-host", compute_host_arg(), "--compute-host", kGoneHost});
  auto r = d.get("/readyz");
  EXPECT_EQ(r.status, 503) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["checks"]["host:local"]["ok"], true);
  EXPECT_EQ(j["checks"]["host:gone"]["ok"], false);
  EXPECT_THAT(j["checks"]["host:gone"]["detail"].get<std::string>(),
              HasSubstr("cannot connect to unix:///nonexistent/podman.sock"));
  EXPECT_EQ(j["checks"]["database"]["ok"], true);
  EXPECT_EQ(d.get("/healthz").status, 200);  // a host that does not answer does not stop feuilled

  // Anyone outside metrics-allow sees which checks pass, not why one fails
  // (no socket paths, no error text); the log has the details.
  Daemon anonymous({"--compute-host", kGoneHost, "--metrics-allow", "10.0.0.0/8"});
  auto a = anonymous.get("/readyz");
  EXPECT_EQ(a.status, 503) << a.body;
  auto aj = nlohmann::json::parse(a.body);
  EXPECT_EQ(aj["checks"]["host:gone"]["ok"], false);
  EXPECT_FALSE(aj["checks"]["host:gone"].contains("detail")) << a.body;
  EXPECT_THAT(a.body, ::testing::Not(HasSubstr("nonexistent")));
  EXPECT_TRUE(anonymous.process().wait_for_stderr("readiness check host:gone failing", 5s));
}

TEST(ComputeDaemon, MetricsHaveWorkspaceStatesAndStartDurations) {
  Daemon d;
  std::string body;
  for (int i = 0; i < 100; ++i) {  // the event stream connects just after start
    body = d.get("/metrics").body;
    if (body.find("feuille_compute_host_up{host=\"local\"} 1") != std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(body, HasSubstr("feuille_compute_host_up{host=\"local\"} 1"));
  for (const char* state : {"stopped", "starting", "running", "sleeping", "waking", "migrating", "stopping", "failed"})
    EXPECT_THAT(body, HasSubstr(std::string("feuille_workspaces{state=\"") + state + "\"} 0"));
  EXPECT_THAT(body, HasSubstr("feuille_workspace_start_duration_seconds_count 0"));
  EXPECT_THAT(body, HasSubstr("feuille_workspace_start_failures_total 0"));
}

TEST(ComputeDaemon, CheckReachesEveryHost) {
  TestDatabase db;
  Process p({feuilled_path(), "check", "--database-url", db.url(), "--compute-host", compute_host_arg(),
             "--compute-host", kGoneHost});
  EXPECT_EQ(p.wait(30s), 1);
  auto out = p.stdout_text();
  EXPECT_THAT(out, HasSubstr("ok   host local unix://"));
  EXPECT_THAT(out, HasSubstr("(Podman 4.3.1)"));
  EXPECT_THAT(out, HasSubstr("FAIL host gone unix:///nonexistent/podman.sock: cannot connect"));
  EXPECT_THAT(out, HasSubstr("ok   database"));
  EXPECT_THAT(out, HasSubstr("ok   namespaces (CAP_SYS_ADMIN"));
}

TEST(ComputeDaemon, CheckTriesACheckpoint) {
  TestDatabase db;
  std::vector<std::string> argv{feuilled_path(), "check", "--database-url", db.url(), "--compute-host",
                                compute_host_arg(), "--egress-address", test_egress_address(), "--runtime-user", "0"};
  for (auto& a : standin_args()) argv.push_back(a);
  auto run = [&](std::vector<std::string> extra) {
    auto all = argv;
    all.insert(all.end(), extra.begin(), extra.end());
    Process p(all);
    int status = p.wait(60s).value_or(-1);
    return std::pair{status, p.stdout_text()};
  };
  auto [st, out] = run({});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("ok   criu on local: a checkpoint of a runtime took"));
  // Not a failure of the check: workspaces run without it.
  std::tie(st, out) = run({"--criu", "off"});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("warn criu on local: off (criu = off)"));
}

TEST(ComputeDaemon, CheckVerifiesTheEgressRules) {
  TestDatabase db;
  auto check = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{feuilled_path(), "check", "--database-url", db.url(), "--compute-host",
                                  compute_host_arg()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Process p(argv);
    int status = p.wait(30s).value_or(-1);
    return std::pair{status, p.stdout_text()};
  };
  // The fixture's rules (put back: the last daemon using them removes them
  // at its shutdown when no tenant container runs): installed, and this
  // configuration's.
  Config fixture;
  fixture.egress_address = test_egress_address();
  compute::install_egress(compute::egress_plan(fixture));
  auto [st, out] = check({"--egress-address", test_egress_address()});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("ok   egress " + test_egress_address() + ": rules installed"));
  // Rules of another allow-list under the same address: refused, with what to do.
  Config other;
  other.egress_address = "198.18.0.9";
  other.egress_allow = {*units::parse_cidr("10.77.0.0/16")};
  compute::install_egress(compute::egress_plan(other));
  std::tie(st, out) = check({"--egress-address", "198.18.0.9"});
  EXPECT_EQ(st, 1) << out;
  EXPECT_THAT(out, HasSubstr("FAIL egress 198.18.0.9: the nftables table feuille_egress_198_18_0_9 holds other rules"));
  std::tie(st, out) = check({"--egress-address", "198.18.0.9", "--egress-allow", "10.77.0.0/16"});
  EXPECT_EQ(st, 0) << out;
  run_command({"nft", "delete", "table", "ip", "feuille_egress_198_18_0_9"}, {}, 10s);
  run_command({"ip", "addr", "del", "198.18.0.9/32", "dev", "lo"}, {}, 10s);  // install_egress put it there
  // Off: said plainly, not a failure.
  std::tie(st, out) = check({"--egress-address", "off"});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("warn egress: off"));
}

TEST(ComputeDaemon, WorkspaceRoutesNeedASignIn) {
  Daemon d;
  for (auto [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/workspace"},
           {"POST", "/api/workspace/start"},
           {"POST", "/api/workspace/stop"},
           {"GET", "/api/workspace/events"},
           {"GET", "/api/snapshots"},
           {"POST", "/api/snapshots/abc/restore"},
           {"POST", "/api/workspace/sandbox"}}) {
    auto r = d.request(method, path);
    EXPECT_EQ(r.status, 401) << method << " " << path << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"error\"")) << path;
  }
}

TEST(ComputeDaemon, DevModeRunsTheStandInWhenTheImagesAreAbsent) {
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  Process p({feuilled_path(), "--dev", "--state-dir", dir.path() + "/state", "--listen", "127.0.0.1:0",
             "--editor-image", "localhost/feuille-absent-editor:1", "--runtime-image", "localhost/feuille-absent-runtime:1"});
  const int port = wait_for_port(p, 90s);
  ASSERT_NE(port, 0) << p.stderr_text();
  auto line = p.wait_for_stderr("using the stand-in image", 10s);
  ASSERT_TRUE(line) << p.stderr_text();
  EXPECT_THAT(*line, HasSubstr("localhost/feuille-absent-editor:1 and localhost/feuille-absent-runtime:1 absent"));
  EXPECT_THAT(*line, HasSubstr("localhost/feuille-standin:"));
  // ... and on the dashboard.
  auto login = http_request(port, "POST", "/auth/dev",
                            {{"Content-Type", "application/x-www-form-urlencoded"},
                             {"Origin", "http://127.0.0.1:" + std::to_string(port)}},
                            "handle=devuser");
  auto cookie = login.header("set-cookie");
  ASSERT_EQ(cookie.rfind("feuille_session=", 0), 0u) << login.status << login.body;
  auto page = http_request(port, "GET", "/dashboard", {{"Cookie", cookie.substr(0, cookie.find(';'))}});
  EXPECT_THAT(page.body, HasSubstr("so workspaces run the stand-in image localhost/feuille-standin:"));
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(30s), 0);
}

// The egress table goes with the last feuilled using its address, once no
// tenant container runs on the host; while one runs (containers outlive
// feuilled) it stays, so tenants are never left unfiltered.
TEST(ComputeDaemon, EgressRulesGoWithTheLastDaemonWhenNoTenantRuns) {
  auto table_exists = [](const std::string& table) {
    return run_command({"nft", "list", "table", "ip", table}, {}, 10s).status == 0;
  };
  {
    Daemon first({"--egress-address", "198.18.0.21"});
    Daemon second({"--egress-address", "198.18.0.21"});
    ASSERT_TRUE(table_exists("feuille_egress_198_18_0_21"));
    EXPECT_EQ(first.stop(), std::optional<int>(0));
    EXPECT_TRUE(table_exists("feuille_egress_198_18_0_21")) << "removed while another feuilled uses it";
    EXPECT_EQ(second.stop(), std::optional<int>(0));
    EXPECT_FALSE(table_exists("feuille_egress_198_18_0_21")) << second.process().stderr_text();
  }
  {
    WorkspaceDaemon w({"--egress-address", "198.18.0.22"});
    auto token = w.login("eve");
    ASSERT_EQ(w.post("/api/workspace/start", token).status, 202);
    ASSERT_TRUE(w.wait_state(token, "running"));
    EXPECT_EQ(w.daemon->stop(), std::optional<int>(0));
    EXPECT_TRUE(table_exists("feuille_egress_198_18_0_22")) << "removed while a tenant container runs";
    EXPECT_THAT(w.daemon->process().stderr_text(), HasSubstr("rules kept for the"));
  }
  run_command({"nft", "delete", "table", "ip", "feuille_egress_198_18_0_22"}, {}, 10s);
  for (const char* a : {"198.18.0.21/32", "198.18.0.22/32"}) run_command({"ip", "addr", "del", a, "dev", "lo"}, {}, 10s);
}
