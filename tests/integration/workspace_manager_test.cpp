// The workspace manager against the real Podman of the test fixture and a
// real PostgreSQL: the containers' exact spec, concurrent starts, stop/start,
// failures that leave nothing behind, crash detection and the restart-once
// rule, reconcile, host ports that no longer matter, and Podman going away and
// coming back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <prometheus/registry.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "app/cli.hpp"
#include "compute/netns.hpp"
#include "compute/probe.hpp"
#include "compute/standin_image.hpp"
#include "compute/workspace_manager.hpp"
#include "db/migrator.hpp"
#include "feuille/errors.hpp"
#include "support/podman.hpp"
#include "support/process.hpp"
#include "support/run_coro.hpp"
#include "support/test_db.hpp"
#include "util/spawn.hpp"

using namespace feuille;
using namespace feuille::compute;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string env_of(const nlohmann::json& inspect, const std::string& key) {
  for (const auto& kv : inspect["Config"]["Env"]) {
    std::string s = kv.get<std::string>();
    if (s.rfind(key + "=", 0) == 0) return s.substr(key.size() + 1);
  }
  return "<unset>";
}

// A listener on 127.0.0.1:port for as long as it lives.
struct Listener {
  explicit Listener(std::uint16_t port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(fd, 4) == 0;
    err = ok ? 0 : errno;
  }
  ~Listener() { close(fd); }
  int fd;
  bool ok;
  int err;
};

// One manager on a fresh database, driving the fixture's Podman (or another).
class Harness {
 public:
  template <class F>
  auto run(F make, std::chrono::milliseconds timeout = 60s) {
    return run_coro(ioc, std::move(make), timeout);
  }

  // Runs the loop until pred() holds; false on timeout.
  template <class P>
  bool pump_until(P pred, std::chrono::milliseconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    ioc.restart();
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      ioc.run_one_for(10ms);
    }
    return true;
  }

  explicit Harness(std::string podman = "") : podman_url_(podman.empty() ? podman_url() : podman) {
    config.plans = app::default_plans();
    config.start_concurrency = 8;
    config.data_dir = data.path() + "/users";
    config.egress_address = test_egress_address();
    chmod(data.path().c_str(), 0755);
    database = std::make_unique<db::Database>(ioc.get_executor(), pool,
                                              db::PoolOptions{tdb.url(), 6, Duration{5000}, Duration{2000}, Duration{5000}});
    run([&]() { return db::migrate(*database); });
    instance = tdb.scalar("SELECT id::text FROM compute_instance");
  }

  ~Harness() {
    close_manager();
    try {
      TestPodman(podman_url_).remove_instance(instance);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
    database->close();
    pool.join();
  }

  ComputeSettings settings() {
    ComputeSettings s;
    s.data_dir = config.data_dir;
    s.editor_image = s.runtime_image = standin_image();
    s.editor_command = standin_editor_command(s.editor_health_path);
    s.runtime_command = standin_runtime_command(s.runtime_health_path);
    s.start_timeout = 30s;
    s.probe_interval = 500ms;
    return s;
  }

  WorkspaceManager& open(std::optional<ComputeSettings> s = std::nullopt) {
    std::vector<std::unique_ptr<Host>> hosts;
    auto h = std::make_unique<Host>();
    h->config = ComputeHost{"local", podman_url_, 0};
    PodmanClient::Options o;
    o.host_name = "local";
    o.timeout = 10s;
    h->client = std::make_unique<PodmanClient>(ioc.get_executor(), podman_url_, o);
    hosts.push_back(std::move(h));
    registry = std::make_unique<prometheus::Registry>();
    manager = std::make_unique<WorkspaceManager>(ioc.get_executor(), pool, *database, config,
                                                 s ? *s : settings(), std::move(hosts), *registry);
    run([&]() { return manager->open(); });
    manager->run_background();
    return *manager;
  }

  // Shutdown as feuilled does it: background work ends, containers stay.
  void close_manager() {
    if (!manager) return;
    manager->shutdown();
    EXPECT_TRUE(pump_until([] { return live_tasks() == 0; }, 30s)) << live_tasks() << " task(s) left";
    manager.reset();
  }

  std::string add_user(const std::string& handle, const std::string& plan = "free") {
    return tdb.scalar("INSERT INTO users (handle, name, email, plan) VALUES ('" + handle + "', 'Name " + handle +
                      "', '" + handle + "@example.org', '" + plan + "') RETURNING id::text");
  }

  bool wait_state(const std::string& user, State s, std::chrono::milliseconds timeout = 60s) {
    return pump_until([&] { return manager->state_of(user) == s; }, timeout);
  }

  State start(const std::string& user) {
    return run([&]() { return manager->start(user); });
  }

  std::vector<std::string> containers_of(const std::string& user) {
    std::vector<std::string> names;
    for (const auto& c : TestPodman(podman_url_).list({std::string(kLabelUser) + "=" + user}))
      names.push_back(c["Names"][0].get<std::string>());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string events_of(const std::string& user) {
    std::string out;
    for (const auto& r : tdb.query("SELECT kind || ' ' || detail::text FROM events WHERE user_id = '" + user +
                                   "' ORDER BY id"))
      out += r[0].as<std::string>() + "\n";
    return out;
  }

  // The network namespace of a running container, opened as feuilled does.
  NetnsPtr netns(const std::string& container) {
    auto info = TestPodman(podman_url_).inspect(container);
    if (!info) throw std::runtime_error(container + " is gone");
    return Netns::open(netns_thread, (*info)["NetworkSettings"].value("SandboxKey", ""));
  }
  // GET path on 127.0.0.1:port inside the container's namespace.
  ProbeResult probe(const std::string& container, std::uint16_t port, const std::string& path,
                    const std::string& token = "") {
    auto ns = netns(container);
    return run([&]() { return probe_http(ioc.get_executor(), ns, port, path, token, Duration{3000}); });
  }
  ProbeResult probe_editor(const std::string& user, std::uint16_t port, const std::string& path,
                           const std::string& token = "") {
    return probe("feuille-ed-" + user, port, path, token);
  }
  ProbeResult probe_runtime(const std::string& user, const std::string& path) {
    return probe("feuille-rt-" + user, kRuntimeContainerPort, path);
  }

  std::string podman_url_;
  TestDatabase tdb;
  TempDir data;
  asio::io_context ioc{1};
  asio::thread_pool pool{4};
  NetnsThread netns_thread;
  Config config;
  std::unique_ptr<db::Database> database;
  std::unique_ptr<prometheus::Registry> registry;
  std::unique_ptr<WorkspaceManager> manager;
  std::string instance;
};

}  // namespace

TEST(Workspaces, ContainersAreExactlyAsSpecified) {
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("alice");
  EXPECT_EQ(h.start(user), State::starting);
  ASSERT_TRUE(h.wait_state(user, State::running)) << to_string(m.state_of(user)) << "\n" << h.events_of(user);

  TestPodman podman;
  auto rt = podman.inspect("feuille-rt-" + user);
  auto ed = podman.inspect("feuille-ed-" + user);
  ASSERT_TRUE(rt && ed);
  const int rt_port = std::stoi(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'"));
  const int ed_port = std::stoi(h.tdb.scalar("SELECT port FROM runtimes WHERE kind = 'editor' AND user_id = '" + user + "'"));
  const std::string token = h.tdb.scalar("SELECT token FROM runtimes WHERE kind = 'editor' AND user_id = '" + user + "'");
  EXPECT_GE(rt_port, 40000);
  EXPECT_LE(rt_port, 59999);
  EXPECT_GE(ed_port, 20000);
  EXPECT_LE(ed_port, 39999);
  EXPECT_EQ(token.size(), 64u);

  // Both: image, labels, volume, privileges, OCI runtime, a network namespace
  // of their own with no published port.
  for (auto* c : {&*rt, &*ed}) {
    EXPECT_EQ((*c)["ImageName"], standin_image());
    const auto& labels = (*c)["Config"]["Labels"];
    EXPECT_EQ(labels["io.feuille.user"], user);
    EXPECT_EQ(labels["io.feuille.instance"], h.instance);
    EXPECT_EQ(labels["io.feuille.net"], "isolated");
    EXPECT_EQ((*c)["OCIRuntime"], "runc");
    EXPECT_TRUE((*c)["EffectiveCaps"].is_null() || (*c)["EffectiveCaps"].empty()) << (*c)["EffectiveCaps"].dump();
    EXPECT_THAT((*c)["HostConfig"]["SecurityOpt"].dump(), HasSubstr("no-new-privileges"));
    const auto& ports = (*c)["HostConfig"]["PortBindings"];
    EXPECT_TRUE(ports.is_null() || ports.empty()) << ports.dump();
    bool mounted = false;
    for (const auto& mnt : (*c)["Mounts"])
      mounted = mounted || (mnt["Destination"] == "/home/user" && mnt["Source"] == h.config.data_dir + "/" + user);
    EXPECT_TRUE(mounted) << (*c)["Mounts"].dump();
  }
  // Podman drops the profile where the kernel has no AppArmor (this machine);
  // the specs ask for it on the runtime only (unit-tested).
  if (fs::exists("/sys/module/apparmor")) {
    EXPECT_EQ((*rt)["AppArmorProfile"], "unconfined");
    EXPECT_NE((*ed)["AppArmorProfile"], "unconfined");
  }
  // The runtime: its command, its own slirp4netns namespace, the plan's
  // limits (free: 256 MiB, 0.5 CPU).
  EXPECT_EQ((*rt)["Config"]["Labels"]["io.feuille.role"], "runtime");
  EXPECT_EQ((*rt)["Config"]["Labels"]["io.feuille.port"], std::to_string(rt_port));
  EXPECT_EQ((*rt)["Config"]["Cmd"], nlohmann::json({"/feuille-standin", "runtime", "--port", "8888", "--host",
                                                      "0.0.0.0", "--health-path", "/mrp/v1/capabilities"}));
  EXPECT_EQ((*rt)["HostConfig"]["NetworkMode"], "slirp4netns");
  EXPECT_EQ((*rt)["HostConfig"]["Memory"], 256ll << 20);
  EXPECT_EQ((*rt)["HostConfig"]["CpuQuota"], 50000);
  EXPECT_EQ((*rt)["HostConfig"]["CpuPeriod"], 100000);
  // The editor: in its pod, whose infra container holds its namespace, on
  // 127.0.0.1 at its port there, 512 MiB, the token in its command, the
  // environment of SPEC.md section 4.
  auto infra = podman.inspect("feuille-ns-" + user);
  ASSERT_TRUE(infra);
  EXPECT_EQ((*ed)["Pod"], (*infra)["Pod"]);
  EXPECT_EQ((*ed)["HostConfig"]["NetworkMode"], "container:" + (*infra)["Id"].get<std::string>());
  EXPECT_EQ((*infra)["HostConfig"]["NetworkMode"], "slirp4netns");
  EXPECT_EQ((*infra)["Config"]["Labels"]["io.feuille.role"], "netns");
  EXPECT_EQ((*ed)["NetworkSettings"]["SandboxKey"], (*infra)["NetworkSettings"]["SandboxKey"]);
  EXPECT_NE((*ed)["NetworkSettings"]["SandboxKey"], (*rt)["NetworkSettings"]["SandboxKey"]);
  EXPECT_EQ((*ed)["Config"]["Labels"]["io.feuille.role"], "editor");
  EXPECT_EQ((*ed)["Config"]["Labels"]["io.feuille.port"], std::to_string(ed_port));
  EXPECT_EQ((*ed)["HostConfig"]["Memory"], 512ll << 20);
  EXPECT_EQ((*ed)["Config"]["Cmd"],
            nlohmann::json({"/feuille-standin", "editor", "--port", std::to_string(ed_port), "--host", "127.0.0.1",
                            "--token", token, "--health-path", "/health"}));
  EXPECT_EQ(env_of(*ed, "CLOUD_MODE"), "1");
  EXPECT_EQ(env_of(*ed, "PORT"), std::to_string(ed_port));
  EXPECT_EQ(env_of(*ed, "RUNTIME_PORT"), std::to_string(rt_port));
  EXPECT_EQ(env_of(*ed, "RUNTIME_HOST"), "127.0.0.1");
  EXPECT_EQ(env_of(*ed, "BASE_PATH"), "/u/" + user + "/");
  EXPECT_EQ(env_of(*ed, "HOME"), "/home/user");
  EXPECT_EQ(env_of(*ed, "CLOUD_USER_ID"), user);
  EXPECT_EQ(env_of(*ed, "CLOUD_USER_NAME"), "Name alice");
  EXPECT_EQ(env_of(*ed, "CLOUD_USER_USERNAME"), "alice");
  EXPECT_EQ(env_of(*ed, "CLOUD_USER_EMAIL"), "alice@example.org");
  EXPECT_EQ(env_of(*ed, "CLOUD_USER_PLAN"), "free");

  // They answer inside their namespaces: the editor's API behind its token,
  // and the editor reaches the runtime through the gateway at
  // RUNTIME_HOST:RUNTIME_PORT.
  EXPECT_EQ(h.probe_editor(user, ed_port, "/health").status, 200u);
  EXPECT_EQ(h.probe_editor(user, ed_port, "/api/anything").status, 401u);
  EXPECT_EQ(h.probe_editor(user, ed_port, "/api/_standin/runtime", token).status, 200u);
  EXPECT_EQ(h.probe_editor(user, rt_port, "/mrp/v1/capabilities").status, 200u);  // the gateway itself
  EXPECT_EQ(h.probe_runtime(user, "/mrp/v1/capabilities").status, 200u);
  // Nothing of theirs on the host: neither port answers on its loopback.
  for (int port : {ed_port, rt_port}) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_NE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << port;
    close(fd);
  }

  // The first-run folder, owned by the images' user.
  const std::string scratch = h.config.data_dir + "/" + user + "/Projects/Scratch";
  for (const char* f : {"/mrmd.md", "/01-index.md"}) {
    struct stat st {};
    ASSERT_EQ(stat((scratch + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 1000u);
  }
  std::ifstream cfg(scratch + "/mrmd.md");
  std::string text((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("```yaml config"));

  // The steps, in order, in the events table.
  std::vector<std::string> steps;
  for (const auto& r : h.tdb.query("SELECT kind, coalesce(detail->>'container', '') FROM events WHERE user_id = '" +
                                   user + "' ORDER BY id"))
    steps.push_back(r[0].as<std::string>() + (r[1].as<std::string>().empty() ? "" : " " + r[1].as<std::string>()));
  EXPECT_EQ(steps, (std::vector<std::string>{"starting", "creating-runtime", "waiting-for-health runtime",
                                              "starting-editor", "waiting-for-health editor", "ready"}));
  EXPECT_EQ(h.tdb.scalar("SELECT state FROM workspaces WHERE user_id = '" + user + "'"), "running");
}

TEST(Workspaces, TwentyConcurrentStartsOfOneUserMakeOneWorkspace) {
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("bob");
  int answered = 0, errors = 0;
  for (int i = 0; i < 20; ++i)
    asio::co_spawn(
        h.ioc, [&]() { return m.start(user); },
        [&](std::exception_ptr e, State) {
          ++answered;
          if (e) ++errors;
        });
  ASSERT_TRUE(h.pump_until([&] { return answered == 20; }));
  EXPECT_EQ(errors, 0);
  EXPECT_LE(m.starts_in_flight(), 1);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  EXPECT_EQ(h.containers_of(user),
            (std::vector<std::string>{"feuille-ed-" + user, "feuille-ns-" + user, "feuille-rt-" + user}));
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + user + "'"), "2");
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM events WHERE kind = 'ready' AND user_id = '" + user + "'"), "1");
  // Once running, a start is a no-op.
  EXPECT_EQ(h.start(user), State::running);
}

TEST(Workspaces, StartStopStartKeepsTheRuntimePortAndTheUsersFiles) {
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("carol");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  auto port = h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'");
  const std::string index = h.config.data_dir + "/" + user + "/Projects/Scratch/01-index.md";
  std::ofstream(index) << "# mine\n";

  EXPECT_EQ(h.run([&]() { return m.stop(user, Duration{20000}); }), State::stopped);
  EXPECT_TRUE(h.containers_of(user).empty());
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + user + "'"), "0");
  EXPECT_EQ(h.tdb.scalar("SELECT state FROM workspaces WHERE user_id = '" + user + "'"), "stopped");
  // Stopping again is fine.
  EXPECT_EQ(h.run([&]() { return m.stop(user, Duration{20000}); }), State::stopped);

  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  EXPECT_EQ(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'"), port);
  EXPECT_EQ(h.containers_of(user).size(), 3u);
  std::ifstream in(index);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "# mine\n");  // never overwritten
}

TEST(Workspaces, ARuntimeThatNeverGetsHealthyFailsCleanly) {
  Harness h;
  auto s = h.settings();
  s.runtime_command += " --unhealthy";
  s.start_timeout = 3s;
  auto& m = h.open(s);
  auto user = h.add_user("dave");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::failed, 30s)) << h.events_of(user);
  auto target = m.editor(user);
  ASSERT_TRUE(target);
  EXPECT_THAT(target->reason, HasSubstr("the runtime did not answer /mrp/v1/capabilities within 3s (last: HTTP 503)"));
  EXPECT_EQ(target->port, 0);
  EXPECT_TRUE(h.pump_until([&] { return m.starts_in_flight() == 0; }));
  EXPECT_TRUE(h.containers_of(user).empty());
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + user + "'"), "0");
  EXPECT_EQ(h.tdb.scalar("SELECT state || ': ' || state_reason FROM workspaces WHERE user_id = '" + user + "'"),
            "failed: " + target->reason);
  EXPECT_THAT(h.events_of(user), HasSubstr("\"reason\": \"the runtime did not answer"));
}

// The reason a failed start gives has the container's last output, without
// the editor's token (mrmd-server, as the stand-in, prints it at start).
TEST(Workspaces, AFailedStartSaysWhatTheEditorLastPrintedWithoutItsToken) {
  Harness h;
  auto s = h.settings();
  s.editor_command += " --unhealthy";
  s.start_timeout = 3s;
  auto& m = h.open(s);
  auto user = h.add_user("tom");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::failed, 30s)) << h.events_of(user);
  const std::string reason = m.editor(user)->reason;
  EXPECT_THAT(reason, HasSubstr("the editor did not answer /health"));
  EXPECT_THAT(reason, HasSubstr("its last output: feuille-standin editor listening on 127.0.0.1:"));
  EXPECT_THAT(reason, HasSubstr("/?token=***"));
  EXPECT_FALSE(std::regex_search(reason, std::regex("token=[A-Za-z0-9_-]{8,}"))) << reason;
}

TEST(Workspaces, AnEditorThatExitsAtOnceFailsWithItsExitCode) {
  Harness h;
  auto s = h.settings();
  s.editor_command = "/feuille-standin editor --port {port} --no-such-flag";
  auto& m = h.open(s);
  auto user = h.add_user("erin");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::failed, 30s)) << h.events_of(user);
  EXPECT_THAT(m.editor(user)->reason, HasSubstr("the editor exited with code 2 before answering /health"));
  // What it said before it went is in the reason the user sees.
  EXPECT_THAT(m.editor(user)->reason, HasSubstr("its last output: feuille-standin: unknown argument --no-such-flag"));
  EXPECT_TRUE(h.containers_of(user).empty());
}

TEST(Workspaces, AStopDuringAStartWins) {
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("frank");
  EXPECT_EQ(h.start(user), State::starting);
  // Let the start get as far as creating the runtime, then stop.
  ASSERT_TRUE(h.pump_until([&] { return h.events_of(user).find("creating-runtime") != std::string::npos; }));
  EXPECT_EQ(h.run([&]() { return m.stop(user, Duration{20000}); }), State::stopped);
  EXPECT_EQ(m.starts_in_flight(), 0);
  EXPECT_TRUE(h.containers_of(user).empty());
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + user + "'"), "0");
  EXPECT_THAT(h.events_of(user), HasSubstr("cancelled"));
  // And a start afterwards works.
  h.start(user);
  EXPECT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
}

TEST(Workspaces, StartsPastTheConcurrencyLimitGet429AndJoinsDoNotCount) {
  Harness h;
  h.config.start_concurrency = 1;
  auto& m = h.open();
  auto a = h.add_user("gina"), b = h.add_user("hugo");
  EXPECT_EQ(h.start(a), State::starting);
  EXPECT_EQ(h.start(a), State::starting);  // joins: no 429
  try {
    h.start(b);
    ADD_FAILURE() << "expected 429";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status, 429u);
    EXPECT_GT(e.retry_after_seconds, 0u);
  }
  EXPECT_EQ(m.state_of(b), State::stopped);
  ASSERT_TRUE(h.wait_state(a, State::running)) << h.events_of(a);
  EXPECT_EQ(h.start(b), State::starting);
  EXPECT_TRUE(h.wait_state(b, State::running)) << h.events_of(b);
}

TEST(Workspaces, AnEditorKilledFromOutsideIsRestartedOnceThenFails) {
  Harness h;
  auto s = h.settings();
  s.probe_interval = 1h;  // the event stream alone must notice
  auto& m = h.open(s);
  auto user = h.add_user("ivy");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  auto port = m.editor(user)->port;
  auto token = m.editor(user)->token;
  TestPodman podman;
  auto id = (*podman.inspect("feuille-ed-" + user))["Id"].get<std::string>();

  podman.kill("feuille-ed-" + user);
  auto readies = [&] {
    return std::stoi(h.tdb.scalar("SELECT count(*) FROM events WHERE kind = 'ready' AND user_id = '" + user + "'"));
  };
  ASSERT_TRUE(h.pump_until([&] { return readies() == 2 && m.state_of(user) == State::running; }, 30s))
      << h.events_of(user);
  EXPECT_THAT(h.events_of(user), HasSubstr("\"reason\": \"the editor exited with code 137"));
  // The same container, port and token: the proxy's view did not change.
  EXPECT_EQ((*podman.inspect("feuille-ed-" + user))["Id"], id);
  EXPECT_EQ(m.editor(user)->port, port);
  EXPECT_EQ(m.editor(user)->token, token);
  EXPECT_EQ(h.probe_editor(user, port, "/health").status, 200u);
  // Its namespace is its pod's, unchanged: the gateway still answers there.
  const std::string rt_port = h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'");
  EXPECT_EQ(h.probe_editor(user, static_cast<std::uint16_t>(std::stoi(rt_port)), "/mrp/v1/capabilities").status,
            200u);

  // Dying again soon after: failed, with the reason, and nothing left.
  podman.kill("feuille-ed-" + user);
  ASSERT_TRUE(h.wait_state(user, State::failed, 30s)) << h.events_of(user);
  EXPECT_THAT(m.editor(user)->reason, HasSubstr("the editor exited with code 137"));
  EXPECT_THAT(m.editor(user)->reason, HasSubstr(", again after a restart"));
  EXPECT_TRUE(h.pump_until([&] { return h.containers_of(user).empty(); }, 10s));
}

TEST(Workspaces, ARuntimeKilledForMemoryIsNoticedAndRestarted) {
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("jack");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  auto rt_port = static_cast<std::uint16_t>(
      std::stoi(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'")));
  const auto before = h.netns("feuille-rt-" + user)->inode();
  // Past the free plan's 256 MiB: the kernel kills it. (Podman reports no
  // "oom" event on this machine's cgroups v1, so the reason is the exit code.)
  h.probe_runtime(user, "/_standin/alloc?mb=400");
  auto readies = [&] {
    return std::stoi(h.tdb.scalar("SELECT count(*) FROM events WHERE kind = 'ready' AND user_id = '" + user + "'"));
  };
  ASSERT_TRUE(h.pump_until([&] { return readies() == 2 && m.state_of(user) == State::running; }, 60s))
      << h.events_of(user);
  EXPECT_THAT(h.events_of(user), HasSubstr("\"reason\": \"the runtime exited with code 137 (killed: out of memory"));
  // A new namespace, and the gateway follows it: the same port in the editor answers.
  EXPECT_NE(h.netns("feuille-rt-" + user)->inode(), before);
  EXPECT_EQ(h.probe_editor(user, rt_port, "/mrp/v1/capabilities").status, 200u);
}

TEST(Workspaces, PortsTakenOnTheHostChangeNothing) {
  // Ports live in the workspace's own namespaces: whatever listens on the
  // host at them neither blocks a start nor receives the workspace's traffic.
  Harness h;
  auto& m = h.open();
  auto user = h.add_user("kim");
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running));
  auto port = static_cast<std::uint16_t>(std::stoi(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'")));
  h.run([&]() { return m.stop(user, Duration{20000}); });
  // Something takes the workspace's port on the host while it is stopped (or
  // something else, another test's connection, already holds it: as good).
  Listener squatter(port);
  ASSERT_TRUE(squatter.ok || squatter.err == EADDRINUSE) << std::strerror(squatter.err);
  h.start(user);
  ASSERT_TRUE(h.wait_state(user, State::running)) << h.events_of(user);
  EXPECT_EQ(std::stoi(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + user + "'")), port);
  auto ed_port = m.editor(user)->port;
  EXPECT_EQ(h.probe_editor(user, port, "/mrp/v1/capabilities").status, 200u);
  Listener editor_squatter(ed_port);  // and the editor's port, while it runs
  EXPECT_EQ(h.probe_editor(user, ed_port, "/health").status, 200u);
}

TEST(Workspaces, ReconcileAdoptsRemovesAndFixes) {
  Harness h;
  auto& m1 = h.open();
  auto kept = h.add_user("lea"), broken = h.add_user("max"), idle = h.add_user("ned");
  h.start(kept);
  h.start(broken);
  ASSERT_TRUE(h.wait_state(kept, State::running));
  ASSERT_TRUE(h.wait_state(broken, State::running));
  const auto kept_target = *m1.editor(kept);
  TestPodman podman;
  auto kept_ids = std::pair{(*podman.inspect("feuille-ed-" + kept))["Id"], (*podman.inspect("feuille-rt-" + kept))["Id"]};
  h.close_manager();  // feuilled goes away; containers stay

  // While it is away: a container of ours that no record claims, one of
  // another deployment, and a workspace that loses its editor.
  auto image = standin_image();
  auto make = [&](const std::string& name, const std::string& instance) {
    nlohmann::json spec = {{"name", name},
                           {"image", image},
                           {"command", {"/feuille-standin", "runtime", "--port", "8888"}},
                           {"labels", {{"io.feuille.instance", instance}, {"io.feuille.user", idle}, {"io.feuille.role", "runtime"}}}};
    podman.create(spec);
  };
  make("feuille-rt-" + idle, h.instance);
  const std::string stranger = "feuille-rt-stranger-" + h.instance.substr(0, 8);
  make(stranger, "another-deployment");
  podman.remove("feuille-ed-" + broken);
  // A running workspace from before isolation: its editor on the host
  // network, its runtime published on the host's loopback, its records.
  auto old = h.add_user("olga");
  fs::create_directories(h.config.data_dir + "/" + old);
  std::ofstream(h.config.data_dir + "/" + old + "/notes.md") << "kept";
  const int old_rt = 45000 + std::rand() % 1000, old_ed = 25000 + std::rand() % 1000;
  h.tdb.query("INSERT INTO workspaces (user_id, state, host, runtime_port) VALUES ('" + old + "', 'running', 'local', " +
             std::to_string(old_rt) + ")");
  h.tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port, token, state) VALUES ('" + old +
             "', 'editor', 'feuille-ed-" + old + "', 'local', " + std::to_string(old_ed) + ", 'tok', 'running'), ('" +
             old + "', 'runtime', 'feuille-rt-" + old + "', 'local', " + std::to_string(old_rt) + ", NULL, 'running')");
  auto legacy_labels = [&](const char* role, int port) {
    return nlohmann::json{{"io.feuille.instance", h.instance}, {"io.feuille.user", old}, {"io.feuille.role", role},
                          {"io.feuille.port", std::to_string(port)}};
  };
  podman.create({{"name", "feuille-rt-" + old},
                 {"image", image},
                 {"command", {"/feuille-standin", "runtime", "--port", "8888"}},
                 {"labels", legacy_labels("runtime", old_rt)},
                 {"portmappings", {{{"host_ip", "127.0.0.1"}, {"host_port", old_rt}, {"container_port", 8888}}}}});
  podman.create({{"name", "feuille-ed-" + old},
                 {"image", image},
                 {"command", {"/feuille-standin", "editor", "--port", std::to_string(old_ed), "--token", "tok"}},
                 {"labels", legacy_labels("editor", old_ed)},
                 {"netns", {{"nsmode", "host"}}}});
  for (const char* prefix : {"feuille-rt-", "feuille-ed-"})
    podman.start(prefix + old);

  auto& m2 = h.open();
  // Adopted as it was: same containers, port and token; nothing duplicated.
  EXPECT_EQ(m2.state_of(kept), State::running);
  EXPECT_EQ(m2.editor(kept)->port, kept_target.port);
  EXPECT_EQ(m2.editor(kept)->token, kept_target.token);
  EXPECT_EQ((*podman.inspect("feuille-ed-" + kept))["Id"], kept_ids.first);
  EXPECT_EQ((*podman.inspect("feuille-rt-" + kept))["Id"], kept_ids.second);
  EXPECT_EQ(h.containers_of(kept).size(), 3u);
  EXPECT_EQ(h.probe_editor(kept, kept_target.port, "/health").status, 200u);
  // The gateway is bound again in the adopted editor's namespace.
  const auto kept_rt_port =
      static_cast<std::uint16_t>(std::stoi(h.tdb.scalar("SELECT runtime_port FROM workspaces WHERE user_id = '" + kept + "'")));
  EXPECT_EQ(h.probe_editor(kept, kept_rt_port, "/mrp/v1/capabilities").status, 200u);
  // The one that lost its editor: failed with the reason, its runtime removed, rows fixed.
  EXPECT_EQ(m2.state_of(broken), State::failed);
  EXPECT_EQ(m2.editor(broken)->reason, "its editor container was gone when feuilled started");
  EXPECT_TRUE(h.containers_of(broken).empty());
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + broken + "'"), "0");
  // From before isolation: removed, never adopted; stopped with the reason,
  // the user's files kept, and the next start is isolated.
  EXPECT_TRUE(h.containers_of(old).empty());
  EXPECT_EQ(m2.state_of(old), State::stopped);
  EXPECT_THAT(m2.editor(old)->reason, HasSubstr("made before tenant isolation"));
  EXPECT_EQ(h.tdb.scalar("SELECT count(*) FROM runtimes WHERE user_id = '" + old + "'"), "0");
  EXPECT_TRUE(fs::exists(h.config.data_dir + "/" + old + "/notes.md"));
  h.start(old);
  ASSERT_TRUE(h.wait_state(old, State::running)) << h.events_of(old);
  EXPECT_EQ((*podman.inspect("feuille-rt-" + old))["HostConfig"]["NetworkMode"], "slirp4netns");
  // Ours and unclaimed: removed. Another deployment's: untouched.
  EXPECT_FALSE(podman.inspect("feuille-rt-" + idle));
  EXPECT_TRUE(podman.inspect(stranger));
  podman.remove(stranger);
  // It is watched like any other: a crash is noticed.
  podman.kill("feuille-rt-" + kept);
  auto restarted = [&] {
    return h.tdb.scalar("SELECT count(*) FROM events WHERE kind = 'ready' AND detail ? 'restarted' AND user_id = '" +
                        kept + "'") == "1";
  };
  EXPECT_TRUE(h.pump_until([&] { return restarted() && m2.state_of(kept) == State::running; }, 30s))
      << h.events_of(kept);
}
