#pragma once
// What the application wires together. A module registers its routes,
// readiness checks and metrics in its constructor (from ModuleContext), and
// the application drives its lifetime through these hooks, in wiring order
// for start and reverse order for stop.
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/authenticator.hpp"
#include "auth/dashboard.hpp"
#include "auth/workspace_origin.hpp"
#include "db/database.hpp"
#include "feuille/config.hpp"
#include "http/health.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"

namespace feuille::compute {
class Workspaces;
}

namespace feuille::app {

struct ModuleContext {
  boost::asio::any_io_executor executor;  // the event loop
  boost::asio::thread_pool& pool;         // blocking work
  const Config& config;                   // reloadable keys change in place on SIGHUP
  http::Router& router;
  // Routes served on workspace origins (workspace-origin) instead of
  // `router`; workspace_origin is null when the key is unset.
  http::Router& workspace_router;
  const auth::WorkspaceOrigin* workspace_origin;
  http::Health& health;
  http::Metrics& metrics;
  db::Database& db;
  // Set once the auth module is wired (it is wired first); modules that
  // serve signed-in users take it in their constructor.
  auth::Authenticator* authenticator = nullptr;
  // Set by the auth module too: modules add their /dashboard sections here
  // (see auth/dashboard.hpp).
  auth::DashboardSections* dashboard = nullptr;
  // Set once the compute module is wired: users' editors for the proxy and
  // the dashboard (compute/workspaces.hpp).
  compute::Workspaces* workspaces = nullptr;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual std::string_view name() const = 0;
  // After the listeners are bound and before READY=1 (migrations, reconcile).
  virtual boost::asio::awaitable<void> start() { co_return; }
  // Shutdown began: cancel background loops; in-flight requests may still finish.
  virtual void stop() {}
  // SIGHUP applied new reloadable values to the shared Config.
  virtual void reloaded() {}
};

}  // namespace feuille::app
