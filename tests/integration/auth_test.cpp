// Sign-in, sessions, CSRF, signup and invites through the real feuilled
// binary, a real PostgreSQL and the fake OAuth provider (HTTP and HTTPS).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/tokens.hpp"
#include "http/url.hpp"
#include "support/daemon.hpp"
#include "support/fake_oauth.hpp"

using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using nlohmann::json;
using Endpoint = FakeOAuth::Endpoint;
using Fault = FakeOAuth::Fault;

namespace {

std::vector<std::string> args(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// The Set-Cookie line for `name` ("" when none).
std::string cookie_line(const HttpResponse& r, const std::string& name) {
  auto [it, end] = r.headers.equal_range("set-cookie");
  for (; it != end; ++it)
    if (it->second.rfind(name + "=", 0) == 0) return it->second;
  return "";
}

std::string cookie_value(const HttpResponse& r, const std::string& name) {
  auto line = cookie_line(r, name);
  if (line.empty()) return "";
  auto v = line.substr(name.size() + 1);
  return v.substr(0, v.find(';'));
}

std::string param(const std::string& url, const std::string& name) {
  auto q = url.find('?');
  if (q == std::string::npos) return "";
  return feuille::http::form_value(url.substr(q + 1), name).value_or("");
}

std::string origin(Daemon& d) { return "http://127.0.0.1:" + std::to_string(d.port()); }

long count(Daemon& d, const std::string& table) { return std::stol(d.db().scalar("SELECT count(*) FROM " + table)); }

// Every row of the tables that could hold a secret, as text.
std::string all_rows(Daemon& d) {
  std::string out;
  for (auto t : {"users", "sessions", "invites", "memberships"})
    out += d.db().scalar(std::string("SELECT coalesce(string_agg(t::text, ' '), '') FROM ") + t + " t") + "\n";
  return out;
}

std::string hex_of(const std::string& s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// One browser going through the OAuth dance with feuilled.
struct OAuthFlow {
  explicit OAuthFlow(Daemon& daemon, std::string provider = "github", std::map<std::string, std::string> headers = {})
      : daemon(&daemon), provider(std::move(provider)), headers(std::move(headers)) {}
  Daemon* daemon;
  std::string provider;
  std::map<std::string, std::string> headers;  // e.g. X-Forwarded-For
  std::string browser;  // the feuille_oauth cookie
  std::string state;
  std::string location;

  HttpResponse begin(const std::string& next = "") {
    std::string target = "/auth/" + provider;
    if (!next.empty()) target += "?next=" + feuille::http::url_encode(next);
    auto h = headers;
    if (!browser.empty()) h["Cookie"] = "feuille_oauth=" + browser;
    auto r = daemon->get(target, h);
    location = r.header("location");
    state = param(location, "state");
    if (auto b = cookie_value(r, "feuille_oauth"); !b.empty()) browser = b;
    return r;
  }

  HttpResponse finish(const std::string& code) { return callback("code=" + code + "&state=" + state); }

  HttpResponse callback(const std::string& query) {
    auto h = headers;
    if (!browser.empty()) h["Cookie"] = "feuille_oauth=" + browser;
    return daemon->get("/auth/callback/" + provider + "?" + query, h);
  }
};

// Signs in through GitHub; returns the session token ("" on failure).
std::string github_login(Daemon& d, FakeOAuth& fake, const FakeUser& u, const std::string& next = "") {
  OAuthFlow f{d};
  f.begin(next);
  auto r = f.finish(fake.issue_code(u));
  return cookie_value(r, "feuille_session");
}

HttpResponse dev_post(Daemon& d, const std::string& body, std::map<std::string, std::string> headers = {}) {
  headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  headers.emplace("Origin", origin(d));
  return d.request("POST", "/auth/dev", headers, body);
}

std::string dev_login(Daemon& d, const std::string& handle) {
  auto r = dev_post(d, "handle=" + handle);
  EXPECT_EQ(r.status, 302) << r.body;
  return cookie_value(r, "feuille_session");
}

std::map<std::string, std::string> session(const std::string& token) {
  return {{"Cookie", "feuille_session=" + token}};
}

// POST /join/{invite} as token's user, same-origin.
HttpResponse join(Daemon& d, const std::string& invite, const std::string& token) {
  auto h = session(token);
  h["Origin"] = origin(d);
  return d.request("POST", "/join/" + invite, h);
}

std::map<std::string, std::string> bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

json json_of(const HttpResponse& r) { return json::parse(r.body); }

void expect_page(const HttpResponse& r, int status, const std::string& text) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_THAT(r.header("content-type"), StartsWith("text/html"));
  EXPECT_THAT(r.body, AllOf(HasSubstr("<!doctype html>"), HasSubstr("/static/feuille."), HasSubstr(text)));
  EXPECT_THAT(r.header("content-security-policy"), HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(cookie_line(r, "feuille_session"), "");
}

}  // namespace

TEST(AuthGitHub, SignsInOverHttpsAndStoresOnlyHashes) {
  TestCerts certs;
  FakeOAuth fake(FakeOAuth::Tls::good, &certs);
  Daemon d(fake.github_args(), {{"SSL_CERT_FILE", certs.ca_file}});

  auto login = d.get("/login?next=%2Fdashboard%3Ftab%3Dx");
  EXPECT_EQ(login.status, 200);
  EXPECT_THAT(login.body, HasSubstr("href=\"/auth/github?next=%2Fdashboard%3Ftab%3Dx\""));
  EXPECT_THAT(login.body, Not(HasSubstr("/auth/google")));
  EXPECT_THAT(login.body, Not(HasSubstr("name=\"handle\"")));  // dev login is off
  EXPECT_EQ(d.request("POST", "/auth/dev", {{"Origin", origin(d)}}, "handle=x").status, 404);
  expect_page(d.get("/auth/google"), 501, "not configured");
  expect_page(d.get("/auth/callback/google?code=x&state=y"), 501, "not configured");

  OAuthFlow f{d};
  auto start = f.begin("/dashboard?tab=x");
  ASSERT_EQ(start.status, 302);
  EXPECT_THAT(f.location, StartsWith(fake.base_url() + "/login/oauth/authorize?"));
  EXPECT_EQ(param(f.location, "client_id"), FakeOAuth::kGitHubId);
  EXPECT_EQ(param(f.location, "redirect_uri"), origin(d) + "/auth/callback/github");
  EXPECT_EQ(param(f.location, "scope"), "read:user user:email");
  EXPECT_TRUE(feuille::auth::is_token(f.state)) << f.state;
  EXPECT_THAT(cookie_line(start, "feuille_oauth"),
              AllOf(HasSubstr("Path=/auth/callback"), HasSubstr("Max-Age=600"), HasSubstr("HttpOnly"),
                    HasSubstr("SameSite=Lax"), Not(HasSubstr("Secure"))));

  FakeUser u;
  auto done = f.finish(fake.issue_code(u));
  ASSERT_EQ(done.status, 302) << done.body;
  EXPECT_EQ(done.header("location"), "/dashboard?tab=x");
  std::string token = cookie_value(done, "feuille_session");
  ASSERT_TRUE(feuille::auth::is_token(token)) << token;
  EXPECT_THAT(cookie_line(done, "feuille_session"),
              AllOf(HasSubstr("Path=/"), HasSubstr("HttpOnly"), HasSubstr("SameSite=Lax"),
                    HasSubstr("Max-Age=2592000"), Not(HasSubstr("Secure"))));
  EXPECT_THAT(cookie_line(done, "feuille_oauth"), HasSubstr("Max-Age=0"));

  // What the provider saw: the code, our secret, the same redirect_uri, a User-Agent.
  auto form = fake.last_token_form();
  EXPECT_EQ(form["client_id"], FakeOAuth::kGitHubId);
  EXPECT_EQ(form["client_secret"], FakeOAuth::kGitHubSecret);
  EXPECT_EQ(form["redirect_uri"], origin(d) + "/auth/callback/github");
  EXPECT_THAT(fake.last_user_agent(), StartsWith("feuilled/"));

  // The database: the user, one session stored as SHA-256 only.
  auto users = d.db().query("SELECT github_id, handle, name, email, avatar_url, plan FROM users");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0][0].as<long long>(), 1001);
  EXPECT_EQ(users[0][1].as<std::string>(), "octocat");
  EXPECT_EQ(users[0][2].as<std::string>(), "The Octocat");
  EXPECT_EQ(users[0][3].as<std::string>(), "octocat@example.org");  // primary and verified
  EXPECT_EQ(users[0][4].as<std::string>(), u.avatar_url);
  EXPECT_EQ(users[0][5].as<std::string>(), "free");
  EXPECT_EQ(d.db().scalar("SELECT encode(token_hash, 'hex') FROM sessions"),
            feuille::auth::hex(feuille::auth::hash_token(token)));
  EXPECT_EQ(d.db().scalar("SELECT expires_at BETWEEN now() + interval '29.9 days' AND now() + interval '30.1 days' "
                          "FROM sessions"),
            "t");
  EXPECT_EQ(d.db().scalar("SELECT client FROM sessions"), "127.0.0.1");
  auto rows = all_rows(d);
  EXPECT_THAT(rows, Not(HasSubstr(token)));
  EXPECT_THAT(rows, Not(HasSubstr(hex_of(token))));

  // The session works by cookie and by Bearer token.
  auto v = d.get("/auth/validate", session(token));
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(json_of(v)["user"]["handle"], "octocat");
  EXPECT_EQ(json_of(v)["user"]["email"], "octocat@example.org");
  EXPECT_EQ(json_of(v)["user"]["plan"], "free");
  EXPECT_EQ(d.get("/auth/validate", bearer(token)).status, 200);
  EXPECT_EQ(d.get("/auth/validate").status, 401);
  EXPECT_EQ(d.get("/auth/validate", bearer(feuille::auth::random_token())).status, 401);
  EXPECT_EQ(d.get("/auth/validate", session("garbage")).status, 401);
  auto me = d.get("/api/me", session(token));
  ASSERT_EQ(me.status, 200);
  EXPECT_EQ(json_of(me)["id"], d.db().scalar("SELECT id FROM users"));
  EXPECT_EQ(json_of(me)["name"], "The Octocat");
  EXPECT_EQ(d.get("/api/me").status, 401);

  EXPECT_EQ(d.get("/", session(token)).header("location"), "/dashboard");
  EXPECT_EQ(d.get("/").header("location"), "/login");
  EXPECT_EQ(d.get("/login", session(token)).header("location"), "/dashboard");
  auto dash = d.get("/dashboard", session(token));
  EXPECT_EQ(dash.status, 200);
  EXPECT_THAT(dash.body, AllOf(HasSubstr("The Octocat"), HasSubstr("@octocat"), HasSubstr("action=\"/auth/logout\"")));
  EXPECT_THAT(dash.header("content-security-policy"), HasSubstr("default-src 'self'"));
  EXPECT_THAT(cookie_line(dash, "feuille_session"), HasSubstr("Max-Age=259"));  // refreshed to what is left
  EXPECT_EQ(d.get("/dashboard").header("location"), "/login?next=%2Fdashboard");

  // Next login: name, email and avatar refreshed; handle and identity kept.
  u.name = "<script>alert(1)</script>";
  u.email = "new@example.org";
  u.avatar_url = "https://avatars.example.org/u/1001?v=2";
  u.login = "octocat-renamed";
  std::string token2 = github_login(d, fake, u);
  ASSERT_FALSE(token2.empty());
  users = d.db().query("SELECT handle, name, email, avatar_url FROM users");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0][0].as<std::string>(), "octocat");
  EXPECT_EQ(users[0][1].as<std::string>(), u.name);
  EXPECT_EQ(users[0][2].as<std::string>(), "new@example.org");
  EXPECT_EQ(users[0][3].as<std::string>(), u.avatar_url);
  EXPECT_EQ(count(d, "sessions"), 2);
  dash = d.get("/dashboard", session(token2));
  EXPECT_THAT(dash.body, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(dash.body, Not(HasSubstr("<script>alert")));
}

TEST(AuthGitHub, StateMustBeValidBoundToTheBrowserAndUnused) {
  FakeOAuth fake;
  Daemon d(fake.github_args());
  FakeUser u;

  // The whole protocol over HTTP, through the provider's authorize endpoint.
  OAuthFlow ok{d};
  ok.begin("/somewhere");
  std::string path = ok.location.substr(fake.base_url().size());
  auto authorized = http_request(fake.port(), "GET", path);
  ASSERT_EQ(authorized.status, 302);
  std::string back = authorized.header("location");
  ASSERT_THAT(back, StartsWith(origin(d) + "/auth/callback/github?"));
  auto done = d.get(back.substr(origin(d).size()), {{"Cookie", "feuille_oauth=" + ok.browser}});
  ASSERT_EQ(done.status, 302) << done.body;
  EXPECT_EQ(done.header("location"), "/somewhere");
  // The same answer again (a replayed state): refused.
  expect_page(d.get(back.substr(origin(d).size()), {{"Cookie", "feuille_oauth=" + ok.browser}}), 400,
              "Sign-in expired");

  // Missing and unknown states.
  OAuthFlow f{d};
  f.begin();
  expect_page(f.callback("code=" + fake.issue_code(u)), 400, "Sign-in expired");
  expect_page(f.callback("code=" + fake.issue_code(u) + "&state=" + feuille::auth::random_token()), 400,
              "Sign-in expired");
  expect_page(f.callback("code=" + fake.issue_code(u) + "&state=%00%ff"), 400, "Sign-in expired");

  // The provider hands back another state than ours.
  fake.set_wrong_state(true);
  OAuthFlow wrong{d};
  wrong.begin();
  auto w = http_request(fake.port(), "GET", wrong.location.substr(fake.base_url().size()));
  expect_page(d.get(w.header("location").substr(origin(d).size()), {{"Cookie", "feuille_oauth=" + wrong.browser}}),
              400, "Sign-in expired");
  fake.set_wrong_state(false);

  // A state used from another browser (no cookie, or someone else's).
  OAuthFlow victim{d}, attacker{d};
  victim.begin();
  attacker.begin();
  OAuthFlow stolen = victim;
  stolen.browser = "";
  expect_page(stolen.finish(fake.issue_code(u)), 400, "Sign-in expired");
  victim.begin();
  stolen = victim;
  stolen.browser = attacker.browser;
  expect_page(stolen.finish(fake.issue_code(u)), 400, "Sign-in expired");
  // ...and someone else's attempt does not spend it (the binding is checked
  // first): the rightful browser still signs in, once.
  EXPECT_EQ(victim.finish(fake.issue_code(u)).status, 302);
  expect_page(victim.finish(fake.issue_code(u)), 400, "Sign-in expired");

  // The person refused at GitHub.
  OAuthFlow denied{d};
  denied.begin();
  expect_page(denied.callback("error=access_denied&state=" + denied.state), 400, "did not authorize");
  // No code.
  OAuthFlow nocode{d};
  nocode.begin();
  expect_page(nocode.callback("state=" + nocode.state), 400, "no usable code");

  // A browser's cookie serves several sign-ins in parallel (tabs).
  OAuthFlow tab{d};
  tab.begin();
  std::string first_state = tab.state;
  tab.begin();
  tab.state = first_state;
  EXPECT_EQ(tab.finish(fake.issue_code(u)).status, 302);

  EXPECT_EQ(count(d, "users"), 1);
  EXPECT_EQ(count(d, "sessions"), 3);  // the three successful sign-ins only
}

TEST(AuthGitHub, NextIsALocalPathOrTheDashboard) {
  FakeOAuth fake;
  Daemon d(fake.github_args());
  for (std::string bad : {"//evil.example/x", "/\\evil.example", "https://evil.example/", "/%2F%2Fevil.example",
                          "%2F%2Fevil.example", "/%5Cevil.example", "/%252F%252Fevil.example", "javascript:alert(1)",
                          "/%09/evil.example"}) {
    OAuthFlow f{d};
    f.begin(bad);
    auto r = f.finish(fake.issue_code(FakeUser{}));
    EXPECT_EQ(r.status, 302) << bad;
    EXPECT_EQ(r.header("location"), "/dashboard") << bad;
    auto login = d.get("/login?next=" + feuille::http::url_encode(bad));
    EXPECT_THAT(login.body, Not(HasSubstr("next="))) << bad;
  }
  OAuthFlow f{d};
  f.begin("/@octocat/notes/intro?x=1");
  EXPECT_EQ(f.finish(fake.issue_code(FakeUser{})).header("location"), "/@octocat/notes/intro?x=1");
}

TEST(AuthGitHub, ProviderFailuresAre502AndWriteNothing) {
  FakeOAuth fake;
  Daemon d(args(fake.github_args(), {"--oauth-timeout", "1s"}));
  struct Case {
    Endpoint at;
    Fault fault;
  };
  for (auto c : std::vector<Case>{{Endpoint::token, Fault::status_500},
                                  {Endpoint::token, Fault::error_json},
                                  {Endpoint::token, Fault::garbage},
                                  {Endpoint::token, Fault::huge},
                                  {Endpoint::token, Fault::slow},
                                  {Endpoint::user, Fault::status_500},
                                  {Endpoint::user, Fault::error_json},
                                  {Endpoint::user, Fault::garbage},
                                  {Endpoint::user, Fault::slow},
                                  {Endpoint::emails, Fault::status_500},
                                  {Endpoint::emails, Fault::huge},
                                  {Endpoint::emails, Fault::garbage}}) {
    SCOPED_TRACE(static_cast<int>(c.at) * 10 + static_cast<int>(c.fault));
    fake.fail(c.at, c.fault, 3000);
    OAuthFlow f{d};
    f.begin();
    auto r = f.finish(fake.issue_code(FakeUser{}));
    expect_page(r, 502, "could not be reached");
    fake.fail(c.at, Fault::none);
  }
  // A login that GitHub rejects (invalid characters) is garbage too.
  FakeUser odd;
  odd.login = "bad login!";
  OAuthFlow f{d};
  f.begin();
  expect_page(f.finish(fake.issue_code(odd)), 502, "could not be reached");
  // A code the provider does not know.
  OAuthFlow g{d};
  g.begin();
  expect_page(g.finish("not-a-code"), 502, "could not be reached");

  EXPECT_EQ(count(d, "users"), 0);
  EXPECT_EQ(count(d, "sessions"), 0);
  // The daemon logs why, without the code or any token. (Its output is read
  // by a thread: wait for the lines rather than read what arrived so far.)
  for (std::string why : {"timed out", "response too large", "HTTP 500"})
    EXPECT_TRUE(d.process().wait_for_stderr(why, 5s)) << why;
  auto log = d.process().stderr_text();
  EXPECT_THAT(log, Not(HasSubstr("gho_")));
  EXPECT_THAT(log, Not(HasSubstr("code-")));
  EXPECT_THAT(log, Not(HasSubstr(FakeOAuth::kGitHubSecret)));

  // Healthy again: sign-in works.
  EXPECT_FALSE(github_login(d, fake, FakeUser{}).empty());
}

TEST(AuthGitHub, RefusesWrongNameUntrustedAndUnreachableProviders) {
  TestCerts certs;
  for (auto tls : {FakeOAuth::Tls::wrong_name, FakeOAuth::Tls::untrusted}) {
    FakeOAuth fake(tls, &certs);
    Daemon d(fake.github_args(), {{"SSL_CERT_FILE", certs.ca_file}});
    OAuthFlow f{d};
    f.begin();
    expect_page(f.finish(fake.issue_code(FakeUser{})), 502, "could not be reached");
    EXPECT_EQ(fake.requests(Endpoint::token), 0);  // nothing was sent over the refused connection
    EXPECT_TRUE(d.process().wait_for_stderr("certificate verify failed", 5s)) << d.process().stderr_text();
    EXPECT_EQ(count(d, "users"), 0);
    EXPECT_EQ(count(d, "sessions"), 0);
  }
  // Nothing listening.
  std::vector<std::string> a{"--github-client-id", "id", "--github-client-secret", "s", "--github-token-url",
                             "http://127.0.0.1:9/token", "--github-api-url", "http://127.0.0.1:9"};
  Daemon d(a);
  OAuthFlow f{d};
  f.begin();
  expect_page(f.finish("code"), 502, "could not be reached");
  EXPECT_EQ(count(d, "sessions"), 0);
}

TEST(AuthGitHub, HandleCollisionsGetSuffixes) {
  FakeOAuth fake;
  Daemon d(args(fake.github_args(), {"--dev-login"}));
  ASSERT_FALSE(dev_login(d, "octocat").empty());
  FakeUser a;
  ASSERT_FALSE(github_login(d, fake, a).empty());
  FakeUser b;
  b.github_id = 2002;
  b.login = "OctoCat";
  ASSERT_FALSE(github_login(d, fake, b).empty());
  FakeUser c;
  c.github_id = 3003;
  c.login = "octocat-2";  // a real login that looks like a suffixed one
  ASSERT_FALSE(github_login(d, fake, c).empty());
  auto rows = d.db().query("SELECT coalesce(github_id, 0), handle FROM users ORDER BY created_at, handle");
  std::map<long long, std::string> handles;
  for (const auto& r : rows) handles[r[0].as<long long>()] = r[1].as<std::string>();
  EXPECT_EQ(handles[0], "octocat");
  EXPECT_EQ(handles[1001], "octocat-2");
  EXPECT_EQ(handles[2002], "OctoCat-3");
  EXPECT_EQ(handles[3003], "octocat-2-2");
}

TEST(AuthGitHub, TwentyConcurrentFirstLoginsMakeOneUser) {
  FakeOAuth fake;
  Daemon d(fake.github_args());
  constexpr int n = 20;
  std::vector<OAuthFlow> flows;
  for (int i = 0; i < n; ++i) {
    // Each from its own address, as seen through the trusted local proxy.
    flows.push_back(OAuthFlow{d, "github", {{"X-Forwarded-For", "198.51.100." + std::to_string(i + 1)}}});
    flows.back().begin();
  }
  std::vector<std::string> codes;
  for (int i = 0; i < n; ++i) codes.push_back(fake.issue_code(FakeUser{}));
  std::vector<int> statuses(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] { statuses[i] = flows[i].finish(codes[i]).status; });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(statuses[i], 302) << i;
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM users WHERE github_id = 1001"), "1");
  EXPECT_EQ(count(d, "users"), 1);
  EXPECT_EQ(count(d, "sessions"), n);
  EXPECT_EQ(d.db().scalar("SELECT handle FROM users"), "octocat");
}

TEST(AuthGoogle, SignsInVerifiedAccountsOfTheHostedDomainOnly) {
  TestCerts certs;
  FakeOAuth fake(FakeOAuth::Tls::good, &certs);
  Daemon d(args(fake.google_args(), {"--google-hosted-domain", "example.org"}), {{"SSL_CERT_FILE", certs.ca_file}});
  EXPECT_THAT(d.get("/login").body, HasSubstr("href=\"/auth/google\""));
  expect_page(d.get("/auth/github"), 501, "not configured");

  OAuthFlow f{d, "google"};
  auto start = f.begin();
  ASSERT_EQ(start.status, 302);
  EXPECT_THAT(f.location, StartsWith(fake.base_url() + "/o/oauth2/v2/auth?"));
  EXPECT_EQ(param(f.location, "client_id"), FakeOAuth::kGoogleId);
  EXPECT_EQ(param(f.location, "redirect_uri"), origin(d) + "/auth/callback/google");
  EXPECT_EQ(param(f.location, "response_type"), "code");
  EXPECT_EQ(param(f.location, "scope"), "openid email profile");
  EXPECT_EQ(param(f.location, "hd"), "example.org");

  FakeUser jane;
  jane.sub = "109876543210";
  jane.email = "jane.doe@example.org";
  jane.name = "Jane Doe";
  jane.hd = "example.org";
  auto done = f.finish(fake.issue_code(jane));
  ASSERT_EQ(done.status, 302) << done.body;
  EXPECT_EQ(done.header("location"), "/dashboard");
  EXPECT_EQ(fake.last_token_form()["grant_type"], "authorization_code");
  auto users = d.db().query("SELECT google_id, handle, email, name, github_id IS NULL FROM users");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0][0].as<std::string>(), "109876543210");
  EXPECT_EQ(users[0][1].as<std::string>(), "jane-doe");
  EXPECT_EQ(users[0][2].as<std::string>(), "jane.doe@example.org");
  EXPECT_TRUE(users[0][4].as<bool>());

  // The email's domain is not the hosted domain: only the hd claim counts.
  FakeUser personal = jane;
  personal.sub = "2";
  personal.hd = "";
  OAuthFlow p{d, "google"};
  p.begin();
  expect_page(p.finish(fake.issue_code(personal)), 403, "Only accounts of example.org");
  FakeUser other = jane;
  other.sub = "3";
  other.hd = "evil.example";
  OAuthFlow o{d, "google"};
  o.begin();
  expect_page(o.finish(fake.issue_code(other)), 403, "Only accounts of example.org");
  FakeUser unverified = jane;
  unverified.sub = "4";
  unverified.email_verified = false;
  OAuthFlow un{d, "google"};
  un.begin();
  expect_page(un.finish(fake.issue_code(unverified)), 403, "no verified email");

  fake.fail(Endpoint::userinfo, Fault::status_500);
  OAuthFlow down{d, "google"};
  down.begin();
  expect_page(down.finish(fake.issue_code(jane)), 502, "could not be reached");

  EXPECT_EQ(count(d, "users"), 1);
  EXPECT_EQ(count(d, "sessions"), 1);
}

TEST(AuthSessions, LogoutAndExpiryApplyAtOnceAndExpirySlides) {
  Daemon d({"--dev-login", "--session-ttl", "2h"});
  auto hash_of = [](const std::string& t) { return feuille::auth::hex(feuille::auth::hash_token(t)); };
  auto where = [&](const std::string& t) { return " WHERE token_hash = decode('" + hash_of(t) + "', 'hex')"; };

  std::string t1 = dev_login(d, "alice");
  ASSERT_FALSE(t1.empty());
  EXPECT_EQ(d.db().scalar("SELECT expires_at BETWEEN now() + interval '119 minutes' AND now() + interval '121 minutes' "
                          "FROM sessions" + where(t1)),
            "t");
  EXPECT_EQ(d.get("/auth/validate", session(t1)).status, 200);
  // The next lookups are served from memory: deleting the row behind
  // feuilled's back does not show for a while (no database round trip)...
  d.db().query("DELETE FROM sessions" + where(t1));
  EXPECT_EQ(d.get("/auth/validate", session(t1)).status, 200);

  // ...but a logout through feuilled applies at once.
  std::string t2 = dev_login(d, "alice");
  EXPECT_EQ(d.get("/auth/validate", session(t2)).status, 200);
  auto h = session(t2);
  h["Origin"] = origin(d);
  auto out = d.request("POST", "/auth/logout", h);
  EXPECT_EQ(out.status, 302);
  EXPECT_EQ(out.header("location"), "/login");
  EXPECT_THAT(cookie_line(out, "feuille_session"), HasSubstr("Max-Age=0"));
  EXPECT_EQ(d.get("/auth/validate", session(t2)).status, 401);
  EXPECT_EQ(d.get("/auth/validate", bearer(t2)).status, 401);
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM sessions" + where(t2)), "0");

  // Logout by Bearer token (API clients).
  std::string t5 = dev_login(d, "alice");
  EXPECT_EQ(d.request("POST", "/auth/logout", bearer(t5)).status, 302);
  EXPECT_EQ(d.get("/auth/validate", bearer(t5)).status, 401);

  // Expiry: once passed, the cached session is refused without asking the database.
  std::string t3 = dev_login(d, "alice");
  d.db().query("UPDATE sessions SET expires_at = now() + interval '2 seconds'" + where(t3));
  EXPECT_EQ(d.get("/auth/validate", session(t3)).status, 200);  // now cached, with that expiry
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(d.get("/auth/validate", session(t3)).status, 401);

  // Sliding: a session last refreshed over a day ago is extended on use.
  std::string t4 = dev_login(d, "alice");
  d.db().query("UPDATE sessions SET expires_at = now() + interval '10 minutes', refreshed_at = now() - interval '2 days'" +
               where(t4));
  EXPECT_EQ(d.get("/auth/validate", session(t4)).status, 200);
  EXPECT_EQ(d.db().scalar("SELECT expires_at > now() + interval '119 minutes' AND refreshed_at > now() - interval "
                          "'1 minute' FROM sessions" + where(t4)),
            "t");
}

TEST(AuthSessions, CookieIsSecureBehindHttps) {
  Daemon d({"--dev-login", "--public-url", "https://feuille.localhost"});
  auto r = dev_post(d, "handle=alice", {{"Origin", "https://feuille.localhost"}});
  ASSERT_EQ(r.status, 302) << r.body;
  // __Host-: browsers keep it host-only, Path=/ and Secure, so no other
  // origin (a workspace's script) can set it.
  EXPECT_THAT(cookie_line(r, "__Host-feuille_session"),
              AllOf(HasSubstr("Secure"), HasSubstr("HttpOnly"), HasSubstr("Path=/;"), Not(HasSubstr("Domain"))));
  EXPECT_EQ(cookie_line(r, "feuille_session"), "");
  // The prefixed name is the only one believed there.
  std::string token = cookie_line(r, "__Host-feuille_session");
  token = token.substr(token.find('=') + 1);
  token = token.substr(0, token.find(';'));
  EXPECT_EQ(d.get("/auth/validate", {{"Cookie", "__Host-feuille_session=" + token}}).status, 200);
  EXPECT_EQ(d.get("/auth/validate", {{"Cookie", "feuille_session=" + token}}).status, 401);
  // The origin that counts is the public one, not the listen address.
  EXPECT_EQ(dev_post(d, "handle=alice", {{"Origin", origin(d)}}).status, 403);
}

TEST(AuthCsrf, StateChangingRoutesReachedWithACookieNeedSameOrigin) {
  TempDir data;
  Daemon d({"--dev-login", "--data-dir", data.path(), "--workspace-origin", "http://{id}.ws.localhost:{port}"});
  std::string t = dev_login(d, "alice");
  std::string id = d.db().scalar("SELECT id FROM users");
  std::filesystem::create_directories(data.path() + "/" + id + "/Projects/Notes");

  auto with = [&](std::map<std::string, std::string> extra) {
    auto h = session(t);
    for (auto& [k, v] : extra) h[k] = v;
    return h;
  };
  for (auto headers : std::vector<std::map<std::string, std::string>>{
           {{"Origin", "https://evil.example"}},
           {{"Origin", "null"}},
           {},  // neither Origin nor Sec-Fetch-Site
           {{"Sec-Fetch-Site", "cross-site"}},
           {{"Sec-Fetch-Site", "same-site"}},
           {{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "same-origin"}}}) {
    EXPECT_EQ(d.request("POST", "/auth/logout", with(headers)).status, 403);
    auto inv = with(headers);
    inv["Content-Type"] = "application/json";
    EXPECT_EQ(d.request("POST", "/api/invites", inv, R"({"project":"Notes","role":"viewer"})").status, 403);
  }
  EXPECT_EQ(d.get("/auth/validate", session(t)).status, 200);  // still signed in
  EXPECT_EQ(count(d, "invites"), 0);
  // Login CSRF: a cross-site form cannot sign someone in either.
  EXPECT_EQ(dev_post(d, "handle=mallory", {{"Origin", "https://evil.example"}}).status, 403);
  EXPECT_EQ(d.db().scalar("SELECT count(*) FROM users WHERE handle = 'mallory'"), "0");

  // Same origin, by Origin or by Sec-Fetch-Site.
  auto inv = with({{"Sec-Fetch-Site", "same-origin"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(d.request("POST", "/api/invites", inv, R"({"project":"Notes","role":"viewer"})").status, 201);
  // A Bearer token alone (no cookie, no Origin) is not a browser: allowed.
  auto api = bearer(t);
  api["Content-Type"] = "application/json";
  EXPECT_EQ(d.request("POST", "/api/invites", api, R"({"project":"Notes","role":"viewer"})").status, 201);
  EXPECT_EQ(d.request("POST", "/auth/logout", with({{"Origin", origin(d)}})).status, 302);
  EXPECT_EQ(d.get("/auth/validate", session(t)).status, 401);
}

TEST(AuthDevLogin, SignsInByHandleFromTheLoginPage) {
  Daemon d({"--dev-login"});
  auto login = d.get("/login?next=%2Fjoin%2Fabc");
  EXPECT_THAT(login.body, AllOf(HasSubstr("action=\"/auth/dev\""), HasSubstr("name=\"handle\""),
                                HasSubstr("name=\"next\" value=\"/join/abc\"")));
  EXPECT_THAT(login.body, Not(HasSubstr("/auth/github")));

  auto r = dev_post(d, "handle=Alice-1");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("location"), "/dashboard");
  std::string t = cookie_value(r, "feuille_session");
  EXPECT_EQ(json_of(d.get("/api/me", session(t)))["handle"], "Alice-1");
  // JSON body, a next, and the same person again (case-insensitive handle).
  auto j = d.request("POST", "/auth/dev",
                     {{"Content-Type", "application/json"}, {"Origin", origin(d)}},
                     R"({"handle": "alice-1", "next": "/join/abc"})");
  EXPECT_EQ(j.status, 302);
  EXPECT_EQ(j.header("location"), "/join/abc");
  EXPECT_EQ(count(d, "users"), 1);
  EXPECT_EQ(dev_post(d, "handle=alice&next=%2F%2Fevil.example").header("location"), "/dashboard");

  for (std::string bad : std::vector<std::string>{"handle=", "handle=a+b", "handle=" + std::string(40, 'a'), "handle=%3Cscript%3E", "nothing"})
    EXPECT_EQ(dev_post(d, bad).status, 400) << bad;
  EXPECT_EQ(count(d, "users"), 2);
}

TEST(AuthSignup, ClosedAdmitsOnlyExistingUsersAndInvitees) {
  FakeOAuth fake;
  TempDir data;
  Daemon d(args(fake.github_args(), {"--dev-login", "--signup", "closed", "--data-dir", data.path(), "--workspace-origin", "http://{id}.ws.localhost:{port}"}));
  EXPECT_THAT(d.get("/login").body, HasSubstr("by invitation only"));
  d.db().query("INSERT INTO users (handle) VALUES ('owner')");
  std::string owner = dev_login(d, "owner");
  ASSERT_FALSE(owner.empty());
  expect_page(dev_post(d, "handle=stranger"), 403, "Sign-ups are closed");
  OAuthFlow f{d};
  f.begin();
  expect_page(f.finish(fake.issue_code(FakeUser{})), 403, "Sign-ups are closed");
  EXPECT_EQ(count(d, "users"), 1);
  EXPECT_EQ(count(d, "sessions"), 1);

  // An invite link lets its holder in.
  std::string owner_id = d.db().scalar("SELECT id FROM users");
  std::filesystem::create_directories(data.path() + "/" + owner_id + "/Projects/Paper");
  auto h = bearer(owner);
  h["Content-Type"] = "application/json";
  auto inv = d.request("POST", "/api/invites", h, R"({"project":"Paper","role":"editor"})");
  ASSERT_EQ(inv.status, 201) << inv.body;
  std::string invite = json_of(inv)["token"];
  auto to_join = d.get("/join/" + invite);
  EXPECT_EQ(to_join.header("location"), "/login?next=" + feuille::http::url_encode("/join/" + invite));
  OAuthFlow in{d};
  in.begin("/join/" + invite);
  auto joined = in.finish(fake.issue_code(FakeUser{}));
  ASSERT_EQ(joined.status, 302) << joined.body;
  EXPECT_EQ(joined.header("location"), "/join/" + invite);
  auto member = cookie_value(joined, "feuille_session");
  EXPECT_EQ(join(d, invite, member).header("location"), "/u/" + owner_id + "/?project=Paper");
  EXPECT_EQ(count(d, "memberships"), 1);

  // A revoked invite admits nobody new.
  EXPECT_EQ(d.request("DELETE", "/api/invites/" + invite, bearer(owner)).status, 204);
  FakeUser late;
  late.github_id = 4004;
  late.login = "late";
  OAuthFlow l{d};
  l.begin("/join/" + invite);
  expect_page(l.finish(fake.issue_code(late)), 403, "Sign-ups are closed");
  EXPECT_EQ(count(d, "users"), 2);
}

TEST(AuthInvites, CreateListJoinRevoke) {
  TempDir data;
  Daemon d({"--dev-login", "--data-dir", data.path(), "--workspace-origin", "http://{id}.ws.localhost:{port}"});
  std::string owner = dev_login(d, "owner"), member = dev_login(d, "member");
  std::string owner_id = d.db().scalar("SELECT id FROM users WHERE handle = 'owner'");
  std::string member_id = d.db().scalar("SELECT id FROM users WHERE handle = 'member'");
  std::filesystem::create_directories(data.path() + "/" + owner_id + "/Projects/My Project");
  std::filesystem::create_directories(data.path() + "/" + owner_id + "/Projects/Other");
  std::filesystem::create_directories(data.path() + "/" + member_id + "/Projects/Theirs");

  auto post = [&](const std::string& token, const std::string& body) {
    auto h = bearer(token);
    h["Content-Type"] = "application/json";
    return d.request("POST", "/api/invites", h, body);
  };
  auto created = post(owner, R"({"project":"My Project","role":"editor"})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto c = json_of(created);
  std::string token = c["token"];
  EXPECT_TRUE(feuille::auth::is_token(token));
  EXPECT_EQ(c["url"], origin(d) + "/join/" + token);
  EXPECT_EQ(c["project"], "My Project");
  EXPECT_EQ(c["role"], "editor");
  EXPECT_EQ(d.db().scalar("SELECT encode(token_hash, 'hex') FROM invites"),
            feuille::auth::hex(feuille::auth::hash_token(token)));
  EXPECT_THAT(all_rows(d), Not(HasSubstr(token)));

  EXPECT_EQ(post(owner, R"({"project":"My Project","role":"admin"})").status, 400);
  EXPECT_EQ(post(owner, R"({"project":"Nope","role":"viewer"})").status, 404);
  EXPECT_EQ(post(owner, R"({"project":"Theirs","role":"viewer"})").status, 404);  // someone else's
  EXPECT_EQ(post(owner, R"({"project":"../)" + member_id + R"(/Projects/Theirs","role":"viewer"})").status, 400);
  EXPECT_EQ(post(owner, R"({"project":"..","role":"viewer"})").status, 400);
  EXPECT_EQ(post(owner, R"({"project":"","role":"viewer"})").status, 400);
  EXPECT_EQ(post(owner, R"(not json)").status, 400);
  EXPECT_EQ(post(owner, R"({"project":1,"role":"viewer"})").status, 400);
  EXPECT_EQ(post("", R"({"project":"Other","role":"viewer"})").status, 401);
  auto other = post(owner, R"({"project":"Other","role":"viewer"})");
  ASSERT_EQ(other.status, 201);
  EXPECT_EQ(count(d, "invites"), 2);

  auto list = d.get("/api/invites", bearer(owner));
  ASSERT_EQ(list.status, 200);
  auto items = json_of(list)["invites"];
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].contains("token"));
  EXPECT_EQ(json_of(d.get("/api/invites", bearer(member)))["invites"].size(), 0u);

  // Joining: GET shows what the link gives and changes nothing; POST joins.
  EXPECT_EQ(d.get("/join/" + token).header("location"), "/login?next=%2Fjoin%2F" + token);
  for (int i = 0; i < 2; ++i) {
    auto offer = d.get("/join/" + token, session(member));
    EXPECT_EQ(offer.status, 200);
    EXPECT_THAT(offer.body, AllOf(HasSubstr("@owner"), HasSubstr("My Project"), HasSubstr("editor"),
                                  HasSubstr("method=\"post\" action=\"/join/" + token + "\"")));
  }
  EXPECT_EQ(count(d, "memberships"), 0);
  EXPECT_EQ(d.request("POST", "/join/" + token, session(member)).status, 403);  // a cross-site form cannot
  EXPECT_EQ(count(d, "memberships"), 0);
  auto joined = join(d, token, member);
  EXPECT_EQ(joined.status, 303);
  EXPECT_EQ(joined.header("location"), "/u/" + owner_id + "/?project=My%20Project");
  EXPECT_EQ(d.db().scalar("SELECT owner_id || ' ' || member_id || ' ' || project || ' ' || role FROM memberships"),
            owner_id + " " + member_id + " My Project editor");
  EXPECT_EQ(join(d, token, member).status, 303);  // again: harmless
  auto own = join(d, token, owner);
  EXPECT_EQ(own.header("location"), "/u/" + owner_id + "/?project=My%20Project");
  EXPECT_EQ(count(d, "memberships"), 1);
  // The viewer link does not weaken the editor membership of another project.
  EXPECT_EQ(join(d, json_of(other)["token"], member).status, 303);
  EXPECT_EQ(d.db().scalar("SELECT string_agg(project || ':' || role, ',' ORDER BY project) FROM memberships"),
            "My Project:editor,Other:viewer");

  auto members = json_of(d.get("/api/members", bearer(owner)))["members"];
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0]["user"]["handle"], "member");
  auto shared = json_of(d.get("/api/memberships", bearer(member)))["memberships"];
  ASSERT_EQ(shared.size(), 2u);
  EXPECT_EQ(shared[0]["owner"]["handle"], "owner");
  EXPECT_EQ(shared[0]["url"], "/u/" + owner_id + "/?project=My%20Project");

  // The dashboard shows sharing, and its form creates links without JavaScript.
  auto dash = d.get("/dashboard", session(owner));
  EXPECT_THAT(dash.body, AllOf(HasSubstr("data-section=\"sharing\""), HasSubstr("action=\"/dashboard/invites\""),
                               HasSubstr("My Project"), HasSubstr("@member")));
  EXPECT_THAT(d.get("/dashboard", session(member)).body, HasSubstr("Shared with you"));
  auto form = session(owner);
  form["Origin"] = origin(d);
  form["Content-Type"] = "application/x-www-form-urlencoded";
  auto made = d.request("POST", "/dashboard/invites", form, "project=Other&role=editor");
  EXPECT_EQ(made.status, 201);
  EXPECT_THAT(made.body, HasSubstr(origin(d) + "/join/"));
  expect_page(d.request("POST", "/dashboard/invites", form, "project=Missing&role=editor"), 404, "no project named");

  // Removing a member, then joining again.
  EXPECT_EQ(d.request("DELETE", "/api/members/" + member_id, bearer(member)).status, 404);
  EXPECT_EQ(d.request("DELETE", "/api/members/" + member_id, bearer(owner)).status, 204);
  EXPECT_EQ(count(d, "memberships"), 0);
  EXPECT_EQ(d.request("DELETE", "/api/members/" + member_id, bearer(owner)).status, 404);
  ASSERT_EQ(join(d, token, member).status, 303);
  ASSERT_EQ(join(d, json_of(other)["token"], member).status, 303);

  // Revoking: by token, then by id; only the owner can. What an invite gave
  // ends with it.
  EXPECT_EQ(d.request("DELETE", "/api/invites/" + token, bearer(member)).status, 404);
  EXPECT_EQ(d.request("DELETE", "/api/invites/" + token, bearer(owner)).status, 204);
  EXPECT_EQ(d.db().scalar("SELECT string_agg(project, ',') FROM memberships"), "Other");
  EXPECT_EQ(d.request("DELETE", "/api/invites/" + token, bearer(owner)).status, 404);
  std::string other_id = json_of(other)["id"];
  EXPECT_EQ(d.request("DELETE", "/api/invites/" + other_id, bearer(owner)).status, 204);
  EXPECT_EQ(count(d, "memberships"), 0);
  expect_page(d.get("/join/" + token, session(member)), 404, "unknown or was revoked");
  EXPECT_EQ(join(d, token, member).status, 404);
  expect_page(d.get("/join/" + feuille::auth::random_token(), session(member)), 404, "unknown or was revoked");
  expect_page(d.get("/join/%3Cjunk%3E", session(member)), 404, "unknown or was revoked");
  EXPECT_EQ(json_of(d.get("/api/invites", bearer(owner)))["invites"].size(), 1u);  // the dashboard's one
  // The daemon never logs an invite token (the path is redacted).
  EXPECT_THAT(d.process().stderr_text(), Not(HasSubstr(token)));
}

// Without workspace-origin a shared workspace would run its owner's content
// on feuilled's origin, with the member's session: sharing is refused.
TEST(AuthInvites, RefusedWithoutAWorkspaceOrigin) {
  TempDir data;
  Daemon d({"--dev-login", "--data-dir", data.path()});
  std::string owner = dev_login(d, "owner");
  std::string owner_id = d.db().scalar("SELECT id FROM users WHERE handle = 'owner'");
  std::filesystem::create_directories(data.path() + "/" + owner_id + "/Projects/Notes");
  auto h = bearer(owner);
  h["Content-Type"] = "application/json";
  auto r = d.request("POST", "/api/invites", h, R"({"project":"Notes","role":"viewer"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_THAT(json_of(r)["error"].get<std::string>(), HasSubstr("workspace-origin"));
  EXPECT_EQ(count(d, "invites"), 0);
}

TEST(AuthRateLimit, SignInRoutesArePerClientAddressBehindTrustedProxies) {
  FakeOAuth fake;
  Daemon d(fake.github_args());
  auto from = [](const std::string& xff) { return std::map<std::string, std::string>{{"X-Forwarded-For", xff}}; };
  int ok = 0, limited = 0;
  HttpResponse last;
  for (int i = 0; i < 40; ++i) {
    auto r = d.get("/auth/github", from("203.0.113.9"));
    if (r.status == 302) ++ok;
    if (r.status == 429) {
      ++limited;
      last = r;
    }
  }
  EXPECT_GE(ok, 30);  // the burst (plus what refilled meanwhile: 1 per 2 s)
  EXPECT_LE(ok, 35);
  EXPECT_EQ(ok + limited, 40);
  EXPECT_GE(std::stoi(last.header("retry-after")), 1);
  expect_page(last, 429, "Too many sign-in attempts");
  // Until the bucket refills, each of these is refused: the callback counts
  // too, and a forged leftmost entry changes nothing (the client is the
  // rightmost address not in trusted-proxies).
  auto drain = [&] {
    for (int i = 0; i < 50 && d.get("/auth/github", from("203.0.113.9")).status != 429; ++i) {
    }
  };
  drain();
  EXPECT_EQ(d.get("/auth/callback/github?code=x&state=y", from("203.0.113.9")).status, 429);
  drain();
  EXPECT_EQ(d.get("/auth/github", from("1.2.3.4, 203.0.113.9")).status, 429);
  drain();
  EXPECT_EQ(d.get("/auth/github", from("203.0.113.9, 127.0.0.1")).status, 429);
  // Someone else is not affected; the login page itself is not limited.
  EXPECT_EQ(d.get("/auth/github", from("203.0.113.10")).status, 302);
  EXPECT_EQ(d.get("/login", from("203.0.113.9")).status, 200);
}
