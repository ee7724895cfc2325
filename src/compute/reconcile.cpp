// Reconcile: make the database, memory and each host's containers agree,
// at daemon start (before any request) and when a host that did not answer
// comes back. Containers are found by this deployment's io.feuille.instance
// label; a container is adopted when a runtimes row claims it (same name and
// host) for a workspace that should be running and it runs; every other one
// of ours is removed. A workspace whose containers are not all there is
// settled (failed or stopped) so that nobody is left pointing at a dead editor.
#include <spdlog/logger.h>

#include <algorithm>
#include <filesystem>

#include "compute/workspace_manager.hpp"
#include "util/offload.hpp"
#include "util/logging.hpp"

namespace feuille::compute {

namespace asio = boost::asio;

asio::awaitable<void> WorkspaceManager::open() {
  instance_ = co_await db_.run(
      [](pqxx::work& w) { return w.exec("SELECT id::text FROM compute_instance")[0][0].as<std::string>(); });
  co_await load_records();
  co_await drop_unfinished_snapshots();
  // Sandboxes do not outlive feuilled (their gateways went with it): their
  // containers are removed by reconcile below, their records now.
  co_await db_.run([](pqxx::work& w) { w.exec("DELETE FROM runtimes WHERE kind = 'sandbox'"); });
  for (auto& h : hosts_) {
    try {
      co_await reconcile_host(*h, true);
    } catch (const PodmanError& e) {
      h->reachable = false;
      log_->warn("host {} ({}) does not answer: {}; its containers are reconciled when it does", h->config.name,
                 h->client->url(), e.what());
    }
  }
}

asio::awaitable<void> WorkspaceManager::load_records() {
  struct Row {
    std::string user, state, reason, host;
    int port;
    std::optional<double> last_activity;  // epoch seconds
    std::string plan;
  };
  struct RuntimeRow {
    std::string user, kind, name, host;
    int port;
    std::string token, container_id;
  };
  auto [rows, runtime_rows] = co_await db_.run([](pqxx::work& w) {
    std::vector<Row> ws;
    for (const auto& r : w.exec("SELECT w.user_id::text, w.state, coalesce(w.state_reason, ''), "
                                "coalesce(w.host, ''), coalesce(w.runtime_port, 0), "
                                "extract(epoch FROM greatest(w.last_activity_at, "
                                "(SELECT max(e.at) FROM events e WHERE e.user_id = w.user_id)))::float8, u.plan "
                                "FROM workspaces w JOIN users u ON u.id = w.user_id"))
      ws.push_back(Row{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       r[3].as<std::string>(), r[4].as<int>(),
                       r[5].is_null() ? std::nullopt : std::optional<double>(r[5].as<double>()),
                       r[6].as<std::string>()});
    std::vector<RuntimeRow> rt;
    for (const auto& r : w.exec("SELECT user_id::text, kind, name, host, port, coalesce(token, ''), "
                                "coalesce(container_id, '') FROM runtimes"))
      rt.push_back(RuntimeRow{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                              r[3].as<std::string>(), r[4].as<int>(), r[5].as<std::string>(), r[6].as<std::string>()});
    return std::pair{ws, rt};
  });
  for (const auto& r : rows) {
    auto ws = get_or_create(r.user);
    set_state_in_memory(*ws, parse_state(r.state).value_or(State::failed), r.reason);
    ws->host = r.host;
    ws->runtime_port = static_cast<std::uint16_t>(r.port);
    // An adopted workspace keeps its plan and the last activity recorded
    // (activity is written in batches: its last step, a start or a wake,
    // counts too; nothing at all: as if just now). A restart of feuilled is
    // no one's idleness.
    ws->plan = r.plan;
    ws->last_activity = r.last_activity
                            ? std::chrono::system_clock::time_point(std::chrono::duration_cast<
                                  std::chrono::system_clock::duration>(std::chrono::duration<double>(*r.last_activity)))
                            : std::chrono::system_clock::now();
    if (r.port) ports_.mark_taken(ws->runtime_port);
  }
  for (const auto& r : runtime_rows) {
    if (r.kind == "sandbox") {  // removed: see open()
      sandbox_names_.insert(r.name);
      continue;
    }
    ports_.mark_taken(static_cast<std::uint16_t>(r.port));
    auto ws = get_or_create(r.user);
    Container c{r.name, r.container_id, r.host, static_cast<std::uint16_t>(r.port), r.token, false, nullptr};
    if (r.kind == "editor") ws->editor = c;
    else ws->runtime = c;
  }
  log_->info("compute: {} workspace record(s), {} container record(s), instance {}", rows.size(),
             runtime_rows.size(), instance_);
}

asio::awaitable<void> WorkspaceManager::reconcile_host(Host& host, bool at_start) {
  std::vector<std::string> labels{std::string(kLabelInstance) + "=" + instance_};
  auto containers = co_await host.client->list_containers(labels);
  host.reachable = true;
  int adopted = 0, removed = 0;
  std::vector<std::string> netns_holders;  // users whose editor pod's infra container is there
  for (const auto& c : containers) {
    std::string name = c.contains("Names") && c["Names"].is_array() && !c["Names"].empty()
                           ? c["Names"][0].get<std::string>()
                           : std::string();
    const std::string id = c.value("Id", "");
    const bool running = c.value("State", "") == "running";
    std::string user, net;
    if (c.contains("Labels") && c["Labels"].is_object()) {
      user = c["Labels"].value(kLabelUser, "");
      net = c["Labels"].value(kLabelNet, "");
    }
    auto ws = user.empty() ? nullptr : find(user);
    if (ws && ws->op) continue;  // an operation in flight owns its containers
    if (ws && std::any_of(ws->sandboxes.begin(), ws->sandboxes.end(),
                          [&](const auto& s) { return s.second.name == name; }))
      continue;  // a live sandbox of this process
    if (!user.empty() && name == editor_netns_name(user) && net == kNetIsolated) {
      netns_holders.push_back(user);  // kept with its editor, decided below
      continue;
    }
    std::optional<Container>* slot = nullptr;
    if (ws && name == editor_name(user)) slot = &ws->editor;
    if (ws && name == runtime_name(user)) slot = &ws->runtime;
    bool claimed = slot && *slot && (*slot)->name == name && (*slot)->host == host.config.name;
    std::string why;
    // Never adopted: host network or a published port, from before isolation.
    if (net != kNetIsolated) {
      why = "it was made before tenant isolation";
      if (ws) pre_isolation_.insert(user);
    }
    else if (sandbox_names_.count(name)) why = "a sandbox from before the restart (forks do not outlive feuilled)";
    else if (!claimed) why = "no record claims it";
    else if (!has_containers(ws->state)) why = std::string("its workspace is ") + to_string(ws->state);
    else if (!running) why = "it is not running (" + c.value("State", "?") + ")";
    else if (!(*slot)->id.empty() && (*slot)->id != id) why = "its id is not the recorded one";
    if (why.empty()) {
      (*slot)->id = id;
      (*slot)->adopted = true;
      ++adopted;
      continue;
    }
    log_->info("reconcile {}: removing {} ({})", host.config.name, name.empty() ? id : name, why);
    try {
      co_await host.client->remove_container(id, true, 0);
      ++removed;
    } catch (const PodmanError& e) {
      log_->warn("reconcile {}: cannot remove {}: {}", host.config.name, name, e.what());
    }
  }
  // An editor's pod goes when its editor was not adopted.
  for (const auto& user : netns_holders) {
    auto ws = find(user);
    if (ws && (ws->op || (ws->editor && ws->editor->adopted && ws->editor->host == host.config.name))) continue;
    log_->info("reconcile {}: removing the pod {} (its editor is not kept)", host.config.name, editor_pod_name(user));
    try {
      co_await host.client->remove_pod(editor_pod_name(user));
      ++removed;
    } catch (const PodmanError& e) {
      log_->warn("reconcile {}: cannot remove the pod {}: {}", host.config.name, editor_pod_name(user), e.what());
    }
  }
  host.reconciled = true;
  // Settle each workspace whose every host is now reconciled.
  std::vector<WorkspacePtr> touched;
  for (auto& [id, ws] : workspaces_) {
    if (ws->op) continue;
    bool uses_host = (ws->editor && ws->editor->host == host.config.name) ||
                     (ws->runtime && ws->runtime->host == host.config.name) || ws->host == host.config.name ||
                     (&host == hosts_.front().get() && in_transition(ws->state));
    if (!uses_host) continue;
    bool all = editor_host().reconciled && runtime_host(*ws).reconciled;
    if (all) touched.push_back(ws);
  }
  for (auto& ws : touched) {
    try {
      co_await settle_after_reconcile(ws);
    } catch (const std::exception& e) {
      log_->warn("reconcile: settling the workspace of {}: {}", ws->user_id, e.what());
    }
  }
  log_->info("reconcile {}{}: {} container(s) adopted, {} removed", host.config.name, at_start ? "" : " (it answers again)",
             adopted, removed);
}

asio::awaitable<void> WorkspaceManager::settle_after_reconcile(WorkspacePtr ws) {
  if (ws->op) co_return;
  const bool editor_ok = ws->editor && ws->editor->adopted;
  const bool runtime_ok = ws->runtime && ws->runtime->adopted;
  const bool any_record = ws->editor || ws->runtime;
  const bool legacy = pre_isolation_.erase(ws->user_id) > 0;
  switch (ws->state) {
    case State::running:
    case State::migrating:
      if (editor_ok && runtime_ok) {
        // One inspect each: their namespaces opened, the gateway bound again
        // in the editor's (SO_REUSEADDR: at once after a restart).
        std::optional<std::string> unreachable;
        try {
          co_await attach_runtime(ws, std::chrono::seconds(10));
          co_await attach_editor(ws, std::chrono::seconds(10));
        } catch (const std::exception& e) {
          unreachable = e.what();
        }
        if (unreachable) {
          std::string reason = "its containers could not be reached again when feuilled started (" + *unreachable + ")";
          close_gateway(*ws);
          co_await remove_containers(ws, false);
          log_->warn("workspace of {} marked failed: {}", ws->user_id, reason);
          nlohmann::json detail = {{"reason", reason}};
          co_await record(ws, "failed", std::move(detail), State::failed, reason);
          co_return;
        }
        if (ws->state == State::migrating) {
          // The CRIU work finishes migrations; until then the workspace runs where it is.
          {
            nlohmann::json detail = {{"editor_port", ws->editor->port}, {"runtime_port", ws->runtime_port}};
            co_await record(ws, "adopted", std::move(detail),
                          State::running);
          }
        } else {
          {
            nlohmann::json detail = {{"editor_port", ws->editor->port}, {"runtime_port", ws->runtime_port}};
            co_await record(ws, "adopted", std::move(detail),
                          std::nullopt);
          }
        }
        log_->info("adopted the running workspace of {} (editor port {}, runtime port {})", ws->user_id,
                   ws->editor->port, ws->runtime_port);
        co_return;
      } else if (legacy) {
        // Host network or a published port: removed, never adopted. The
        // user's files stay; the next visit starts it isolated.
        std::string reason = "its containers were made before tenant isolation and were removed; it starts again "
                             "isolated at the next visit";
        co_await remove_containers(ws, false);
        log_->warn("workspace of {} stopped: {}", ws->user_id, reason);
        nlohmann::json detail = {{"reason", reason}};
        co_await record(ws, "stopped", std::move(detail), State::stopped, reason);
      } else {
        std::string missing = !editor_ok && !runtime_ok ? "its editor and runtime containers were"
                              : !editor_ok              ? "its editor container was"
                                                        : "its runtime container was";
        std::string reason = missing + " gone when feuilled started";
        co_await remove_containers(ws, false);
        log_->warn("workspace of {} marked failed: {}", ws->user_id, reason);
        {
          nlohmann::json detail = {{"reason", reason}};
          co_await record(ws, "failed", std::move(detail), State::failed, reason);
        }
      }
      co_return;
    case State::starting:
    case State::waking: {
      std::string reason = "the start was interrupted by a restart of feuilled";
      co_await remove_containers(ws, false);
      {
        nlohmann::json detail = {{"reason", reason}};
        co_await record(ws, "failed", std::move(detail), State::failed, reason);
      }
      co_return;
    }
    case State::stopping: {
      // A stop or a sleep cut short. A sleep whose snapshot was stored
      // (renamed into place: never a partial one) ends asleep; a partial
      // archive is thrown away.
      co_await remove_containers(ws, false);
      const std::string snapshot = sleep_snapshot(ws->user_id);
      auto look = [snapshot]() {  // file system work: on the pool
        std::error_code ec;
        std::filesystem::remove(snapshot + ".partial", ec);
        return std::filesystem::is_regular_file(snapshot, ec);
      };
      if (co_await offload(pool_, std::move(look))) {
        nlohmann::json detail = {{"reason", "the sleep was finished after a restart of feuilled"}};
        co_await record(ws, "asleep", std::move(detail), State::sleeping);
      } else {
        co_await record(ws, "stopped", {}, State::stopped);
      }
      co_return;
    }
    case State::stopped:
    case State::failed:
    case State::sleeping:
      if (any_record) co_await remove_containers(ws, false);  // rows without containers
      co_return;
  }
}

asio::awaitable<void> WorkspaceManager::resync_host(Host& host) {
  // Deaths missed while the event stream was down: one list call, then the
  // usual restart-once path for each running workspace that lost a container.
  std::vector<std::string> labels{std::string(kLabelInstance) + "=" + instance_};
  auto containers = co_await host.client->list_containers(labels);
  std::map<std::string, std::pair<std::string, int>> state_by_name;  // name -> (state, exit code)
  for (const auto& c : containers)
    if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty())
      state_by_name[c["Names"][0].get<std::string>()] = {c.value("State", ""), c.value("ExitCode", -1)};
  std::vector<std::pair<WorkspacePtr, std::pair<Role, std::string>>> dead;
  for (auto& [id, ws] : workspaces_) {
    if (ws->op || ws->state != State::running) continue;
    for (Role role : {runtime_role, editor_role}) {
      auto& c = role == editor_role ? ws->editor : ws->runtime;
      if (!c || c->host != host.config.name) continue;
      auto it = state_by_name.find(c->name);
      if (it == state_by_name.end()) {
        dead.push_back({ws, {role, std::string(role == editor_role ? "the editor" : "the runtime") +
                                       " container disappeared while the host did not answer"}});
        break;
      }
      if (it->second.first != "running") {
        dead.push_back({ws, {role, std::string(role == editor_role ? "the editor" : "the runtime") +
                                       " exited with code " + std::to_string(it->second.second) +
                                       " while the host did not answer"}});
        break;
      }
    }
  }
  for (auto& [ws, what] : dead) container_died(ws, what.first, what.second);
  co_return;
}

}  // namespace feuille::compute
