// A workspace's network namespaces and its runtime gateway: feuilled opens
// each container's namespace once (from one inspect: the list call carries no
// SandboxKey), keeps it while the container runs, and keeps the gateway
// listening in the editor's namespace, pointed at the runtime's.
#include <spdlog/logger.h>

#include <system_error>

#include "compute/workspace_manager.hpp"

namespace feuille::compute {

namespace asio = boost::asio;

NetnsPtr WorkspaceManager::netns_of(const nlohmann::json& inspect) {
  std::string key;
  if (inspect.contains("NetworkSettings") && inspect["NetworkSettings"].is_object())
    key = inspect["NetworkSettings"].value("SandboxKey", "");
  return Netns::open(netns_thread_, key);
}

asio::awaitable<NetnsPtr> WorkspaceManager::enter(Host& host, std::string name, Duration timeout) {
  auto info = co_await host.client->inspect_container(name, timeout);
  if (!info) throw std::runtime_error("the container " + name + " is gone");
  NetnsPtr ns;
  std::string failed;
  try {
    ns = netns_of(*info);
    // Entered once now, so that a namespace feuilled cannot enter (setns
    // refused: no CAP_SYS_ADMIN) fails here, for every caller, rather than
    // as health probes that never answer.
    co_await ns->socket(executor_);
  } catch (const std::runtime_error& e) {
    failed = e.what();
  }
  if (!failed.empty()) throw std::runtime_error("cannot enter the network namespace of " + name + ": " + failed);
  co_return ns;
}

asio::awaitable<void> WorkspaceManager::attach_runtime(WorkspacePtr ws, Duration timeout) {
  auto ns = co_await enter(runtime_host(*ws), ws->runtime->name, timeout);
  if (!ws->runtime) throw std::runtime_error("the runtime went while its namespace was opened");
  ws->runtime->netns = std::move(ns);
}

asio::awaitable<void> WorkspaceManager::attach_editor(WorkspacePtr ws, Duration timeout) {
  // The namespace is the pod's: its infra container's.
  auto ns = co_await enter(editor_host(), editor_netns_name(ws->user_id), timeout);
  if (!ws->editor) throw std::runtime_error("the editor went while its namespace was opened");
  ws->editor->netns = ns;
  if (ws->gateway && ws->gateway->editor_ns()->inode() == ns->inode()) co_return;  // still listening there
  close_gateway(*ws);
  try {
    ws->gateway = co_await RuntimeGateway::open(executor_, ns, ws->runtime_port, gateway_metrics_, log_,
                                                ws->user_id, gateway_options(*ws));
  } catch (const std::system_error& e) {
    // EADDRINUSE included: nothing but the gateway may hold this port there.
    throw std::runtime_error("the runtime gateway cannot listen on 127.0.0.1:" + std::to_string(ws->runtime_port) +
                             " in the editor's namespace: " + e.code().message());
  }
  if (ws->runtime && ws->runtime->netns) ws->gateway->set_runtime(ws->runtime->netns);
}

RuntimeGateway::Options WorkspaceManager::gateway_options(Workspace& ws) {
  if (!ws.gateway_budget) ws.gateway_budget = std::make_shared<ConnectionBudget>(settings_.gateway_per_workspace);
  auto o = settings_.gateway;
  o.workspace_budget = ws.gateway_budget;
  return o;
}

void WorkspaceManager::close_gateway(Workspace& ws) {
  if (!ws.gateway) return;
  ws.gateway->close();
  ws.gateway.reset();
}

}  // namespace feuille::compute
