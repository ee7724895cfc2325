// Idle sleep (docs/compute.md, "Idle sleep"). After each monitor sample of a
// running workspace: its runtime's CPU under idle-cpu-percent and nothing
// moving (proxied requests and WebSocket data frames, the gateway's bytes)
// for its plan's idle timeout puts it to sleep. Without a working checkpoint
// on its host the sleep removes both containers (the user's files stay) and
// the wake is a cold start; with one, the workspace is left running until
// the sleep snapshot exists (a later step of issue 14): a sleep never throws
// away state that could have been kept.
#include <fmt/format.h>
#include <spdlog/logger.h>

#include "compute/workspace_manager.hpp"
#include "util/spawn.hpp"

namespace feuille::compute {

namespace asio = boost::asio;

void WorkspaceManager::idle_check(const WorkspacePtr& ws, const Host& host) {
  if (stopping_ || ws->op || ws->state != State::running || !ws->runtime) return;
  const Plan* plan = config_.find_plan(ws->plan);
  if (!plan) plan = config_.find_plan("free");
  if (!plan) return;
  const Duration timeout = config_.idle_timeout_of(*plan);
  if (timeout.count() <= 0) return;  // never
  const auto now = std::chrono::system_clock::now();
  auto active = [&] {
    ws->last_activity = now;
    ws->activity_dirty = true;
  };
  if (ws->gateway && ws->gateway->relayed() != ws->gateway_bytes_seen) {  // the editor talked to the runtime
    ws->gateway_bytes_seen = ws->gateway->relayed();
    active();
    return;
  }
  const auto& cpu = ws->usage[runtime_role].cpu_percent;
  if (!cpu) return;  // not two samples yet
  if (*cpu >= config_.idle_cpu_percent) {  // busy computing counts as activity
    active();
    return;
  }
  const auto quiet = std::chrono::duration_cast<Duration>(now - ws->last_activity);
  if (quiet < timeout) return;
  if (!host.checkpoint || host.checkpoint->works) return;  // not known yet, or the state can be kept: see above
  auto op = begin(*ws, Operation::sleep);
  const std::string why = fmt::format("idle for {} s (runtime CPU {:.1f} %, under {:.1f} %)", quiet.count() / 1000, *cpu,
                                     config_.idle_cpu_percent);
  spawn(executor_, run_sleep(ws, op, why), log_, "sleep " + ws->user_id);
}

asio::awaitable<void> WorkspaceManager::run_sleep(WorkspacePtr ws, std::shared_ptr<Operation> op, std::string why) {
  const State before = ws->state;
  const std::string before_reason = ws->reason;
  try {
    nlohmann::json detail = {{"reason", why}, {"python_state", "lost"}};
    co_await record(ws, "sleeping", std::move(detail), State::stopping);
    co_await remove_containers(ws, true);
    co_await record(ws, "asleep", {}, State::sleeping);
    log_->info("workspace of {} asleep ({}; no checkpoint on {}: its next visit starts it afresh)", ws->user_id, why,
               ws->host);
  } catch (const std::exception& e) {
    op->error = e.what();
  }
  if (!op->error.empty()) {
    log_->warn("putting the workspace of {} to sleep: {}", ws->user_id, op->error);
    try {
      nlohmann::json detail = {{"reason", op->error}};
      co_await record(ws, "sleep-failed", std::move(detail), before, before_reason);
    } catch (const std::exception& e) {
      set_state_in_memory(*ws, before, before_reason);
      log_->warn("recording the failed sleep of {}: {}", ws->user_id, e.what());
    }
  }
  finish(*ws, op);
}

}  // namespace feuille::compute
