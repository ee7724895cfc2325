#include "app/commands.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>

#include <linux/capability.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>

#include "compute/checkpoint_probe.hpp"
#include "compute/egress.hpp"
#include "compute/podman_client.hpp"
#include "db/database.hpp"
#include "db/migrator.hpp"
#include "db/users.hpp"
#include "util/capabilities.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::app {
namespace asio = boost::asio;

namespace {

// Runs one coroutine against the database on a private loop; returns its
// exit code (1 when it throws, with the reason on stderr).
int with_database(const Config& c, std::function<asio::awaitable<int>(db::Database&)> body) {
  asio::io_context ioc{1};
  asio::thread_pool pool{2};
  db::Database database(ioc.get_executor(), pool,
                        db::PoolOptions{c.database_url, 2, c.db_statement_timeout, c.db_connect_timeout});
  int code = 1;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        try {
          code = co_await body(database);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "feuilled: %s\n", e.what());
          code = 1;
        }
      },
      asio::detached);
  ioc.run();
  pool.join();
  return code;
}

}  // namespace

int run_migrate(const Config& c) {
  return with_database(c, [](db::Database& database) -> asio::awaitable<int> {
    auto r = co_await db::migrate(database);
    if (r.applied.empty()) std::printf("schema is current (version %d)\n", r.to_version);
    for (const auto& name : r.applied) std::printf("applied %s\n", name.c_str());
    co_return 0;
  });
}

int run_check(const Config& c) {
  std::printf("ok   configuration%s\n", c.config_file.empty() ? "" : (" " + c.config_file).c_str());
  return with_database(c, [&c](db::Database& database) -> asio::awaitable<int> {
    int failures = 0;
    for (const auto& h : c.compute_hosts) {
      compute::PodmanClient::Options o;
      o.host_name = h.name;
      // A busy Podman service (checkpoints, many containers starting) can
      // take seconds to answer even /version: an operator's check waits.
      o.timeout = std::chrono::seconds(15);
      compute::PodmanClient client(co_await asio::this_coro::executor, h.url, o);
      try {
        auto version = co_await client.version();
        std::printf("ok   host %s %s (Podman %s)\n", h.name.c_str(), h.url.c_str(), version.c_str());
      } catch (const compute::PodmanError& e) {
        std::printf("FAIL host %s %s: %s\n", h.name.c_str(), h.url.c_str(), e.message.c_str());
        ++failures;
        continue;
      }
      // Not a failure: without CRIU workspaces still run (their sleep loses Python's state).
      if (!c.criu) {
        std::printf("warn criu on %s: off (criu = off): sleeping workspaces lose their Python state\n", h.name.c_str());
        continue;
      }
      auto spec = compute::checkpoint_probe_spec(compute::ProbeRuntime{"check-" + std::to_string(getpid()), c.oci_runtime,
                                                                       c.runtime_image, c.runtime_command,
                                                                       c.runtime_user, {c.egress_address}});
      auto probe = co_await compute::probe_checkpoint(client, std::move(spec), std::chrono::seconds(30));
      std::printf("%s criu on %s: %s%s\n", probe.works ? "ok  " : "warn", h.name.c_str(), probe.detail.c_str(),
                  probe.works ? "" : " (sleeping workspaces lose their Python state; snapshots and forks are refused)");
    }
    if (c.egress_address.empty()) {
      std::printf("warn egress: off (egress-address = off): tenants reach this host's addresses, the LAN and cloud "
                  "metadata\n");
    } else {
      auto st = compute::egress_status(compute::egress_plan(c), true);
      std::printf("%s egress %s: %s\n", st.ok ? "ok  " : "FAIL", c.egress_address.c_str(), st.detail.c_str());
      if (!st.ok) ++failures;
    }
    if (has_capability(CAP_SYS_ADMIN)) {
      std::printf("ok   namespaces (CAP_SYS_ADMIN: feuilled can enter containers' network namespaces)\n");
    } else {
      std::printf("FAIL namespaces: feuilled lacks CAP_SYS_ADMIN, which setns(2) into a container's network "
                  "namespace needs (deploy/feuilled.service grants it)\n");
      ++failures;
    }
    auto result = co_await database.check();
    if (!result.ok) {
      std::printf("FAIL database %s: %s\n", database.redacted_url().c_str(), result.detail.c_str());
      co_return 1;
    }
    int version = co_await db::schema_version(database);
    int latest = db::latest_schema_version();
    if (version > latest) {
      std::printf("FAIL database: schema version %d is newer than this feuilled (%d)\n", version, latest);
      ++failures;
    } else if (version < latest) {
      std::printf("ok   database %s (schema version %d; %d migration(s) pending, applied at start)\n",
                  database.redacted_url().c_str(), version, latest - version);
    } else {
      std::printf("ok   database %s (schema version %d)\n", database.redacted_url().c_str(), version);
    }
    co_return failures ? 1 : 0;
  });
}

int run_user_list(const Config& c) {
  return with_database(c, [](db::Database& database) -> asio::awaitable<int> {
    co_await db::migrate(database);
    auto users = co_await database.run([](pqxx::work& w) { return db::list_users(w); });
    std::printf("%-40s %-8s %-20s %s\n", "HANDLE", "PLAN", "CREATED", "ID");
    for (const auto& u : users)
      std::printf("%-40s %-8s %-20s %s\n", u.handle.c_str(), u.plan.c_str(), u.created_at.c_str(), u.id.c_str());
    co_return 0;
  });
}

int run_user_set_plan(const Config& c, const std::string& handle, const std::string& plan) {
  return with_database(c, [handle, plan](db::Database& database) -> asio::awaitable<int> {
    co_await db::migrate(database);
    bool found = co_await database.run([&](pqxx::work& w) { return db::set_user_plan(w, handle, plan); });
    if (!found) {
      std::fprintf(stderr, "feuilled: no user with handle %s\n", handle.c_str());
      co_return 1;
    }
    std::printf("%s is now on plan %s (applies at the next workspace start)\n", handle.c_str(), plan.c_str());
    co_return 0;
  });
}

}  // namespace feuille::app
