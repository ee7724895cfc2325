#include "auth/oauth.hpp"

#include <nlohmann/json.hpp>

#include "http/url.hpp"

namespace feuille::auth {
namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using nlohmann::json;

// Provider text made safe to store and show: no control characters, at most
// `max` bytes, never a cut UTF-8 sequence.
std::string clean(std::string s, std::size_t max) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (s.size() > max) {
    s.resize(max);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
    if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
  }
  return s;
}

std::string text_field(const json& j, const char* key, std::size_t max) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return clean(it->get<std::string>(), max);
}

bool bool_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

// Avatars are shown in <img>: only https URLs are kept.
std::string avatar_field(const json& j, const char* key) {
  std::string url = text_field(j, key, 2048);
  return url.rfind("https://", 0) == 0 && url.find_first_of(" \"'<>") == std::string::npos ? url : "";
}

std::string with_query(std::string base, std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
  char sep = base.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : params) {
    base += sep;
    base += http::url_encode(k);
    base += '=';
    base += http::url_encode(v);
    sep = '&';
  }
  return base;
}

bool plain_http(std::initializer_list<const std::string*> urls) {
  for (const auto* u : urls)
    if (u->rfind("http://", 0) == 0) return true;
  return false;
}

http::ClientOptions client_options(Duration timeout, bool allow_plain_http) {
  http::ClientOptions o;
  o.timeout = timeout;
  o.max_response_bytes = 256 * 1024;  // profiles and tokens are small
  o.allow_plain_http = allow_plain_http;  // only URLs an operator wrote (defaults are https)
  return o;
}

// Base for both providers: one HTTP client, JSON calls with uniform errors.
class ProviderBase : public OAuthProvider {
 protected:
  ProviderBase(asio::any_io_executor ex, http::ClientOptions o) : client_(std::move(ex), std::move(o)) {}

  asio::awaitable<json> call(std::string what, http::ClientRequest req) {
    http::ClientResponse res;
    try {
      res = co_await client_.request(std::move(req));
    } catch (const http::ClientError& e) {
      throw ProviderError(what + ": " + e.what());
    }
    auto body = json::parse(res.body, nullptr, false);
    if (res.status != 200) {
      std::string detail;
      if (body.is_object()) detail = text_field(body, "error", 100);
      throw ProviderError(what + " answered HTTP " + std::to_string(res.status) + (detail.empty() ? "" : " (" + detail + ")"));
    }
    if (body.is_discarded()) throw ProviderError(what + " answered something that is not JSON");
    co_return body;
  }

  // Form POST of the code to the token endpoint; the access token.
  asio::awaitable<std::string> exchange(const std::string& token_url, std::string form) {
    http::ClientRequest req;
    req.method = bh::verb::post;
    req.url = token_url;
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
    req.body = std::move(form);
    std::string what = std::string(title()) + " token endpoint";
    json j = co_await call(std::move(what), std::move(req));
    if (!j.is_object()) throw ProviderError(std::string(title()) + " token endpoint answered an unexpected JSON value");
    if (auto err = text_field(j, "error", 100); !err.empty())
      throw ProviderError(std::string(title()) + " token endpoint refused the code: " + err);
    auto token = j.find("access_token");
    if (token == j.end() || !token->is_string() || token->get_ref<const std::string&>().empty() ||
        token->get_ref<const std::string&>().size() > 4096)
      throw ProviderError(std::string(title()) + " token endpoint answered without an access token");
    co_return token->get<std::string>();
  }

  asio::awaitable<json> get(std::string_view what, std::string url, const std::string& access_token,
                            std::string_view accept) {
    http::ClientRequest req;
    req.url = std::move(url);
    req.headers = {{"Authorization", "Bearer " + access_token}, {"Accept", std::string(accept)}};
    std::string label(what);
    co_return co_await call(std::move(label), std::move(req));
  }

  http::Client client_;
};

class GitHub final : public ProviderBase {
 public:
  GitHub(const Config& c, asio::any_io_executor ex, Duration timeout)
      : ProviderBase(std::move(ex), client_options(timeout, plain_http({&c.github_token_url, &c.github_api_url}))),
        c_(c) {}

  std::string_view name() const override { return "github"; }
  std::string_view title() const override { return "GitHub"; }

  std::string authorize_url(std::string_view state, std::string_view redirect_uri) const override {
    return with_query(c_.github_authorize_url, {{"client_id", c_.github_client_id},
                                                {"redirect_uri", redirect_uri},
                                                {"scope", "read:user user:email"},
                                                {"state", state}});
  }

  asio::awaitable<db::ExternalProfile> profile(std::string code, std::string redirect_uri) override {
    std::string form = "client_id=" + http::url_encode(c_.github_client_id) +
                       "&client_secret=" + http::url_encode(c_.github_client_secret) +
                       "&code=" + http::url_encode(code) + "&redirect_uri=" + http::url_encode(redirect_uri);
    std::string token = co_await exchange(c_.github_token_url, std::move(form));
    std::string api = c_.github_api_url;
    while (!api.empty() && api.back() == '/') api.pop_back();
    const std::string accept = "application/vnd.github+json";
    std::string user_url = api + "/user", emails_url = api + "/user/emails";
    json user = co_await get("GitHub /user", std::move(user_url), token, accept);
    json emails = co_await get("GitHub /user/emails", std::move(emails_url), token, accept);

    if (!user.is_object()) throw ProviderError("GitHub /user answered an unexpected JSON value");
    auto id = user.find("id");
    if (id == user.end() || !id->is_number_integer() || id->get<long long>() <= 0)
      throw ProviderError("GitHub /user answered without a numeric id");
    std::string login = text_field(user, "login", 100);
    if (!db::valid_handle(login)) throw ProviderError("GitHub /user answered an invalid login");
    if (!emails.is_array()) throw ProviderError("GitHub /user/emails answered an unexpected JSON value");

    db::ExternalProfile p;
    p.provider = db::ExternalProfile::Provider::github;
    p.external_id = std::to_string(id->get<long long>());
    p.handle = login;
    p.name = text_field(user, "name", 200);
    p.avatar_url = avatar_field(user, "avatar_url");
    for (const auto& e : emails) {
      if (!e.is_object()) continue;
      if (bool_field(e, "primary") && bool_field(e, "verified")) p.email = text_field(e, "email", 320);
    }
    co_return p;
  }

 private:
  const Config& c_;
};

class Google final : public ProviderBase {
 public:
  Google(const Config& c, asio::any_io_executor ex, Duration timeout)
      : ProviderBase(std::move(ex), client_options(timeout, plain_http({&c.google_token_url, &c.google_userinfo_url}))),
        c_(c) {}

  std::string_view name() const override { return "google"; }
  std::string_view title() const override { return "Google"; }

  std::string authorize_url(std::string_view state, std::string_view redirect_uri) const override {
    auto url = with_query(c_.google_authorize_url, {{"client_id", c_.google_client_id},
                                                    {"redirect_uri", redirect_uri},
                                                    {"response_type", "code"},
                                                    {"scope", "openid email profile"},
                                                    {"state", state}});
    // A hint for Google's account chooser only; the hd claim is what is checked.
    if (!c_.google_hosted_domain.empty()) url = with_query(std::move(url), {{"hd", c_.google_hosted_domain}});
    return url;
  }

  asio::awaitable<db::ExternalProfile> profile(std::string code, std::string redirect_uri) override {
    std::string form = "grant_type=authorization_code&code=" + http::url_encode(code) +
                       "&client_id=" + http::url_encode(c_.google_client_id) +
                       "&client_secret=" + http::url_encode(c_.google_client_secret) +
                       "&redirect_uri=" + http::url_encode(redirect_uri);
    std::string token = co_await exchange(c_.google_token_url, std::move(form));
    std::string url = c_.google_userinfo_url;
    json info = co_await get("Google userinfo", std::move(url), token, "application/json");
    if (!info.is_object()) throw ProviderError("Google userinfo answered an unexpected JSON value");
    std::string sub = text_field(info, "sub", 255);
    std::string email = text_field(info, "email", 320);
    if (sub.empty() || sub.find(' ') != std::string::npos) throw ProviderError("Google userinfo answered without a subject");
    auto verified = info.find("email_verified");
    bool is_verified = verified != info.end() && ((verified->is_boolean() && verified->get<bool>()) ||
                                                  (verified->is_string() && verified->get<std::string>() == "true"));
    if (email.empty() || !is_verified)
      throw ProfileRefused("Your Google account has no verified email address, so it cannot sign in here.");
    if (!c_.google_hosted_domain.empty()) {
      std::string hd = text_field(info, "hd", 255);
      auto lower = [](std::string s) {
        for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return s;
      };
      if (lower(hd) != lower(c_.google_hosted_domain))
        throw ProfileRefused("Only accounts of " + c_.google_hosted_domain + " may sign in here.");
    }
    db::ExternalProfile p;
    p.provider = db::ExternalProfile::Provider::google;
    p.external_id = sub;
    p.handle = db::suggest_handle(email.substr(0, email.find('@')));
    p.name = text_field(info, "name", 200);
    p.email = email;
    p.avatar_url = avatar_field(info, "picture");
    co_return p;
  }

 private:
  const Config& c_;
};

}  // namespace

std::unique_ptr<OAuthProvider> make_github(const Config& c, asio::any_io_executor ex, Duration timeout) {
  if (c.github_client_id.empty()) return nullptr;
  return std::make_unique<GitHub>(c, std::move(ex), timeout);
}

std::unique_ptr<OAuthProvider> make_google(const Config& c, asio::any_io_executor ex, Duration timeout) {
  if (c.google_client_id.empty()) return nullptr;
  return std::make_unique<Google>(c, std::move(ex), timeout);
}

}  // namespace feuille::auth
