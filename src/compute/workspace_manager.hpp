#pragma once
// One state machine per user (stopped → starting → running → stopping →
// stopped, failed on the way; sleeping/waking/migrating kept for the CRIU
// work), the containers behind it, reconcile at start, health watching
// (probes + Podman's event stream) and activity bookkeeping. Everything runs
// on the loop; one operation per user at a time (the per-user lock is the
// `op` slot: a second start joins the one in flight, a stop cancels a start
// and then stops).
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "compute/checkpoint_probe.hpp"
#include "compute/container_spec.hpp"
#include "compute/netns.hpp"
#include "compute/notifier.hpp"
#include "compute/podman_client.hpp"
#include "compute/port_allocator.hpp"
#include "compute/runtime_gateway.hpp"
#include "compute/usage.hpp"
#include "compute/workspaces.hpp"
#include "db/database.hpp"
#include "feuille/config.hpp"

namespace prometheus {
class Registry;
class Histogram;
class Counter;
class Gauge;
template <class T>
class Family;
}  // namespace prometheus

namespace spdlog {
class logger;
}

namespace feuille::compute {

// One compute-host: its configuration and its Podman client.
struct Host {
  ComputeHost config;
  std::unique_ptr<PodmanClient> client;
  bool reachable = true;     // as last seen (calls, the event stream)
  bool reconciled = false;   // its containers were compared with the database
  PodmanClient::ResponseStream* events = nullptr;  // the event stream being read
  std::optional<CheckpointProbe> checkpoint;  // whether a checkpoint works there (nullopt: not known yet)
  bool sampling = false;                      // a monitor poll of it is in flight
  bool checkpoints_work() const { return checkpoint && checkpoint->works; }
};

// The compute keys, as this module uses them (in dev mode the images and
// commands may be the stand-in's).
struct ComputeSettings {
  std::string data_dir;
  unsigned uid = 1000, gid = 1000;
  std::string oci_runtime = "runc";
  std::string editor_image, runtime_image;
  std::string editor_command, runtime_command;
  std::string runtime_user;  // uid[:gid], empty = the image's
  bool criu = true;          // criu = auto (off: no checkpoint is tried)
  std::string snapshot_dir;  // <snapshot-dir>/<user id>/sleep.tar: the sleep snapshot
  std::string editor_health_path = "/health", runtime_health_path = "/mrp/v1/capabilities";
  Duration start_timeout{60'000};
  Duration probe_interval{10'000};    // health probes of running workspaces
  Duration poll_interval{50};         // health polling while starting
  Duration activity_flush{30'000};    // last_activity_at written in batches
  Duration restart_window{600'000};   // a second death within it fails the workspace
  bool standin = false;               // the stand-in images are in use (dev mode)
  Isolation isolation;                // how containers' networks are made (egress address)
  RuntimeGateway::Options gateway;    // hold time, idle timeout, the budget of every gateway together
  std::size_t gateway_per_workspace = RuntimeGateway::kDefaultPerWorkspace;  // runtime and sandboxes together
};

// An archive refused by the plan: streamed past its space, or a runtime
// whose writable layer is past the plan's limit. Nothing of it is left.
struct ArchiveTooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One step of an operation, as /api/workspace/events streams it and the
// events table stores it.
struct StepEvent {
  std::uint64_t seq = 0;
  std::string step;  // creating-runtime, starting-editor, waiting-for-health, ready, failed, ...
  State state = State::stopped;
  nlohmann::json detail;
  std::string at;  // ISO 8601 UTC
};

// Now, as ISO 8601 UTC with milliseconds.
std::string now_iso();
// `bytes` random bytes (RAND_bytes), as lowercase hex.
std::string random_hex(std::size_t bytes);

// "exited with code 137 (killed: out of memory, or stopped from outside)".
std::string exit_description(int code, bool oom);

class WorkspaceManager : public Workspaces {
 public:
  WorkspaceManager(boost::asio::any_io_executor executor, boost::asio::thread_pool& pool, db::Database& db,
                   const Config& config, ComputeSettings settings, std::vector<std::unique_ptr<Host>> hosts,
                   prometheus::Registry& registry);
  ~WorkspaceManager() override;
  WorkspaceManager(const WorkspaceManager&) = delete;
  WorkspaceManager& operator=(const WorkspaceManager&) = delete;

  // At daemon start, before requests: loads this deployment's instance id,
  // the workspaces and their containers' records, and reconciles every
  // reachable host (a host that does not answer is reconciled when it does).
  boost::asio::awaitable<void> open();
  // The event stream readers, the probe round, the activity flush, the
  // resource monitor, and the checkpoint probe of every host (once).
  void run_background();
  // Shutdown: cancels starts in flight, ends the background loops and the
  // event feeds.
  void shutdown();

  // ---- the API ----
  // Starts the user's workspace, or joins the start in flight. Returns the
  // state (starting or running). Throws RequestError 429 (+ Retry-After)
  // past start-concurrency, 503 when the host cannot be reached.
  boost::asio::awaitable<State> start(std::string user_id);
  // Stops it (a start in flight is cancelled first) and waits up to `wait`
  // for it to be stopped. Returns the state. 503 when the host cannot be reached.
  boost::asio::awaitable<State> stop(std::string user_id, Duration wait);
  // GET /api/workspace's document.
  boost::asio::awaitable<nlohmann::json> describe(std::string user_id);
  // Step events after `after_seq`, waiting until `deadline` for one; empty
  // when none came (or shutdown began: see shutting_down()).
  boost::asio::awaitable<std::vector<StepEvent>> next_events(std::string user_id, std::uint64_t after_seq,
                                                             std::chrono::steady_clock::time_point deadline);
  // The current state and the recent steps of the last operation.
  std::pair<State, std::vector<StepEvent>> snapshot(const std::string& user_id) const;
  State state_of(const std::string& user_id) const;
  bool shutting_down() const { return stopping_; }

  const std::string& instance() const { return instance_; }
  const std::vector<std::unique_ptr<Host>>& hosts() const { return hosts_; }
  const ComputeSettings& settings() const { return settings_; }
  // Changing the images and commands (dev mode's stand-in) is for before open().
  ComputeSettings& configure() { return settings_; }
  int starts_in_flight() const { return starts_in_flight_; }

  // ---- Snapshots (compute/snapshots.cpp) ----
  // GET /api/snapshots's document: the user's snapshots and the plan's quota.
  boost::asio::awaitable<nlohmann::json> list_snapshots(std::string user_id);
  // A checkpoint of the running runtime, kept (it goes on running). Throws
  // RequestError: 409 not running, busy, name taken or past the quota; 501
  // where checkpoints do not work; 500 when Podman or the disk fails (the
  // workspace runs on).
  boost::asio::awaitable<nlohmann::json> create_snapshot(std::string user_id, std::string name);
  // Replaces the running runtime by the snapshot's process state, behind
  // the same RUNTIME_PORT. The old runtime goes only once the restored one
  // runs: a failure leaves it as it was.
  boost::asio::awaitable<void> restore_snapshot(std::string user_id, std::string snapshot_id);
  boost::asio::awaitable<void> delete_snapshot(std::string user_id, std::string snapshot_id);
  // At open: snapshots cut short by a kill (rows 'writing', partial files).
  boost::asio::awaitable<void> drop_unfinished_snapshots();

  // ---- Sandboxes (compute/sandboxes.cpp) ----
  // A fork of the running runtime (a leave-running checkpoint restored as
  // feuille-sb-<user>-<id>), reached from the editor at a gateway port of
  // its own. Returns {"id", "container", "port"}. RequestError 409 (not
  // running, busy, kMaxSandboxes reached), 501 (no checkpoints), 500.
  boost::asio::awaitable<nlohmann::json> fork_sandbox(std::string user_id);
  boost::asio::awaitable<void> remove_sandbox(std::string user_id, std::string sandbox_id);
  static constexpr std::size_t kMaxSandboxes = 2;

  // ---- Workspaces (the proxy's interface) ----
  std::optional<EditorTarget> editor(const std::string& user_id) const override;
  boost::asio::awaitable<EditorTarget> start_and_wait(std::string user_id, Duration max_wait) override;
  boost::asio::awaitable<std::optional<EditorTarget>> wait_on_its_way(std::string user_id,
                                                                      Duration max_wait) override;
  void record_activity(const std::string& user_id) override;
  void editor_refused(const std::string& user_id) override;
  void on_stopping(std::function<void(const std::string& user_id, bool asleep)> listener) override {
    stopping_listeners_.push_back(std::move(listener));
  }

 private:
  struct Container {
    std::string name, id, host;
    std::uint16_t port = 0;  // the editor's; the runtime's gateway port (RUNTIME_PORT)
    std::string token;
    bool adopted = false;  // reconcile found it running
    NetnsPtr netns;        // its network namespace (the editor's: its pod's), while it runs
    // The runtime's: the size of its last leave-running export, which Podman
    // keeps in the container's storage until its next checkpoint or removal
    // (counted in the user's snapshot space; 0 for a new container).
    std::uint64_t dump_bytes = 0;
  };
  struct Operation {
    enum Kind { start, stop, restart, sleep, snapshot } kind;
    bool cancelled = false;
    bool for_shutdown = false;
    bool finished = false;
    std::string error;  // a stop that could not reach the host
    Notifier done;
    boost::asio::steady_timer* sleeping = nullptr;  // its current pause, cut short by a cancel
  };
  struct Workspace {
    std::string user_id;
    State state = State::stopped;
    std::string reason;
    std::string host;  // the runtime's host ("" = the first)
    std::uint16_t runtime_port = 0;
    std::optional<Container> editor, runtime;
    std::shared_ptr<RuntimeGateway> gateway;  // in the editor's namespace, while the editor runs
    std::shared_ptr<ConnectionBudget> gateway_budget;  // its gateways' connections (runtime and sandboxes)
    std::shared_ptr<Operation> op;
    std::deque<StepEvent> recent;
    std::uint64_t next_seq = 1;
    Notifier changed;
    // health
    int failed_probes[2] = {0, 0};  // editor, runtime
    std::chrono::steady_clock::time_point last_restart[2]{};
    std::set<std::string> oom_ids;
    bool probing = false;
    // activity (proxy, and the gateway's bytes: see idle_check)
    std::chrono::system_clock::time_point last_activity{};
    std::uint64_t gateway_bytes_seen = 0;
    std::string plan;  // the plan it was started on (its idle timeout)
    bool activity_dirty = false;
    // The resource monitor's last sample of each container (editor, runtime).
    Usage usage[2];
    // Forks of the runtime (compute/sandboxes.cpp), by id.
    struct Sandbox {
      std::string name;
      std::uint16_t port = 0;  // its gateway's, in the editor's namespace
      std::shared_ptr<RuntimeGateway> gateway;
    };
    std::map<std::string, Sandbox> sandboxes;
  };
  using WorkspacePtr = std::shared_ptr<Workspace>;
  enum Role { editor_role = 0, runtime_role = 1 };
  struct Cancelled {};
  struct StartFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // The resource monitor: every monitor-interval one stats call per host for
  // all the containers of running workspaces there (compute/monitor.cpp).
  boost::asio::awaitable<void> monitor_loop();
  boost::asio::awaitable<void> sample_host(Host& host);
  // After a sample: puts the workspace to sleep when its runtime's CPU is
  // under idle-cpu-percent and nothing moved for its plan's idle timeout.
  void idle_check(const WorkspacePtr& ws, const Host& host);
  boost::asio::awaitable<void> run_sleep(WorkspacePtr ws, std::shared_ptr<Operation> op, std::string why);
  // Every sandbox of the workspace goes (its stop, sleep or failure).
  boost::asio::awaitable<void> remove_sandboxes(WorkspacePtr ws);
  // A failed stop or sleep: the step recorded with why, the state as before.
  boost::asio::awaitable<void> record_back(WorkspacePtr ws, std::string step, std::string why, State before,
                                           std::string before_reason);

  // Whether a checkpoint works on each host (Host::checkpoint), by trying one
  // (compute/checkpoint_probe.hpp); criu = off skips it.
  boost::asio::awaitable<void> probe_checkpoints();

  WorkspacePtr find(const std::string& user_id) const;
  WorkspacePtr get_or_create(const std::string& user_id);
  Host& editor_host() { return *hosts_.front(); }
  Host& host_named(const std::string& name);
  Host& runtime_host(const Workspace& ws) { return host_named(ws.host); }

  // State changes and step events: memory, metrics, the feed, and the
  // database (workspaces row + events row) in one transaction.
  boost::asio::awaitable<void> record(WorkspacePtr ws, std::string step, nlohmann::json detail,
                                      std::optional<State> state, std::string reason = "");
  void set_state_in_memory(Workspace& ws, State state, std::string reason);
  void push_event(Workspace& ws, const std::string& step, const nlohmann::json& detail);

  // Operations.
  std::shared_ptr<Operation> begin(Workspace& ws, Operation::Kind kind);
  void finish(Workspace& ws, const std::shared_ptr<Operation>& op);
  void cancel(Operation& op, bool for_shutdown);
  boost::asio::awaitable<void> wait_done(std::shared_ptr<Operation> op, std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<void> pause(Operation& op, Duration d);
  void check(const Operation& op) const;
  boost::asio::awaitable<void> ensure_reachable(Host& host);

  boost::asio::awaitable<void> run_start(WorkspacePtr ws, std::shared_ptr<Operation> op, bool waking);
  // `restore_from`: the sleep snapshot to restore instead of a fresh
  // container (PodmanError when Podman refuses it).
  boost::asio::awaitable<void> create_runtime(WorkspacePtr ws, Operation& op, const Owner& owner, const Plan& plan,
                                              const std::string& folder, const std::string& token,
                                              std::chrono::steady_clock::time_point deadline,
                                              const std::string& restore_from = "");
  // Podman's copy of the runtime's last leave-running dump (Container::dump_bytes).
  std::uint64_t dump_left(const std::string& user_id) const;
  // <snapshot-dir>/<user id>/sleep.tar
  std::string sleep_snapshot(const std::string& user_id) const;
  // Deletes archives (missing ones are fine) on the archive pool: an
  // unlink of a large file can take a while, never on the loop.
  boost::asio::awaitable<void> remove_files(std::vector<std::string> paths);
  // What one archive of a user's runtime may take (docs/compute.md,
  // "Archive space"): its plan's snapshot space less the named snapshots'
  // (and, when Podman keeps a copy of the dump in the running container,
  // half of that), and the plan's limit on the runtime's writable layer.
  struct ArchiveLimits {
    std::uint64_t max_bytes = 0;
    std::uint64_t max_writable_layer = 0;
  };
  static ArchiveLimits archive_limits(const Plan& plan, std::uint64_t named_bytes, bool podman_keeps_copy);
  // What the user's named snapshots take (their archives' sizes).
  boost::asio::awaitable<std::uint64_t> named_snapshot_bytes(const std::string& user_id);
  // The user's plan now (their row's, else free's).
  boost::asio::awaitable<Plan> plan_of(const std::string& user_id);
  // A restored or forked runtime comes back with the limits it was
  // checkpointed with: it gets its owner's plan's now.
  boost::asio::awaitable<void> apply_plan_limits(Host& host, const std::string& name, const Plan& plan, Duration timeout);
  // The last lines a container wrote, on one line, its token hidden, for the
  // reason a failed start gives ("" when Podman has none).
  boost::asio::awaitable<std::string> last_output(Host& host, const Container& c, Duration timeout);
  // The runtime's checkpoint (left running, with tcpEstablished) written to
  // `path`: a temporary name, fsync, rename. Returns the archive's size.
  // Refused before the dump (ArchiveTooLarge) when the runtime's writable
  // layer is past the plan's limit, and stopped (ArchiveTooLarge, nothing
  // left behind) when the archive streams past `limits.max_bytes`.
  // New gateway connections are held during the dump (one arriving then
  // would fail it); open ones stay. After it the gateway points at the
  // runtime again when `resume` (a snapshot or fork: the runtime runs on)
  // or when it failed; a sleep keeps them held (what reached the runtime
  // after its dump would be lost).
  boost::asio::awaitable<std::uint64_t> write_checkpoint(WorkspacePtr ws, std::string path, bool resume,
                                                         ArchiveLimits limits);
  boost::asio::awaitable<void> create_editor(WorkspacePtr ws, Operation& op, const Owner& owner,
                                             const std::string& folder, const std::string& token,
                                             std::chrono::steady_clock::time_point deadline);
  boost::asio::awaitable<void> wait_healthy(WorkspacePtr ws, Operation& op, Role role,
                                            std::chrono::steady_clock::time_point deadline);

  // Namespaces and the gateway (namespaces.cpp). enter(): one inspect of a
  // running container, its namespace opened. attach_*: the record's
  // namespace (re)opened after a start or restart; the editor's also
  // (re)binds the gateway there and points it at the runtime.
  boost::asio::awaitable<NetnsPtr> enter(Host& host, std::string name, Duration timeout);
  NetnsPtr netns_of(const nlohmann::json& inspect);
  boost::asio::awaitable<void> attach_runtime(WorkspacePtr ws, Duration timeout);
  boost::asio::awaitable<void> attach_editor(WorkspacePtr ws, Duration timeout);
  void close_gateway(Workspace& ws);
  // The gateway options of one of ws's gateways: its workspace's budget.
  RuntimeGateway::Options gateway_options(Workspace& ws);
  boost::asio::awaitable<void> remove_containers(WorkspacePtr ws, bool graceful);
  boost::asio::awaitable<void> run_stop(WorkspacePtr ws, std::shared_ptr<Operation> op);
  boost::asio::awaitable<void> run_restart(WorkspacePtr ws, std::shared_ptr<Operation> op, Role role,
                                           std::string why);

  // Reconcile (reconcile.cpp).
  boost::asio::awaitable<void> load_records();
  boost::asio::awaitable<void> reconcile_host(Host& host, bool at_start);
  boost::asio::awaitable<void> settle_after_reconcile(WorkspacePtr ws);
  boost::asio::awaitable<void> resync_host(Host& host);

  // Health (health_watch.cpp).
  boost::asio::awaitable<void> follow_events(Host& host);
  void on_podman_event(Host& host, const nlohmann::json& event);
  boost::asio::awaitable<void> probe_loop();
  boost::asio::awaitable<void> probe_workspace(WorkspacePtr ws);
  void container_died(WorkspacePtr ws, Role role, std::string why);
  boost::asio::awaitable<void> activity_loop();
  boost::asio::awaitable<void> flush_activity();

  boost::asio::any_io_executor executor_;
  boost::asio::thread_pool& pool_;
  // Archive files (checkpoint writes and fsyncs, restores' reads, deletes)
  // have threads of their own: a slow disk never holds the database's.
  boost::asio::thread_pool archive_pool_{2};
  db::Database& db_;
  const Config& config_;
  ComputeSettings settings_;
  std::vector<std::unique_ptr<Host>> hosts_;
  std::shared_ptr<spdlog::logger> log_;
  std::string instance_;
  std::unordered_map<std::string, WorkspacePtr> workspaces_;
  std::set<std::string> sandbox_names_;  // feuille-sb-... found in runtimes rows at start (removed by reconcile)
  std::set<std::string> pre_isolation_;  // users whose containers reconcile removed for predating isolation
  PortAllocator ports_;
  NetnsThread netns_thread_;  // the one thread that enters containers' namespaces
  GatewayMetrics gateway_metrics_;
  int starts_in_flight_ = 0;
  bool stopping_ = false;
  std::vector<std::function<void(const std::string&, bool)>> stopping_listeners_;
  boost::asio::steady_timer probe_timer_;
  boost::asio::steady_timer flush_timer_;
  boost::asio::steady_timer monitor_timer_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> retry_timers_;  // one per host's event stream

  // metrics
  prometheus::Family<prometheus::Gauge>* state_family_ = nullptr;
  std::map<State, prometheus::Gauge*> state_gauges_;
  prometheus::Histogram* start_duration_ = nullptr;
  prometheus::Counter* start_failures_ = nullptr;
  prometheus::Family<prometheus::Counter>* restarts_ = nullptr;
  prometheus::Family<prometheus::Gauge>* host_up_ = nullptr;
  prometheus::Family<prometheus::Gauge>* checkpoint_works_ = nullptr;
  prometheus::Histogram* monitor_poll_ = nullptr;
  prometheus::Histogram* monitor_loop_time_ = nullptr;
  prometheus::Counter* monitor_failures_ = nullptr;
  prometheus::Family<prometheus::Gauge>* host_memory_ = nullptr;
  prometheus::Family<prometheus::Gauge>* host_cpu_ = nullptr;
};

}  // namespace feuille::compute
