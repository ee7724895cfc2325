#pragma once
// Outbound HTTP(S) for calls feuilled makes to outside services (OAuth
// providers). One request per connection (Connection: close), no redirects
// followed, no compression asked for.
//
// TLS: OpenSSL with the system trust store (set_default_verify_paths, so
// SSL_CERT_FILE / SSL_CERT_DIR work), TLS 1.2 or newer, SNI, and the
// certificate checked against the URL's host name (or IP address). Plain
// http:// is refused unless the client was built with allow_plain_http (used
// only for URLs an operator configured explicitly).
//
// Every request has one deadline covering name resolution, connect, TLS
// handshake, write and read; a response larger than max_response_bytes
// (header + body) is refused.
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include "feuille/config.hpp"

namespace feuille::http {

struct ClientOptions {
  Duration timeout{10'000};
  std::size_t max_response_bytes = 1024 * 1024;
  std::string user_agent;  // empty = "feuilled/<version>"
  bool allow_plain_http = false;
};

struct ClientRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length when not empty (or for POST/PUT)
};

struct ClientResponse {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first value of a header (case-insensitive name), or "".
  std::string_view header(std::string_view name) const;
};

// Why a request failed. what() is safe to log: it names the host and the
// failure, never a header or body.
struct ClientError : std::runtime_error {
  enum class Kind { bad_url, refused_scheme, resolve, connect, tls, timeout, too_large, protocol };
  ClientError(Kind k, const std::string& message) : std::runtime_error(message), kind(k) {}
  Kind kind;
};

class Client {
 public:
  Client(boost::asio::any_io_executor executor, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Throws ClientError. Any status is returned (the caller decides what a
  // 4xx/5xx means).
  boost::asio::awaitable<ClientResponse> request(ClientRequest req);

  const ClientOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace feuille::http
