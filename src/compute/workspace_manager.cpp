#include "compute/workspace_manager.hpp"

#include <openssl/rand.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "compute/probe.hpp"
#include "compute/workspace_folder.hpp"
#include "db/users.hpp"
#include "feuille/errors.hpp"
#include "util/logging.hpp"
#include "util/offload.hpp"
#include "util/spawn.hpp"
#include "util/units.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) out += {hex[b >> 4], hex[b & 15]};
  return out;
}

std::string now_iso() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kRecentSteps = 32;
constexpr const char* kRoleName[] = {"editor", "runtime"};


}  // namespace

std::string exit_description(int code, bool oom) {
  std::string s = "exited with code " + std::to_string(code);
  if (oom) return s + " (out of memory)";
  // Podman does not report OOM kills everywhere (cgroups v1): say what 137 usually is.
  if (code == 137) return s + " (killed: out of memory, or stopped from outside)";
  return s;
}

WorkspaceManager::WorkspaceManager(asio::any_io_executor executor, asio::thread_pool& pool, db::Database& db,
                                   const Config& config, ComputeSettings settings,
                                   std::vector<std::unique_ptr<Host>> hosts, prometheus::Registry& registry)
    : executor_(executor),
      pool_(pool),
      db_(db),
      config_(config),
      settings_(std::move(settings)),
      hosts_(std::move(hosts)),
      log_(logger("compute")),
      probe_timer_(executor),
      flush_timer_(executor),
      monitor_timer_(executor) {
  if (hosts_.empty()) throw std::invalid_argument("compute needs at least one host");
  state_family_ = &prometheus::BuildGauge()
                       .Name("feuille_workspaces")
                       .Help("Workspaces by state")
                       .Register(registry);
  for (auto s : kAllStates) state_gauges_[s] = &state_family_->Add({{"state", to_string(s)}});
  start_duration_ = &prometheus::BuildHistogram()
                         .Name("feuille_workspace_start_duration_seconds")
                         .Help("Time from a start request to both health checks passing (successful starts)")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15,
                                                                          20, 30, 45, 60, 120});
  start_failures_ = &prometheus::BuildCounter()
                         .Name("feuille_workspace_start_failures_total")
                         .Help("Workspace starts that failed (cancelled ones are not counted)")
                         .Register(registry)
                         .Add({});
  restarts_ = &prometheus::BuildCounter()
                   .Name("feuille_workspace_restarts_total")
                   .Help("Containers restarted after they died or stopped answering, by container")
                   .Register(registry);
  host_up_ = &prometheus::BuildGauge()
                  .Name("feuille_compute_host_up")
                  .Help("1 while the host's Podman answers (its event stream is connected)")
                  .Register(registry);
  for (auto& h : hosts_) host_up_->Add({{"host", h->config.name}}).Set(0);
  checkpoint_works_ = &prometheus::BuildGauge()
                           .Name("feuille_checkpoint_works")
                           .Help("1 when the checkpoint probe at start succeeded on the host (CRIU works there)")
                           .Register(registry);
  for (auto& h : hosts_) checkpoint_works_->Add({{"host", h->config.name}}).Set(0);
  monitor_poll_ = &prometheus::BuildHistogram()
                       .Name("feuille_monitor_poll_duration_seconds")
                       .Help("One resource monitor poll of a host (one Podman stats call)")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  monitor_loop_time_ = &prometheus::BuildHistogram()
                            .Name("feuille_monitor_poll_loop_seconds")
                            .Help("The event loop's time in one poll: listing the containers, folding the samples "
                                  "in, the idle checks (not the wait for Podman)")
                            .Register(registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                                             0.005, 0.01, 0.025, 0.05});
  monitor_failures_ = &prometheus::BuildCounter()
                           .Name("feuille_monitor_poll_failures_total")
                           .Help("Resource monitor polls that Podman did not answer")
                           .Register(registry)
                           .Add({});
  host_memory_ = &prometheus::BuildGauge()
                      .Name("feuille_host_workspace_memory_bytes")
                      .Help("Memory used by the running workspaces' containers on the host, at the last poll, by role")
                      .Register(registry);
  host_cpu_ = &prometheus::BuildGauge()
                   .Name("feuille_host_workspace_cpu_percent")
                   .Help("CPU used by the running workspaces' containers on the host between the last two polls "
                         "(100 = one core), by role")
                   .Register(registry);
  for (auto& h : hosts_)
    for (const char* role : {"editor", "runtime"}) {
      host_memory_->Add({{"host", h->config.name}, {"role", role}}).Set(0);
      host_cpu_->Add({{"host", h->config.name}, {"role", role}}).Set(0);
    }
  auto& bytes = prometheus::BuildCounter()
                    .Name("feuille_gateway_bytes_total")
                    .Help("Bytes relayed by the runtime gateways, by direction")
                    .Register(registry);
  gateway_metrics_.to_runtime = &bytes.Add({{"direction", "to_runtime"}});
  gateway_metrics_.to_editor = &bytes.Add({{"direction", "to_editor"}});
  auto& conns = prometheus::BuildCounter()
                    .Name("feuille_gateway_connections_total")
                    .Help("Connections the runtime gateways accepted, and those closed without reaching a runtime")
                    .Register(registry);
  gateway_metrics_.accepted = &conns.Add({{"outcome", "accepted"}});
  gateway_metrics_.refused = &conns.Add({{"outcome", "no_runtime"}});
  gateway_metrics_.over_workspace = &conns.Add({{"outcome", "workspace_limit"}});
  gateway_metrics_.over_total = &conns.Add({{"outcome", "total_limit"}});
  gateway_metrics_.idle_closed = &conns.Add({{"outcome", "idle_closed"}});
  auto& limits = prometheus::BuildGauge()
                     .Name("feuille_gateway_connections_limit")
                     .Help("Gateway connections allowed open at once: per workspace (runtime and sandboxes "
                           "together), and in total (from the descriptor limit)")
                     .Register(registry);
  limits.Add({{"scope", "workspace"}}).Set(static_cast<double>(settings_.gateway_per_workspace));
  if (settings_.gateway.total_budget)
    limits.Add({{"scope", "total"}}).Set(static_cast<double>(settings_.gateway.total_budget->limit()));
  gateway_metrics_.open = &prometheus::BuildGauge()
                               .Name("feuille_gateway_connections_open")
                               .Help("Gateway connections open now (relayed, or held while the runtime is away)")
                               .Register(registry)
                               .Add({});
}

WorkspaceManager::~WorkspaceManager() = default;

// ---------------------------------------------------------------------------
// Records, state and events

WorkspaceManager::WorkspacePtr WorkspaceManager::find(const std::string& user_id) const {
  auto it = workspaces_.find(user_id);
  return it == workspaces_.end() ? nullptr : it->second;
}

WorkspaceManager::WorkspacePtr WorkspaceManager::get_or_create(const std::string& user_id) {
  auto& slot = workspaces_[user_id];
  if (!slot) {
    slot = std::make_shared<Workspace>();
    slot->user_id = user_id;
    state_gauges_[State::stopped]->Increment();
  }
  return slot;
}

Host& WorkspaceManager::host_named(const std::string& name) {
  for (auto& h : hosts_)
    if (h->config.name == name) return *h;
  return *hosts_.front();
}

void WorkspaceManager::set_state_in_memory(Workspace& ws, State state, std::string reason) {
  if (ws.state != state) {
    state_gauges_[ws.state]->Decrement();
    state_gauges_[state]->Increment();
  }
  const bool begins_to_stop = state == State::stopping && ws.state != State::stopping;
  ws.state = state;
  ws.reason = std::move(reason);
  if (begins_to_stop) {
    const bool asleep = ws.op && ws.op->kind == Operation::sleep;
    for (const auto& l : stopping_listeners_) l(ws.user_id, asleep);
  }
}

void WorkspaceManager::push_event(Workspace& ws, const std::string& step, const nlohmann::json& detail) {
  ws.recent.push_back(StepEvent{ws.next_seq++, step, ws.state, detail, now_iso()});
  while (ws.recent.size() > kRecentSteps) ws.recent.pop_front();
  ws.changed.notify_all();
}

asio::awaitable<void> WorkspaceManager::record(WorkspacePtr ws, std::string step, nlohmann::json detail,
                                               std::optional<State> state, std::string reason) {
  if (detail.is_null()) detail = nlohmann::json::object();
  const std::string user = ws->user_id;
  const std::string st = state ? to_string(*state) : "";
  const std::string host = ws->host;
  const int port = ws->runtime_port;
  const std::string text = detail.dump();
  // Persisted first, then visible: whoever sees the new state (the API, the
  // proxy) can rely on it being stored. A database failure still changes
  // memory (it is the truth of what happened), then is thrown.
  std::exception_ptr failed;
  try {
    // Lambdas with non-trivial captures stay out of co_await expressions (a
    // GCC 12 bug destroys such temporaries twice): [&] on this frame's locals.
    co_await db_.run([&](pqxx::work& w) {
      if (!st.empty())
        w.exec_params(
            "INSERT INTO workspaces (user_id, state, state_reason, host, runtime_port) "
            "VALUES ($1, $2, nullif($3, ''), nullif($4, ''), nullif($5, 0)) "
            "ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, state_reason = excluded.state_reason, "
            "host = coalesce(excluded.host, workspaces.host), "
            "runtime_port = coalesce(excluded.runtime_port, workspaces.runtime_port), updated_at = now()",
            user, st, reason, host, port);
      w.exec_params("INSERT INTO events (user_id, kind, detail) VALUES ($1, $2, $3::jsonb)", user, step, text);
    });
  } catch (...) {
    failed = std::current_exception();
  }
  if (state) set_state_in_memory(*ws, *state, std::move(reason));
  push_event(*ws, step, detail);
  if (failed) std::rethrow_exception(failed);
}

State WorkspaceManager::state_of(const std::string& user_id) const {
  auto ws = find(user_id);
  return ws ? ws->state : State::stopped;
}

std::pair<State, std::vector<StepEvent>> WorkspaceManager::snapshot(const std::string& user_id) const {
  auto ws = find(user_id);
  if (!ws) return {State::stopped, {}};
  return {ws->state, std::vector<StepEvent>(ws->recent.begin(), ws->recent.end())};
}

asio::awaitable<std::vector<StepEvent>> WorkspaceManager::next_events(std::string user_id,
                                                                      std::uint64_t after_seq,
                                                                      Clock::time_point deadline) {
  auto ws = get_or_create(user_id);
  for (;;) {
    std::vector<StepEvent> out;
    for (const auto& e : ws->recent)
      if (e.seq > after_seq) out.push_back(e);
    if (!out.empty() || stopping_) co_return out;
    if (!co_await ws->changed.wait_until(deadline)) co_return out;
  }
}

// ---------------------------------------------------------------------------
// Operations

asio::awaitable<std::string> WorkspaceManager::last_output(Host& host, const Container& c, Duration timeout) {
  std::string text;
  try {
    text = co_await host.client->logs_tail(c.name, 5, timeout);
  } catch (const PodmanError& e) {
    log_->info("no output of {}: {}", c.name, e.what());
    co_return "";
  }
  // The editor's token is in mrmd-server's start banner: never shown.
  if (!c.token.empty())
    for (auto at = text.find(c.token); at != std::string::npos; at = text.find(c.token, at))
      text.replace(at, c.token.size(), "***");
  // One line a line, " | " between them, printable ASCII; the end kept.
  std::string out;
  for (char ch : text) {
    if (ch == '\n') {
      if (!out.empty() && out.back() != ' ') out += " | ";
    } else if (static_cast<unsigned char>(ch) >= 0x20 && ch != 0x7f) {
      out.push_back(ch);
    }
  }
  while (out.size() >= 3 && out.compare(out.size() - 3, 3, " | ") == 0) out.resize(out.size() - 3);
  constexpr std::size_t kMax = 600;
  if (out.size() > kMax) out = "..." + out.substr(out.size() - kMax);
  co_return out;
}

asio::awaitable<void> WorkspaceManager::apply_plan_limits(Host& host, const std::string& name, const Plan& plan,
                                                         Duration timeout) {
  co_await host.client->update_resources(name, runtime_limits(plan.memory_bytes, plan.cpus), timeout);
}

std::shared_ptr<WorkspaceManager::Operation> WorkspaceManager::begin(Workspace& ws, Operation::Kind kind) {
  // One operation at a time: callers look (after their last co_await) and
  // refuse or wait; one that did not would orphan the operation in flight.
  if (ws.op) throw std::logic_error("an operation began while another was in progress on " + ws.user_id);
  auto op = std::make_shared<Operation>();
  op->kind = kind;
  ws.op = op;
  if (kind == Operation::start) ++starts_in_flight_;
  return op;
}

void WorkspaceManager::finish(Workspace& ws, const std::shared_ptr<Operation>& op) {
  if (op->kind == Operation::start) --starts_in_flight_;
  if (ws.op == op) ws.op = nullptr;
  op->finished = true;
  op->done.notify_all();
  ws.changed.notify_all();
}

void WorkspaceManager::cancel(Operation& op, bool for_shutdown) {
  op.cancelled = true;
  op.for_shutdown = op.for_shutdown || for_shutdown;
  if (op.sleeping) op.sleeping->cancel();
}

void WorkspaceManager::check(const Operation& op) const {
  if (op.cancelled) throw Cancelled{};
}

asio::awaitable<void> WorkspaceManager::wait_done(std::shared_ptr<Operation> op, Clock::time_point deadline) {
  while (!op->finished && Clock::now() < deadline) co_await op->done.wait_until(deadline);
}

asio::awaitable<void> WorkspaceManager::pause(Operation& op, Duration d) {
  check(op);
  asio::steady_timer timer(executor_, d);
  op.sleeping = &timer;
  co_await timer.async_wait(tuple_awaitable);
  op.sleeping = nullptr;
  check(op);
}

asio::awaitable<void> WorkspaceManager::ensure_reachable(Host& host) {
  try {
    co_await host.client->ping(std::chrono::seconds(2));
  } catch (const PodmanError& e) {
    RequestError err(503, "The compute host " + host.config.name + " cannot be reached; try again in a moment.",
                     e.what());
    err.retry_after_seconds = 5;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Start

asio::awaitable<State> WorkspaceManager::start(std::string user_id) {
  auto ws = get_or_create(user_id);
  bool host_checked = false;
  for (int waits = 0;;) {
    if (stopping_) throw RequestError(503, "feuilled is shutting down; try again in a moment.");
    if (ws->op && (ws->op->kind == Operation::start || ws->op->kind == Operation::restart))
      co_return ws->state;  // join the start (or restart) in flight
    if (!ws->op && ws->state == State::running) co_return State::running;
    if (ws->op) {  // a stop or a sleep in flight: the start comes after it
      if (++waits > 3) throw RequestError(503, "The workspace is busy; try again in a moment.");
      co_await wait_done(ws->op, Clock::now() + settings_.start_timeout);
      continue;
    }
    if (!host_checked) {  // one round trip to the host, then look again: the world may have moved
      host_checked = true;
      co_await ensure_reachable(editor_host());
      continue;
    }
    if (starts_in_flight_ >= config_.start_concurrency) {
      RequestError err(429, "Too many workspaces are starting right now; try again in a few seconds.",
                       "start-concurrency reached (" + std::to_string(starts_in_flight_) + " in flight)");
      err.retry_after_seconds = 3;
      throw err;
    }
    auto op = begin(*ws, Operation::start);
    const bool waking = ws->state == State::sleeping;
    const State now = waking ? State::waking : State::starting;
    set_state_in_memory(*ws, now, "");
    ws->recent.clear();
    spawn(executor_, run_start(ws, op, waking), log_, (waking ? "wake " : "start ") + user_id);
    co_return now;
  }
}

asio::awaitable<void> WorkspaceManager::run_start(WorkspacePtr ws, std::shared_ptr<Operation> op, bool waking) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + settings_.start_timeout;
  std::string step = "starting";
  std::optional<std::string> failure;
  bool cancelled = false;
  try {
    const std::string user_id = ws->user_id;
    // A wake restores the sleep snapshot when there is one (whatever the
    // probe says or has not said yet: a failed restore falls back below);
    // otherwise it is a cold start, and the user is told that Python's state
    // was not kept (compute.md, "Idle sleep").
    const std::string snapshot = sleep_snapshot(user_id);
    auto look = [snapshot]() {
      std::error_code ec;
      return std::filesystem::is_regular_file(snapshot, ec);
    };
    const bool has_snapshot = co_await offload(pool_, std::move(look));  // a stat: never on the loop
    const bool restore = waking && has_snapshot;
    if (has_snapshot && !waking) {
      std::vector<std::string> gone{snapshot};
      co_await remove_files(std::move(gone));  // a cold start wins over it
    }
    if (waking) {
      nlohmann::json detail = restore ? nlohmann::json{{"python_state", "kept"}}
                                      : nlohmann::json{{"python_state", "lost"},
                                                       {"reason", "the workspace slept without a checkpoint: Python "
                                                                  "starts afresh"}};
      co_await record(ws, "waking", std::move(detail), State::waking);
    } else {
      co_await record(ws, "starting", {}, State::starting);
    }
    auto user = co_await db_.run([&](pqxx::work& w) { return db::find_user_by_id(w, user_id); });
    if (!user) throw StartFailure("the user does not exist");
    const Plan* plan = config_.find_plan(user->plan);
    if (!plan) plan = config_.find_plan("free");
    if (!plan) throw StartFailure("the user's plan " + user->plan + " is not configured");
    Owner owner{user->id, user->handle, user->name, user->email, plan->name};
    ws->plan = plan->name;
    const std::string data_dir = settings_.data_dir;
    auto folder = co_await offload(pool_, [&, uid = settings_.uid, gid = settings_.gid]() {
      return ensure_workspace_folder(data_dir, user_id, uid, gid);
    });
    check(*op);
    // Never a duplicate: whatever carries these names now is a leftover (we
    // hold the user's operation slot).
    co_await remove_containers(ws, false);
    check(*op);
    const std::string token = random_hex(32);

    step = restore ? "restoring-runtime" : "creating-runtime";
    ws->host = host_named(ws->host).config.name;  // a host no longer configured: the first
    {
      nlohmann::json detail = {{"host", ws->host}};
      co_await record(ws, step, std::move(detail), std::nullopt);
    }
    auto runtime_part = [&]() -> asio::awaitable<void> {
      std::optional<std::string> restore_failed;
      if (restore) {
        try {
          co_await create_runtime(ws, *op, owner, *plan, folder, token, deadline, snapshot);
        } catch (const PodmanError& e) {
          restore_failed = e.what();
        } catch (const StartFailure& e) {
          restore_failed = e.what();
        }
      }
      if (restore_failed) {
        // A failed restore leaves a `created` container holding the name.
        log_->warn("restoring the runtime of {} failed ({}): a cold start, Python's state is lost", user_id,
                   *restore_failed);
        co_await runtime_host(*ws).client->remove_container(runtime_name(user_id), true, 0);
        ws->runtime.reset();
        std::vector<std::string> gone{snapshot};
        co_await remove_files(std::move(gone));
        nlohmann::json detail = {{"python_state", "lost"}, {"reason", "the restore failed: " + *restore_failed}};
        co_await record(ws, "restore-failed", std::move(detail), std::nullopt);
        step = "creating-runtime";
        nlohmann::json where = {{"host", ws->host}};
        co_await record(ws, step, std::move(where), std::nullopt);
      }
      if (!restore || restore_failed) co_await create_runtime(ws, *op, owner, *plan, folder, token, deadline);
      step = "waiting-for-health";
      nlohmann::json detail = {{"container", "runtime"}, {"port", ws->runtime_port}};
      co_await record(ws, step, std::move(detail), std::nullopt);
      co_await wait_healthy(ws, *op, runtime_role, deadline);
      if (ws->gateway) ws->gateway->set_runtime(ws->runtime->netns);
    };
    auto editor_part = [&]() -> asio::awaitable<void> {
      step = "starting-editor";
      co_await record(ws, step, {}, std::nullopt);
      co_await create_editor(ws, *op, owner, folder, token, deadline);
    };
    if (restore) {
      // A wake restores the runtime and starts the editor at once (the
      // restore takes the longer): the editor's gateway holds connections
      // to the runtime until the runtime is back and healthy.
      co_await (runtime_part() && editor_part());
    } else {
      co_await runtime_part();
      co_await editor_part();
    }

    auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    start_duration_->Observe(secs);
    {
      nlohmann::json detail = {{"ms", std::lround(secs * 1000)}};
      co_await record(ws, "ready", std::move(detail), State::running);
    }
    ws->last_activity = std::chrono::system_clock::now();  // idle from here on
    ws->activity_dirty = true;
    ws->gateway_bytes_seen = 0;
    if (restore) {  // (after a failed restore it is gone already)
      std::vector<std::string> gone{snapshot};
      co_await remove_files(std::move(gone));  // its state lives in the runtime now
    }
    log_->info("workspace of {} running (editor port {}, runtime port {} on {}) in {:.0f} ms", ws->user_id,
               ws->editor->port, ws->runtime_port, ws->host, secs * 1000);
  } catch (const Cancelled&) {
    cancelled = true;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (cancelled || failure) {
    try {
      co_await remove_containers(ws, false);
    } catch (const std::exception& e) {
      log_->warn("cleanup after the start of {}: {}", ws->user_id, e.what());
    }
    try {
      if (failure) {
        start_failures_->Increment();
        log_->warn("workspace of {} failed to start while {}: {}", ws->user_id, step, *failure);
        {
          nlohmann::json detail = {{"reason", *failure}, {"step", step}};
          co_await record(ws, "failed", std::move(detail), State::failed, *failure);
        }
      } else if (op->for_shutdown) {
        {
          nlohmann::json detail = {{"reason", "feuilled shut down during the start"}};
          co_await record(ws, "cancelled", std::move(detail), State::stopped,
                        "feuilled shut down during the start");
        }
      } else {
        {
          nlohmann::json detail = {{"reason", "stopped during the start"}};
          co_await record(ws, "cancelled", std::move(detail), std::nullopt);
        }
      }
    } catch (const std::exception& e) {
      log_->warn("recording the end of the start of {}: {}", ws->user_id, e.what());
    }
  }
  finish(*ws, op);
}

asio::awaitable<void> WorkspaceManager::create_runtime(WorkspacePtr ws, Operation& op, const Owner& owner,
                                                       const Plan& plan, const std::string& folder,
                                                       const std::string& token, Clock::time_point deadline,
                                                       const std::string& restore_from) {
  Host& host = runtime_host(*ws);
  auto left = [&]() {
    auto d = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    if (d.count() <= 0) throw StartFailure("timed out creating the runtime");
    return d;
  };
  const std::string name = runtime_name(ws->user_id);
  // The workspace keeps its runtime port (its gateway's) for life. Ports live
  // in namespaces of their own, so nothing on the host can hold one; the
  // database's unique index is the only guard left (another deployment's
  // record this process did not know).
  for (int attempt = 0;; ++attempt) {
    check(op);
    if (attempt == 8) throw StartFailure("no usable runtime port after 8 tries");
    std::uint16_t port = ws->runtime_port;
    if (!port) {
      auto p = ports_.allocate({kRuntimePortFirst, kRuntimePortLast});
      if (!p) throw StartFailure("every runtime port is in use");
      port = *p;
    }
    try {
      co_await db_.run([&, port](pqxx::work& w) {
        w.exec_params("UPDATE workspaces SET runtime_port = $2, host = $3, updated_at = now() WHERE user_id = $1",
                      ws->user_id, static_cast<int>(port), host.config.name);
        w.exec_params(
            "INSERT INTO runtimes (user_id, kind, name, host, port, state) VALUES ($1, 'runtime', $2, $3, $4, 'creating') "
            "ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, token = NULL, "
            "container_id = NULL, state = 'creating', updated_at = now()",
            ws->user_id, name, host.config.name, static_cast<int>(port));
      });
    } catch (const pqxx::unique_violation&) {
      if (port != ws->runtime_port) ports_.mark_taken(port);
      ws->runtime_port = 0;
      continue;
    }
    ws->runtime_port = port;
    break;
  }
  ws->runtime = Container{name, "", host.config.name, ws->runtime_port, "", false, nullptr};
  RuntimeParams p{SpecBase{instance_, folder, settings_.oci_runtime, settings_.runtime_image, settings_.runtime_command,
                           token, settings_.isolation},
                  owner, ws->runtime_port, plan.memory_bytes, plan.cpus, settings_.runtime_user};
  nlohmann::json spec;
  try {
    spec = runtime_spec(p);
  } catch (const std::invalid_argument& e) {
    throw StartFailure(std::string("runtime-command cannot be split into words: ") + e.what());
  }
  if (restore_from.empty()) {
    ws->runtime->id = co_await host.client->create_container(spec, left());
    co_await host.client->start_container(name, left());
  } else {
    // The checkpointed container's own spec comes back with it (labels,
    // limits); the plan's limits now are applied to it.
    PodmanClient::BodySource read;
    try {
      read = PodmanClient::file_source(restore_from, archive_pool_);
    } catch (const std::runtime_error& e) {
      throw StartFailure(e.what());
    }
    ws->runtime->id = co_await host.client->restore_import(name, std::move(read), true, left());
    try {
      co_await apply_plan_limits(host, name, plan, left());
    } catch (const PodmanError& e) {
      // Its state is worth more than the limit: kept, applied at the next start.
      log_->warn("the woken runtime of {} keeps its checkpoint's limits: {}", ws->user_id, e.what());
    }
  }
  try {
    co_await attach_runtime(ws, left());
  } catch (const std::runtime_error& e) {
    throw StartFailure(e.what());
  }
  const std::string id = ws->runtime->id;
  co_await db_.run([&](pqxx::work& w) {
    w.exec_params("UPDATE runtimes SET container_id = $2, state = 'running', updated_at = now() WHERE name = $1", name,
                  id);
  });
}

asio::awaitable<void> WorkspaceManager::create_editor(WorkspacePtr ws, Operation& op, const Owner& owner,
                                                      const std::string& folder, const std::string& token,
                                                      Clock::time_point deadline) {
  Host& host = editor_host();
  auto left = [&]() {
    auto d = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    if (d.count() <= 0) throw StartFailure("timed out creating the editor");
    return d;
  };
  const std::string name = editor_name(ws->user_id);
  std::uint16_t port = 0;
  for (int attempt = 0;; ++attempt) {
    check(op);
    if (attempt == 4) throw StartFailure("no usable editor port after 4 tries");
    auto p = ports_.allocate({kEditorPortFirst, kEditorPortLast});
    if (!p) throw StartFailure("every editor port is in use");
    port = *p;
    try {
      co_await db_.run([&](pqxx::work& w) {
        w.exec_params(
            "INSERT INTO runtimes (user_id, kind, name, host, port, token, state) "
            "VALUES ($1, 'editor', $2, $3, $4, $5, 'creating') "
            "ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, token = excluded.token, "
            "container_id = NULL, state = 'creating', updated_at = now()",
            ws->user_id, name, host.config.name, static_cast<int>(port), token);
      });
      break;
    } catch (const pqxx::unique_violation&) {
      continue;  // stays marked taken: a record this process did not know holds it
    }
  }
  ws->editor = Container{name, "", host.config.name, port, token, false, nullptr};
  EditorParams params{SpecBase{instance_, folder, settings_.oci_runtime, settings_.editor_image,
                               settings_.editor_command, token, settings_.isolation},
                      owner, port, ws->runtime_port};
  nlohmann::json spec;
  try {
    spec = editor_spec(params);
  } catch (const std::invalid_argument& e) {
    throw StartFailure(std::string("editor-command cannot be split into words: ") + e.what());
  }
  // The namespace first, then the gateway in it, then the editor: no tenant
  // process runs there before the gateway holds RUNTIME_PORT.
  co_await host.client->create_pod(editor_pod_spec(params), left());
  co_await host.client->start_pod(editor_pod_name(ws->user_id), left());
  try {
    co_await attach_editor(ws, left());
  } catch (const std::runtime_error& e) {
    throw StartFailure(e.what());
  }
  ws->editor->id = co_await host.client->create_container(spec, left());
  co_await host.client->start_container(name, left());
  {
    const std::string id = ws->editor->id;
    co_await db_.run([&](pqxx::work& w) {
      w.exec_params("UPDATE runtimes SET container_id = $2, state = 'running', updated_at = now() WHERE name = $1", name,
                    id);
    });
  }
  {
    nlohmann::json detail = {{"container", "editor"}, {"port", port}};
    co_await record(ws, "waiting-for-health", std::move(detail), std::nullopt);
  }
  co_await wait_healthy(ws, op, editor_role, deadline);
}

asio::awaitable<void> WorkspaceManager::wait_healthy(WorkspacePtr ws, Operation& op, Role role,
                                                     Clock::time_point deadline) {
  const bool editor = role == editor_role;
  Host& host = editor ? editor_host() : runtime_host(*ws);
  const Container c = editor ? *ws->editor : *ws->runtime;
  const std::uint16_t port = editor ? c.port : kRuntimeContainerPort;
  const std::string& path = editor ? settings_.editor_health_path : settings_.runtime_health_path;
  const auto t0 = Clock::now();
  auto next_inspect = t0 + 1s;
  std::string last = "no answer yet";
  for (;;) {
    check(op);
    auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    if (left.count() <= 0) {
      std::string why = std::string("the ") + kRoleName[role] + " did not answer " + path + " within " +
                        units::format_duration(settings_.start_timeout) + " (last: " + last + ")";
      const std::string said = co_await last_output(host, c, 5s);
      if (!said.empty()) why += "; its last output: " + said;
      throw StartFailure(why);
    }
    auto r = co_await probe_http(executor_, c.netns, port, path, c.token, std::min<Duration>(left, 2s));
    if (r.healthy()) co_return;
    last = r.status ? "HTTP " + std::to_string(r.status) : r.error;
    if (Clock::now() >= next_inspect) {
      next_inspect = Clock::now() + 1s;
      auto info = co_await host.client->inspect_container(c.name, std::min<Duration>(left, 5s));
      if (!info) throw StartFailure(std::string("the ") + kRoleName[role] + " container disappeared");
      const auto& st = (*info)["State"];
      if (!st.value("Running", false)) {
        std::string why = std::string("the ") + kRoleName[role] + " " +
                          exit_description(st.value("ExitCode", -1), st.value("OOMKilled", false)) +
                          " before answering " + path;
        const std::string said = co_await last_output(host, c, std::min<Duration>(left, 5s));
        if (!said.empty()) why += "; its last output: " + said;
        throw StartFailure(why);
      }
    }
    // Quick polls first (a container answers within a second or two), then gentler.
    const Duration gap = Clock::now() - t0 < 3s ? settings_.poll_interval : settings_.poll_interval * 4;
    co_await pause(op, gap);
  }
}

asio::awaitable<void> WorkspaceManager::remove_containers(WorkspacePtr ws, bool graceful) {
  Host& ed = editor_host();
  Host& rt = runtime_host(*ws);
  co_await remove_sandboxes(ws);
  close_gateway(*ws);
  // The editor first (it holds the runtime's port in its settings), gracefully
  // on a stop so that it can flush the user's files; then its pod (the
  // infra container holding its namespace).
  std::exception_ptr first_error;
  const int editor_grace = graceful ? 5 : 0, runtime_grace = graceful ? 2 : 0;
  try {
    co_await ed.client->remove_container(editor_name(ws->user_id), true, editor_grace);
    co_await ed.client->remove_pod(editor_pod_name(ws->user_id));
  } catch (const PodmanError&) {
    first_error = std::current_exception();
  }
  try {
    co_await rt.client->remove_container(runtime_name(ws->user_id), true, runtime_grace);
  } catch (const PodmanError&) {
    if (!first_error) first_error = std::current_exception();
  }
  if (first_error) std::rethrow_exception(first_error);
  if (ws->editor) ports_.release(ws->editor->port);
  ws->editor.reset();
  ws->runtime.reset();
  const std::string user_id = ws->user_id;
  co_await db_.run([&](pqxx::work& w) {
    w.exec_params("DELETE FROM runtimes WHERE user_id = $1 AND kind IN ('editor', 'runtime')", user_id);
  });
}

// ---------------------------------------------------------------------------
// Stop

asio::awaitable<State> WorkspaceManager::stop(std::string user_id, Duration wait) {
  auto ws = find(user_id);
  if (!ws) co_return State::stopped;
  const auto deadline = Clock::now() + wait;
  for (;;) {
    if (stopping_) throw RequestError(503, "feuilled is shutting down; try again in a moment.");
    if (ws->op && (ws->op->kind == Operation::stop || ws->op->kind == Operation::sleep)) {
      auto op = ws->op;
      const bool sleep = op->kind == Operation::sleep;  // then asleep: stopped below
      co_await wait_done(op, deadline);
      if (!op->error.empty()) {
        RequestError err(503, "The workspace could not be stopped: its compute host cannot be reached.", op->error);
        err.retry_after_seconds = 5;
        throw err;
      }
      if (!sleep || !op->finished) co_return ws->state;
      continue;
    }
    if (ws->op) {  // a start or restart: the stop wins
      auto op = ws->op;
      cancel(*op, false);
      co_await wait_done(op, Clock::now() + 30s);
      if (!op->finished) throw RequestError(503, "The workspace is busy; try again in a moment.");
      continue;
    }
    if (ws->state == State::stopped) co_return State::stopped;
    if (ws->state == State::failed || ws->state == State::sleeping) {  // its containers are gone already
      std::vector<std::string> gone{sleep_snapshot(user_id)};
      co_await remove_files(std::move(gone));  // a stopped workspace keeps no process state
      co_await record(ws, "stopped", {}, State::stopped);
      co_return State::stopped;
    }
    co_await ensure_reachable(runtime_host(*ws));
    if (ws->op || ws->state == State::stopped) continue;
    auto op = begin(*ws, Operation::stop);
    spawn(executor_, run_stop(ws, op), log_, "stop " + user_id);
  }
}

asio::awaitable<void> WorkspaceManager::run_stop(WorkspacePtr ws, std::shared_ptr<Operation> op) {
  const State before = ws->state;
  const std::string before_reason = ws->reason;
  try {
    co_await record(ws, "stopping", {}, State::stopping);
    co_await remove_containers(ws, true);
    co_await record(ws, "stopped", {}, State::stopped);
    log_->info("workspace of {} stopped", ws->user_id);
  } catch (const std::exception& e) {
    op->error = e.what();
  }
  if (!op->error.empty()) {
    log_->warn("stopping the workspace of {}: {}", ws->user_id, op->error);
    // Nothing is known to be gone: the workspace stays as it was.
    co_await record_back(ws, "stop-failed", op->error, before, before_reason);
  }
  finish(*ws, op);
}

asio::awaitable<void> WorkspaceManager::record_back(WorkspacePtr ws, std::string step, std::string why, State before,
                                                    std::string before_reason) {
  try {
    nlohmann::json detail = {{"reason", why}};
    co_await record(ws, step, std::move(detail), before, before_reason);
  } catch (const std::exception& e) {
    set_state_in_memory(*ws, before, before_reason);
    log_->warn("recording {} of {}: {}", step, ws->user_id, e.what());
  }
}

// ---------------------------------------------------------------------------
// What the API and the proxy read

asio::awaitable<nlohmann::json> WorkspaceManager::describe(std::string user_id) {
  auto ws = find(user_id);
  const State state = ws ? ws->state : State::stopped;
  // criu: whether a checkpoint works on its host (the sleep keeps Python's state).
  const bool criu = (ws ? runtime_host(*ws) : editor_host()).checkpoints_work();
  nlohmann::json out = {{"state", to_string(state)}, {"reason", nullptr}, {"host", nullptr}, {"criu", criu}};
  if (ws && !ws->reason.empty()) out["reason"] = ws->reason;
  if (ws && (ws->runtime || !ws->host.empty())) out["host"] = ws->runtime ? ws->runtime->host : ws->host;
  auto status = [&](const std::optional<Container>& c) -> std::string {
    if (!c) return "absent";
    if (state == State::running) return "running";
    return c->id.empty() ? "creating" : "created";
  };
  nlohmann::json editor = {{"container", editor_name(user_id)}, {"port", nullptr}, {"status", "absent"}};
  nlohmann::json runtime = {{"container", runtime_name(user_id)}, {"port", nullptr}, {"status", "absent"},
                            {"memory_bytes", nullptr},           {"memory_limit_bytes", nullptr},
                            {"cpu_percent", nullptr}};
  if (ws) {
    if (ws->editor) editor["port"] = ws->editor->port;
    editor["status"] = status(ws->editor);
    if (ws->runtime_port) runtime["port"] = ws->runtime_port;
    runtime["status"] = status(ws->runtime);
  }
  // The monitor's last sample (describe() never samples: its readers would
  // spoil each other's CPU baseline).
  if (ws && state == State::running && ws->runtime && ws->usage[runtime_role].sampled) {
    const auto& u = ws->usage[runtime_role];
    runtime["memory_bytes"] = u.memory_bytes;
    runtime["memory_limit_bytes"] = u.memory_limit_bytes;
    if (u.cpu_percent) runtime["cpu_percent"] = *u.cpu_percent;
  }
  out["editor"] = std::move(editor);
  out["runtime"] = std::move(runtime);
  nlohmann::json sandboxes = nlohmann::json::array();
  if (ws)
    for (const auto& [sid, sb] : ws->sandboxes) sandboxes.push_back({{"id", sid}, {"container", sb.name}, {"port", sb.port}});
  out["sandboxes"] = std::move(sandboxes);
  co_return out;
}

std::optional<EditorTarget> WorkspaceManager::editor(const std::string& user_id) const {
  auto ws = find(user_id);
  if (!ws) return std::nullopt;
  EditorTarget t;
  t.state = ws->state;
  t.reason = ws->reason;
  t.falling_asleep = ws->state == State::stopping && ws->op && ws->op->kind == Operation::sleep;
  t.address = "127.0.0.1";
  if (ws->state == State::running && ws->editor) {
    t.port = ws->editor->port;
    t.token = ws->editor->token;
    t.netns = ws->editor->netns;
  }
  return t;
}

asio::awaitable<EditorTarget> WorkspaceManager::start_and_wait(std::string user_id, Duration max_wait) {
  const auto deadline = Clock::now() + max_wait;
  auto exists = co_await db_.run([&](pqxx::work& w) { return db::find_user_by_id(w, user_id).has_value(); });
  if (!exists) throw RequestError(404, "There is no such user.");
  co_await start(user_id);
  auto ws = get_or_create(user_id);
  while (ws->state != State::running && ws->state != State::failed && !stopping_ && Clock::now() < deadline)
    co_await ws->changed.wait_until(deadline);
  co_return *editor(user_id);
}

asio::awaitable<std::optional<EditorTarget>> WorkspaceManager::wait_on_its_way(std::string user_id,
                                                                               Duration max_wait) {
  const auto deadline = Clock::now() + max_wait;
  if (auto ws = find(user_id))
    while (on_its_way(ws->state) && !stopping_ && Clock::now() < deadline) co_await ws->changed.wait_until(deadline);
  co_return editor(user_id);
}

void WorkspaceManager::record_activity(const std::string& user_id) {
  auto ws = find(user_id);
  if (!ws) return;
  ws->last_activity = std::chrono::system_clock::now();
  ws->activity_dirty = true;
}

}  // namespace feuille::compute
