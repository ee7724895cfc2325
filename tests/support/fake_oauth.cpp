#include "support/fake_oauth.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "http/url.hpp"

namespace feuille::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

void run_openssl(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  Process p(args, {}, dir);
  auto status = p.wait(std::chrono::seconds(30));
  if (status != 0) throw std::runtime_error("openssl " + args.at(1) + " failed: " + p.stderr_text());
}

// A key and a certificate for `name` (SANs) signed by ca (or self-signed CA when ca_key is empty).
void make_ca(const std::string& dir, const std::string& stem) {
  run_openssl(dir, {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    stem + ".key", "-out", stem + ".pem", "-days", "2", "-subj", "/CN=Feuille test " + stem,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
}

void make_leaf(const std::string& dir, const std::string& stem, const std::string& ca, const std::string& san) {
  {
    std::ofstream ext(dir + "/" + stem + ".ext");
    ext << "subjectAltName=" << san << "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
  }
  run_openssl(dir, {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                    stem + ".key", "-out", stem + ".csr", "-subj", "/CN=" + stem});
  run_openssl(dir, {"x509", "-req", "-in", stem + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                    "-CAcreateserial", "-out", stem + ".pem", "-days", "2", "-extfile", stem + ".ext"});
}

std::string random_hex(int bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    auto b = rng() & 0xff;
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

TestCerts::TestCerts() {
  const auto& d = dir.path();
  make_ca(d, "ca");
  make_ca(d, "other-ca");
  make_leaf(d, "good", "ca", "DNS:localhost,IP:127.0.0.1");
  make_leaf(d, "wrong", "ca", "DNS:wrong.example");
  make_leaf(d, "untrusted", "other-ca", "DNS:localhost,IP:127.0.0.1");
  ca_file = d + "/ca.pem";
  good_cert = d + "/good.pem";
  good_key = d + "/good.key";
  wrong_name_cert = d + "/wrong.pem";
  wrong_name_key = d + "/wrong.key";
  untrusted_cert = d + "/untrusted.pem";
  untrusted_key = d + "/untrusted.key";
}

struct FakeOAuth::Impl {
  // Declared first so that it outlives the connections the io_context
  // destroys last.
  std::unique_ptr<asio::ssl::context> tls;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  int port = 0;
  Tls mode = Tls::none;

  mutable std::mutex mu;
  FakeUser next_user;
  bool wrong_state = false;
  std::map<std::string, FakeUser> codes;   // unused codes
  std::map<std::string, FakeUser> tokens;  // access tokens
  std::map<Endpoint, std::pair<Fault, int>> faults;
  std::map<std::string, std::string> token_form;
  std::string user_agent;
  std::map<Endpoint, int> counts;

  std::string issue(const FakeUser& u) {
    std::lock_guard lock(mu);
    std::string code = "code-" + random_hex(10);
    codes[code] = u;
    return code;
  }

  using Res = bh::response<bh::string_body>;

  static Res make(unsigned status, std::string body, std::string type = "application/json") {
    Res r{static_cast<bh::status>(status), 11};
    r.set(bh::field::content_type, type);
    r.body() = std::move(body);
    return r;
  }

  // The answer, and how long to sit on it first (ms).
  std::pair<Res, int> handle(const bh::request<bh::string_body>& req) {
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    std::string query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
    std::lock_guard lock(mu);
    user_agent = std::string(req[bh::field::user_agent]);

    if (req.method() == bh::verb::get && (path == "/login/oauth/authorize" || path == "/o/oauth2/v2/auth")) {
      std::string redirect = http::form_value(query, "redirect_uri").value_or("");
      std::string state = http::form_value(query, "state").value_or("");
      if (redirect.empty()) return {make(400, "{\"error\":\"redirect_uri missing\"}"), 0};
      std::string code = "code-" + random_hex(10);
      codes[code] = next_user;
      if (wrong_state) state = "not-the-state-you-sent-" + random_hex(4);
      Res r = make(302, "", "text/plain");
      r.set(bh::field::location, redirect + (redirect.find('?') == std::string::npos ? "?" : "&") +
                                     "code=" + http::url_encode(code) + "&state=" + http::url_encode(state));
      return {r, 0};
    }

    Endpoint ep;
    if (req.method() == bh::verb::post && (path == "/login/oauth/access_token" || path == "/token")) ep = Endpoint::token;
    else if (req.method() == bh::verb::get && path == "/user") ep = Endpoint::user;
    else if (req.method() == bh::verb::get && path == "/user/emails") ep = Endpoint::emails;
    else if (req.method() == bh::verb::get && path == "/v1/userinfo") ep = Endpoint::userinfo;
    else return {make(404, "{\"message\":\"Not Found\"}"), 0};
    counts[ep]++;

    int delay = 0;
    if (auto f = faults.find(ep); f != faults.end()) {
      switch (f->second.first) {
        case Fault::none: break;
        case Fault::error_json:
          if (ep == Endpoint::token)
            return {make(200, R"({"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."})"), 0};
          return {make(200, R"({"message":"Requires authentication"})"), 0};
        case Fault::status_500: return {make(500, "Internal Server Error", "text/plain"), 0};
        case Fault::huge: return {make(200, "{\"padding\":\"" + std::string(3 << 20, 'x') + "\"}"), 0};
        case Fault::garbage: return {make(200, "<html><body>Unicorn!</body></html>", "text/html"), 0};
        case Fault::slow: delay = f->second.second; break;
      }
    }

    if (ep == Endpoint::token) {
      token_form.clear();
      for (auto& [k, v] : http::parse_form(req.body())) token_form[k] = v;
      bool github = path == "/login/oauth/access_token";
      std::string id = github ? kGitHubId : kGoogleId, secret = github ? kGitHubSecret : kGoogleSecret;
      auto code = codes.find(token_form["code"]);
      if (token_form["client_id"] != id || token_form["client_secret"] != secret || code == codes.end() ||
          (!github && token_form["grant_type"] != "authorization_code")) {
        if (github) return {make(200, R"({"error":"bad_verification_code"})"), delay};
        return {make(400, R"({"error":"invalid_grant"})"), delay};
      }
      std::string token = (github ? "gho_" : "ya29.") + random_hex(16);
      tokens[token] = code->second;
      codes.erase(code);  // codes are single use
      json body = github ? json{{"access_token", token}, {"token_type", "bearer"}, {"scope", "read:user,user:email"}}
                         : json{{"access_token", token}, {"token_type", "Bearer"}, {"expires_in", 3599},
                                {"id_token", "header.payload.signature"}, {"scope", "openid email profile"}};
      return {make(200, body.dump()), delay};
    }

    std::string auth(req[bh::field::authorization]);
    auto tok = auth.rfind("Bearer ", 0) == 0 ? tokens.find(auth.substr(7)) : tokens.end();
    if (tok == tokens.end()) return {make(401, R"({"message":"Bad credentials"})"), delay};
    const FakeUser& u = tok->second;
    if (ep == Endpoint::user) {
      json body{{"id", u.github_id}, {"login", u.login}, {"name", u.name.empty() ? json(nullptr) : json(u.name)},
                {"email", nullptr}, {"avatar_url", u.avatar_url}, {"type", "User"}};
      return {make(200, body.dump()), delay};
    }
    if (ep == Endpoint::emails) {
      json body = json::array({{{"email", "other-" + u.login + "@example.net"}, {"primary", false}, {"verified", true}},
                               {{"email", u.email}, {"primary", true}, {"verified", u.email_verified}}});
      return {make(200, body.dump()), delay};
    }
    json body{{"sub", u.sub}, {"email", u.email}, {"email_verified", u.email_verified}, {"name", u.name},
              {"picture", u.avatar_url}};
    if (!u.hd.empty()) body["hd"] = u.hd;
    return {make(200, body.dump()), delay};
  }

  template <class Stream>
  asio::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    bh::request<bh::string_body> req;
    auto [ec, n] = co_await bh::async_read(stream, buffer, req, tuple_awaitable);
    if (ec) co_return;
    auto [res, delay] = handle(req);
    if (delay > 0) {
      asio::steady_timer t(ioc, std::chrono::milliseconds(delay));
      co_await t.async_wait(tuple_awaitable);
    }
    res.keep_alive(false);
    res.prepare_payload();
    co_await bh::async_write(stream, res, tuple_awaitable);
  }

  asio::awaitable<void> session(tcp::socket socket) {
    if (!tls) {
      co_await serve(socket);
      beast::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, tuple_awaitable);
    if (ec) co_return;  // the client refused our certificate
    co_await serve(stream);
    co_await stream.async_shutdown(tuple_awaitable);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket s(ioc);
      auto [ec] = co_await acceptor.async_accept(s, tuple_awaitable);
      if (ec) co_return;
      asio::co_spawn(ioc, session(std::move(s)), asio::detached);
    }
  }
};

FakeOAuth::FakeOAuth(Tls tls, const TestCerts* certs) : impl_(std::make_unique<Impl>()) {
  impl_->mode = tls;
  if (tls != Tls::none) {
    if (!certs) throw std::invalid_argument("FakeOAuth: TLS needs TestCerts");
    impl_->tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    const std::string& cert = tls == Tls::good ? certs->good_cert
                              : tls == Tls::wrong_name ? certs->wrong_name_cert
                                                       : certs->untrusted_cert;
    const std::string& key = tls == Tls::good ? certs->good_key
                             : tls == Tls::wrong_name ? certs->wrong_name_key
                                                      : certs->untrusted_key;
    impl_->tls->use_certificate_chain_file(cert);
    impl_->tls->use_private_key_file(key, asio::ssl::context::pem);
  }
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

FakeOAuth::~FakeOAuth() {
  impl_->ioc.stop();
  impl_->thread.join();
}

int FakeOAuth::port() const { return impl_->port; }

std::string FakeOAuth::base_url() const {
  return (impl_->mode == Tls::none ? "http://127.0.0.1:" : "https://localhost:") + std::to_string(impl_->port);
}

std::vector<std::string> FakeOAuth::github_args() const {
  return {"--github-client-id", kGitHubId,
          "--github-client-secret", kGitHubSecret,
          "--github-authorize-url", base_url() + "/login/oauth/authorize",
          "--github-token-url", base_url() + "/login/oauth/access_token",
          "--github-api-url", base_url()};
}

std::vector<std::string> FakeOAuth::google_args() const {
  return {"--google-client-id", kGoogleId,
          "--google-client-secret", kGoogleSecret,
          "--google-authorize-url", base_url() + "/o/oauth2/v2/auth",
          "--google-token-url", base_url() + "/token",
          "--google-userinfo-url", base_url() + "/v1/userinfo"};
}

void FakeOAuth::set_user(const FakeUser& u) {
  std::lock_guard lock(impl_->mu);
  impl_->next_user = u;
}

std::string FakeOAuth::issue_code(const FakeUser& u) { return impl_->issue(u); }

void FakeOAuth::set_wrong_state(bool on) {
  std::lock_guard lock(impl_->mu);
  impl_->wrong_state = on;
}

void FakeOAuth::fail(Endpoint at, Fault f, int slow_ms) {
  std::lock_guard lock(impl_->mu);
  impl_->faults[at] = {f, slow_ms};
}

std::map<std::string, std::string> FakeOAuth::last_token_form() const {
  std::lock_guard lock(impl_->mu);
  return impl_->token_form;
}

std::string FakeOAuth::last_user_agent() const {
  std::lock_guard lock(impl_->mu);
  return impl_->user_agent;
}

int FakeOAuth::requests(Endpoint e) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->counts.find(e);
  return it == impl_->counts.end() ? 0 : it->second;
}

}  // namespace feuille::test
