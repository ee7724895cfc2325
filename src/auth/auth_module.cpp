#include "auth/auth_module.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include "auth/invites.hpp"
#include "auth/oauth.hpp"
#include "auth/oauth_states.hpp"
#include "auth/pages.hpp"
#include "auth/rate_limiter.hpp"
#include "auth/request_checks.hpp"
#include "auth/session_store.hpp"
#include "auth/tokens.hpp"
#include "auth/workspace_access.hpp"
#include "db/database.hpp"
#include "db/users.hpp"
#include "feuille/errors.hpp"
#include "http/page.hpp"
#include "http/responses.hpp"
#include "http/url.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::auth {
namespace {

namespace asio = boost::asio;
namespace bh = http::bh;
using nlohmann::json;
using http::Request;
using http::RequestContext;
using http::Response;
using Steady = std::chrono::steady_clock;

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// Sign-in routes per client address: a burst of 30, then 30 a minute.
constexpr double kLoginBurst = 30;
constexpr double kLoginPerMinute = 30;
constexpr auto kCleanupPeriod = std::chrono::hours(1);

json identity_json(const Identity& i) {
  auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"id", i.id},           {"handle", i.handle},
          {"name", or_null(i.name)}, {"email", or_null(i.email)},
          {"avatar_url", or_null(i.avatar_url)}, {"plan", i.plan}};
}

std::string query_value(const RequestContext& ctx, std::string_view name) {
  return http::form_value(ctx.query, name).value_or("");
}

// The invite token of a "/join/<token>" next path, or "".
std::string invite_in(std::string_view next) {
  constexpr std::string_view prefix = "/join/";
  if (next.substr(0, prefix.size()) != prefix) return "";
  std::string_view rest = next.substr(prefix.size());
  return std::string(rest.substr(0, rest.find_first_of("/?#")));
}

bool wants_json(const Request& req) {
  return req[bh::field::content_type].find("json") != std::string_view::npos ||
         (req[bh::field::accept].find("json") != std::string_view::npos &&
          req[bh::field::accept].find("text/html") == std::string_view::npos);
}

}  // namespace

struct AuthModule::Impl {
  Impl(AuthModule& self, app::ModuleContext& ctx)
      : self(self),
        executor(ctx.executor),
        config(ctx.config),
        db(ctx.db),
        workspace_origin(ctx.workspace_origin),
        sessions(ctx.db, ctx.config.session_ttl),
        access(ctx.db, ctx.config.workspace_ticket_lifetime),
        invites(ctx.db, ctx.pool, ctx.config, self),
        github(make_github(ctx.config, ctx.executor, ctx.config.oauth_timeout)),
        google(make_google(ctx.config, ctx.executor, ctx.config.oauth_timeout)),
        limiter(kLoginBurst, kLoginPerMinute),
        cleanup_timer(ctx.executor),
        log(logger("auth")),
        logins(prometheus::BuildCounter()
                   .Name("feuille_auth_logins_total")
                   .Help("Sign-in attempts by provider and outcome")
                   .Register(ctx.metrics.registry())) {}

  AuthModule& self;
  asio::any_io_executor executor;
  const Config& config;
  db::Database& db;
  const WorkspaceOrigin* workspace_origin;  // null: workspaces are served on public-url
  SessionStore sessions;
  WorkspaceAccess access;
  std::vector<RevocationListener> listeners;
  Invites invites;
  std::unique_ptr<OAuthProvider> github, google;
  OAuthStates states;
  RateLimiter limiter;
  DashboardSections dashboard;
  asio::steady_timer cleanup_timer;
  bool stopping = false;
  std::shared_ptr<spdlog::logger> log;
  prometheus::Family<prometheus::Counter>& logins;
  // public-url may be filled in after wiring (first bound address): the
  // normalized origin is computed on first use.
  mutable std::string origin_of, origin;

  bool secure() const { return config.public_url.rfind("https://", 0) == 0; }

  void count(std::string_view provider, std::string_view outcome) {
    logins.Add({{"provider", std::string(provider)}, {"outcome", std::string(outcome)}}).Increment();
  }

  std::string redirect_uri(const OAuthProvider& p) const {
    return config.public_url + "/auth/callback/" + std::string(p.name());
  }

  std::string session_cookie(std::string_view token, long long max_age) const {
    return set_cookie(self.session_cookie(), token, "/", max_age, secure());
  }

  long long ttl_seconds() const { return static_cast<long long>(config.session_ttl.count() / 1000); }

  // nullopt when the client may go ahead; else the 429 answer.
  std::optional<Response> rate_limited(const Request& req, const RequestContext& ctx, std::string_view provider) {
    unsigned wait = limiter.take(ctx.client_ip, Steady::now());
    if (wait == 0) return std::nullopt;
    count(provider, "rate_limited");
    log->debug("rid={} sign-in rate limit hit by {}", ctx.request_id, ctx.client);  // the access log has the 429
    std::string message = "Too many sign-in attempts from your address. Try again in " + std::to_string(wait) + " s.";
    Response r = wants_json(req) ? http::json_error(429, message) : page_response(429, "Too Many Requests", message);
    r.set(bh::field::retry_after, std::to_string(wait));
    return r;
  }

  Response error(const Request& req, unsigned status, std::string_view title, std::string_view message) {
    return wants_json(req) ? http::json_error(status, message) : page_response(status, title, message);
  }

  OAuthProvider* provider(std::string_view name) {
    if (name == "github") return github.get();
    if (name == "google") return google.get();
    return nullptr;
  }

  asio::awaitable<std::shared_ptr<const Identity>> identify(const bh::request_header<>& h) {
    std::string_view cookie = find_cookie(h, self.session_cookie());
    if (!cookie.empty()) {
      if (auto s = co_await sessions.find(cookie)) co_return std::move(s->identity);
    }
    std::string_view bearer = bearer_token(h);
    if (!bearer.empty()) {
      if (auto s = co_await sessions.find(bearer)) co_return std::move(s->identity);
    }
    co_return nullptr;
  }

  void tell(const Revocation& r) {
    for (const auto& l : listeners) l(r);
  }

  // The session token of a request on public-url (cookie, else Bearer).
  std::string_view session_token(const bh::request_header<>& h) const {
    std::string_view cookie = find_cookie(h, self.session_cookie());
    return cookie.empty() ? bearer_token(h) : cookie;
  }

  asio::awaitable<WorkspaceTickets::Minted> workspace_ticket(const bh::request_header<>& h, const std::string& owner,
                                                             std::string target) {
    std::string token(session_token(h));
    auto s = co_await sessions.find(token);
    if (!s) co_return WorkspaceTickets::Minted{WorkspaceTickets::Refusal::no_session, {}, 0};
    co_return access.issue(hash_token(token), s->identity->id, owner, std::move(target));
  }

  // GET /_feuille/enter?ticket= on a workspace origin: the ticket for its
  // cookie, then on to where the ticket was going.
  asio::awaitable<Response> enter(RequestContext& ctx) {
    const std::string& owner = ctx.workspace;
    std::string ticket = query_value(ctx, "ticket");
    auto entered = co_await access.redeem(ticket, owner);
    if (!entered) {
      log->info("rid={} workspace ticket refused (unknown, used, expired, for another workspace or its session ended)",
                ctx.request_id);
      std::string again = config.public_url + "/u/" + owner + "/";
      Response r = http::html_response(
          400, http::page("Link expired",
                          "<main><h1>This link has expired</h1><p>Links into a workspace work once, for a minute. "
                          "</p><p><a class=\"button\" href=\"" +
                              http::html_escape(again) + "\">Open the workspace again</a></p></main>"));
      r.set(bh::field::cache_control, "no-store");
      co_return r;
    }
    Response r = http::redirect(302, entered->target);
    r.insert(bh::field::set_cookie,
             set_cookie(self.workspace_cookie(), entered->cookie, "/", entered->max_age, workspace_origin->secure()));
    r.set(bh::field::cache_control, "no-store");
    co_return r;
  }

  bool same_origin(const bh::request_header<>& h) const {
    if (origin_of != config.public_url) {
      origin = normalize_origin(config.public_url);
      origin_of = config.public_url;
    }
    if (auto o = h.find(bh::field::origin); o != h.end()) return origin_matches(o->value(), origin);
    return h["Sec-Fetch-Site"] == "same-origin";
  }

  // Upserts the user and opens a session in one transaction; the redirect
  // to `next` with the cookie, or the 403 of a closed signup.
  asio::awaitable<Response> sign_in(const db::ExternalProfile& profile, const std::string& next, const Request& req,
                                    const RequestContext& ctx, std::string_view provider_name) {
    const std::string invite = invite_in(next);
    const std::string user_agent(req[bh::field::user_agent]);
    struct Result {
      db::User user;
      std::string token;
    };
    auto result = co_await db.run([&](pqxx::work& w) -> std::optional<Result> {
      bool may_create = config.signup == Signup::open || (!invite.empty() && Invites::is_live(w, invite));
      auto user = db::upsert_external_user(w, profile, may_create);
      if (!user) return std::nullopt;
      auto token = SessionStore::create(w, user->id, config.session_ttl, ctx.client, user_agent);
      return Result{std::move(*user), std::move(token)};
    });
    if (!result) {
      count(provider_name, "signup_closed");
      log->info("rid={} sign-in refused: signup is closed and {} is new", ctx.request_id, provider_name);
      co_return error(req, 403, "Sign-ups are closed",
                      "This Feuille server accepts new accounts only through an invite link. Ask someone who "
                      "uses it to send you one.");
    }
    count(provider_name, "ok");
    log->info("rid={} user {} (@{}) signed in with {}", ctx.request_id, result->user.id, result->user.handle,
              provider_name);
    Response r = http::redirect(302, next);
    r.insert(bh::field::set_cookie, session_cookie(result->token, ttl_seconds()));
    co_return r;
  }

  asio::awaitable<Response> begin_oauth(std::string_view name, Request& req, RequestContext& ctx) {
    OAuthProvider* p = provider(name);
    if (!p)
      co_return page_response(501, "Not Implemented", "Signing in with this provider is not configured on this server.");
    if (auto limited = rate_limited(req, ctx, name)) co_return std::move(*limited);
    std::string next = safe_next(query_value(ctx, "next")).value_or("/dashboard");
    std::string browser(find_cookie(req, kOAuthCookie));
    if (!is_token(browser)) browser = random_token();
    auto state = states.add(std::string(name), next, hash_token(browser), Steady::now());
    if (!state) {
      log->warn("rid={} too many sign-ins in progress", ctx.request_id);
      co_return page_response(503, "Service Unavailable", "Too many sign-ins are in progress. Try again in a minute.");
    }
    Response r = http::redirect(302, p->authorize_url(*state, redirect_uri(*p)));
    r.insert(bh::field::set_cookie, set_cookie(kOAuthCookie, browser, "/auth/callback",
                                               std::chrono::duration_cast<std::chrono::seconds>(OAuthStates::kLifetime).count(),
                                               secure()));
    co_return r;
  }

  asio::awaitable<Response> finish_oauth(std::string_view name, Request& req, RequestContext& ctx) {
    OAuthProvider* p = provider(name);
    if (!p)
      co_return page_response(501, "Not Implemented", "Signing in with this provider is not configured on this server.");
    if (auto limited = rate_limited(req, ctx, name)) co_return std::move(*limited);
    std::string_view browser = find_cookie(req, kOAuthCookie);
    std::optional<OAuthStates::Pending> pending;
    if (is_token(browser)) pending = states.take(query_value(ctx, "state"), hash_token(browser), Steady::now());
    if (!pending || pending->provider != name) {
      count(name, "bad_state");
      log->warn("rid={} {} callback with a missing, unknown, expired, reused or foreign state", ctx.request_id, name);
      co_return page_response(400, "Sign-in expired",
                              "This sign-in attempt is invalid, has expired or was already used. Please sign in again.");
    }
    if (!query_value(ctx, "error").empty()) {
      count(name, "denied");
      co_return page_response(400, "Sign-in cancelled",
                              std::string(p->title()) + " did not authorize the sign-in. You can try again from the "
                                                        "login page.");
    }
    std::string code = query_value(ctx, "code");
    if (code.empty() || code.size() > 2048) {
      count(name, "bad_state");
      co_return page_response(400, "Bad Request", "The sign-in answer carried no usable code. Please sign in again.");
    }
    std::optional<db::ExternalProfile> profile;
    unsigned status = 0;
    std::string message;
    try {
      std::string redirect = redirect_uri(*p);
      profile = co_await p->profile(std::move(code), std::move(redirect));
    } catch (const ProfileRefused& e) {
      status = 403;
      message = e.what();
    } catch (const ProviderError& e) {
      status = 502;
      message = e.what();
    }
    if (status == 403) {
      count(name, "refused");
      log->info("rid={} {} account refused: {}", ctx.request_id, name, message);
      co_return page_response(403, "Forbidden", message);
    }
    if (status == 502) {
      count(name, "provider_error");
      log->warn("rid={} {}", ctx.request_id, message);
      co_return page_response(502, "Bad Gateway",
                              std::string(p->title()) + " could not be reached or gave an answer we could not use. "
                                                        "Please try again in a moment.");
    }
    Response r = co_await sign_in(*profile, pending->next, req, ctx, name);
    if (r.result() == bh::status::found)
      r.insert(bh::field::set_cookie, set_cookie(kOAuthCookie, "", "/auth/callback", 0, secure()));
    co_return r;
  }

  asio::awaitable<Response> dev_login(Request& req, RequestContext& ctx) {
    if (auto limited = rate_limited(req, ctx, "dev")) co_return std::move(*limited);
    require_state_change(self, req);
    std::string handle, next;
    if (req[bh::field::content_type].find("json") != std::string_view::npos) {
      auto body = json::parse(req.body(), nullptr, false);
      if (body.is_object() && body.contains("handle") && body["handle"].is_string()) handle = body["handle"];
      if (body.is_object() && body.contains("next") && body["next"].is_string()) next = body["next"];
    } else {
      handle = http::form_value(req.body(), "handle").value_or("");
      next = http::form_value(req.body(), "next").value_or("");
    }
    if (!db::valid_handle(handle))
      co_return error(req, 400, "Bad Request", "A handle is 1 to 39 letters, digits or '-'.");
    db::ExternalProfile profile{db::ExternalProfile::Provider::dev, "", handle, "", "", ""};
    std::string target = safe_next(next).value_or("/dashboard");
    co_return co_await sign_in(profile, target, req, ctx, "dev");
  }

  asio::awaitable<Response> logout(Request& req, RequestContext& ctx) {
    require_state_change(self, req);
    std::string_view token = find_cookie(req, self.session_cookie());
    if (token.empty()) token = bearer_token(req);
    if (!token.empty()) {
      std::string copy(token);
      auto cookies = co_await sessions.remove(copy);
      access.forget(cookies);
      tell(Revocation{Revocation::credential, hash_token(copy), "", ""});  // tunnels opened with the session itself
      for (const auto& c : cookies) tell(Revocation{Revocation::credential, c, "", ""});
      log->info("rid={} signed out ({} workspace cookie(s) ended)", ctx.request_id, cookies.size());
    }
    Response r = http::redirect(302, "/login");
    r.insert(bh::field::set_cookie, session_cookie("", 0));
    co_return r;
  }

  asio::awaitable<Response> dashboard_view(Request& req, RequestContext& ctx) {
    std::string_view cookie = find_cookie(req, self.session_cookie());
    std::optional<SessionStore::Session> session;
    if (!cookie.empty()) session = co_await sessions.find(cookie);
    std::shared_ptr<const Identity> me;
    if (session) me = session->identity;
    else me = co_await identify(req);
    if (!me) co_return http::redirect(302, "/login?next=%2Fdashboard");
    ctx.user = me->id;
    std::string sections = co_await dashboard.render(*me, req);
    Response r = http::html_response(200, dashboard_page(*me, sections));
    if (session) {
      // Keep the browser's cookie as long-lived as the (sliding) session.
      auto left = std::chrono::duration_cast<std::chrono::seconds>(session->expires_at -
                                                                   std::chrono::system_clock::now());
      r.insert(bh::field::set_cookie, session_cookie(cookie, left.count()));
    }
    co_return r;
  }

  LoginOptions login_options(std::string next) const {
    LoginOptions o;
    if (github) o.providers.push_back({"github", "GitHub"});
    if (google) o.providers.push_back({"google", "Google"});
    o.dev_login = config.dev_login;
    o.signup_closed = config.signup == Signup::closed;
    o.next = next == "/dashboard" ? "" : std::move(next);
    return o;
  }

  void add_routes(http::Router& router, http::Router& workspace_router) {
    router.add({bh::verb::get}, "/", "auth", [this](Request& req, RequestContext&) -> asio::awaitable<Response> {
      auto me = co_await identify(req);
      co_return http::redirect(302, me ? "/dashboard" : "/login");
    });

    router.add({bh::verb::get}, "/login", "auth", [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
      std::string next = safe_next(query_value(ctx, "next")).value_or("/dashboard");
      auto me = co_await identify(req);
      if (me) co_return http::redirect(302, next);
      co_return http::html_response(200, login_page(login_options(next)));
    });

    for (std::string name : {"github", "google"}) {
      router.add({bh::verb::get}, "/auth/" + name, "auth",
                 [this, name](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
                   co_return co_await begin_oauth(name, req, ctx);
                 });
      router.add(
          {bh::verb::get}, "/auth/callback/" + name, "auth",
          [this, name](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
            co_return co_await finish_oauth(name, req, ctx);
          },
          true);  // the query holds a code and a state: log the pattern only
    }

    if (config.dev_login)
      router.add({bh::verb::post}, "/auth/dev", "auth", [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
        co_return co_await dev_login(req, ctx);
      });

    router.add({bh::verb::post}, "/auth/logout", "auth", [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
      co_return co_await logout(req, ctx);
    });

    router.add({bh::verb::get}, "/auth/validate", "auth",
               [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
                 auto me = co_await identify(req);
                 if (!me) co_return http::json_error(401, "Sign in first.");
                 ctx.user = me->id;
                 co_return http::json_response(200, json{{"user", identity_json(*me)}});
               });

    router.add({bh::verb::get}, "/api/me", "api", [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
      auto me = co_await identify(req);
      if (!me) co_return http::json_error(401, "Sign in first.");
      ctx.user = me->id;
      co_return http::json_response(200, identity_json(*me));
    });

    if (workspace_origin)
      workspace_router.add(
          {bh::verb::get}, "/_feuille/enter", "auth",
          [this](Request&, RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await enter(ctx); },
          true);  // the query holds the ticket

    router.add({bh::verb::get}, "/dashboard", "dashboard",
               [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
                 co_return co_await dashboard_view(req, ctx);
               });
  }

  asio::awaitable<void> cleanup_loop() {
    while (!stopping) {
      try {
        long n = co_await sessions.delete_expired();
        if (n > 0) log->info("deleted {} expired session(s)", n);
      } catch (const std::exception& e) {
        log->warn("expired session cleanup failed: {}", e.what());
      }
      if (stopping) co_return;  // stop() came while the query ran: its cancel found no wait
      cleanup_timer.expires_after(kCleanupPeriod);
      if (auto [ec] = co_await cleanup_timer.async_wait(tuple_awaitable); ec) co_return;
    }
  }
};

AuthModule::AuthModule(app::ModuleContext& ctx)
    : Authenticator(ctx.config.public_url.rfind("https://", 0) == 0,
                    ctx.workspace_origin && ctx.workspace_origin->secure()),
      impl_(std::make_unique<Impl>(*this, ctx)) {
  impl_->add_routes(ctx.router, ctx.workspace_router);
  impl_->invites.add_routes(ctx.router);
  impl_->invites.on_access_ended = [impl = impl_.get()](const std::string& member,
                                                         const std::string& owner) -> asio::awaitable<void> {
    co_await impl->access.revoke_member(member, owner);
    impl->tell(Revocation{Revocation::member, {}, member, owner});
  };
  impl_->invites.add_dashboard_section(impl_->dashboard);
  ctx.authenticator = this;
  ctx.dashboard = &impl_->dashboard;
  if (!impl_->github && !impl_->google && !ctx.config.dev_login)
    impl_->log->warn("no sign-in method is configured (github-client-id, google-client-id or dev-login)");
}

AuthModule::~AuthModule() = default;

asio::awaitable<void> AuthModule::start() {
  spawn(impl_->executor, impl_->cleanup_loop(), impl_->log, "session cleanup");
  co_return;
}

void AuthModule::stop() {
  impl_->stopping = true;
  impl_->cleanup_timer.cancel();
}

DashboardSections& AuthModule::dashboard() { return impl_->dashboard; }

asio::awaitable<std::optional<Identity>> AuthModule::identify(const bh::request_header<>& h) {
  auto me = co_await impl_->identify(h);
  if (!me) co_return std::nullopt;
  co_return *me;
}

asio::awaitable<std::shared_ptr<const Identity>> AuthModule::identify_shared(const bh::request_header<>& h) {
  co_return co_await impl_->identify(h);
}

bool AuthModule::same_origin(const bh::request_header<>& h) const { return impl_->same_origin(h); }

asio::awaitable<std::optional<Role>> AuthModule::workspace_role(const std::string& user_id, const std::string& owner_id) {
  co_return co_await impl_->invites.role(user_id, owner_id);
}

asio::awaitable<std::optional<WorkspaceCaller>> AuthModule::identify_workspace(const bh::request_header<>& h,
                                                                               const std::string& owner_id) {
  std::string_view cookie = find_cookie(h, workspace_cookie());
  if (cookie.empty()) co_return std::nullopt;
  auto e = co_await impl_->access.find(cookie);
  if (!e || e->owner_id != owner_id) co_return std::nullopt;
  co_return WorkspaceCaller{std::move(e->caller), e->cookie};
}

asio::awaitable<WorkspaceTickets::Minted> AuthModule::workspace_ticket(const bh::request_header<>& h,
                                                                        const std::string& owner_id,
                                                                        std::string target) {
  co_return co_await impl_->workspace_ticket(h, owner_id, std::move(target));
}

asio::awaitable<void> AuthModule::end_workspace(std::string owner_id) {
  co_await impl_->access.revoke_workspace(owner_id);
  impl_->tell(Revocation{Revocation::workspace, {}, "", owner_id});
}

void AuthModule::add_revocation_listener(RevocationListener l) { impl_->listeners.push_back(std::move(l)); }

}  // namespace feuille::auth
