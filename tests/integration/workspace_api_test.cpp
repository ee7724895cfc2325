// Workspaces through the real feuilled: the API and its event stream signed in
// with dev login, the CSRF rule, 429 past start-concurrency, the dashboard
// section, a SIGKILLed daemon coming back, and Podman going away.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dev/podman_service.hpp"
#include "support/daemon.hpp"
#include "support/netns.hpp"
#include "support/podman.hpp"
#include "support/workspace_daemon.hpp"
#include "util/child_process.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

namespace {

std::vector<std::string> event_names(const std::string& stream) {
  std::vector<std::string> out;
  for (std::size_t at = stream.find("\nevent: "); at != std::string::npos; at = stream.find("\nevent: ", at + 1))
    out.push_back(stream.substr(at + 8, stream.find('\n', at + 8) - at - 8));
  return out;
}

// Starts token's workspace; returns once it runs and its host's checkpoint
// probe has said yes.
void start_with_checkpoints(WorkspaceDaemon& a, const std::string& token) {
  ASSERT_EQ(a.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(a.wait_state(token, "running"));
  for (int i = 0; i < 100 && !a.workspace(token)["criu"].get<bool>(); ++i) std::this_thread::sleep_for(100ms);
  ASSERT_EQ(a.workspace(token)["criu"], true);
}

// A workspace of `handle` started with checkpoints: its user's id, the
// headers of a request on its own origin, and its runtime's address through
// the editor's /proxy/ route.
struct RunningWorkspace {
  std::string token, id;
  std::map<std::string, std::string> in;
  std::string runtime;  // /u/{id}/proxy/{runtime port}
};
RunningWorkspace run_workspace(WorkspaceDaemon& a, const std::string& handle, bool checkpoints) {
  RunningWorkspace w;
  w.token = a.login(handle);
  w.id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = '" + handle + "'");
  if (checkpoints) {
    start_with_checkpoints(a, w.token);
  } else {
    EXPECT_EQ(a.post("/api/workspace/start", w.token).status, 202);
    EXPECT_TRUE(a.wait_state(w.token, "running"));
  }
  if (::testing::Test::HasFailure()) return w;
  w.in = a.in(w.token, w.id);
  w.runtime = "/u/" + w.id + "/proxy/" + std::to_string(a.workspace(w.token)["runtime"]["port"].get<int>());
  return w;
}
RunningWorkspace run_with_checkpoints(WorkspaceDaemon& a, const std::string& handle) {
  return run_workspace(a, handle, true);
}

// A runtime container as isolated as a fresh start makes it: a slirp4netns
// namespace of its own (not the editor's), nothing published, no
// capability, no new privileges, and slirp4netns's way to the host's
// loopback (where feuilled listens on `feuilled_port`) closed.
void expect_isolated(const std::string& container, const std::string& editor_ns, int feuilled_port) {
  SCOPED_TRACE(container);
  auto c = TestPodman().inspect(container);
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["HostConfig"]["NetworkMode"], "slirp4netns");
  const auto& ports = (*c)["HostConfig"]["PortBindings"];
  EXPECT_TRUE(ports.is_null() || ports.empty()) << ports.dump();
  EXPECT_TRUE((*c)["EffectiveCaps"].is_null() || (*c)["EffectiveCaps"].empty()) << (*c)["EffectiveCaps"].dump();
  EXPECT_THAT((*c)["HostConfig"]["SecurityOpt"].dump(), HasSubstr("no-new-privileges"));
  const std::string ns = (*c)["NetworkSettings"]["SandboxKey"];
  EXPECT_NE(ns, editor_ns);
  EXPECT_NE(connect_from(ns, "10.0.2.2", feuilled_port, 1000), "connected");
  EXPECT_NE(connect_from(ns, "127.0.0.1", feuilled_port, 1000), "connected");
}

// Opens a request through d's proxy with `headers` (a workspace's Host and
// cookie) on a connection of its own, left open for the test to read.
std::unique_ptr<RawConnection> open_request(Daemon& d, const std::string& target,
                                            const std::map<std::string, std::string>& headers) {
  auto c = std::make_unique<RawConnection>("127.0.0.1", d.port());
  std::string req = "GET " + target + " HTTP/1.1\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  c->send(req + "\r\n");
  return c;
}

// The last event number ("n":N) of a stand-in's /_sse stream read so far.
int last_tick(const std::string& stream) {
  auto at = stream.rfind("\"n\":");
  return at == std::string::npos ? -1 : std::stoi(stream.substr(at + 4));
}

}  // namespace

TEST(WorkspaceApi, TheMonitorSamplesRunningWorkspaces) {
  // A poll every 200 ms; /api/workspace shows its last sample and never
  // samples itself (an hour-long interval: no figures at all).
  WorkspaceDaemon a({"--monitor-interval", "200ms"});
  auto token = a.login("mona");
  ASSERT_EQ(a.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(a.wait_state(token, "running"));
  json rt;
  for (int i = 0; i < 100; ++i) {
    rt = a.workspace(token)["runtime"];
    if (rt["cpu_percent"].is_number()) break;  // the second sample of the same container
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(rt["cpu_percent"].is_number()) << rt.dump();
  EXPECT_EQ(rt["memory_limit_bytes"], 256 << 20);  // the free plan's
  EXPECT_GT(rt["memory_bytes"].get<std::uint64_t>(), 0u);
  auto metrics = http_request(a.daemon->port(), "GET", "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("feuille_monitor_poll_duration_seconds_count"));
  EXPECT_THAT(metrics, Not(HasSubstr("feuille_monitor_poll_duration_seconds_count 0\n")));
  EXPECT_THAT(metrics, HasSubstr("feuille_monitor_poll_loop_seconds_count"));
  EXPECT_THAT(metrics, Not(HasSubstr("feuille_monitor_poll_loop_seconds_count 0\n")));
  EXPECT_THAT(metrics, Not(HasSubstr("feuille_host_workspace_memory_bytes{host=\"local\",role=\"runtime\"} 0\n")));

  WorkspaceDaemon b({"--monitor-interval", "1h"});
  auto other = b.login("nils");
  ASSERT_EQ(b.post("/api/workspace/start", other).status, 202);
  ASSERT_TRUE(b.wait_state(other, "running"));
  for (int i = 0; i < 3; ++i) {
    auto idle = b.workspace(other)["runtime"];
    EXPECT_TRUE(idle["memory_bytes"].is_null()) << idle.dump();
    EXPECT_TRUE(idle["cpu_percent"].is_null()) << idle.dump();
  }
}

TEST(WorkspaceApi, StartFollowAndStop) {
  WorkspaceDaemon a;
  auto& d = *a.daemon;
  auto token = a.login("alice");
  auto ws = a.workspace(token);
  EXPECT_EQ(ws["state"], "stopped");
  EXPECT_TRUE(ws["criu"].is_boolean());  // whether this machine's CRIU dumps the stand-in's uid
  EXPECT_EQ(ws["editor"]["status"], "absent");

  RawConnection events("127.0.0.1", d.port());
  events.send("GET /api/workspace/events HTTP/1.1\r\nHost: x\r\nCookie: feuille_session=" + token + "\r\n\r\n");
  auto head = read_until(events, "event: state");
  EXPECT_THAT(head, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(head, HasSubstr("Content-Type: text/event-stream"));
  EXPECT_THAT(head, HasSubstr("data: {\"state\":\"stopped\"}"));

  auto start = a.post("/api/workspace/start", token);
  EXPECT_EQ(start.status, 202) << start.body;
  EXPECT_EQ(json::parse(start.body)["state"], "starting");
  auto stream = read_until(events, "event: ready");
  EXPECT_EQ(event_names(stream), (std::vector<std::string>{"starting", "creating-runtime", "waiting-for-health",
                                                           "starting-editor", "waiting-for-health", "ready"}))
      << stream;
  EXPECT_THAT(stream, HasSubstr("\"container\":\"runtime\""));

  ws = a.workspace(token);
  EXPECT_EQ(ws["state"], "running");
  EXPECT_EQ(ws["host"], "local");
  EXPECT_EQ(ws["editor"]["status"], "running");
  EXPECT_EQ(ws["runtime"]["status"], "running");
  EXPECT_GE(ws["editor"]["port"].get<int>(), 20000);
  EXPECT_GE(ws["runtime"]["port"].get<int>(), 40000);

  EXPECT_EQ(a.post("/api/workspace/start", token).status, 200);  // idempotent
  auto stop = a.post("/api/workspace/stop", token);
  EXPECT_EQ(stop.status, 200) << stop.body;
  EXPECT_EQ(json::parse(stop.body)["state"], "stopped");
  stream = read_until(events, "event: stopped", 10s);
  EXPECT_THAT(stream, HasSubstr("event: stopping"));
  EXPECT_EQ(a.workspace(token)["state"], "stopped");
  EXPECT_TRUE(TestPodman().list({"io.feuille.instance=" + a.instance}).empty());
  EXPECT_EQ(a.post("/api/workspace/stop", token).status, 200);  // idempotent

  // No snapshot or sandbox of a stopped workspace.
  auto snaps = d.get("/api/snapshots", a.as(token));
  EXPECT_EQ(snaps.status, 200);
  EXPECT_EQ(json::parse(snaps.body)["snapshots"], json::array());
  EXPECT_EQ(json::parse(snaps.body)["quota"], json({{"count", 3}, {"bytes", 2ull << 30}}));
  auto taken = d.request("POST", "/api/snapshots", a.as(token, true));
  EXPECT_EQ(taken.status, 409);
  EXPECT_THAT(taken.body, HasSubstr("must be running"));
  EXPECT_EQ(d.request("POST", "/api/workspace/sandbox", a.as(token, true)).status, 409);
}

TEST(WorkspaceApi, StateChangesNeedSameOriginWhenReachedWithTheCookie) {
  WorkspaceDaemon a;
  auto& d = *a.daemon;
  auto token = a.login("bob");
  EXPECT_EQ(d.request("POST", "/api/workspace/start", a.as(token)).status, 403);  // no Origin
  auto cross = a.as(token);
  cross["Origin"] = "https://evil.example";
  EXPECT_EQ(d.request("POST", "/api/workspace/start", cross).status, 403);
  EXPECT_EQ(d.request("POST", "/dashboard/workspace/start", cross).status, 403);
  EXPECT_EQ(a.workspace(token)["state"], "stopped");
  // A bearer token alone (no cookie, no Origin) is not a browser's.
  auto r = d.request("POST", "/api/workspace/start", {{"Authorization", "Bearer " + token}});
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_TRUE(a.wait_state(token, "running"));
}

TEST(WorkspaceApi, PastStartConcurrencyA429WithRetryAfter) {
  WorkspaceDaemon a({"--start-concurrency", "1"});
  auto first = a.login("carol"), second = a.login("dave");
  EXPECT_EQ(a.post("/api/workspace/start", first).status, 202);
  EXPECT_EQ(a.post("/api/workspace/start", first).status, 202);  // joins, does not count twice
  auto r = a.post("/api/workspace/start", second);
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.header("retry-after"), "3");
  EXPECT_THAT(r.body, HasSubstr("Too many workspaces are starting"));
  EXPECT_EQ(a.workspace(second)["state"], "stopped");
  ASSERT_TRUE(a.wait_state(first, "running"));
  EXPECT_EQ(a.post("/api/workspace/start", second).status, 202);
  EXPECT_TRUE(a.wait_state(second, "running"));
}

TEST(WorkspaceApi, TheDashboardShowsTheWorkspaceAndItsButtons) {
  WorkspaceDaemon a({"--monitor-interval", "200ms"});
  auto& d = *a.daemon;
  auto token = a.login("erin");
  auto id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = 'erin'");
  auto page = d.get("/dashboard", a.as(token));
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<h2>Workspace</h2>"));
  EXPECT_THAT(page.body, HasSubstr("data-workspace-state=\"stopped\""));
  EXPECT_THAT(page.body, HasSubstr("action=\"/dashboard/workspace/start\""));
  EXPECT_THAT(page.body, HasSubstr("/static/workspace."));
  auto script = d.get("/static/workspace.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_THAT(script.body, HasSubstr("/api/workspace/events"));

  auto pressed = d.request("POST", "/dashboard/workspace/start", a.as(token, true));
  EXPECT_EQ(pressed.status, 303);
  EXPECT_EQ(pressed.header("location"), "/dashboard");
  ASSERT_TRUE(a.wait_state(token, "running"));
  page = d.get("/dashboard", a.as(token));
  EXPECT_THAT(page.body, HasSubstr("data-workspace-state=\"running\""));
  EXPECT_THAT(page.body, HasSubstr("href=\"/u/" + id + "/\""));
  EXPECT_THAT(page.body, HasSubstr("action=\"/dashboard/workspace/stop\""));
  for (int i = 0; i < 50 && page.body.find("Memory ") == std::string::npos; ++i) {  // the monitor's first sample
    std::this_thread::sleep_for(100ms);
    page = d.get("/dashboard", a.as(token));
  }
  EXPECT_THAT(page.body, HasSubstr("Memory "));
  EXPECT_EQ(d.request("POST", "/dashboard/workspace/stop", a.as(token, true)).status, 303);
  EXPECT_EQ(a.workspace(token)["state"], "stopped");
}

TEST(WorkspaceApi, ASigkilledDaemonComesBackWithEveryWorkspaceRunning) {
  WorkspaceDaemon a;
  auto alice = a.login("alice"), bob = a.login("bob");
  a.post("/api/workspace/start", alice);
  a.post("/api/workspace/start", bob);
  ASSERT_TRUE(a.wait_state(alice, "running"));
  ASSERT_TRUE(a.wait_state(bob, "running"));
  auto before = a.workspace(alice);
  TestPodman podman;
  auto ids = [&] {
    std::set<std::string> out;
    for (const auto& c : podman.list({"io.feuille.instance=" + a.instance})) out.insert(c["Id"].get<std::string>());
    return out;
  };
  auto containers = ids();
  ASSERT_EQ(containers.size(), 6u);  // two editors, their pods' infra containers, two runtimes

  a.daemon->process().signal(SIGKILL);
  a.daemon->process().wait(10s);
  auto again = a.another();
  // Adopted as they were: same containers, same ports, nothing made anew.
  auto after = a.workspace(alice, again.get());
  EXPECT_EQ(after["state"], "running");
  EXPECT_EQ(after["editor"]["port"], before["editor"]["port"]);
  EXPECT_EQ(after["runtime"]["port"], before["runtime"]["port"]);
  EXPECT_EQ(a.workspace(bob, again.get())["state"], "running");
  EXPECT_EQ(ids(), containers);
  // The editor answers in its namespace, and the gateway is there again
  // (bound by the new feuilled) and reaches the runtime.
  auto alice_id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = 'alice'");
  const auto editor_ns = sandbox_key("feuille-ed-" + alice_id);
  in_netns(editor_ns, [&] {
    EXPECT_EQ(http_request(after["editor"]["port"].get<int>(), "GET", "/health").status, 200);
    EXPECT_EQ(http_request(after["runtime"]["port"].get<int>(), "GET", "/mrp/v1/capabilities").status, 200);
  });
  EXPECT_EQ(a.post("/api/workspace/start", alice, again.get()).status, 200);  // no second workspace
  EXPECT_EQ(ids(), containers);
  // And watched: a crash of an adopted editor is noticed and repaired.
  auto& db = a.daemon->db();  // the same database
  podman.kill("feuille-ed-" + alice_id);
  bool back = false;
  for (int i = 0; i < 300 && !back; ++i) {
    std::this_thread::sleep_for(100ms);
    back = db.scalar("SELECT count(*) FROM events WHERE kind = 'ready' AND detail ? 'restarted' AND user_id = '" +
                              alice_id + "'") == "1";
  }
  EXPECT_TRUE(back);
  EXPECT_TRUE(a.wait_state(alice, "running", again.get()));
  again->stop();
}

TEST(WorkspaceApi, PodmanGoneMeans503UntilItComesBack) {
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  ::setenv("CONTAINERS_CONF", (std::string(FEUILLE_SOURCE_DIR) + "/tests/containers.conf").c_str(), 1);
  dev::PodmanService service(dir.path() + "/podman", "runc", true);
  service.start();
  {
    WorkspaceDaemon a({}, service.url());
    auto& d = *a.daemon;
    auto olga = a.login("olga"), paul = a.login("paul");
    a.post("/api/workspace/start", olga);
    ASSERT_TRUE(a.wait_state(olga, "running"));
    auto port = a.workspace(olga)["editor"]["port"].get<int>();
    auto olga_id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'olga'");
    const auto editor_ns = sandbox_key("feuille-ed-" + olga_id, service.url());

    service.stop();
    auto r = a.post("/api/workspace/start", paul);
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.header("retry-after"), "5");
    EXPECT_THAT(r.body, HasSubstr("The compute host local cannot be reached"));
    EXPECT_EQ(a.post("/api/workspace/stop", olga).status, 503);
    auto ready = d.get("/readyz");
    EXPECT_EQ(ready.status, 503);
    EXPECT_THAT(ready.body, HasSubstr("\"host:local\":{"));
    // What runs keeps running: the containers do not need the API service.
    EXPECT_EQ(a.workspace(olga)["state"], "running");
    in_netns(editor_ns, [&] { EXPECT_EQ(http_request(port, "GET", "/health").status, 200); });
    EXPECT_EQ(a.workspace(paul)["state"], "stopped");

    service.start();
    int status = 0;
    for (int i = 0; i < 100 && status != 200; ++i) {
      status = d.get("/readyz").status;
      if (status != 200) std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status, 200);
    EXPECT_EQ(a.post("/api/workspace/start", paul).status, 202);
    EXPECT_TRUE(a.wait_state(paul, "running"));
    EXPECT_EQ(a.workspace(olga)["state"], "running");
    d.stop();
  }
  service.stop();
}

TEST(WorkspaceApi, AnIdleWorkspaceSleepsAndAVisitWakesIt) {
  // The no-checkpoint path (criu = off): the sleep removes both containers,
  // the wake is a cold start that says Python's state was not kept.
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=2s", "--criu", "off"});
  auto& d = *a.daemon;
  auto token = a.login("sol");
  auto id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'sol'");
  ASSERT_EQ(a.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(a.wait_state(token, "running"));
  auto in = a.in(token, id);  // the workspace cookie, taken while it runs
  const std::string at = "/u/" + id + "/";
  ASSERT_EQ(d.get(at + "busy", in).status, 200);

  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 20s)) << a.workspace(token).dump();
  auto steps = d.db().scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM events WHERE user_id = '" + id + "'");
  EXPECT_THAT(steps, HasSubstr("ready,sleeping,asleep"));
  EXPECT_THAT(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'sleeping' AND user_id = '" + id + "'"),
              HasSubstr("idle for"));
  EXPECT_TRUE(TestPodman().list({"io.feuille.instance=" + a.instance}).empty());
  EXPECT_EQ(d.db().scalar("SELECT state FROM workspaces WHERE user_id = '" + id + "'"), "sleeping");

  // A script's request (not a page) wakes it, waits for it and goes through,
  // with the cookie it had: a sleep does not end the ways in.
  auto woke = d.get(at + "woke", in);
  EXPECT_EQ(woke.status, 200) << woke.body;
  EXPECT_EQ(json::parse(woke.body)["path"], "/woke");
  EXPECT_EQ(a.workspace(token)["state"], "running");
  EXPECT_THAT(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'waking' AND user_id = '" + id + "'"),
              HasSubstr("\"python_state\": \"lost\""));

  // Asleep again, a page load gets the starting page and wakes it.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 20s));
  auto page_headers = in;
  page_headers["Accept"] = "text/html";
  auto page = d.get(at, page_headers);
  EXPECT_EQ(page.status, 503);
  EXPECT_THAT(page.body, HasSubstr("Starting your workspace"));
  EXPECT_TRUE(a.wait_state(token, "running"));
  // So does a visit to the dashboard.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 20s));
  auto dashboard = d.get("/dashboard", a.as(token));
  EXPECT_THAT(dashboard.body, HasSubstr("data-workspace-state=\"waking\""));
  EXPECT_THAT(dashboard.body, HasSubstr("data-criu=\"false\""));  // criu = off: it says the state is not kept
  EXPECT_TRUE(a.wait_state(token, "running"));
  // Stopping a sleeping workspace: stopped, nothing to remove.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 20s));
  auto stop = a.post("/api/workspace/stop", token);
  EXPECT_EQ(stop.status, 200) << stop.body;
  EXPECT_EQ(a.workspace(token)["state"], "stopped");
}

TEST(WorkspaceApi, ASleepKeepsPythonsStateAndTheWakeRestoresIt) {
  // Real CRIU (scripts/criu) through real Podman; the runtime runs as uid 0,
  // which this machine's CRIU can dump.
  TempDir snapshots;
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=2s", "--runtime-user", "0",
                     "--snapshot-dir", snapshots.path()});
  auto& d = *a.daemon;
  auto token = a.login("tao");
  auto id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'tao'");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto in = a.in(token, id);
  // Python's state, as the stand-in runtime keeps it: a value and its process's instance.
  const std::string runtime = "/u/" + id + "/proxy/" + std::to_string(a.workspace(token)["runtime"]["port"].get<int>()) +
                              "/_standin/state";
  auto before = d.get(runtime + "?set=kept-across-the-sleep", in);
  ASSERT_EQ(before.status, 200) << before.body;
  const auto instance = json::parse(before.body)["instance"];
  // 128 MiB resident: the archive streams through feuilled without growing it.
  const std::string alloc = "/u/" + id + "/proxy/" + std::to_string(a.workspace(token)["runtime"]["port"].get<int>()) +
                            "/_standin/alloc?mb=128";
  ASSERT_EQ(d.get(alloc, in).status, 200);
  const long rss_before = status_kib(d.process().pid(), "VmRSS");

  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 30s)) << a.workspace(token).dump();
  EXPECT_TRUE(TestPodman().list({"io.feuille.instance=" + a.instance}).empty());
  const std::string archive = snapshots.path() + "/" + id + "/sleep.tar";
  EXPECT_TRUE(std::filesystem::is_regular_file(archive));
  EXPECT_FALSE(std::filesystem::exists(archive + ".partial"));
  auto asleep = json::parse(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'asleep' AND user_id = '" + id + "'"));
  EXPECT_GT(asleep["snapshot_bytes"].get<std::uint64_t>(), 128ull << 20);
  EXPECT_GT(std::filesystem::file_size(archive), 128ull << 20);

  // A script's request wakes it and waits: the same process state is back.
  auto after = d.get(runtime, in);
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(json::parse(after.body)["value"], "kept-across-the-sleep");
  EXPECT_EQ(json::parse(after.body)["instance"], instance);
  auto steps = d.db().scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM events WHERE user_id = '" + id + "'");
  // The restore and the editor's start run at once: their steps interleave.
  EXPECT_THAT(steps, HasSubstr("asleep,waking,"));
  const auto woke = steps.substr(steps.find("asleep,waking,"));
  for (const char* step : {"restoring-runtime", "starting-editor", "waiting-for-health"})
    EXPECT_THAT(woke, HasSubstr(step)) << steps;
  EXPECT_THAT(woke, HasSubstr(",ready")) << steps;
  EXPECT_THAT(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'waking' AND user_id = '" + id + "'"),
              HasSubstr("\"python_state\": \"kept\""));
  EXPECT_FALSE(std::filesystem::exists(archive));  // its state lives in the runtime again
  EXPECT_LT(status_kib(d.process().pid(), "VmRSS") - rss_before, 32 * 1024) << "feuilled's RSS grew with the archive";

  // A snapshot that cannot be restored: a cold start, and the user is told.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 30s));
  std::ofstream(archive, std::ios::trunc) << "not a checkpoint";
  auto cold = d.get(runtime, in);
  ASSERT_EQ(cold.status, 200) << cold.body;
  EXPECT_NE(json::parse(cold.body)["instance"], instance);
  EXPECT_THAT(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'restore-failed' AND user_id = '" + id + "'"),
              HasSubstr("\"python_state\": \"lost\""));
  EXPECT_EQ(a.workspace(token)["state"], "running");

  // Stopping a sleeping workspace deletes its snapshot: a stopped one keeps no process state.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 30s));
  EXPECT_TRUE(std::filesystem::is_regular_file(archive));
  EXPECT_EQ(a.post("/api/workspace/stop", token).status, 200);
  EXPECT_FALSE(std::filesystem::exists(archive));
}

TEST(WorkspaceApi, ASleepGivesOpenExecutionsTheDrainTimeoutThenCutsThem) {
  // A streamed execution that says nothing (one event, then silence for 10
  // minutes) does not keep an idle workspace awake; its connection through
  // the gateway gets drain-timeout to end, then is cut before the dump, so
  // nothing reaches the runtime after it. A script's request that arrives
  // while it falls asleep waits for the sleep, wakes it and goes through.
  TempDir snapshots;
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=2s", "--runtime-user", "0",
                     "--snapshot-dir", snapshots.path(), "--drain-timeout", "2s"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_with_checkpoints(a, "ugo");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(d.get(runtime + "/_standin/state?set=before-the-sleep", in).status, 200);
  auto quiet = open_request(d, runtime + "/_sse?count=0&interval_ms=600000", in);
  ASSERT_THAT(read_until(*quiet, "\"n\":0}", 10s), HasSubstr("event: tick"));

  ASSERT_TRUE(a.wait_state(token, "stopping", nullptr, 30s)) << a.workspace(token).dump();
  auto during = d.get(runtime + "/_standin/state", in);  // during the drain
  ASSERT_EQ(during.status, 200) << during.body;
  EXPECT_EQ(json::parse(during.body)["value"], "before-the-sleep");
  EXPECT_TRUE(quiet->closed_by_peer(5s));
  const std::string first = " AND user_id = '" + id + "' ORDER BY id LIMIT 1";
  auto asleep = json::parse(d.db().scalar("SELECT detail::text FROM events WHERE kind = 'asleep'" + first));
  EXPECT_EQ(asleep["connections_cut"], 1) << asleep.dump();
  // The cut came after the drain timeout, not at once.
  auto waited = d.db().scalar("SELECT extract(epoch FROM (SELECT at FROM events WHERE kind = 'asleep'" + first +
                              ") - (SELECT at FROM events WHERE kind = 'sleeping'" + first + "))");
  EXPECT_GE(std::stod(waited), 2.0);
  auto steps = d.db().scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM events WHERE user_id = '" + id + "'");
  EXPECT_THAT(steps, HasSubstr("sleeping,asleep,waking")) << steps;
}

TEST(WorkspaceApi, ADaemonKilledDuringOrAfterASleepComesBackConsistent) {
  TempDir snapshots;
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=2s", "--runtime-user", "0",
                     "--snapshot-dir", snapshots.path()});
  auto token = a.login("uma");
  auto id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = 'uma'");
  const std::string archive = snapshots.path() + "/" + id + "/sleep.tar";
  auto events_of = [&] {  // the database is the first daemon's (the others use it)
    return a.daemon->db().scalar("SELECT coalesce(string_agg(kind, ',' ORDER BY id), '') FROM events WHERE user_id = '" + id + "'");
  };
  auto state_path = [&](Daemon& d) {
    return "/u/" + id + "/proxy/" + std::to_string(a.workspace(token, &d)["runtime"]["port"].get<int>()) + "/_standin/state";
  };
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  ASSERT_EQ(a.daemon->get(state_path(*a.daemon) + "?set=before-the-kill", a.in(token, id)).status, 200);

  // Killed once asleep: the next feuilled finds it sleeping, and a visit restores it.
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 30s));
  a.daemon->process().signal(SIGKILL);
  a.daemon->process().wait(10s);
  auto b = a.another();
  EXPECT_EQ(a.workspace(token, b.get())["state"], "sleeping");
  auto woke = b->get(state_path(*b), a.in(token, id, false, b.get(), true));
  ASSERT_EQ(woke.status, 200) << woke.body;
  EXPECT_EQ(json::parse(woke.body)["value"], "before-the-kill");

  // Killed in the middle of a sleep (a 128 MiB dump takes a while): never
  // a partial archive kept, never a duplicate runtime, and a state that
  // matches what is on disk.
  ASSERT_EQ(b->get("/u/" + id + "/proxy/" + std::to_string(a.workspace(token, b.get())["runtime"]["port"].get<int>()) +
                       "/_standin/alloc?mb=128",
                   a.in(token, id, false, b.get()))
                .status,
            200);
  const auto before = events_of().size();
  bool sleeping = false;
  for (int i = 0; i < 1500 && !sleeping; ++i) {
    std::this_thread::sleep_for(20ms);
    sleeping = events_of().substr(before).find("sleeping") != std::string::npos;
  }
  ASSERT_TRUE(sleeping) << events_of();
  b->process().signal(SIGKILL);
  b->process().wait(10s);
  auto c = a.another();
  const std::string state = a.workspace(token, c.get())["state"];
  EXPECT_FALSE(std::filesystem::exists(archive + ".partial"));
  EXPECT_TRUE(TestPodman().list({"io.feuille.instance=" + a.instance}).empty());  // both containers gone
  if (state == "sleeping") EXPECT_TRUE(std::filesystem::is_regular_file(archive));
  else EXPECT_EQ(state, "stopped");
  // Either way the next visit brings a running workspace (a wake is waited
  // for; a stopped workspace's start is not, as always).
  auto next = c->get("/u/" + id + "/next", a.in(token, id, false, c.get(), true));
  EXPECT_EQ(next.status, state == "sleeping" ? 200u : 503u) << next.body;
  EXPECT_TRUE(a.wait_state(token, "running", c.get()));
}

TEST(WorkspaceApi, SnapshotsTakenRestoredAndDeleted) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--plan", "name=free,snapshots=2"});
  auto& d = *a.daemon;
  auto token = a.login("vic");
  auto id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'vic'");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto in = a.in(token, id);
  const std::string runtime =
      "/u/" + id + "/proxy/" + std::to_string(a.workspace(token)["runtime"]["port"].get<int>()) + "/_standin/state";
  auto post_json = [&](const std::string& path, const std::string& body) {
    auto h = a.as(token, true);
    h["Content-Type"] = "application/json";
    return d.request("POST", path, h, body);
  };
  ASSERT_EQ(d.get(runtime + "?set=first", in).status, 200);
  const auto instance = json::parse(d.get(runtime, in).body)["instance"];

  // Taken while a streamed execution is open through the gateway (events
  // every 50 ms) and requests keep arriving: the stream stays on the
  // original and goes on, the requests wait out the freeze, none fails.
  const std::string sse = "/u/" + id + "/proxy/" +
                          std::to_string(a.workspace(token)["runtime"]["port"].get<int>()) +
                          "/_sse?count=0&interval_ms=50";
  auto streaming = open_request(d, sse, in);
  ASSERT_THAT(read_until(*streaming, "\"n\":2}", 10s), HasSubstr("event: tick"));
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, served{0};
  std::thread loop([&] {
    while (!done) {
      auto r = d.get(runtime, in);
      (r.status == 200 ? served : failures)++;
    }
  });
  auto taken = post_json("/api/snapshots", R"({"name":"before the change"})");
  done = true;
  loop.join();
  ASSERT_EQ(taken.status, 201) << taken.body;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(served.load(), 0);
  const int seen = last_tick(read_until(*streaming, "\n\n", 5s));
  ASSERT_GE(seen, 2);
  EXPECT_THAT(read_until(*streaming, "\"n\":" + std::to_string(seen + 3) + "}", 5s), HasSubstr("event: tick"));
  streaming.reset();
  const auto snap = json::parse(taken.body);
  EXPECT_EQ(snap["name"], "before the change");
  EXPECT_GT(snap["size_bytes"].get<std::int64_t>(), 10'000);
  EXPECT_TRUE(std::filesystem::is_regular_file(snapshots.path() + "/" + id + "/" + snap["id"].get<std::string>() + ".tar"));
  EXPECT_EQ(post_json("/api/snapshots", R"({"name":"before the change"})").status, 409);  // the name is taken
  EXPECT_EQ(post_json("/api/snapshots", R"({"name":7})").status, 400);

  // Change the state, restore: the old state is back, in the same process
  // image, behind the same port.
  ASSERT_EQ(d.get(runtime + "?set=second", in).status, 200);
  const auto port = a.workspace(token)["runtime"]["port"];
  auto restored = post_json("/api/snapshots/" + snap["id"].get<std::string>() + "/restore", "");
  ASSERT_EQ(restored.status, 200) << restored.body;
  auto now = json::parse(d.get(runtime, in).body);
  EXPECT_EQ(now["value"], "first");
  EXPECT_EQ(now["instance"], instance);
  EXPECT_EQ(a.workspace(token)["runtime"]["port"], port);
  EXPECT_EQ(TestPodman().list({"io.feuille.instance=" + a.instance}).size(), 3u);  // editor, its pod's, one runtime

  // The plan's quota: two at most here.
  ASSERT_EQ(post_json("/api/snapshots", "").status, 201);
  auto third = post_json("/api/snapshots", R"({"name":"one too many"})");
  EXPECT_EQ(third.status, 409);
  EXPECT_THAT(third.body, HasSubstr("2 snapshots at most"));
  auto listed = json::parse(d.get("/api/snapshots", a.as(token)).body);
  EXPECT_EQ(listed["snapshots"].size(), 2u);
  EXPECT_EQ(listed["used"]["count"], 2);

  // Another user can neither see, restore nor delete them.
  auto other = a.login("wes");
  const std::string path = "/api/snapshots/" + snap["id"].get<std::string>();
  EXPECT_EQ(json::parse(d.get("/api/snapshots", a.as(other)).body)["snapshots"], json::array());
  EXPECT_EQ(d.request("DELETE", path, a.as(other, true)).status, 404);
  EXPECT_EQ(d.request("POST", path + "/restore", a.as(other, true)).status, 404);
  EXPECT_EQ(d.request("DELETE", "/api/snapshots/not-a-uuid", a.as(token, true)).status, 404);

  // Deleted: the row and the file.
  EXPECT_EQ(d.request("DELETE", path, a.as(token, true)).status, 204);
  EXPECT_FALSE(std::filesystem::exists(snapshots.path() + "/" + id + "/" + snap["id"].get<std::string>() + ".tar"));
  EXPECT_EQ(json::parse(d.get("/api/snapshots", a.as(token)).body)["snapshots"].size(), 1u);
  EXPECT_EQ(d.request("DELETE", path, a.as(token, true)).status, 404);
}

TEST(WorkspaceApi, SnapshotSpaceCountsPodmansCopyOfTheDump) {
  // Podman keeps a leave-running dump in the container's storage until the
  // next checkpoint: it counts in the plan's space (the idle stand-in's
  // archive is about 215 KiB: one fits in 600K with its copy, two do not).
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--plan",
                     "name=free,snapshots=5,snapshot-bytes=600K"});
  auto& d = *a.daemon;
  auto token = a.login("yan");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto first = d.request("POST", "/api/snapshots", a.as(token, true));
  ASSERT_EQ(first.status, 201) << first.body;
  const auto size = json::parse(first.body)["size_bytes"].get<std::int64_t>();
  auto used = json::parse(d.get("/api/snapshots", a.as(token)).body)["used"];
  EXPECT_EQ(used["podman_bytes"], size);
  EXPECT_EQ(used["bytes"], 2 * size);
  auto second = d.request("POST", "/api/snapshots", a.as(token, true));
  EXPECT_EQ(second.status, 409) << second.body;
  EXPECT_THAT(second.body, HasSubstr("does not fit"));
  used = json::parse(d.get("/api/snapshots", a.as(token)).body)["used"];
  EXPECT_EQ(used["count"], 1);
  // A restore makes a new container: Podman's copy went with the old one.
  auto restored = d.request("POST", "/api/snapshots/" + json::parse(first.body)["id"].get<std::string>() + "/restore",
                            a.as(token, true));
  ASSERT_EQ(restored.status, 200) << restored.body;
  used = json::parse(d.get("/api/snapshots", a.as(token)).body)["used"];
  EXPECT_EQ(used["podman_bytes"], 0);
  EXPECT_EQ(used["bytes"], size);
}

TEST(WorkspaceApi, SnapshotsWithoutCheckpointsAreRefusedClearly) {
  WorkspaceDaemon a({"--criu", "off"});
  auto token = a.login("xia");
  ASSERT_EQ(a.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(a.wait_state(token, "running"));
  auto h = a.as(token, true);
  auto r = a.daemon->request("POST", "/api/snapshots", h);
  EXPECT_EQ(r.status, 501);
  EXPECT_THAT(r.body, HasSubstr("do not work on this server"));
  EXPECT_EQ(a.workspace(token)["state"], "running");
}

TEST(WorkspaceApi, SandboxForksRunApartAndGoWithTheWorkspace) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path()});
  auto& d = *a.daemon;
  auto token = a.login("yan");
  auto id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'yan'");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto in = a.in(token, id);
  auto state_at = [&](int port) { return "/u/" + id + "/proxy/" + std::to_string(port) + "/_standin/state"; };
  const int runtime_port = a.workspace(token)["runtime"]["port"].get<int>();
  ASSERT_EQ(d.get(state_at(runtime_port) + "?set=original", in).status, 200);
  const auto instance = json::parse(d.get(state_at(runtime_port), in).body)["instance"];

  auto forked = d.request("POST", "/api/workspace/sandbox", a.as(token, true));
  ASSERT_EQ(forked.status, 201) << forked.body;
  const auto sb = json::parse(forked.body);
  const int sb_port = sb["port"].get<int>();
  EXPECT_NE(sb_port, runtime_port);
  EXPECT_EQ(sb["container"], "feuille-sb-" + id + "-" + sb["id"].get<std::string>());
  EXPECT_EQ(a.workspace(token)["sandboxes"].size(), 1u);
  // The fork starts as the runtime was (the same process image), then the two diverge.
  auto fork_state = json::parse(d.get(state_at(sb_port), in).body);
  EXPECT_EQ(fork_state["value"], "original");
  EXPECT_EQ(fork_state["instance"], instance);
  ASSERT_EQ(d.get(state_at(sb_port) + "?set=changed-in-the-fork", in).status, 200);
  EXPECT_EQ(json::parse(d.get(state_at(runtime_port), in).body)["value"], "original");
  EXPECT_EQ(json::parse(d.get(state_at(sb_port), in).body)["value"], "changed-in-the-fork");

  // Removed: its container and port go; the runtime runs on.
  EXPECT_EQ(d.request("DELETE", "/api/workspace/sandbox/" + sb["id"].get<std::string>(), a.as(token, true)).status, 204);
  EXPECT_FALSE(TestPodman().inspect(sb["container"].get<std::string>()));
  EXPECT_EQ(d.request("DELETE", "/api/workspace/sandbox/" + sb["id"].get<std::string>(), a.as(token, true)).status, 404);
  EXPECT_EQ(json::parse(d.get(state_at(runtime_port), in).body)["value"], "original");

  // A stop takes its sandboxes with it.
  auto again = d.request("POST", "/api/workspace/sandbox", a.as(token, true));
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(a.post("/api/workspace/stop", token).status, 200);
  EXPECT_TRUE(TestPodman().list({"io.feuille.instance=" + a.instance}).empty());
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM runtimes WHERE kind = 'sandbox'"), "0");

  // Forks do not outlive feuilled: the next one removes them and adopts the rest.
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto kept = json::parse(d.request("POST", "/api/workspace/sandbox", a.as(token, true)).body);
  ASSERT_TRUE(TestPodman().inspect(kept["container"].get<std::string>()));
  d.process().signal(SIGKILL);
  d.process().wait(10s);
  auto b = a.another();
  EXPECT_EQ(a.workspace(token, b.get())["state"], "running");
  EXPECT_EQ(a.workspace(token, b.get())["sandboxes"], json::array());
  EXPECT_FALSE(TestPodman().inspect(kept["container"].get<std::string>()));
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM runtimes WHERE kind = 'sandbox'"), "0");
  EXPECT_EQ(a.post("/api/workspace/stop", token, b.get()).status, 200);
  EXPECT_TRUE(std::filesystem::is_empty(snapshots.path() + "/" + id));  // no archive left behind
}

TEST(WorkspaceApi, ASnapshotOnAFullDiskFailsCleanly) {
  // snapshot-dir on a 64 KiB tmpfs: the archive (hundreds of KiB) cannot fit.
  TempDir dir;
  ASSERT_EQ(run_command({"mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path()}, {}, 10s).status, 0);
  struct Unmount {
    std::string path;
    ~Unmount() { run_command({"umount", path}, {}, 10s); }
  } unmount{dir.path()};
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", dir.path()});
  auto token = a.login("zed");
  auto id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = 'zed'");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  auto r = a.daemon->request("POST", "/api/snapshots", a.as(token, true));
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("No space left on device"));
  EXPECT_THAT(r.body, HasSubstr("the workspace runs on"));
  EXPECT_EQ(a.workspace(token)["state"], "running");
  EXPECT_EQ(a.daemon->db().scalar("SELECT count(*) FROM snapshots"), "0");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/" + id));
  // And the runtime still answers through the gateway.
  auto state = a.daemon->get("/u/" + id + "/proxy/" + std::to_string(a.workspace(token)["runtime"]["port"].get<int>()) +
                                 "/_standin/state",
                             a.in(token, id));
  EXPECT_EQ(state.status, 200) << state.body;
}

// Every archive counts against the plan's space and is stopped while it
// streams: a runtime holding 64 MiB does not fit in 20M. Nothing is left
// (no file, no row) and the workspace runs on with its state.
TEST(WorkspaceApi, AnArchivePastThePlansSpaceIsStoppedWhileItStreams) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--plan",
                     "name=free,snapshot-bytes=20M"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_with_checkpoints(a, "zoe");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(d.get(runtime + "/_standin/alloc?mb=64", in).status, 200);
  ASSERT_EQ(d.get(runtime + "/_standin/state?set=kept", in).status, 200);

  auto snap = d.request("POST", "/api/snapshots", a.as(token, true));
  EXPECT_EQ(snap.status, 409) << snap.body;
  EXPECT_THAT(snap.body, HasSubstr("passed the"));
  auto fork = d.request("POST", "/api/workspace/sandbox", a.as(token, true));
  EXPECT_EQ(fork.status, 409) << fork.body;
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM snapshots"), "0");
  std::size_t files = 0;
  if (std::filesystem::exists(snapshots.path() + "/" + id))
    for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(snapshots.path() + "/" + id)) ++files;
  EXPECT_EQ(files, 0u);
  EXPECT_EQ(a.workspace(token)["state"], "running");
  EXPECT_EQ(json::parse(d.get(runtime + "/_standin/state", in).body)["value"], "kept");
}

// The runtime's files outside /home/user are its writable layer, which a
// checkpoint carries: past the plan's disk limit nothing is dumped.
TEST(WorkspaceApi, ARuntimePastItsDiskLimitIsNotCheckpointed) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--plan", "name=free,disk=8M"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_with_checkpoints(a, "ugo");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(d.get(runtime + "/_standin/write?path=/tmp/big&mb=16", in).status, 200);
  auto snap = d.request("POST", "/api/snapshots", a.as(token, true));
  EXPECT_EQ(snap.status, 409) << snap.body;
  EXPECT_THAT(snap.body, HasSubstr("outside /home/user"));
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM snapshots"), "0");
  EXPECT_EQ(a.workspace(token)["state"], "running");
  // Back under the limit, it works.
  ASSERT_EQ(d.get(runtime + "/_standin/write?path=/tmp/big&mb=0", in).status, 200);
  EXPECT_EQ(d.request("POST", "/api/snapshots", a.as(token, true)).status, 201);
}

// After a restart of feuilled, adopted workspaces keep their plan and the
// last activity recorded (it put every one to sleep within seconds: the
// activity read as the epoch, the plan as free's).
TEST(WorkspaceApi, AdoptedWorkspacesKeepTheirActivityAndPlanAcrossARestart) {
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=1m", "--criu", "off"});
  auto alice = a.login("alice"), tess = a.login("tess");
  a.daemon->db().query("UPDATE users SET plan = 'team' WHERE handle = 'tess'");  // never idle
  a.post("/api/workspace/start", alice);
  a.post("/api/workspace/start", tess);
  ASSERT_TRUE(a.wait_state(alice, "running"));
  ASSERT_TRUE(a.wait_state(tess, "running"));
  auto restart = [&] {
    a.daemon->process().signal(SIGKILL);
    a.daemon->process().wait(10s);
    return a.another();
  };
  const std::string tess_id = a.daemon->db().scalar("SELECT id::text FROM users WHERE handle = 'tess'");
  a.daemon->db().query("UPDATE workspaces SET last_activity_at = now() - interval '2 hours' WHERE user_id = '" +
                       tess_id + "'");
  a.daemon->db().query("UPDATE events SET at = now() - interval '2 hours' WHERE user_id = '" + tess_id + "'");
  auto& db = a.daemon->db();  // the database stays; the daemons come and go
  auto again = restart();
  std::this_thread::sleep_for(3s);  // fifteen monitor polls
  EXPECT_EQ(a.workspace(alice, again.get())["state"], "running");  // active a moment ago
  EXPECT_EQ(a.workspace(tess, again.get())["state"], "running");   // idle for hours, but the team plan never sleeps
  EXPECT_EQ(db.scalar("SELECT count(*) FROM events WHERE kind = 'sleeping'"), "0");

  // The activity really is the one recorded: two hours ago, past free's minute.
  const std::string alice_id = db.scalar("SELECT id::text FROM users WHERE handle = 'alice'");
  db.query("UPDATE workspaces SET last_activity_at = now() - interval '2 hours' WHERE user_id = '" +
                    alice_id + "'");
  db.query("UPDATE events SET at = now() - interval '2 hours' WHERE user_id = '" + alice_id + "'");
  again->process().signal(SIGKILL);
  again->process().wait(10s);
  auto third = a.another();
  EXPECT_TRUE(a.wait_state(alice, "sleeping", third.get(), 20s));
  EXPECT_EQ(a.workspace(tess, third.get())["state"], "running");
}

// What counts as activity is a person's: the real editor's UI polls
// /api/machines and /api/machines/active by itself every 15 s (cloud mode),
// which must not keep an open tab's workspace awake forever; any other
// request does.
TEST(WorkspaceApi, APagesBackgroundPollingIsNotActivity) {
  WorkspaceDaemon a({"--monitor-interval", "200ms", "--plan", "name=free,idle-timeout=3s", "--criu", "off"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_workspace(a, "pol", false);
  ASSERT_FALSE(HasFailure());
  const std::string at = "/u/" + id + "/";
  auto poll_for = [&](const std::vector<std::string>& paths, std::chrono::seconds how_long) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    while (std::chrono::steady_clock::now() < until && a.workspace(token)["state"] == "running") {
      for (const auto& p : paths) EXPECT_EQ(d.get(at + p, in).status, 200);
      std::this_thread::sleep_for(500ms);
    }
  };
  // A person's requests every half second: awake for 8 s (idle timeout 3 s).
  poll_for({"notes/a.md"}, 8s);
  EXPECT_EQ(a.workspace(token)["state"], "running");
  // Only the page's own polls: asleep within the idle timeout and a poll.
  poll_for({"api/machines", "api/machines/active"}, 15s);
  EXPECT_TRUE(a.wait_state(token, "sleeping", nullptr, 5s)) << a.workspace(token).dump();
}

// A restored or forked runtime is re-created from its checkpoint, limits
// included: it gets its owner's plan's limits of now (a plan changed since
// the snapshot applies to it).
TEST(WorkspaceApi, RestoresAndForksGetTheCurrentPlansLimits) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path()});
  auto& d = *a.daemon;
  auto token = a.login("ria");
  auto id = d.db().scalar("SELECT id::text FROM users WHERE handle = 'ria'");
  ASSERT_NO_FATAL_FAILURE(start_with_checkpoints(a, token));
  // The kernel's limits (Podman 4.3 applies an update to the container's
  // cgroup but keeps reporting its creation limits in inspect and stats).
  using Limits = std::pair<std::int64_t, std::int64_t>;  // memory bytes, CPU quota per 100 ms
  auto limits_of = [](const std::string& container) {
    auto c = TestPodman().inspect(container);
    EXPECT_TRUE(c) << container;
    if (!c) return Limits{0, 0};
    // Its cgroup (libpod-<id>.scope under systemd, libpod-<id> under cgroupfs).
    const std::string id = (*c)["Id"].get<std::string>();
    auto read = [&](const std::string& root, const std::string& file) -> std::string {
      std::error_code ec;
      for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
           it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name == "libpod-" + id + ".scope" || name == "libpod-" + id) {
          std::ifstream in(it->path() / file);
          std::string v;
          std::getline(in, v);
          return v;
        }
      }
      return "";
    };
    std::string memory = read("/sys/fs/cgroup/memory/", "memory.limit_in_bytes");  // cgroup v1
    std::string quota = read("/sys/fs/cgroup/cpu/", "cpu.cfs_quota_us");
    if (memory.empty()) {  // cgroup v2: "max" files
      memory = read("/sys/fs/cgroup", "memory.max");
      quota = read("/sys/fs/cgroup", "cpu.max");
    }
    EXPECT_FALSE(memory.empty() || quota.empty()) << "no cgroup found for " << container;
    if (memory.empty() || quota.empty()) return Limits{0, 0};
    return Limits{std::stoll(memory), std::stoll(quota)};
  };
  EXPECT_EQ(limits_of("feuille-rt-" + id), (Limits{256ll << 20, 50'000}));  // free
  auto snap = d.request("POST", "/api/snapshots", a.as(token, true));
  ASSERT_EQ(snap.status, 201) << snap.body;
  d.db().query("UPDATE users SET plan = 'pro' WHERE handle = 'ria'");  // 512M, one CPU
  auto restored = d.request("POST", "/api/snapshots/" + json::parse(snap.body)["id"].get<std::string>() + "/restore",
                            a.as(token, true));
  ASSERT_EQ(restored.status, 200) << restored.body;
  EXPECT_EQ(limits_of("feuille-rt-" + id), (Limits{512ll << 20, 100'000}));
  auto forked = d.request("POST", "/api/workspace/sandbox", a.as(token, true));
  ASSERT_EQ(forked.status, 201) << forked.body;
  EXPECT_EQ(limits_of(json::parse(forked.body)["container"].get<std::string>()),
            (Limits{512ll << 20, 100'000}));
}

// Every way a runtime comes back (a restore, a fork; a wake below) re-creates
// its container from the checkpoint: each is as isolated as a fresh start (a
// namespace of its own through slirp4netns, nothing published, every
// capability dropped, no new privileges, the host's loopback and feuilled
// out of reach), and its own gateway still reaches it.
TEST(WorkspaceApi, RestoredAndForkedRuntimesAreIsolatedAsAFreshOne) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--monitor-interval", "200ms"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_with_checkpoints(a, "ivy");
  ASSERT_FALSE(HasFatalFailure());
  const std::string editor_ns = sandbox_key("feuille-ed-" + id);
  expect_isolated("feuille-rt-" + id, editor_ns, d.port());  // fresh

  auto snap = d.request("POST", "/api/snapshots", a.as(token, true));
  ASSERT_EQ(snap.status, 201) << snap.body;
  ASSERT_EQ(d.request("POST", "/api/snapshots/" + json::parse(snap.body)["id"].get<std::string>() + "/restore",
                      a.as(token, true))
                .status,
            200);
  expect_isolated("feuille-rt-" + id, editor_ns, d.port());  // restored
  EXPECT_EQ(d.get(runtime + "/_standin/state", in).status, 200);  // through the gateway

  auto forked = d.request("POST", "/api/workspace/sandbox", a.as(token, true));
  ASSERT_EQ(forked.status, 201) << forked.body;
  expect_isolated(json::parse(forked.body)["container"].get<std::string>(), editor_ns, d.port());
  ASSERT_EQ(d.request("DELETE", "/api/workspace/sandbox/" + json::parse(forked.body)["id"].get<std::string>(),
                      a.as(token, true))
                .status,
            204);
}

TEST(WorkspaceApi, AWokenRuntimeIsIsolatedAsAFreshOne) {
  TempDir snapshots;
  WorkspaceDaemon a({"--runtime-user", "0", "--snapshot-dir", snapshots.path(), "--monitor-interval", "200ms",
                     "--plan", "name=free,idle-timeout=2s"});
  auto& d = *a.daemon;
  auto [token, id, in, runtime] = run_with_checkpoints(a, "wes");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(a.wait_state(token, "sleeping", nullptr, 30s)) << a.workspace(token).dump();
  ASSERT_EQ(d.get(runtime + "/_standin/state", in).status, 200);  // the visit wakes it and goes through
  expect_isolated("feuille-rt-" + id, sandbox_key("feuille-ed-" + id), d.port());
  EXPECT_THAT(d.db().scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM events WHERE user_id = '" + id + "'"),
              HasSubstr("restoring-runtime"));
}
