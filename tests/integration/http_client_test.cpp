// http::Client against the fake OAuth provider on 127.0.0.1: TLS checks,
// plain http only when allowed, the deadline, the size cap, the User-Agent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>

#include "http/client.hpp"
#include "support/fake_oauth.hpp"
#include "support/run_coro.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Kind = http::ClientError::Kind;

namespace {

struct Loop {
  boost::asio::io_context ioc{1};
  // The client reads SSL_CERT_FILE when it is built.
  std::unique_ptr<http::Client> client(http::ClientOptions o = {}) {
    return std::make_unique<http::Client>(ioc.get_executor(), std::move(o));
  }
  http::ClientResponse get(http::Client& c, const std::string& url) {
    return run_coro(ioc, [&]() { return c.request(http::ClientRequest{boost::beast::http::verb::get, url, {}, ""}); },
                    30s);
  }
  // The kind of ClientError the request fails with.
  std::optional<Kind> failure(http::Client& c, const std::string& url) {
    try {
      get(c, url);
    } catch (const http::ClientError& e) {
      return e.kind;
    }
    return std::nullopt;
  }
};

struct CertEnv {
  explicit CertEnv(const std::string& file) { setenv("SSL_CERT_FILE", file.c_str(), 1); }
  ~CertEnv() { unsetenv("SSL_CERT_FILE"); }
};

}  // namespace

TEST(HttpClient, VerifiesCertificatesAgainstTheTrustStoreAndTheName) {
  TestCerts certs;
  CertEnv env(certs.ca_file);
  Loop loop;
  auto c = loop.client();
  FakeOAuth good(FakeOAuth::Tls::good, &certs);
  // By name (SNI + name check) and by IP address (IP SAN).
  for (auto url : {good.base_url() + "/nothing", "https://127.0.0.1:" + std::to_string(good.port()) + "/nothing"}) {
    auto r = loop.get(*c, url);
    EXPECT_EQ(r.status, 404) << url;
    EXPECT_THAT(r.body, HasSubstr("Not Found"));
  }
  EXPECT_THAT(good.last_user_agent(), StartsWith("feuilled/"));

  FakeOAuth wrong(FakeOAuth::Tls::wrong_name, &certs);
  EXPECT_EQ(loop.failure(*c, wrong.base_url() + "/"), Kind::tls);
  EXPECT_EQ(loop.failure(*c, "https://127.0.0.1:" + std::to_string(wrong.port()) + "/"), Kind::tls);
  FakeOAuth untrusted(FakeOAuth::Tls::untrusted, &certs);
  EXPECT_EQ(loop.failure(*c, untrusted.base_url() + "/"), Kind::tls);
  // TLS spoken to a plain HTTP server.
  FakeOAuth plain;
  EXPECT_EQ(loop.failure(*c, "https://127.0.0.1:" + std::to_string(plain.port()) + "/"), Kind::tls);
}

TEST(HttpClient, PlainHttpOnlyWhenAllowed) {
  Loop loop;
  FakeOAuth plain;
  auto strict = loop.client();
  EXPECT_EQ(loop.failure(*strict, plain.base_url() + "/x"), Kind::refused_scheme);
  http::ClientOptions o;
  o.allow_plain_http = true;
  auto lax = loop.client(o);
  EXPECT_EQ(loop.get(*lax, plain.base_url() + "/x").status, 404);
  EXPECT_EQ(loop.failure(*lax, "ftp://127.0.0.1/x"), Kind::bad_url);
  EXPECT_EQ(loop.failure(*lax, "http://user:pw@127.0.0.1/x"), Kind::bad_url);
  EXPECT_EQ(loop.failure(*lax, "not a url"), Kind::bad_url);
  EXPECT_EQ(loop.failure(*lax, "http://127.0.0.1:9/x"), Kind::connect);  // nothing listens on discard
}

TEST(HttpClient, OneDeadlineAndASizeCap) {
  Loop loop;
  FakeOAuth fake;
  FakeUser u;
  http::ClientOptions o;
  o.allow_plain_http = true;
  o.timeout = 500ms;
  o.max_response_bytes = 64 * 1024;
  auto c = loop.client(o);
  auto token_url = fake.base_url() + "/login/oauth/access_token";
  auto post = [&] {
    http::ClientRequest req{boost::beast::http::verb::post, token_url, {{"Content-Type", "application/x-www-form-urlencoded"}}, "code=x"};
    return run_coro(loop.ioc, [&]() { return c->request(req); }, 30s);
  };
  EXPECT_EQ(post().status, 200);  // an error JSON, GitHub-style, but an answer
  fake.fail(FakeOAuth::Endpoint::token, FakeOAuth::Fault::slow, 3000);
  try {
    post();
    ADD_FAILURE() << "no timeout";
  } catch (const http::ClientError& e) {
    EXPECT_EQ(e.kind, Kind::timeout);
  }
  fake.fail(FakeOAuth::Endpoint::token, FakeOAuth::Fault::huge);
  try {
    post();
    ADD_FAILURE() << "no size cap";
  } catch (const http::ClientError& e) {
    EXPECT_EQ(e.kind, Kind::too_large);
  }
}
