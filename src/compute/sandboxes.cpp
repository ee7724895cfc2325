// Sandbox forks (docs/compute.md, "Sandboxes"): a leave-running checkpoint
// of the runtime restored beside it as feuille-sb-<user>-<id>, with a
// gateway port of its own in the editor's namespace. Both run on
// independently. Forks do not outlive feuilled: a restart removes them.
#include <spdlog/logger.h>

#include <filesystem>

#include "compute/workspace_manager.hpp"
#include "feuille/errors.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
namespace fs = std::filesystem;


asio::awaitable<nlohmann::json> WorkspaceManager::fork_sandbox(std::string user_id) {
  auto ws = find(user_id);
  if (!ws || ws->state != State::running || !ws->runtime || !ws->editor || !ws->editor->netns)
    throw RequestError(409, "The workspace must be running to fork its runtime.");
  if (ws->op) throw RequestError(409, "The workspace is busy (starting, stopping or a snapshot); try again in a moment.");
  if (ws->sandboxes.size() >= kMaxSandboxes)
    throw RequestError(409, "A workspace has " + std::to_string(kMaxSandboxes) + " sandboxes at most: remove one first.");
  Host& host = runtime_host(*ws);
  if (!host.checkpoints_work())
    throw RequestError(501, "Sandboxes need checkpoints, which do not work on this server.");
  auto p = ports_.allocate({kRuntimePortFirst, kRuntimePortLast});
  if (!p) throw RequestError(503, "No port is free for a sandbox; try again later.");
  const std::uint16_t port = *p;
  const std::string id = random_hex(6), name = std::string(kSandboxPrefix) + user_id + "-" + id;
  const std::string archive = settings_.snapshot_dir + "/" + user_id + "/fork-" + id + ".tar";
  auto op = begin(*ws, Operation::snapshot);
  std::optional<std::string> failed;
  bool too_large = false;
  bool row = false;
  Workspace::Sandbox sb{name, port, nullptr};
  try {
    // The fork's archive is deleted once restored; Podman's copy of the
    // dump stays in the original until its next checkpoint.
    const Plan plan = co_await plan_of(user_id);
    const std::uint64_t named = co_await named_snapshot_bytes(user_id);
    const auto limits = archive_limits(plan, named, true);
    const std::string host_name = host.config.name;
    co_await db_.run([&](pqxx::work& w) {
      w.exec_params("INSERT INTO runtimes (user_id, kind, name, host, port, state) VALUES ($1, 'sandbox', $2, $3, $4, "
                    "'creating')",
                    user_id, name, host_name, static_cast<int>(port));
    });
    row = true;
    sandbox_names_.insert(name);
    co_await write_checkpoint(ws, archive, true, limits);  // the original keeps its connections
    auto read = PodmanClient::file_source(archive, archive_pool_);
    const std::string container_id =
        co_await host.client->restore_import(name, std::move(read), true, settings_.start_timeout);
    co_await apply_plan_limits(host, name, plan, settings_.start_timeout);
    auto ns = co_await enter(host, name, settings_.start_timeout);
    auto options = gateway_options(*ws);  // named: the GCC 12 trap (architecture.md)
    sb.gateway = co_await RuntimeGateway::open(executor_, ws->editor->netns, port, gateway_metrics_, log_, user_id,
                                               std::move(options));
    sb.gateway->set_runtime(ns);
    co_await db_.run([&](pqxx::work& w) {
      w.exec_params("UPDATE runtimes SET container_id = $2, state = 'running', updated_at = now() WHERE name = $1", name,
                    container_id);
    });
  } catch (const ArchiveTooLarge& e) {
    failed = e.what();
    too_large = true;
  } catch (const std::exception& e) {
    failed = e.what();
  }
  std::vector<std::string> gone{archive, archive + ".partial"};
  co_await remove_files(std::move(gone));
  if (failed) {
    if (sb.gateway) sb.gateway->close();
    try {
      co_await host.client->remove_container(name, true, 0);
      if (row) co_await db_.run([&](pqxx::work& w) { w.exec_params("DELETE FROM runtimes WHERE name = $1", name); });
    } catch (const std::exception& e) {
      log_->warn("cleaning up the failed sandbox {}: {}", name, e.what());
    }
    sandbox_names_.erase(name);
    ports_.release(port);
    finish(*ws, op);
    log_->warn("sandbox of {} failed: {}", user_id, *failed);
    if (too_large) throw RequestError(409, "The sandbox does not fit in your plan: " + *failed + ".");
    throw RequestError(500, "The sandbox could not be made (the workspace runs on): " + *failed);
  }
  ws->sandboxes[id] = sb;
  finish(*ws, op);
  nlohmann::json detail = {{"sandbox", id}, {"port", port}};
  co_await record(ws, "sandbox", std::move(detail), std::nullopt);
  log_->info("sandbox {} of {} on gateway port {}", name, user_id, port);
  co_return nlohmann::json{{"id", id}, {"container", name}, {"port", port}};
}

asio::awaitable<void> WorkspaceManager::remove_sandbox(std::string user_id, std::string sandbox_id) {
  auto ws = find(user_id);
  if (!ws || !ws->sandboxes.count(sandbox_id)) throw RequestError(404, "There is no such sandbox.");
  auto sb = ws->sandboxes[sandbox_id];
  ws->sandboxes.erase(sandbox_id);
  if (sb.gateway) sb.gateway->close();
  co_await runtime_host(*ws).client->remove_container(sb.name, true, 0);
  const std::string name = sb.name;
  co_await db_.run([&](pqxx::work& w) { w.exec_params("DELETE FROM runtimes WHERE name = $1", name); });
  sandbox_names_.erase(sb.name);
  ports_.release(sb.port);
}

asio::awaitable<void> WorkspaceManager::remove_sandboxes(WorkspacePtr ws) {
  while (!ws->sandboxes.empty()) co_await remove_sandbox(ws->user_id, ws->sandboxes.begin()->first);
}

}  // namespace feuille::compute
