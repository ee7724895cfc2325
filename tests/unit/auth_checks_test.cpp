// The auth module's pure parts: tokens, cookies, the `next` check, origins,
// rate limits, OAuth states, URL encoding, handles.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <set>

#include "auth/authenticator.hpp"
#include "auth/oauth_states.hpp"
#include "auth/rate_limiter.hpp"
#include "auth/request_checks.hpp"
#include "auth/tokens.hpp"
#include "auth/workspace_origin.hpp"
#include "db/users.hpp"
#include "http/url.hpp"

using namespace feuille;
using namespace feuille::auth;
using ::testing::HasSubstr;
namespace bh = boost::beast::http;

TEST(AuthTokens, AreRandom43CharBase64Url) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto t = random_token();
    EXPECT_EQ(t.size(), 43u);
    EXPECT_TRUE(is_token(t)) << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token(std::string(43, '*')));
  EXPECT_FALSE(is_token(std::string(44, 'A')));
  EXPECT_FALSE(is_token(std::string(42, 'A') + "B"));  // padding bits set: not something we made
}

TEST(AuthTokens, HashIsSha256OfTheText) {
  // echo -n abc | sha256sum
  EXPECT_EQ(hex(hash_token("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(equal_hashes(hash_token("x"), hash_token("x")));
  EXPECT_FALSE(equal_hashes(hash_token("x"), hash_token("y")));
}

TEST(AuthCookies, FindsTheNamedCookieAcrossHeaders) {
  bh::fields h;
  h.insert(bh::field::cookie, "a=1; feuille_sessionx=no");
  h.insert(bh::field::cookie, " b=2 ;feuille_session=tok ; c=3");
  EXPECT_EQ(find_cookie(h, "feuille_session"), "tok");
  EXPECT_EQ(find_cookie(h, "a"), "1");
  EXPECT_EQ(find_cookie(h, "missing"), "");
  bh::fields quoted;
  quoted.insert(bh::field::cookie, "feuille_session=\"q\"");
  EXPECT_EQ(find_cookie(quoted, "feuille_session"), "q");
}

TEST(AuthCookies, ARepeatedNameIsNotBelieved) {
  // A workspace's script set feuille_ws with Domain= and Path=/u/: browsers
  // send it first, before the origin's own.
  bh::fields h;
  h.insert(bh::field::cookie, "feuille_ws=tossed; a=1");
  h.insert(bh::field::cookie, "feuille_ws=mine");
  EXPECT_EQ(find_cookie(h, "feuille_ws"), "");
  EXPECT_TRUE(cookie_repeated(h, "feuille_ws"));
  EXPECT_FALSE(cookie_repeated(h, "a"));
  EXPECT_EQ(find_cookie(h, "a"), "1");
}

TEST(AuthCookies, HttpsNamesCarryTheHostPrefix) {
  EXPECT_EQ(cookie_name("feuille_ws", true), "__Host-feuille_ws");
  EXPECT_EQ(cookie_name("feuille_ws", false), "feuille_ws");
}

TEST(AuthCookies, ATossedCookieIsClearedWhereverItCouldBe) {
  auto all = clear_cookie_everywhere("feuille_ws", "a1.ws.example.org:8080", "/u/a1/x?q=1", false);
  auto has = [&](const std::string& c) { return std::find(all.begin(), all.end(), c) != all.end(); };
  EXPECT_TRUE(has("feuille_ws=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
  EXPECT_TRUE(has("feuille_ws=; Path=/u/; Max-Age=0; HttpOnly; SameSite=Lax; Domain=ws.example.org"));
  EXPECT_TRUE(has("feuille_ws=; Path=/u; Max-Age=0; HttpOnly; SameSite=Lax; Domain=example.org"));
  EXPECT_TRUE(has("feuille_ws=; Path=/u/a1/x; Max-Age=0; HttpOnly; SameSite=Lax; Domain=a1.ws.example.org"));
  EXPECT_FALSE(has("feuille_ws=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Domain=org"));
  std::string deep = "/u/a1";
  for (int i = 0; i < 200; ++i) deep += "/d";
  EXPECT_LE(clear_cookie_everywhere("feuille_ws", "a1.ws.example.org", deep, false).size(), 64u);
}

TEST(AuthCookies, SetCookieAttributes) {
  EXPECT_EQ(set_cookie("feuille_session", "v", "/", 60, false),
            "feuille_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax");
  EXPECT_EQ(set_cookie("n", "", "/auth/callback", -5, true), "n=; Path=/auth/callback; Max-Age=0; HttpOnly; SameSite=Lax; Secure");
}

TEST(AuthCookies, BearerToken) {
  bh::fields h;
  h.set(bh::field::authorization, "Bearer  abc ");
  EXPECT_EQ(bearer_token(h), "abc");
  h.set(bh::field::authorization, "bearer xyz");
  EXPECT_EQ(bearer_token(h), "xyz");
  h.set(bh::field::authorization, "Basic eHl6");
  EXPECT_EQ(bearer_token(h), "");
}

TEST(AuthNext, AcceptsLocalPaths) {
  for (std::string ok : {"/", "/dashboard", "/u/123/?project=Scratch", "/join/abc-_", "/@h/p/page#frag",
                         "/a%20b", "/a/b/../c", "/u/x/?project=Caf%C3%A9"})
    EXPECT_EQ(safe_next(ok), ok) << ok;
}

TEST(AuthNext, RefusesEverythingElse) {
  for (std::string bad : {"", "dashboard", "//evil.example", "/\\evil.example", "\\\\evil", "https://evil.example",
                          "javascript:alert(1)", "http:/evil", "/%2F%2Fevil.example", "/%2fevil.example",
                          "%2F%2Fevil.example", "/%5Cevil.example", "/%5cevil", "/%252F%252Fevil.example",
                          "/%25252F%25252Fevil", "/%09/evil.example", "/\t/evil.example", "/ /evil", "/a\r\nSet-Cookie: x",
                          "/%0d%0aSet-Cookie:x", "/caf\xc3\xa9", "/a\\b", "/%zz", "/%00", "/\"onload"})
    EXPECT_FALSE(safe_next(bad).has_value()) << bad;
  EXPECT_FALSE(safe_next("/" + std::string(3000, 'a')).has_value());
}

TEST(AuthOrigin, MatchesThePublicOriginOnly) {
  EXPECT_TRUE(origin_matches("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
  EXPECT_TRUE(origin_matches("https://Feuille.Example.org", "https://feuille.example.org"));
  EXPECT_TRUE(origin_matches("https://feuille.example.org:443", "https://feuille.example.org"));
  EXPECT_TRUE(origin_matches("http://[::1]:8080", "http://[::1]:8080"));
  EXPECT_FALSE(origin_matches("http://feuille.example.org", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("https://feuille.example.org:8443", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("https://feuille.example.org.evil.example", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("https://evil.example", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("null", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("https://feuille.example.org/path", "https://feuille.example.org"));
  EXPECT_FALSE(origin_matches("https://user@feuille.example.org", "https://feuille.example.org"));
}

TEST(AuthRoles, ViewersOnlyRead) {
  EXPECT_TRUE(role_allows(Role::viewer, bh::verb::get));
  EXPECT_TRUE(role_allows(Role::viewer, bh::verb::head));
  for (auto m : {bh::verb::post, bh::verb::put, bh::verb::delete_, bh::verb::patch, bh::verb::options})
    EXPECT_FALSE(role_allows(Role::viewer, m));
  for (auto r : {Role::editor, Role::owner})
    for (auto m : {bh::verb::get, bh::verb::post, bh::verb::delete_}) EXPECT_TRUE(role_allows(r, m));
}

TEST(AuthUuid, ParsesCanonicalFormOnly) {
  auto u = parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950e");
  ASSERT_TRUE(u);
  EXPECT_EQ((*u)[0], 0x0f);
  EXPECT_EQ((*u)[15], 0x0e);
  EXPECT_TRUE(parse_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
  EXPECT_FALSE(parse_uuid("0f8fad5bd9cb469fa16570867728950e"));
  EXPECT_FALSE(parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
  EXPECT_FALSE(parse_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
  EXPECT_FALSE(parse_uuid("0f8fad5b-d9cb-469f-a165_70867728950e"));
}

TEST(AuthRateLimiter, BurstThenRefill) {
  RateLimiter limiter(3, 60);  // 3 at once, then one a second
  RateLimiter::Address a{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, b = a;  // IPv4
  b[15] = 2;
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  EXPECT_EQ(limiter.take(a, t0), 0u);
  EXPECT_EQ(limiter.take(a, t0), 0u);
  EXPECT_EQ(limiter.take(a, t0), 0u);
  EXPECT_EQ(limiter.take(a, t0), 1u);  // retry after 1 s
  EXPECT_EQ(limiter.take(b, t0), 0u);  // another address is not affected
  EXPECT_EQ(limiter.take(a, t0 + std::chrono::milliseconds(1100)), 0u);
  EXPECT_GE(limiter.take(a, t0 + std::chrono::milliseconds(1100)), 1u);
}

TEST(AuthRateLimiter, BoundedMemory) {
  RateLimiter limiter(2, 60, 10);
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 100; ++i) {
    RateLimiter::Address a{};
    a[15] = static_cast<std::uint8_t>(i);
    limiter.take(a, t0 + std::chrono::seconds(10 * i));  // each has refilled by the next
  }
  EXPECT_LE(limiter.size(), 10u);
}

TEST(AuthRateLimiter, IPv6IsKeyedByItsSlash64) {
  RateLimiter limiter(2, 60);
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  RateLimiter::Address a{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}, b = a, other = a;
  a[15] = 1;
  b[15] = 2;  // same /64
  b[9] = 7;
  other[7] = 2;  // another /64
  EXPECT_EQ(limiter.take(a, t0), 0u);
  EXPECT_EQ(limiter.take(b, t0), 0u);
  EXPECT_GE(limiter.take(a, t0), 1u);  // the /64's burst is spent
  EXPECT_EQ(limiter.take(other, t0), 0u);
  // IPv4 (mapped) addresses stay whole.
  RateLimiter::Address v4a{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, v4b = v4a;
  v4b[15] = 2;
  EXPECT_EQ(limiter.take(v4a, t0), 0u);
  EXPECT_EQ(limiter.take(v4a, t0), 0u);
  EXPECT_EQ(limiter.take(v4b, t0), 0u);
}

TEST(AuthRateLimiter, AFullTableSlowsOnlyNewcomers) {
  RateLimiter limiter(2, 60, 4);
  auto t0 = RateLimiter::Clock::time_point{} + std::chrono::hours(1);
  auto addr = [](int i) {
    RateLimiter::Address a{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0};
    a[15] = static_cast<std::uint8_t>(i);
    return a;
  };
  for (int i = 0; i < 4; ++i) EXPECT_EQ(limiter.take(addr(i), t0), 0u);  // the table is full of live buckets
  // Newcomers share the overflow bucket: 20 pass, then they wait.
  int passed = 0;
  for (int i = 10; i < 40; ++i) passed += limiter.take(addr(i), t0) == 0;
  EXPECT_EQ(passed, 20);
  EXPECT_EQ(limiter.take(addr(0), t0), 0u);  // a known address keeps its own bucket
  EXPECT_EQ(limiter.size(), 4u);
}

TEST(AuthStates, SingleUseAndExpireAfterTenMinutes) {
  OAuthStates states;
  auto t0 = OAuthStates::Clock::time_point{} + std::chrono::hours(1);
  auto browser = hash_token(random_token());
  auto s = states.add("github", "/next", browser, t0);
  ASSERT_TRUE(s);
  EXPECT_TRUE(is_token(*s));
  auto stranger = hash_token(random_token());
  EXPECT_FALSE(states.take(*s, stranger, t0));  // another browser: refused, and the state stays
  auto p = states.take(*s, browser, t0 + std::chrono::minutes(9));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->provider, "github");
  EXPECT_EQ(p->next, "/next");
  EXPECT_TRUE(equal_hashes(p->browser, browser));
  EXPECT_FALSE(states.take(*s, browser, t0 + std::chrono::minutes(9)));  // replay

  auto late = states.add("github", "/", browser, t0);
  EXPECT_FALSE(states.take(*late, browser, t0 + std::chrono::minutes(10)));
  EXPECT_EQ(states.size(), 0u);  // taken even when expired
  EXPECT_FALSE(states.take("not-a-state", browser, t0));
}

TEST(AuthStates, BoundedAndPrunesExpired) {
  OAuthStates states(3);
  auto t0 = OAuthStates::Clock::time_point{} + std::chrono::hours(1);
  auto b = hash_token("b");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(states.add("github", "/", b, t0));
  EXPECT_FALSE(states.add("github", "/", b, t0 + std::chrono::minutes(1)));
  EXPECT_TRUE(states.add("github", "/", b, t0 + std::chrono::minutes(11)));
  EXPECT_EQ(states.size(), 1u);
}

TEST(HttpUrl, PercentDecodeAndForms) {
  EXPECT_EQ(http::percent_decode("a%20b%2Fc"), "a b/c");
  EXPECT_EQ(http::percent_decode("a+b"), "a+b");
  EXPECT_EQ(http::percent_decode("a+b", true), "a b");
  EXPECT_FALSE(http::percent_decode("%"));
  EXPECT_FALSE(http::percent_decode("%4"));
  EXPECT_FALSE(http::percent_decode("%zz"));
  EXPECT_FALSE(http::percent_decode("a%00b"));
  EXPECT_EQ(http::url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
  EXPECT_EQ(http::form_value("x=1&next=%2Fdash+board&x=2", "next"), "/dash board");
  EXPECT_EQ(http::form_value("x=1&x=2", "x"), "1");
  EXPECT_FALSE(http::form_value("x=1", "y"));
  EXPECT_EQ(http::form_value("flag&y=", "y"), "");
  EXPECT_EQ(http::parse_form("a=%zz&b=2").size(), 1u);  // malformed pair skipped
}

TEST(Handles, ValidAndSuggested) {
  EXPECT_TRUE(db::valid_handle("octo-cat9"));
  EXPECT_FALSE(db::valid_handle(""));
  EXPECT_FALSE(db::valid_handle("a_b"));
  EXPECT_FALSE(db::valid_handle(std::string(40, 'a')));
  EXPECT_EQ(db::suggest_handle("jane.doe+feuille"), "jane-doe-feuille");
  EXPECT_EQ(db::suggest_handle("..__"), "user");
  EXPECT_EQ(db::suggest_handle("Zoë Ångström"), "Zo-ngstr-m");
  EXPECT_EQ(db::suggest_handle(std::string(60, 'x')).size(), 39u);
  EXPECT_TRUE(db::valid_handle(db::suggest_handle("a-" + std::string(37, '.') + "b")));
}

TEST(WorkspaceOrigin, BuildsAndRecognizesEachWorkspacesOrigin) {
  const std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  auth::WorkspaceOrigin dev("http://{id}.ws.localhost:8080");
  EXPECT_EQ(dev.origin(id), "http://" + id + ".ws.localhost:8080");
  EXPECT_FALSE(dev.secure());
  EXPECT_EQ(dev.id_of_host(id + ".ws.localhost:8080"), id);
  EXPECT_EQ(dev.id_of_host("0F8FAD5B-D9CB-469F-A165-70867728950E.WS.localhost:8080"), id);  // lowercased
  EXPECT_EQ(dev.id_of_host(id + ".ws.localhost:8081"), std::nullopt);  // another port: not this site
  EXPECT_EQ(dev.id_of_host(id + ".ws.localhost"), std::nullopt);
  EXPECT_EQ(dev.id_of_host("127.0.0.1:8080"), std::nullopt);
  EXPECT_EQ(dev.id_of_host("ws.localhost:8080"), std::nullopt);
  EXPECT_EQ(dev.id_of_host(id + ".ws.localhost.evil:8080"), std::nullopt);
  // Under the workspace domain but no workspace: "".
  EXPECT_EQ(dev.id_of_host("www.ws.localhost:8080"), "");
  EXPECT_EQ(dev.id_of_host("a." + id + ".ws.localhost:8080"), "");
  EXPECT_EQ(dev.id_of_host("0f8fad5b-d9cb-469f-a165-70867728950g.ws.localhost:8080"), "");

  auth::WorkspaceOrigin prod("https://{id}.ws.example.com");
  EXPECT_TRUE(prod.secure());
  EXPECT_EQ(prod.id_of_host(id + ".ws.example.com"), id);
  EXPECT_EQ(prod.id_of_host(id + ".ws.example.com:443"), id);
  EXPECT_EQ(prod.id_of_host(id + ".ws.example.com:8443"), std::nullopt);
  EXPECT_TRUE(prod.origin_matches("https://" + id + ".ws.example.com", id));
  EXPECT_TRUE(prod.origin_matches("https://" + id + ".ws.example.com:443", id));
  EXPECT_FALSE(prod.origin_matches("http://" + id + ".ws.example.com", id));
  EXPECT_FALSE(prod.origin_matches("https://" + id + ".ws.example.com", "11111111-d9cb-469f-a165-70867728950e"));
  EXPECT_FALSE(prod.origin_matches("https://ws.example.com", id));
  EXPECT_FALSE(prod.origin_matches("null", id));

  for (std::string bad : {"ftp://{id}.x.com", "https://x.com", "https://{id}.x.com/p", "https://a{id}.x.com",
                          "https://{id}", "https://{id}.{id}.x.com", "https://{id}.x.com:0", "https://{id}.x_y.com",
                          "https://u@{id}.x.com"})
    EXPECT_THROW(auth::WorkspaceOrigin{bad}, std::invalid_argument) << bad;
}
