#include "app/application.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <iostream>

#include "app/commands.hpp"
#include "app/module.hpp"
#include "app/systemd.hpp"
#include "auth/auth_module.hpp"
#include "compute/compute_module.hpp"
#include "db/database.hpp"
#include "db/migrator.hpp"
#include "dev/embedded_postgres.hpp"
#include "dev/podman_service.hpp"
#include "http/core_routes.hpp"
#include "http/server.hpp"
#include "proxy/reverse_proxy.hpp"
#include "publish/publish_module.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::app {
namespace asio = boost::asio;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

class Application {
 public:
  Application(Invocation invocation, std::vector<std::string> argv)
      : invocation_(std::move(invocation)),
        argv_(std::move(argv)),
        config_(invocation_.config),
        pool_(static_cast<std::size_t>(config_.worker_threads)),
        signals_(ioc_, SIGTERM, SIGINT, SIGHUP),
        log_(logger("app")),
        db_(ioc_.get_executor(), pool_,
            db::PoolOptions{config_.database_url, config_.db_pool_size, config_.db_statement_timeout,
                            config_.db_connect_timeout},
            &metrics_.registry()) {}

  int run() {
    raise_descriptor_limit();
    // Bound first: public-url and workspace-origin may name the bound port,
    // and modules read them as they are wired.
    server_ = std::make_unique<http::Server>(ioc_, options_for_server(), router_, metrics_);
    std::vector<Endpoint> bound;
    try {
      bound = server_->bind(config_.listen);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "feuilled: %s\n", e.what());
      return 1;
    }
    if (config_.public_url.empty()) config_.public_url = "http://" + bound.front().text();
    if (auto at = config_.workspace_origin.find("{port}"); at != std::string::npos)
      config_.workspace_origin.replace(at, 6, std::to_string(bound.front().port));
    if (!config_.workspace_origin.empty()) workspace_origin_.emplace(config_.workspace_origin);

    http::add_core_routes(router_, health_, metrics_, config_.metrics_allow);
    http::add_static_routes(workspace_router_);  // the starting and error pages' CSS and JS
    health_.add("database", [this]() { return db_.check(); });
    ModuleContext ctx{ioc_.get_executor(), pool_, config_, router_, workspace_router_,
                      workspace_origin_ ? &*workspace_origin_ : nullptr, health_, metrics_, db_};
    wire_modules(ctx);

    spawn(ioc_, startup(bound), log_, "startup");
    ioc_.run();
    if (forced_) {
      // Something ignored cancellation: its coroutine frames still point at
      // the modules, so do not run destructors; just leave.
      log_->error("shutdown: {} task(s) did not finish; exiting anyway", live_tasks());
      flush_logs();
      std::fflush(stdout);
      std::_Exit(exit_code_);
    }
    pool_.join();
    modules_.clear();
    log_->info("stopped");
    flush_logs();
    return exit_code_;
  }

 private:
  asio::awaitable<void> startup(std::vector<Endpoint> bound) {
    spawn(ioc_, handle_signals(), log_, "signals");
    spawn(ioc_, flush_loop(), log_, "log flush");
    try {
      co_await migrate_with_retry();
      for (auto& m : modules_) co_await m->start();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "feuilled: %s\n", e.what());
      exit_code_ = 1;
      begin_shutdown();
      co_return;
    }
    server_->start();
    for (const auto& ep : bound) std::printf("listening on http://%s/\n", ep.text().c_str());
    std::fflush(stdout);
    log_->info("feuilled {} ready; public URL {}", FEUILLE_VERSION, config_.public_url);
    sd_send("READY=1");
    if (auto period = watchdog_period()) spawn(ioc_, watchdog_loop(*period), log_, "watchdog");
  }

  http::ServerOptions options_for_server() {
    http::ServerOptions options;
    options.header_timeout = config_.header_timeout;
    options.keepalive_timeout = config_.keepalive_timeout;
    options.trusted_proxies = config_.trusted_proxies;
    options.workspace_router = &workspace_router_;
    options.workspace_of_host = [this](std::string_view host) -> std::optional<std::string> {
      if (!workspace_origin_) return std::nullopt;
      return workspace_origin_->id_of_host(host);
    };
    return options;
  }

  // Every module, in start order (stopped in reverse). Each registers its
  // routes, readiness checks and metrics in its constructor.
  // Every proxied WebSocket holds two descriptors: take the hard limit
  // (systemd's LimitNOFILE) rather than the usual soft 1024.
  void raise_descriptor_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    rlim_t wanted = limit.rlim_max;
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) log_->warn("could not raise the descriptor limit to {}", wanted);
  }

  void wire_modules(ModuleContext& ctx) {
    modules_.push_back(std::make_unique<auth::AuthModule>(ctx));  // first: sets ctx.authenticator, ctx.dashboard
    ctx.workspaces = &add<compute::ComputeModule>(ctx).workspaces();
    modules_.push_back(std::make_unique<proxy::ReverseProxy>(ctx, *ctx.workspaces));
    modules_.push_back(publish::make_module(ctx));
  }

  template <class M>
  M& add(ModuleContext& ctx) {
    auto module = std::make_unique<M>(ctx);
    M& ref = *module;
    modules_.push_back(std::move(module));
    return ref;
  }

  // The database may still be coming up (systemd starts both at boot): try
  // for a few seconds before giving up.
  asio::awaitable<void> migrate_with_retry() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    for (;;) {
      try {
        co_await db::migrate(db_);
        co_return;
      } catch (const db::Unavailable& e) {
        if (std::chrono::steady_clock::now() > deadline || stopping_) throw;
        log_->warn("{}; retrying", e.what());
      }
      asio::steady_timer pause(ioc_, std::chrono::seconds(1));
      co_await pause.async_wait(tuple_awaitable);
    }
  }

  asio::awaitable<void> handle_signals() {
    for (;;) {
      auto [ec, signo] = co_await signals_.async_wait(tuple_awaitable);
      if (ec) co_return;
      if (signo == SIGHUP) reload();
      else {
        log_->info("received {}, shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        begin_shutdown();
        co_return;
      }
    }
  }

  void reload() {
    Invocation next;
    try {
      next = parse_invocation(argv_);
    } catch (const ConfigError& e) {
      log_->error("reload refused, keeping the current configuration: {}", e.what());
      return;
    }
    for (const auto& key : changed_restart_keys(invocation_, next))
      log_->warn("reload: {} changed; it takes effect at the next restart", key);
    apply_reloadable(next, config_);
    set_log_level(config_.log_level);
    for (auto& m : modules_) m->reloaded();
    // Later reloads compare against what is applied now.
    for (const auto& k : config_keys())
      if (k.reloadable) invocation_.raw[k.name] = next.raw[k.name];
    log_->info("configuration reloaded (log level {})", config_.log_level);
  }

  asio::awaitable<void> watchdog_loop(Duration period) {
    while (!stopping_) {
      sd_send("WATCHDOG=1");
      watchdog_timer_.expires_after(period);
      if (auto [ec] = co_await watchdog_timer_.async_wait(tuple_awaitable); ec) co_return;
    }
  }

  asio::awaitable<void> flush_loop() {
    while (!stopping_) {
      flush_timer_.expires_after(std::chrono::milliseconds(500));
      if (auto [ec] = co_await flush_timer_.async_wait(tuple_awaitable); ec) co_return;
      flush_logs();
    }
  }

  void begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    sd_send("STOPPING=1");
    signals_.cancel();
    watchdog_timer_.cancel();
    flush_timer_.cancel();
    server_->begin_shutdown();
    for (auto it = modules_.rbegin(); it != modules_.rend(); ++it) (*it)->stop();
    spawn(ioc_, drain(), log_, "shutdown");
  }


  // Waits for in-flight work up to shutdown-grace, closes the connections
  // left, and gives the rest one more second before stopping the loop.
  asio::awaitable<void> drain() {
    using clock = std::chrono::steady_clock;
    asio::steady_timer timer(ioc_);
    auto wait_until = [&](clock::time_point deadline) -> asio::awaitable<void> {
      while (live_tasks() > 1 && clock::now() < deadline) {  // 1 = this coroutine
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(tuple_awaitable);
      }
    };
    co_await wait_until(clock::now() + config_.shutdown_grace);
    if (auto left = server_->open_connections(); left > 0) {
      log_->warn("shutdown grace over: closing {} connection(s)", left);
      server_->close_all();
    }
    co_await wait_until(clock::now() + std::chrono::seconds(1));
    db_.close();
    if (live_tasks() > 1) {
      forced_ = true;
      ioc_.stop();
    }
  }

  Invocation invocation_;
  std::vector<std::string> argv_;
  Config config_;
  asio::io_context ioc_{1};
  asio::thread_pool pool_;
  asio::signal_set signals_;
  std::shared_ptr<spdlog::logger> log_;
  http::Metrics metrics_;
  http::Health health_;
  http::Router router_;
  http::Router workspace_router_;
  std::optional<auth::WorkspaceOrigin> workspace_origin_;
  db::Database db_;
  std::vector<std::unique_ptr<Module>> modules_;
  std::unique_ptr<http::Server> server_;
  asio::steady_timer watchdog_timer_{ioc_};
  asio::steady_timer flush_timer_{ioc_};
  bool stopping_ = false;
  bool forced_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_daemon(Invocation invocation, std::vector<std::string> argv) {
  Application app(std::move(invocation), std::move(argv));
  return app.run();
}

// What --dev starts for itself: PostgreSQL when no database-url is given,
// podman system service when no compute-host is given and podman exists.
class DevServices {
 public:
  void start(Config& c, bool with_podman) {
    auto log = logger("app");
    std::filesystem::create_directories(c.state_dir);
    if (c.database_url.empty()) {
      postgres_ = std::make_unique<dev::EmbeddedPostgres>(c.state_dir + "/postgres");
      postgres_->start();
      c.database_url = postgres_->url();
      log->info("dev: PostgreSQL running from {} (socket in {})", postgres_->data_dir(), postgres_->socket_dir());
    }
    if (with_podman && !c.compute_hosts_given) {
      if (dev::PodmanService::available()) {
        podman_ = std::make_unique<dev::PodmanService>(c.state_dir + "/podman", c.oci_runtime);
        podman_->start();
        c.compute_hosts = {ComputeHost{"local", podman_->url(), 0}};
        log->info("dev: podman system service on {}", podman_->socket_path());
      } else {
        log->warn("dev: podman is not installed; workspaces cannot start");
      }
    }
  }
  ~DevServices() {
    if (podman_) podman_->stop();
    if (postgres_) postgres_->stop();
  }

 private:
  std::unique_ptr<dev::EmbeddedPostgres> postgres_;
  std::unique_ptr<dev::PodmanService> podman_;
};

int main_entry(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  Invocation inv;
  try {
    inv = parse_invocation(args);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "feuilled: %s\n", e.what());
    return 1;
  }
  if (inv.exit_code) {
    std::fputs(inv.output.c_str(), stdout);
    return *inv.exit_code;
  }
  setup_logging(inv.config.log_format, inv.config.log_level);
  std::signal(SIGPIPE, SIG_IGN);
  // Signals are handled by the loop; until it runs, SIGTERM/SIGINT end the
  // process (and the dev services with it, through their parent-death signal).
  Config& c = inv.config;
  DevServices dev;
  if (c.dev) {
    try {
      dev.start(c, inv.command == Command::run);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "feuilled: dev: %s\n", e.what());
      return 1;
    }
  }
  switch (inv.command) {
    case Command::run:
      return run_daemon(std::move(inv), std::move(args));
    case Command::migrate:
      return run_migrate(c);
    case Command::check:
      return run_check(c);
    case Command::user_list:
      return run_user_list(c);
    case Command::user_set_plan:
      return run_user_set_plan(c, inv.args.at(0), inv.args.at(1));
  }
  return 1;
}

}  // namespace feuille::app
