// The resource monitor: every monitor-interval, one Podman stats call per
// host for every container of the running workspaces there. Its samples are
// the only ones: /api/workspace, the dashboard and the idle policy read them.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <spdlog/logger.h>

#include <map>

#include "compute/workspace_manager.hpp"
#include "util/spawn.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> WorkspaceManager::monitor_loop() {
  while (!stopping_) {
    monitor_timer_.expires_after(config_.monitor_interval);  // reloadable: read each round
    co_await monitor_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) co_return;
    // Hosts apart: a slow one delays only its own figures; a poll still in
    // flight is not doubled.
    for (auto& h : hosts_)
      if (h->reachable && !h->sampling) spawn(executor_, sample_host(*h), log_, "monitor " + h->config.name);
  }
}

asio::awaitable<void> WorkspaceManager::sample_host(Host& host) {
  host.sampling = true;
  struct Done {
    Host& h;
    ~Done() { h.sampling = false; }
  } done{host};
  using Clock = std::chrono::steady_clock;
  const auto listing = Clock::now();
  // Who is sampled: the containers of running workspaces on this host.
  std::map<std::string, std::pair<WorkspacePtr, Role>> by_name;
  for (auto& [id, ws] : workspaces_) {
    if (ws->state != State::running) continue;
    if (ws->editor && ws->editor->host == host.config.name) by_name[ws->editor->name] = {ws, editor_role};
    if (ws->runtime && ws->runtime->host == host.config.name) by_name[ws->runtime->name] = {ws, runtime_role};
  }
  double memory[2] = {0, 0}, cpu[2] = {0, 0};
  if (!by_name.empty()) {
    std::vector<std::string> names;
    for (const auto& [name, _] : by_name) names.push_back(name);
    const auto began = Clock::now();
    auto on_loop = began - listing;
    nlohmann::json stats;
    try {
      stats = co_await host.client->container_stats(std::move(names), std::min<Duration>(config_.monitor_interval, 10s));
    } catch (const PodmanError& e) {
      monitor_failures_->Increment();
      log_->debug("monitor {}: {}", host.config.name, e.what());
      co_return;
    }
    const auto answered = Clock::now();
    monitor_poll_->Observe(std::chrono::duration<double>(answered - began).count());
    for (const auto& s : stats) {
      if (!s.is_object()) continue;
      auto it = by_name.find(s.value("Name", ""));
      if (it == by_name.end()) continue;
      auto& [ws, role] = it->second;
      auto& u = ws->usage[role];
      fold_sample(u, s);
      memory[role] += static_cast<double>(u.memory_bytes);
      cpu[role] += u.cpu_percent.value_or(0);
      if (role == runtime_role) idle_check(ws, host);
    }
    on_loop += Clock::now() - answered;
    monitor_loop_time_->Observe(std::chrono::duration<double>(on_loop).count());
  }
  for (Role role : {editor_role, runtime_role}) {
    const char* name = role == editor_role ? "editor" : "runtime";
    host_memory_->Add({{"host", host.config.name}, {"role", name}}).Set(memory[role]);
    host_cpu_->Add({{"host", host.config.name}, {"role", name}}).Set(cpu[role]);
  }
}

}  // namespace feuille::compute
