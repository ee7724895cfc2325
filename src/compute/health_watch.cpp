// Watching running workspaces: each host's Podman event stream (died, oom of
// this deployment's containers) notices a crash within a second; a probe
// round (editor and runtime health paths) catches what events cannot (a
// process alive but not answering). A dead or unresponsive container is
// restarted once; dying again within restart_window fails the workspace with
// the reason. Also: the batched activity writes, background start and stop.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <spdlog/logger.h>

#include <ctime>

#include "http/url.hpp"
#include "compute/probe.hpp"
#include "compute/workspace_manager.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr const char* kRoleName[] = {"editor", "runtime"};
constexpr int kUnansweredProbes = 3;  // consecutive failed probes of a running container that count as dead
}  // namespace

void WorkspaceManager::run_background() {
  for (auto& h : hosts_) {
    retry_timers_.push_back(std::make_unique<asio::steady_timer>(executor_));
    spawn(executor_, follow_events(*h), log_, "events of " + h->config.name);
  }
  spawn(executor_, probe_loop(), log_, "probes");
  spawn(executor_, activity_loop(), log_, "activity");
  spawn(executor_, monitor_loop(), log_, "monitor");
  spawn(executor_, probe_checkpoints(), log_, "checkpoint probes");
}

asio::awaitable<void> WorkspaceManager::probe_checkpoints() {
  for (auto& h : hosts_) {
    if (!settings_.criu) {
      h->checkpoint = CheckpointProbe{false, "criu = off", 0, 0};
      continue;
    }
    auto spec = checkpoint_probe_spec(ProbeRuntime{instance_, settings_.oci_runtime, settings_.runtime_image,
                                                   settings_.runtime_command, settings_.runtime_user, settings_.isolation});
    auto result = co_await probe_checkpoint(*h->client, std::move(spec), 30s);
    if (stopping_) co_return;
    if (result.works)
      log_->info("host {}: checkpoints work ({}): workspaces sleep with their Python state", h->config.name, result.detail);
    else
      log_->warn("host {}: checkpoints do not work ({}): sleeping workspaces lose their Python state, snapshots and "
                 "forks are refused", h->config.name, result.detail);
    checkpoint_works_->Add({{"host", h->config.name}}).Set(result.works ? 1 : 0);
    h->checkpoint = std::move(result);
  }
}

void WorkspaceManager::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& [id, ws] : workspaces_) {
    if (ws->op && ws->op->kind != Operation::stop && ws->op->kind != Operation::sleep) cancel(*ws->op, true);
    // Its connections end with this process anyway; the next feuilled binds
    // the gateway again in the adopted editor's namespace.
    close_gateway(*ws);
    ws->changed.notify_all();
  }
  for (auto& h : hosts_)
    if (h->events) h->events->close();
  for (auto& t : retry_timers_) t->cancel();
  probe_timer_.cancel();
  flush_timer_.cancel();
  monitor_timer_.cancel();
}

// ---------------------------------------------------------------------------
// Podman's event stream

asio::awaitable<void> WorkspaceManager::follow_events(Host& host) {
  std::size_t index = 0;
  while (hosts_[index].get() != &host) ++index;
  auto& retry = *retry_timers_[index];
  nlohmann::json filters = {{"type", {"container"}},
                            {"event", {"died", "oom"}},
                            {"label", {std::string(kLabelInstance) + "=" + instance_}}};
  const std::string target = "/v4.0.0/libpod/events?stream=true&filters=" + http::url_encode(filters.dump());
  bool announced_down = !host.reachable;
  while (!stopping_) {
    std::string why;
    try {
      auto stream = co_await host.client->open(boost::beast::http::verb::get, target, 5s);
      if (stream->status() != 200) {
        auto body = co_await stream->read_rest(2s);
        throw PodmanError(host.config.name, stream->status(), "", "event stream: " + body.substr(0, 300));
      }
      host.events = stream.get();
      if (stopping_) break;
      if (announced_down) log_->info("host {} answers again", host.config.name);
      announced_down = false;
      host.reachable = true;
      host_up_->Add({{"host", host.config.name}}).Set(1);
      // Catch up with what happened while the stream was not read.
      if (!host.reconciled) co_await reconcile_host(host, false);
      else co_await resync_host(host);
      std::string pending;
      char buf[16 * 1024];
      for (;;) {
        std::size_t n = co_await stream->read_some(asio::buffer(buf), std::nullopt);
        if (n == 0) break;
        pending.append(buf, n);
        for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
          auto line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          auto j = nlohmann::json::parse(line, nullptr, false);
          if (j.is_object()) on_podman_event(host, j);
        }
      }
      why = "the event stream ended";
    } catch (const std::exception& e) {
      why = e.what();
    }
    host.events = nullptr;
    if (stopping_) break;
    host.reachable = false;
    host_up_->Add({{"host", host.config.name}}).Set(0);
    if (!announced_down) log_->warn("host {}: {}; retrying every second", host.config.name, why);
    announced_down = true;
    retry.expires_after(1s);
    co_await retry.async_wait(tuple_awaitable);
  }
  host.events = nullptr;
}

void WorkspaceManager::on_podman_event(Host& host, const nlohmann::json& event) {
  const std::string action = event.value("Action", event.value("status", ""));
  if (!event.contains("Actor") || !event["Actor"].is_object()) return;
  const auto& actor = event["Actor"];
  const std::string id = actor.value("ID", event.value("id", ""));
  if (!actor.contains("Attributes") || !actor["Attributes"].is_object()) return;
  const auto& attrs = actor["Attributes"];
  const std::string name = attrs.value("name", "");
  const std::string user = attrs.value(kLabelUser, "");
  auto ws = find(user);
  if (!ws) return;
  Role role;
  if (name == editor_name(user)) role = editor_role;
  else if (name == runtime_name(user)) role = runtime_role;
  else return;  // a sandbox: removed with its workspace, not restarted
  if (action == "oom") {
    ws->oom_ids.insert(id);
    return;
  }
  if (action != "died") return;
  const auto& c = role == editor_role ? ws->editor : ws->runtime;
  if (!c || c->host != host.config.name || (!c->id.empty() && c->id != id)) return;  // an older container
  if (ws->op || ws->state != State::running) return;  // our own stop, or an operation that watches for itself
  std::string why = std::string("the ") + kRoleName[role] + " " +
                    exit_description(std::atoi(attrs.value("containerExitCode", "-1").c_str()), ws->oom_ids.count(id) > 0);
  log_->warn("workspace of {}: {}", user, why);
  container_died(ws, role, why);
}

// ---------------------------------------------------------------------------
// Probes

asio::awaitable<void> WorkspaceManager::probe_loop() {
  while (!stopping_) {
    probe_timer_.expires_after(settings_.probe_interval);
    co_await probe_timer_.async_wait(tuple_awaitable);
    if (stopping_) co_return;
    for (auto& [id, ws] : workspaces_)
      if (ws->state == State::running && !ws->op && !ws->probing && ws->editor && ws->runtime)
        spawn(executor_, probe_workspace(ws), log_, "probe " + id);
  }
}

void WorkspaceManager::editor_refused(const std::string& user_id) {
  auto ws = find(user_id);
  if (!ws || stopping_ || ws->state != State::running || ws->op || ws->probing || !ws->editor || !ws->runtime) return;
  spawn(executor_, probe_workspace(ws), log_, "probe " + user_id);
}

asio::awaitable<void> WorkspaceManager::probe_workspace(WorkspacePtr ws) {
  // Spawned: things may have moved since it was decided.
  if (ws->probing || ws->op || ws->state != State::running || !ws->editor || !ws->runtime || stopping_) co_return;
  ws->probing = true;
  struct Reset {
    Workspace& ws;
    ~Reset() { ws.probing = false; }
  } reset{*ws};
  const Container ed = *ws->editor, rt = *ws->runtime;
  Host& rt_host = runtime_host(*ws);
  ProbeResult results[2];
  results[runtime_role] =
      co_await probe_http(executor_, rt.netns, kRuntimeContainerPort, settings_.runtime_health_path, "", 3s);
  results[editor_role] = co_await probe_http(executor_, ed.netns, ed.port, settings_.editor_health_path, ed.token, 3s);
  for (Role role : {runtime_role, editor_role}) {  // the runtime first: the editor needs it
    if (ws->op || ws->state != State::running || stopping_) co_return;
    if (results[role].healthy()) {
      ws->failed_probes[role] = 0;
      continue;
    }
    const Container& c = role == editor_role ? ed : rt;
    Host& h = role == editor_role ? editor_host() : rt_host;
    std::optional<nlohmann::json> info;
    try {
      info = co_await h.client->inspect_container(c.name, 5s);
    } catch (const PodmanError& e) {
      log_->debug("probe of {}: cannot inspect {}: {}", ws->user_id, c.name, e.what());
      co_return;  // the host does not answer: its event stream says so; do not guess
    }
    if (ws->op || ws->state != State::running || stopping_) co_return;
    const std::string who = std::string("the ") + kRoleName[role];
    if (!info) {
      container_died(ws, role, who + " container was removed from outside");
      co_return;
    }
    const auto& st = (*info)["State"];
    if (!st.value("Running", false)) {
      std::string why =
          who + " " + exit_description(st.value("ExitCode", -1), st.value("OOMKilled", false) || ws->oom_ids.count(c.id));
      container_died(ws, role, why);
      co_return;
    }
    const std::string& path = role == editor_role ? settings_.editor_health_path : settings_.runtime_health_path;
    std::string last = results[role].status ? "HTTP " + std::to_string(results[role].status) : results[role].error;
    log_->warn("workspace of {}: {} did not answer {} ({})", ws->user_id, who, path, last);
    if (++ws->failed_probes[role] >= kUnansweredProbes) {
      container_died(ws, role, who + " stopped answering " + path + " (" + last + ")");
      co_return;
    }
  }
}

// ---------------------------------------------------------------------------
// Restart once, then fail

void WorkspaceManager::container_died(WorkspacePtr ws, Role role, std::string why) {
  if (stopping_ || ws->op || ws->state != State::running) return;
  // New connections to the runtime wait for it (restart) instead of failing.
  if (role == runtime_role && ws->gateway) ws->gateway->clear_runtime();
  auto op = begin(*ws, Operation::restart);
  spawn(executor_, run_restart(ws, op, role, std::move(why)), log_, "restart " + ws->user_id);
}

asio::awaitable<void> WorkspaceManager::run_restart(WorkspacePtr ws, std::shared_ptr<Operation> op, Role role,
                                                    std::string why) {
  const auto now = Clock::now();
  const bool again = ws->last_restart[role] != Clock::time_point{} && now - ws->last_restart[role] < settings_.restart_window;
  std::optional<std::string> failure;
  bool cancelled = false;
  try {
    if (again) throw StartFailure(why + ", again after a restart");
    ws->last_restart[role] = now;
    restarts_->Add({{"container", kRoleName[role]}}).Increment();
    log_->warn("workspace of {}: restarting the {} ({})", ws->user_id, kRoleName[role], why);
    {
      nlohmann::json detail = {{"container", kRoleName[role]}, {"reason", why}};
      co_await record(ws, "restarting", std::move(detail), State::starting);
    }
    Host& h = role == editor_role ? editor_host() : runtime_host(*ws);
    const std::string name = role == editor_role ? ws->editor->name : ws->runtime->name;
    const auto deadline = Clock::now() + settings_.start_timeout;
    co_await h.client->stop_container(name, 2);  // one that stopped answering; a dead one: nothing to do
    check(*op);
    co_await h.client->start_container(name, settings_.start_timeout);
    // A restarted runtime has a namespace of its own again; an editor's is its
    // pod's, and the same unless the pod's infra container went too.
    try {
      if (role == runtime_role) co_await attach_runtime(ws, settings_.start_timeout);
      else co_await attach_editor(ws, settings_.start_timeout);
    } catch (const std::runtime_error& e) {
      throw StartFailure(e.what());
    }
    {
      nlohmann::json detail = {{"container", kRoleName[role]}};
      co_await record(ws, "waiting-for-health", std::move(detail), std::nullopt);
    }
    co_await wait_healthy(ws, *op, role, deadline);
    if (role == runtime_role) {
      if (ws->gateway) ws->gateway->set_runtime(ws->runtime->netns);
      co_await wait_healthy(ws, *op, editor_role, deadline);
    }
    ws->failed_probes[0] = ws->failed_probes[1] = 0;
    {
      nlohmann::json detail = {{"restarted", kRoleName[role]}};
      co_await record(ws, "ready", std::move(detail), State::running);
    }
    log_->info("workspace of {}: the {} is back", ws->user_id, kRoleName[role]);
  } catch (const Cancelled&) {
    cancelled = true;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (cancelled && op->for_shutdown) {
    // Leave the containers as they are: the next feuilled adopts or fails them.
    try {
      {
        nlohmann::json detail = {{"reason", "feuilled shut down during a restart"}};
        co_await record(ws, "cancelled", std::move(detail), State::running);
      }
    } catch (const std::exception&) {
    }
  } else if (failure) {
    log_->warn("workspace of {} failed: {}", ws->user_id, *failure);
    try {
      co_await remove_containers(ws, false);
    } catch (const std::exception& e) {
      log_->warn("cleanup of the failed workspace of {}: {}", ws->user_id, e.what());
    }
    try {
      {
        nlohmann::json detail = {{"reason", *failure}};
        co_await record(ws, "failed", std::move(detail), State::failed, *failure);
      }
    } catch (const std::exception& e) {
      log_->warn("recording the failure of {}: {}", ws->user_id, e.what());
    }
  }
  finish(*ws, op);
}

// ---------------------------------------------------------------------------
// Activity

asio::awaitable<void> WorkspaceManager::activity_loop() {
  while (!stopping_) {
    flush_timer_.expires_after(settings_.activity_flush);
    co_await flush_timer_.async_wait(tuple_awaitable);
    try {
      co_await flush_activity();
    } catch (const std::exception& e) {
      log_->warn("writing workspace activity: {}", e.what());
    }
  }
}

asio::awaitable<void> WorkspaceManager::flush_activity() {
  std::vector<std::pair<std::string, std::string>> batch;  // user id, timestamp
  for (auto& [id, ws] : workspaces_) {
    if (!ws->activity_dirty) continue;
    ws->activity_dirty = false;
    auto t = std::chrono::system_clock::to_time_t(ws->last_activity);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(ws->last_activity.time_since_epoch()).count() % 1000000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us));
    batch.emplace_back(id, buf);
  }
  if (batch.empty()) co_return;
  try {
    co_await db_.run([&](pqxx::work& w) {
      std::string values;
      for (const auto& [id, at] : batch) {
        if (!values.empty()) values += ", ";
        values += "(" + w.quote(id) + "::uuid, " + w.quote(at) + "::timestamptz)";
      }
      w.exec("UPDATE workspaces SET last_activity_at = greatest(last_activity_at, v.at) FROM (VALUES " + values +
             ") AS v(id, at) WHERE workspaces.user_id = v.id");
    });
  } catch (...) {
    for (const auto& [id, at] : batch)
      if (auto ws = find(id)) ws->activity_dirty = true;
    throw;
  }
}

}  // namespace feuille::compute
