// Named snapshots of a workspace's runtime (docs/compute.md, "Snapshots"):
// a checkpoint left running, kept under <snapshot-dir>/<user>/<id>.tar and
// recorded in `snapshots`; a restore replaces the running runtime by the
// archive's process state behind the same RUNTIME_PORT.
#include <spdlog/logger.h>

#include <filesystem>

#include "auth/request_checks.hpp"
#include "compute/workspace_manager.hpp"
#include "util/offload.hpp"
#include "db/users.hpp"
#include "feuille/errors.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Row {
  std::string id, name, path, created_at;
  std::int64_t size = 0, ms = 0;
};

nlohmann::json to_json(const Row& r) {
  return {{"id", r.id}, {"name", r.name}, {"size_bytes", r.size}, {"ms", r.ms}, {"created_at", r.created_at}};
}

std::string checked_id(const std::string& id) {
  if (!auth::parse_uuid(id)) throw RequestError(404, "There is no such snapshot.");
  return id;
}

}  // namespace

std::uint64_t WorkspaceManager::dump_left(const std::string& user_id) const {
  auto it = workspaces_.find(user_id);
  return it != workspaces_.end() && it->second->runtime ? it->second->runtime->dump_bytes : 0;
}

asio::awaitable<nlohmann::json> WorkspaceManager::list_snapshots(std::string user_id) {
  struct Listed {
    std::vector<Row> rows;
    std::string plan;
  };
  auto listed = co_await db_.run([&](pqxx::work& w) {
    Listed out;
    auto user = db::find_user_by_id(w, user_id);
    out.plan = user ? user->plan : "free";
    for (const auto& r : w.exec_params(
             "SELECT id::text, name, coalesce(size_bytes, 0), coalesce(duration_ms, 0), "
             "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM snapshots "
             "WHERE user_id = $1 AND kind = 'manual' AND state = 'ready' ORDER BY created_at DESC",
             user_id))
      out.rows.push_back(Row{r[0].as<std::string>(), r[1].as<std::string>(), "", r[4].as<std::string>(),
                             r[2].as<std::int64_t>(), r[3].as<std::int64_t>()});
    return out;
  });
  const Plan* plan = config_.find_plan(listed.plan);
  if (!plan) plan = config_.find_plan("free");
  nlohmann::json items = nlohmann::json::array();
  std::int64_t bytes = 0;
  for (const auto& r : listed.rows) {
    items.push_back(to_json(r));
    bytes += r.size;
  }
  const std::int64_t left = static_cast<std::int64_t>(dump_left(user_id));
  nlohmann::json quota = plan ? nlohmann::json{{"count", plan->snapshots}, {"bytes", plan->snapshot_bytes}}
                              : nlohmann::json(nullptr);
  co_return nlohmann::json{
      {"snapshots", std::move(items)},
      {"quota", std::move(quota)},
      {"used", {{"count", listed.rows.size()}, {"bytes", bytes + left}, {"podman_bytes", left}}}};
}

asio::awaitable<nlohmann::json> WorkspaceManager::create_snapshot(std::string user_id, std::string name) {
  if (name.empty()) name = "snapshot " + now_iso();
  if (name.size() > 100 || name.find_first_of(std::string("\0\r\n\t", 4)) != std::string::npos)
    throw RequestError(400, "A snapshot's name is at most 100 characters, on one line.");
  auto ws = find(user_id);
  if (!ws || ws->state != State::running || !ws->runtime)
    throw RequestError(409, "The workspace must be running to take a snapshot.");
  if (ws->op) throw RequestError(409, "The workspace is busy (starting, stopping or another snapshot); try again in a moment.");
  Host& host = runtime_host(*ws);
  if (!host.checkpoints_work())
    throw RequestError(501, "Snapshots need checkpoints, which do not work on this server.",
                       host.checkpoint ? host.checkpoint->detail : "the checkpoint probe has not answered yet");
  // The quota and the row, in one transaction (two requests at once cannot
  // both pass the last place).
  enum class Refused { no, count, bytes, name };
  struct Taken {
    Refused refused = Refused::no;
    std::string id;
    int count_limit = 0;
    std::uint64_t used_bytes = 0;
    Plan plan;  // snapshot_bytes and disk_bytes 0 without a plan
  };
  const std::string dir = settings_.snapshot_dir + "/" + user_id;
  const std::string host_name = host.config.name;
  const int port = ws->runtime_port;
  const std::uint64_t left = dump_left(user_id);
  auto taken = co_await db_.run([&](pqxx::work& w) {
    Taken t;
    auto user = db::find_user_by_id(w, user_id);
    const Plan* plan = config_.find_plan(user ? user->plan : "free");
    if (!plan) plan = config_.find_plan("free");
    t.count_limit = plan ? plan->snapshots : 0;
    if (plan) t.plan = *plan;
    else t.plan.snapshot_bytes = t.plan.disk_bytes = 0;  // no plan: no room
    w.exec_params("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id);  // one quota decision at a time
    auto used = w.exec_params1(
        "SELECT count(*), coalesce(sum(size_bytes), 0) FROM snapshots WHERE user_id = $1 AND kind = 'manual'", user_id);
    t.used_bytes = used[1].as<std::uint64_t>() + left;
    if (used[0].as<int>() >= t.count_limit) t.refused = Refused::count;
    else if (t.used_bytes >= t.plan.snapshot_bytes) t.refused = Refused::bytes;
    else if (!w.exec_params("SELECT 1 FROM snapshots WHERE user_id = $1 AND name = $2", user_id, name).empty())
      t.refused = Refused::name;
    if (t.refused != Refused::no) return t;
    t.id = w.exec_params1(
                "INSERT INTO snapshots (user_id, name, kind, path, state, runtime_port, host) "
                "VALUES ($1, $2, 'manual', '', 'writing', $3, $4) RETURNING id::text",
                user_id, name, port, host_name)[0]
               .as<std::string>();
    w.exec_params("UPDATE snapshots SET path = $2 WHERE id = $1", t.id, dir + "/" + t.id + ".tar");
    return t;
  });
  switch (taken.refused) {
    case Refused::count:
      throw RequestError(409, "Your plan keeps " + std::to_string(taken.count_limit) +
                                  " snapshots at most: delete one first.");
    case Refused::bytes:
      throw RequestError(409, "Your snapshots use all the space your plan gives them: delete one first.");
    case Refused::name:
      throw RequestError(409, "There is a snapshot with that name already.");
    case Refused::no:
      break;
  }
  const std::string path = dir + "/" + taken.id + ".tar";
  // The quota's transaction was awaited: a stop, a sleep or another
  // snapshot may have begun meanwhile. Then this one gives its place back.
  if (ws->state != State::running || !ws->runtime || ws->op) {
    const std::string id = taken.id;
    co_await db_.run([&](pqxx::work& w) { w.exec_params("DELETE FROM snapshots WHERE id = $1", id); });
    throw RequestError(409, "The workspace is busy (starting, stopping or another snapshot); try again in a moment.");
  }
  auto op = begin(*ws, Operation::snapshot);
  std::optional<std::string> failed;
  bool too_big = false;
  std::uint64_t bytes = 0;
  const auto began = std::chrono::steady_clock::now();
  try {
    // What this snapshot adds: its archive, and Podman's copy of the dump,
    // which replaces the one of the last checkpoint. Stopped while it
    // streams, past the room that leaves.
    const auto limits = archive_limits(taken.plan, taken.used_bytes - left, true);
    bytes = co_await write_checkpoint(ws, path, true, limits);
  } catch (const ArchiveTooLarge& e) {
    failed = e.what();
    too_big = true;
  } catch (const std::exception& e) {
    failed = e.what();
  }
  finish(*ws, op);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
  if (failed) {
    std::vector<std::string> gone{path};
    co_await remove_files(std::move(gone));
    const std::string id = taken.id;
    co_await db_.run([&](pqxx::work& w) { w.exec_params("DELETE FROM snapshots WHERE id = $1", id); });
    if (too_big)
      throw RequestError(409, "This snapshot does not fit in your plan: " + *failed + ". Delete a snapshot first.");
    log_->warn("snapshot of {} failed: {}", user_id, *failed);
    throw RequestError(500, "The snapshot failed (the workspace runs on): " + *failed);
  }
  Row row{taken.id, name, path, now_iso(), static_cast<std::int64_t>(bytes), static_cast<std::int64_t>(ms)};
  co_await db_.run([&](pqxx::work& w) {
    w.exec_params("UPDATE snapshots SET size_bytes = $2, duration_ms = $3, state = 'ready' WHERE id = $1", row.id,
                  row.size, row.ms);
  });
  nlohmann::json detail = {{"snapshot", row.id}, {"name", name}, {"bytes", bytes}, {"ms", ms}};
  co_await record(ws, "snapshot", std::move(detail), std::nullopt);
  log_->info("snapshot {} of {}: {} bytes in {} ms", row.id, user_id, bytes, ms);
  co_return to_json(row);
}

asio::awaitable<void> WorkspaceManager::restore_snapshot(std::string user_id, std::string snapshot_id) {
  checked_id(snapshot_id);
  auto path = co_await db_.run([&](pqxx::work& w) -> std::optional<std::string> {
    auto r = w.exec_params("SELECT path FROM snapshots WHERE id = $1 AND user_id = $2 AND kind = 'manual' AND "
                           "state = 'ready'",
                           snapshot_id, user_id);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::string>();
  });
  if (!path) throw RequestError(404, "There is no such snapshot.");
  auto look = [archive = *path]() {
    std::error_code ec;
    return fs::is_regular_file(archive, ec);
  };
  if (!co_await offload(pool_, std::move(look)))
    throw RequestError(409, "This snapshot's archive is missing on the server.");
  auto ws = find(user_id);
  if (!ws || ws->state != State::running || !ws->runtime)
    throw RequestError(409, "The workspace must be running to restore a snapshot into it.");
  if (ws->op) throw RequestError(409, "The workspace is busy (starting, stopping or another snapshot); try again in a moment.");
  const Plan plan = co_await plan_of(user_id);
  if (!ws->runtime || ws->state != State::running || ws->op)
    throw RequestError(409, "The workspace is busy (starting, stopping or another snapshot); try again in a moment.");
  Host& host = runtime_host(*ws);
  auto op = begin(*ws, Operation::snapshot);
  const std::string name = ws->runtime->name, incoming = name + "-restoring";
  const auto deadline = std::chrono::steady_clock::now() + settings_.start_timeout;
  bool old_removed = false;
  std::optional<std::string> failed;
  try {
    // Restored beside the running one first: the old runtime goes only once
    // the new one exists. (A restart of feuilled midway: reconcile removes
    // the `-restoring` container, which no record claims.)
    co_await host.client->remove_container(incoming, true, 0);
    auto read = PodmanClient::file_source(*path, archive_pool_);
    const std::string id = co_await host.client->restore_import(incoming, std::move(read), true, settings_.start_timeout);
    co_await apply_plan_limits(host, incoming, plan, settings_.start_timeout);
    if (ws->gateway) ws->gateway->clear_runtime();  // new connections wait for the switch
    co_await host.client->remove_container(name, true, 0);
    old_removed = true;
    co_await host.client->rename_container(incoming, name);
    ws->runtime->id = id;
    ws->runtime->dump_bytes = 0;  // a new container: Podman's copy went with the old one
    co_await attach_runtime(ws, settings_.start_timeout);
    co_await wait_healthy(ws, *op, runtime_role, deadline);
    co_await db_.run([&](pqxx::work& w) {
      w.exec_params("UPDATE runtimes SET container_id = $2, updated_at = now() WHERE name = $1", name, id);
    });
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (failed) {
    try {
      co_await host.client->remove_container(incoming, true, 0);
    } catch (const PodmanError& e) {
      log_->warn("restore of {}: cannot remove {}: {}", user_id, incoming, e.what());
    }
  }
  if (ws->gateway && ws->runtime && ws->runtime->netns) ws->gateway->set_runtime(ws->runtime->netns);
  finish(*ws, op);
  if (failed) {
    log_->warn("restore of snapshot {} for {} failed: {}", snapshot_id, user_id, *failed);
    if (old_removed) container_died(ws, runtime_role, "the restore of a snapshot failed: " + *failed);
    throw RequestError(500, std::string("The restore failed") +
                                (old_removed ? " after the old runtime was removed; it starts again: "
                                             : " (the workspace runs on as it was): ") +
                                *failed);
  }
  nlohmann::json detail = {{"snapshot", snapshot_id}};
  co_await record(ws, "restored", std::move(detail), std::nullopt);
  log_->info("snapshot {} restored into the workspace of {}", snapshot_id, user_id);
}

asio::awaitable<void> WorkspaceManager::delete_snapshot(std::string user_id, std::string snapshot_id) {
  checked_id(snapshot_id);
  auto path = co_await db_.run([&](pqxx::work& w) -> std::optional<std::string> {
    auto r = w.exec_params("DELETE FROM snapshots WHERE id = $1 AND user_id = $2 AND kind = 'manual' RETURNING path",
                           snapshot_id, user_id);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::string>();
  });
  if (!path) throw RequestError(404, "There is no such snapshot.");
  std::vector<std::string> gone{*path, *path + ".partial"};
  co_await remove_files(std::move(gone));
}

asio::awaitable<void> WorkspaceManager::drop_unfinished_snapshots() {
  auto paths = co_await db_.run([](pqxx::work& w) {
    std::vector<std::string> out;
    for (const auto& r : w.exec("DELETE FROM snapshots WHERE state = 'writing' RETURNING path"))
      out.push_back(r[0].as<std::string>());
    return out;
  });
  for (const auto& p : paths) {
    std::vector<std::string> gone{p, p + ".partial"};
    co_await remove_files(std::move(gone));
    log_->info("removed the snapshot {} cut short by a restart", p);
  }
}

}  // namespace feuille::compute
