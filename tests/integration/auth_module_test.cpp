// The auth module in-process against a real PostgreSQL: what other modules
// call (workspace_role, identify, the dashboard registry) and what only
// shows from inside (the session cache hit path).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <future>

#include "app/module.hpp"
#include "auth/auth_module.hpp"
#include "auth/session_store.hpp"
#include "auth/tokens.hpp"
#include "db/database.hpp"
#include "db/migrator.hpp"
#include "http/health.hpp"
#include "http/metrics.hpp"
#include "http/responses.hpp"
#include "http/router.hpp"
#include "support/run_coro.hpp"
#include "support/test_db.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;
namespace bh = boost::beast::http;

namespace {

struct Fixture {
  TestDatabase tdb;
  asio::io_context ioc{1};
  asio::thread_pool pool{2};
  Config config;
  http::Router router;
  http::Router workspace_router;
  http::Health health;
  http::Metrics metrics;
  db::Database database{ioc.get_executor(), pool, db::PoolOptions{tdb.url(), 2, Duration{5000}, Duration{2000}, Duration{5000}}};
  std::unique_ptr<auth::AuthModule> module;
  app::ModuleContext ctx{ioc.get_executor(), pool, config, router, workspace_router, nullptr, health, metrics, database};

  Fixture() {
    config.public_url = "http://127.0.0.1:8080";
    run_coro(ioc, [&] { return db::migrate(database); }, 30s);
    module = std::make_unique<auth::AuthModule>(ctx);
  }
  ~Fixture() {
    module.reset();
    database.close();
    pool.join();
  }
  template <class F>
  auto run(F make) {
    return run_coro(ioc, std::move(make), 30s);
  }
  std::string user(const std::string& handle) {
    return tdb.scalar("INSERT INTO users (handle) VALUES ('" + handle + "') RETURNING id");
  }
  std::string session_for(const std::string& user_id) {
    auto token = auth::random_token();
    tdb.query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (decode('" +
              auth::hex(auth::hash_token(token)) + "', 'hex'), '" + user_id + "', now() + interval '1 day')");
    return token;
  }
  std::optional<auth::Role> role(const std::string& u, const std::string& o) {
    return run([&]() { return module->workspace_role(u, o); });
  }
  // Calls a buffered route as the server would.
  http::Response call(bh::verb method, const std::string& target, const std::string& token) {
    http::Request req{method, target, 11};
    req.set(bh::field::cookie, "feuille_session=" + token);
    req.set(bh::field::origin, config.public_url);
    http::RequestContext rc;
    rc.target = target;
    rc.path = rc.target;
    auto m = router.match(method, rc.path);
    EXPECT_TRUE(m.route) << target;
    rc.params = m.params;
    return run([&]() { return m.route->handler(req, rc); });
  }
};

}  // namespace

TEST(AuthModule, WiresItselfAsTheAuthenticatorAndDashboardRegistry) {
  Fixture f;
  EXPECT_EQ(f.ctx.authenticator, f.module.get());
  EXPECT_EQ(f.ctx.dashboard, &f.module->dashboard());
  // A section from another module shows on the dashboard, in order, escaped
  // by its renderer; one that throws does not break the page.
  f.ctx.dashboard->add("later", 500, [](const auth::Identity&, const http::Request&) -> asio::awaitable<std::string> {
    co_return "<section id=\"later\">later</section>";
  });
  f.ctx.dashboard->add("workspace", 100, [](const auth::Identity& me, const http::Request&) -> asio::awaitable<std::string> {
    co_return "<section id=\"ws\">workspace of " + http::html_escape(me.handle) + "</section>";
  });
  f.ctx.dashboard->add("broken", 200, [](const auth::Identity&, const http::Request&) -> asio::awaitable<std::string> {
    throw std::runtime_error("boom");
    co_return "";
  });
  auto me = f.user("alice");
  auto page = f.call(bh::verb::get, "/dashboard", f.session_for(me));
  ASSERT_EQ(page.result_int(), 200);
  const auto& body = page.body();
  auto ws = body.find("workspace of alice"), broken = body.find("unavailable right now"),
       sharing = body.find("data-section=\"sharing\""), later = body.find("id=\"later\"");
  ASSERT_NE(ws, std::string::npos);
  ASSERT_NE(broken, std::string::npos);
  ASSERT_NE(sharing, std::string::npos);
  ASSERT_NE(later, std::string::npos);
  EXPECT_LT(ws, broken);
  EXPECT_LT(broken, sharing);
  EXPECT_LT(sharing, later);
  EXPECT_THAT(body, ::testing::Not(HasSubstr("boom")));
}

TEST(AuthModule, WorkspaceRoleIsOwnerOrTheStrongestMembership) {
  Fixture f;
  auto owner = f.user("owner"), both = f.user("both"), viewer = f.user("viewer"), stranger = f.user("stranger");
  f.tdb.query("INSERT INTO memberships (owner_id, member_id, project, role) VALUES "
              "('" + owner + "', '" + both + "', 'A', 'viewer'), ('" + owner + "', '" + both + "', 'B', 'editor'), "
              "('" + owner + "', '" + viewer + "', 'A', 'viewer'), ('" + both + "', '" + stranger + "', 'X', 'editor')");
  EXPECT_EQ(f.role(owner, owner), auth::Role::owner);
  EXPECT_EQ(f.role(both, owner), auth::Role::editor);
  EXPECT_EQ(f.role(viewer, owner), auth::Role::viewer);
  EXPECT_EQ(f.role(stranger, owner), std::nullopt);
  EXPECT_EQ(f.role(owner, both), std::nullopt);  // memberships are not symmetric
  EXPECT_EQ(f.role(stranger, both), auth::Role::editor);
  EXPECT_EQ(f.role("not-a-uuid", owner), std::nullopt);
  EXPECT_EQ(f.role(owner, "'; DROP TABLE users; --"), std::nullopt);
  EXPECT_EQ(f.role(owner, "00000000-0000-0000-0000-000000000000"), std::nullopt);

  // Removing a member through feuilled applies at once, cache or not.
  EXPECT_EQ(f.role(both, owner), auth::Role::editor);  // cached now
  auto r = f.call(bh::verb::delete_, "/api/members/" + both, f.session_for(owner));
  EXPECT_EQ(r.result_int(), 204);
  EXPECT_EQ(f.role(both, owner), std::nullopt);
  EXPECT_EQ(f.role(viewer, owner), auth::Role::viewer);
}

TEST(AuthModule, JoiningGrantsTheRoleAtOnce) {
  Fixture f;
  auto owner = f.user("owner"), member = f.user("member");
  EXPECT_EQ(f.role(member, owner), std::nullopt);  // cached as "no access"
  std::string token = auth::random_token();
  f.tdb.query("INSERT INTO invites (token_hash, owner_id, project, role) VALUES (decode('" +
              auth::hex(auth::hash_token(token)) + "', 'hex'), '" + owner + "', 'P', 'editor')");
  auto page = f.call(bh::verb::get, "/join/" + token, f.session_for(member));
  EXPECT_EQ(page.result_int(), 200);
  EXPECT_EQ(f.role(member, owner), std::nullopt);  // a GET changes nothing
  auto r = f.call(bh::verb::post, "/join/" + token, f.session_for(member));
  EXPECT_EQ(r.result_int(), 303);
  EXPECT_EQ(f.role(member, owner), auth::Role::editor);
}

// A lookup that overlaps a logout must not cache the session being deleted:
// the logout's DELETE is held back (another transaction locks the row) while
// a lookup reads the row; once the logout is through, the session is gone
// for the cache too (a cached entry would answer without the database).
TEST(AuthModule, ALookupDuringALogoutDoesNotBringTheSessionBack) {
  Fixture f;
  auto id = f.user("alice");
  auto token = f.session_for(id);
  bh::request_header<> h;
  h.set(bh::field::cookie, "feuille_session=" + token);

  pqxx::connection holder(f.tdb.url());
  pqxx::work lock(holder);
  lock.exec("SELECT 1 FROM sessions WHERE token_hash = decode('" + auth::hex(auth::hash_token(token)) +
            "', 'hex') FOR KEY SHARE");
  http::Request req{bh::verb::post, "/auth/logout", 11};
  req.set(bh::field::cookie, "feuille_session=" + token);
  req.set(bh::field::origin, f.config.public_url);
  http::RequestContext rc;
  rc.target = "/auth/logout";
  rc.path = rc.target;
  auto m = f.router.match(bh::verb::post, rc.path);
  ASSERT_TRUE(m.route);
  auto done = asio::co_spawn(f.ioc, m.route->handler(req, rc), asio::use_future);
  // The logout waits on the lock; meanwhile a lookup still finds the row.
  for (int i = 0; i < 20; ++i) f.ioc.run_for(10ms);
  EXPECT_NE(done.wait_for(0s), std::future_status::ready);
  auto during = f.run([&]() { return f.module->identify(h); });
  EXPECT_TRUE(during);
  lock.commit();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (done.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() < deadline) f.ioc.run_for(10ms);
  ASSERT_EQ(done.get().result_int(), 302);
  EXPECT_FALSE(f.run([&]() { return f.module->identify(h); })) << "the cache kept the session the logout deleted";
}

// Made-up cookies: the first costs a query, the next ones within seconds
// none (the database is closed: a query would throw).
TEST(AuthModule, UnknownTokensAreRememberedBriefly) {
  Fixture f;
  bh::request_header<> h;
  h.set(bh::field::cookie, "feuille_session=" + auth::random_token());
  EXPECT_FALSE(f.run([&]() { return f.module->identify(h); }));
  f.database.close();
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(f.run([&]() { return f.module->identify(h); }));
}

TEST(AuthModule, IdentifyHitsTheCacheWithoutTheDatabase) {
  Fixture f;
  auto id = f.user("alice");
  auto token = f.session_for(id);
  bh::request_header<> h;
  h.set(bh::field::cookie, "theme=dark; feuille_session=" + token);
  auto first = f.run([&]() { return f.module->identify(h); });
  ASSERT_TRUE(first);
  EXPECT_EQ(first->handle, "alice");
  // With the database gone, cached sessions still authenticate.
  f.database.close();
  auto again = f.run([&]() { return f.module->identify_shared(h); });
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, id);

  // The cost of a hit, for the record (not asserted: tests do not time).
  constexpr int n = 200'000;
  auto start = std::chrono::steady_clock::now();
  int found = f.run([&]() -> asio::awaitable<int> {
    int hits = 0;
    for (int i = 0; i < n; ++i)
      if (co_await f.module->identify_shared(h)) ++hits;
    co_return hits;
  });
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / n;
  EXPECT_EQ(found, n);
  std::printf("identify_shared cache hit: %.0f ns per call (%d calls)\n", ns, n);
  start = std::chrono::steady_clock::now();
  f.run([&]() -> asio::awaitable<int> {
    int hits = 0;
    for (int i = 0; i < n; ++i)
      if (co_await f.module->identify(h)) ++hits;
    co_return hits;
  });
  ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / n;
  std::printf("identify (copying) cache hit: %.0f ns per call\n", ns);
}

// Concurrent misses of one token share one database read: with the sessions
// table locked, 20 lookups of a token not yet cached hold one pooled
// connection between them (without sharing: both connections, 18 waiting).
TEST(SessionStore, ConcurrentMissesShareOneRead) {
  Fixture f;
  auto id = f.user("alice");
  auto token = f.session_for(id);
  auth::SessionStore store(f.database, Duration{3'600'000});
  pqxx::connection locker(f.tdb.url());
  pqxx::work lock(locker);
  lock.exec("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE");
  db::Database::Stats during;
  constexpr int n = 20;
  int found = f.run([&]() -> asio::awaitable<int> {
    auto ex = co_await asio::this_coro::executor;
    int found = 0, finished = 0;
    asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
    for (int i = 0; i < n; ++i)
      asio::co_spawn(
          ex,
          [&]() -> asio::awaitable<void> {
            auto s = co_await store.find(token);
            if (s && s->identity->id == id) ++found;
            if (++finished == n) all_done.cancel();
          },
          asio::detached);
    asio::steady_timer settle(ex, 500ms);  // every lookup has asked by then
    co_await settle.async_wait(asio::use_awaitable);
    during = f.database.stats();
    lock.abort();  // the table is free again: the one read answers everyone
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return found;
  });
  EXPECT_EQ(during.in_use, 1);
  EXPECT_EQ(during.waiting, 0);
  EXPECT_EQ(found, n);
  EXPECT_EQ(store.cached(), 1u);
}
