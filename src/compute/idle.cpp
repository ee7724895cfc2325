// Idle sleep (docs/compute.md, "Idle sleep"). After each monitor sample of a
// running workspace: its runtime's CPU under idle-cpu-percent and nothing
// moving (proxied requests and WebSocket data frames, the gateway's bytes)
// for its plan's idle timeout puts it to sleep. Where a checkpoint works the
// runtime's process state goes to the sleep snapshot first, and the wake
// restores it; elsewhere the sleep removes the containers (the user's files
// stay) and the wake is a cold start.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "compute/workspace_manager.hpp"
#include "db/users.hpp"
#include "util/offload.hpp"
#include "util/spawn.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

void WorkspaceManager::idle_check(const WorkspacePtr& ws, const Host& host) {
  if (stopping_ || ws->op || ws->state != State::running || !ws->runtime) return;
  const Plan* plan = config_.find_plan(ws->plan);
  if (!plan) plan = config_.find_plan("free");
  if (!plan) return;
  IdleInputs in;
  in.timeout = config_.idle_timeout_of(*plan);
  in.cpu_threshold = config_.idle_cpu_percent;
  in.runtime_cpu = ws->usage[runtime_role].cpu_percent;
  in.gateway_moved = ws->gateway && ws->gateway->relayed() != ws->gateway_bytes_seen;
  in.last_activity = ws->last_activity;
  in.now = std::chrono::system_clock::now();
  if (ws->gateway) ws->gateway_bytes_seen = ws->gateway->relayed();
  switch (idle_verdict(in)) {
    case IdleVerdict::active:
      ws->last_activity = in.now;
      ws->activity_dirty = true;
      return;
    case IdleVerdict::awake:
      return;
    case IdleVerdict::sleep:
      break;
  }
  if (!host.checkpoint) return;  // the probe has not answered: how to sleep is not known yet
  auto op = begin(*ws, Operation::sleep);
  const auto quiet = std::chrono::duration_cast<std::chrono::seconds>(in.now - in.last_activity).count();
  const std::string why = fmt::format("idle for {} s (runtime CPU {:.1f} %, under {:.1f} %)", quiet, *in.runtime_cpu,
                                     config_.idle_cpu_percent);
  spawn(executor_, run_sleep(ws, op, why), log_, "sleep " + ws->user_id);
}

std::string WorkspaceManager::sleep_snapshot(const std::string& user_id) const {
  return settings_.snapshot_dir + "/" + user_id + "/sleep.tar";
}

asio::awaitable<void> WorkspaceManager::remove_files(std::vector<std::string> paths) {
  auto job = [paths = std::move(paths)]() {
    std::error_code ec;
    for (const auto& p : paths) fs::remove(p, ec);
  };
  co_await offload(archive_pool_, std::move(job));
}

asio::awaitable<Plan> WorkspaceManager::plan_of(const std::string& user_id) {
  auto name = co_await db_.run([&](pqxx::work& w) {
    auto user = db::find_user_by_id(w, user_id);
    return user ? user->plan : std::string("free");
  });
  const Plan* plan = config_.find_plan(name);
  if (!plan) plan = config_.find_plan("free");
  if (!plan) throw std::runtime_error("no plan " + name + " (and no free plan) is configured");
  co_return *plan;
}

WorkspaceManager::ArchiveLimits WorkspaceManager::archive_limits(const Plan& plan, std::uint64_t named_bytes,
                                                                bool podman_keeps_copy) {
  ArchiveLimits limits;
  limits.max_writable_layer = plan.disk_bytes;
  const std::uint64_t room = plan.snapshot_bytes > named_bytes ? plan.snapshot_bytes - named_bytes : 0;
  // A leave-running dump stays in the container (Podman 4.3) until the next
  // one: the archive and that copy share the room.
  limits.max_bytes = podman_keeps_copy ? room / 2 : room;
  return limits;
}

asio::awaitable<std::uint64_t> WorkspaceManager::named_snapshot_bytes(const std::string& user_id) {
  co_return co_await db_.run([&](pqxx::work& w) {
    return w.exec_params1("SELECT coalesce(sum(size_bytes), 0) FROM snapshots WHERE user_id = $1 AND kind = 'manual'",
                          user_id)[0]
        .as<std::uint64_t>();
  });
}

asio::awaitable<std::uint64_t> WorkspaceManager::write_checkpoint(WorkspacePtr ws, std::string path, bool resume,
                                                                  ArchiveLimits limits) {
  // The writable layer is in the archive (Podman 4.3 exports the root
  // file system's changes with the dump): past the plan, nothing is dumped.
  {
    const std::string name = ws->runtime->name;
    const std::uint64_t layer = co_await runtime_host(*ws).client->writable_layer_bytes(name, 2min);
    if (layer > limits.max_writable_layer)
      throw ArchiveTooLarge("the runtime's files outside /home/user take " + std::to_string(layer >> 20) +
                            " MiB, more than the " + std::to_string(limits.max_writable_layer >> 20) +
                            " MiB your plan allows (keep large files in /home/user)");
  }
  const std::string partial = path + ".partial";
  const std::string dir = fs::path(path).parent_path().string();
  auto open_it = [dir, partial]() {
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot write " + partial + ": " + std::strerror(errno));
    return fd;
  };
  const int fd = co_await offload(archive_pool_, std::move(open_it));
  // Pieces (1 MiB) are written, and the file fsynced, on the archive pool.
  // Each piece's writeback starts at once, so the final fsync has little
  // left. Past the plan's room the stream is stopped, before the write.
  auto written = std::make_shared<off_t>(0);
  const std::uint64_t max_bytes = limits.max_bytes;
  PodmanClient::Sink sink = [this, fd, partial, written, max_bytes](asio::const_buffer b) -> asio::awaitable<void> {
    if (static_cast<std::uint64_t>(*written) + b.size() > max_bytes)
      throw ArchiveTooLarge("the archive passed the " + std::to_string(max_bytes >> 20) +
                            " MiB left in the space your plan gives archives");
    auto write_it = [fd, partial, b, written]() {
      const char* p = static_cast<const char*>(b.data());
      for (std::size_t left = b.size(); left > 0;) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("writing " + partial + ": " + std::strerror(errno));
        p += n;
        left -= static_cast<std::size_t>(n);
      }
      ::sync_file_range(fd, *written, static_cast<off_t>(b.size()), SYNC_FILE_RANGE_WRITE);
      *written += static_cast<off_t>(b.size());
    };
    co_await offload(archive_pool_, std::move(write_it));
  };
  std::exception_ptr failed;
  std::uint64_t bytes = 0;
  if (ws->gateway) ws->gateway->clear_runtime();
  try {
    // Left running: the process stays until its archive is safely stored;
    // with tcpEstablished the editor's connections through the gateway do
    // not fail the dump (they stay on this process; a restored copy gets
    // new ones).
    PodmanClient::CheckpointOptions o;
    o.leave_running = true;
    o.tcp_established = true;
    bytes = co_await runtime_host(*ws).client->checkpoint_export(ws->runtime->name, o, sink, 10min, 60s);
  } catch (...) {
    failed = std::current_exception();
  }
  auto finish_it = [fd, partial, path, dir, ok = !failed]() {
    bool synced = ok && ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!synced) {
      ::unlink(partial.c_str());
      if (ok) throw std::runtime_error("fsync of " + partial + ": " + std::strerror(err));
      return;
    }
    fs::rename(partial, path);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  };
  try {
    co_await offload(archive_pool_, std::move(finish_it));
  } catch (...) {
    failed = std::current_exception();
  }
  if ((resume || failed) && ws->gateway && ws->runtime && ws->runtime->netns) ws->gateway->set_runtime(ws->runtime->netns);
  if (failed) std::rethrow_exception(failed);
  if (ws->runtime) ws->runtime->dump_bytes = bytes;  // what Podman keeps of the dump: about the archive's size
  co_return bytes;
}

asio::awaitable<void> WorkspaceManager::run_sleep(WorkspacePtr ws, std::shared_ptr<Operation> op, std::string why) {
  const State before = ws->state;
  const std::string before_reason = ws->reason;
  const bool checkpoint = runtime_host(*ws).checkpoints_work();
  bool stored = false;
  try {
    nlohmann::json detail = {{"reason", why}, {"python_state", checkpoint ? "kept" : "lost"}};
    co_await record(ws, "sleeping", std::move(detail), State::stopping);
    nlohmann::json asleep = nlohmann::json::object();
    if (checkpoint) {
      // Nothing may reach the runtime after its dump: new connections are
      // held, open ones (a streamed execution) get drain-timeout to end.
      std::size_t cut = 0;
      if (ws->gateway) cut = co_await ws->gateway->drain(config_.drain_timeout);
      if (cut > 0)
        log_->warn("putting the workspace of {} to sleep: {} connection(s) from its editor to its runtime still open "
                   "after {} ms, cut",
                   ws->user_id, cut, config_.drain_timeout.count());
      const auto began = std::chrono::steady_clock::now();
      // The containers go after it, and Podman's copy of the dump with them.
      const Plan plan = co_await plan_of(ws->user_id);
      const std::uint64_t named = co_await named_snapshot_bytes(ws->user_id);
      const auto limits = archive_limits(plan, named, false);
      const auto bytes = co_await write_checkpoint(ws, sleep_snapshot(ws->user_id), false, limits);
      stored = true;
      asleep = {{"snapshot_bytes", bytes},
                {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began)
                           .count()},
                {"connections_cut", cut}};
    }
    co_await remove_containers(ws, true);
    co_await record(ws, "asleep", std::move(asleep), State::sleeping);
    log_->info("workspace of {} asleep ({}; {})", ws->user_id, why,
               checkpoint ? "its runtime's state is in its sleep snapshot"
                          : "no checkpoint on " + ws->host + ": its next visit starts it afresh");
  } catch (const std::exception& e) {
    op->error = e.what();
  }
  if (!op->error.empty()) {
    log_->warn("putting the workspace of {} to sleep: {}", ws->user_id, op->error);
    ws->last_activity = std::chrono::system_clock::now();  // not tried again before another idle timeout
    // Nothing removed when the snapshot failed: it goes on running.
    if (!stored && ws->gateway && ws->runtime && ws->runtime->netns) ws->gateway->set_runtime(ws->runtime->netns);
    co_await record_back(ws, "sleep-failed", op->error, before, before_reason);
  }
  finish(*ws, op);
}

}  // namespace feuille::compute
