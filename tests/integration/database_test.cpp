// The database layer against a real PostgreSQL: migrations, the pool under
// saturation, statement timeouts, a server restarted under the pool, and the
// operator commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <thread>

#include "db/database.hpp"
#include "db/migrator.hpp"
#include "dev/embedded_postgres.hpp"
#include "support/daemon.hpp"
#include "support/podman.hpp"
#include "support/run_coro.hpp"
#include "util/spawn.hpp"
#include "util/logging.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;

namespace {

struct Loop {
  asio::io_context ioc{1};
  asio::thread_pool pool{4};
  ~Loop() { pool.join(); }
  // Runs an awaitable made by a function (kept alive while it runs).
  template <class F>
  auto run(F make, std::chrono::milliseconds timeout = 30s) {
    return run_coro(ioc, std::move(make), timeout);
  }
};

db::PoolOptions options(const std::string& url, int size = 4) {
  return db::PoolOptions{url, size, Duration{5000}, Duration{2000}, Duration{5000}};
}

std::pair<int, std::string> run_feuilled(std::vector<std::string> args) {
  args.insert(args.begin(), feuilled_path());
  Process p(args);
  auto st = p.wait(60s);
  return {st.value_or(-1), p.stdout_text() + p.stderr_text()};
}

}  // namespace

TEST(Database, MigratesFromEmptyAndAgainIsANoop) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool, options(tdb.url()));
  EXPECT_EQ(loop.run([&] { return db::schema_version(database); }), 0);
  auto first = loop.run([&] { return db::migrate(database); });
  EXPECT_EQ(first.from_version, 0);
  EXPECT_EQ(first.to_version, db::latest_schema_version());
  EXPECT_EQ(first.applied.size(), db::migrations().size());
  for (auto table : {"users", "sessions", "invites", "memberships", "runtimes", "snapshots", "migrations", "events",
                     "schema_migrations", "workspaces"})
    EXPECT_EQ(tdb.scalar(std::string("SELECT to_regclass('public.") + table + "') IS NOT NULL"), "t") << table;
  auto second = loop.run([&] { return db::migrate(database); });
  EXPECT_TRUE(second.applied.empty());
  EXPECT_EQ(loop.run([&] { return db::schema_version(database); }), db::latest_schema_version());
}

TEST(Database, RefusesADatabaseNewerThanItself) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool, options(tdb.url()));
  loop.run([&] { return db::migrate(database); });
  tdb.query("INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')");
  try {
    loop.run([&] { return db::migrate(database); });
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("newer than this feuilled"));
  }
}

TEST(Database, TwoConcurrentMigratorsMigrateOnce) {
  TestDatabase tdb;
  std::vector<std::unique_ptr<Process>> ps;
  for (int i = 0; i < 3; ++i)
    ps.push_back(std::make_unique<Process>(std::vector<std::string>{feuilled_path(), "migrate", "--database-url", tdb.url()}));
  int applied = 0;
  for (auto& p : ps) {
    EXPECT_EQ(p->wait(60s), 0) << p->stderr_text();
    applied += p->stdout_text().find("applied 0001_initial.sql") != std::string::npos;
  }
  EXPECT_EQ(applied, 1);
  EXPECT_EQ(tdb.scalar("SELECT count(*) FROM schema_migrations"), std::to_string(db::latest_schema_version()));
}

TEST(Database, SchemaEnforcesUniqueness) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool, options(tdb.url()));
  loop.run([&] { return db::migrate(database); });
  tdb.query("INSERT INTO users (handle, github_id) VALUES ('Alice', 1)");
  EXPECT_THROW(tdb.query("INSERT INTO users (handle) VALUES ('alice')"), pqxx::unique_violation);
  EXPECT_THROW(tdb.query("INSERT INTO users (handle, github_id) VALUES ('bob', 1)"), pqxx::unique_violation);
  EXPECT_THROW(tdb.query("INSERT INTO users (handle) VALUES ('no spaces')"), pqxx::check_violation);
  tdb.query("INSERT INTO users (handle) VALUES ('alice-2')");
  auto id = tdb.scalar("SELECT id FROM users WHERE handle = 'Alice'");
  tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port) VALUES ('" + id + "', 'editor', 'feuille-ed-" + id + "', 'local', 20001)");
  EXPECT_THROW(tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port) VALUES ('" + id +
                         "', 'editor', 'other', 'local', 20002)"),
               pqxx::unique_violation);
  EXPECT_THROW(tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port) VALUES ('" + id +
                         "', 'runtime', 'feuille-rt-x', 'local', 20001)"),
               pqxx::unique_violation);  // a port is never handed out twice
  tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port) VALUES ('" + id + "', 'sandbox', 'feuille-sb-1', 'local', 40001)");
  tdb.query("INSERT INTO runtimes (user_id, kind, name, host, port) VALUES ('" + id + "', 'sandbox', 'feuille-sb-2', 'local', 40002)");
  EXPECT_THROW(tdb.query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ('\\x00', '" + id + "', now())"),
               pqxx::check_violation);  // only a 32-byte hash fits
  tdb.query("DELETE FROM users WHERE id = '" + id + "'");
  EXPECT_EQ(tdb.scalar("SELECT count(*) FROM runtimes"), "0");  // cascades
}

TEST(Database, PoolSaturationQueuesCallersWithoutBlockingTheLoop) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool, options(tdb.url(), 2));
  int done = 0, max_waiting = 0, ticks = 0;
  auto start = std::chrono::steady_clock::now();
  auto query = [&]() -> asio::awaitable<void> {
    co_await database.run([](pqxx::work& w) { w.exec("SELECT pg_sleep(0.2)"); });
    ++done;
  };
  loop.run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < 8; ++i) spawn(ex, query, logger("test"), "query");
    asio::steady_timer t(ex);
    while (done < 8) {  // the loop keeps turning while the pool is busy
      max_waiting = std::max(max_waiting, database.stats().waiting);
      ++ticks;
      t.expires_after(10ms);
      co_await t.async_wait(asio::use_awaitable);
    }
  });
  EXPECT_EQ(done, 8);
  EXPECT_GE(max_waiting, 5);
  EXPECT_GT(ticks, 40);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 750ms);  // 8 × 0.2 s on 2 connections
  EXPECT_LE(database.stats().open, 2);
}

TEST(Database, ACallerWaitingTooLongGetsUnavailable) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool,
                        db::PoolOptions{tdb.url(), 1, Duration{5000}, Duration{2000}, Duration{200}});
  std::string error;
  loop.run([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    spawn(ex, [&] { return database.run([](pqxx::work& w) { w.exec("SELECT pg_sleep(1)"); }); }, logger("test"),
          "sleeper");
    asio::steady_timer t(ex, 50ms);
    co_await t.async_wait(asio::use_awaitable);
    try {
      co_await database.run([](pqxx::work& w) { w.exec("SELECT 1"); });
    } catch (const db::Unavailable& e) {
      error = e.what();
    }
    t.expires_after(1500ms);
    co_await t.async_wait(asio::use_awaitable);
  });
  EXPECT_THAT(error, HasSubstr("busy"));
}

TEST(Database, StatementTimeoutCancelsALongQuery) {
  TestDatabase tdb;
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool,
                        db::PoolOptions{tdb.url(), 1, Duration{300}, Duration{2000}, Duration{5000}});
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(loop.run([&] { return database.run([](pqxx::work& w) { w.exec("SELECT pg_sleep(5)"); }); }),
               pqxx::sql_error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // The same (only) connection still works.
  EXPECT_EQ(loop.run([&] { return database.run([](pqxx::work& w) { return w.exec1("SELECT 41 + 1")[0].as<int>(); }); }),
            42);
}

class PrivateCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    chmod(dir.path().c_str(), 0755);  // reachable by the PostgreSQL account
    pg = std::make_unique<dev::EmbeddedPostgres>(dir.path() + "/pg");
    pg->start();
  }
  TempDir dir;
  std::unique_ptr<dev::EmbeddedPostgres> pg;
};

TEST_F(PrivateCluster, ServerRestartedUnderThePool) {
  Loop loop;
  db::Database database(loop.ioc.get_executor(), loop.pool, options(pg->url(), 2));
  auto one = [&] {
    return loop.run([&] { return database.run([](pqxx::work& w) { return w.exec1("SELECT 1")[0].as<int>(); }); });
  };
  EXPECT_EQ(one(), 1);
  pg->stop();
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(one(), db::Unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);  // fails, does not hang
  start = std::chrono::steady_clock::now();
  EXPECT_THROW(one(), db::Unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);  // and fast while it is down
  pg->start();
  bool back = false;
  for (int i = 0; i < 50 && !back; ++i) {
    try {
      back = one() == 1;
    } catch (const db::Unavailable&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  EXPECT_TRUE(back);
  EXPECT_EQ(one(), 1);
}

TEST_F(PrivateCluster, ReadyzIs503WhileTheDatabaseIsDown) {
  Daemon d({"--database-url", pg->url()});
  EXPECT_EQ(d.get("/readyz").status, 200);
  pg->stop();
  HttpResponse r;  // /readyz answers from a result at most a second old
  for (int i = 0; i < 30 && (r = d.get("/readyz")).status != 503; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("\"database\":{\"detail\":\"database unavailable"));  // loopback may see details
  EXPECT_THAT(d.get("/metrics").body, HasSubstr("feuille_ready_check{check=\"database\"} 0"));
  EXPECT_EQ(d.get("/healthz").status, 200);
  pg->start();
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = d.get("/readyz").status;
    if (status != 200) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, 200);
}

TEST(Commands, MigrateCheckAndUsers) {
  TestDatabase tdb;
  auto [st, out] = run_feuilled({"check", "--database-url", tdb.url(), "--compute-host", compute_host_arg()});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("migration(s) pending"));
  std::tie(st, out) = run_feuilled({"migrate", "--database-url", tdb.url()});
  EXPECT_EQ(st, 0) << out;
  EXPECT_THAT(out, HasSubstr("applied 0001_initial.sql"));
  std::tie(st, out) = run_feuilled({"check", "--database-url", tdb.url(), "--compute-host", compute_host_arg()});
  EXPECT_EQ(st, 0);
  EXPECT_THAT(out, HasSubstr("ok   database"));
  EXPECT_THAT(out, HasSubstr("ok   host local"));

  tdb.query("INSERT INTO users (handle) VALUES ('alice'), ('bob')");
  std::tie(st, out) = run_feuilled({"user", "set-plan", "alice", "pro", "--database-url", tdb.url()});
  EXPECT_EQ(st, 0) << out;
  EXPECT_EQ(tdb.scalar("SELECT plan FROM users WHERE handle = 'alice'"), "pro");
  std::tie(st, out) = run_feuilled({"user", "list", "--database-url", tdb.url()});
  EXPECT_EQ(st, 0);
  EXPECT_THAT(out, HasSubstr("alice"));
  EXPECT_THAT(out, HasSubstr("pro"));
  std::tie(st, out) = run_feuilled({"user", "set-plan", "carol", "pro", "--database-url", tdb.url()});
  EXPECT_EQ(st, 1);
  EXPECT_THAT(out, HasSubstr("no user with handle carol"));
  std::tie(st, out) = run_feuilled({"user", "set-plan", "bob", "gold", "--database-url", tdb.url()});
  EXPECT_EQ(st, 1);
  EXPECT_THAT(out, HasSubstr("plan: \"gold\" is not a configured plan"));
  EXPECT_EQ(tdb.scalar("SELECT plan FROM users WHERE handle = 'bob'"), "free");
}

TEST(Commands, CheckSaysWhatFailsOneLineEach) {
  auto [st, out] = run_feuilled({"check", "--database-url", "postgresql://feuille:hunter2@127.0.0.1:1/none", "--db-connect-timeout", "2s"});
  EXPECT_EQ(st, 1);
  EXPECT_THAT(out, HasSubstr("FAIL database postgresql://feuille:***@127.0.0.1:1/none"));
  EXPECT_EQ(out.find("hunter2"), std::string::npos);
}
