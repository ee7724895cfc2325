#include "http/client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <chrono>

namespace feuille::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
namespace urls = boost::urls;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Resolves within the deadline. getaddrinfo cannot be interrupted: a lookup
// that outlives the deadline finishes in the background and is ignored.
asio::awaitable<std::vector<tcp::endpoint>> resolve(const std::string& host, const std::string& port,
                                                    Clock::time_point deadline, const std::string& where) {
  auto ex = co_await asio::this_coro::executor;
  struct State {
    explicit State(const asio::any_io_executor& e) : resolver(e), wake(e) {}
    tcp::resolver resolver;
    asio::steady_timer wake;
    bool finished = false;
    beast::error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };
  auto state = std::make_shared<State>(ex);
  state->wake.expires_at(deadline);
  state->resolver.async_resolve(host, port, [state](beast::error_code ec, tcp::resolver::results_type results) {
    state->finished = true;
    state->ec = ec;
    for (const auto& r : results) state->endpoints.push_back(r.endpoint());
    state->wake.cancel();
  });
  co_await state->wake.async_wait(tuple_awaitable);
  if (!state->finished) {
    state->resolver.cancel();
    throw ClientError(ClientError::Kind::timeout, where + ": name resolution timed out");
  }
  if (state->ec || state->endpoints.empty())
    throw ClientError(ClientError::Kind::resolve, where + ": cannot resolve host: " + state->ec.message());
  co_return std::move(state->endpoints);
}

[[noreturn]] void fail(const beast::error_code& ec, ClientError::Kind kind, const std::string& where,
                       std::string_view step) {
  if (ec == beast::error::timeout)
    throw ClientError(ClientError::Kind::timeout, where + ": timed out during " + std::string(step));
  if (ec == bh::error::body_limit || ec == bh::error::header_limit || ec == bh::error::buffer_overflow)
    throw ClientError(ClientError::Kind::too_large, where + ": response too large");
  throw ClientError(kind, where + ": " + std::string(step) + " failed: " + ec.message());
}

template <class Stream>
asio::awaitable<ClientResponse> exchange(Stream& stream, bh::request<bh::string_body>& req, std::size_t max_bytes,
                                         const std::string& where) {
  auto [wec, wn] = co_await bh::async_write(stream, req, tuple_awaitable);
  if (wec) fail(wec, ClientError::Kind::connect, where, "sending the request");
  beast::flat_buffer buffer;
  bh::response_parser<bh::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(max_bytes, 64 * 1024)));
  parser.body_limit(max_bytes);
  auto [rec, rn] = co_await bh::async_read(stream, buffer, parser, tuple_awaitable);
  if (rec) fail(rec, ClientError::Kind::protocol, where, "reading the response");
  auto& res = parser.get();
  ClientResponse out;
  out.status = res.result_int();
  for (const auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  out.body = std::move(res.body());
  co_return out;
}

}  // namespace

std::string_view ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequal(k, name)) return v;
  return {};
}

struct Client::Impl {
  Impl(asio::any_io_executor e, ClientOptions o) : executor(std::move(e)), options(std::move(o)) {}
  asio::any_io_executor executor;
  ClientOptions options;
  asio::ssl::context tls{asio::ssl::context::tls_client};
};

Client::Client(asio::any_io_executor executor, ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(options))) {
  if (impl_->options.user_agent.empty()) impl_->options.user_agent = std::string("feuilled/") + FEUILLE_VERSION;
  impl_->tls.set_default_verify_paths();
  impl_->tls.set_verify_mode(asio::ssl::verify_peer);
  SSL_CTX_set_min_proto_version(impl_->tls.native_handle(), TLS1_2_VERSION);
}

Client::~Client() = default;

const ClientOptions& Client::options() const { return impl_->options; }

asio::awaitable<ClientResponse> Client::request(ClientRequest req) {
  const auto& o = impl_->options;
  auto parsed = urls::parse_absolute_uri(req.url);
  if (!parsed) throw ClientError(ClientError::Kind::bad_url, "invalid URL");
  urls::url_view u = *parsed;
  bool https = u.scheme_id() == urls::scheme::https;
  if (!https && u.scheme_id() != urls::scheme::http)
    throw ClientError(ClientError::Kind::bad_url, "only http:// and https:// URLs are supported");
  if (u.has_userinfo()) throw ClientError(ClientError::Kind::bad_url, "URLs with credentials are refused");
  std::string host = u.host_address();
  if (host.empty()) throw ClientError(ClientError::Kind::bad_url, "URL without a host");
  std::string port = u.has_port() ? std::string(u.port()) : (https ? "443" : "80");
  const std::string where = std::string(u.encoded_host_and_port());
  if (!https && !o.allow_plain_http)
    throw ClientError(ClientError::Kind::refused_scheme, where + ": plain http:// is refused");
  bool ip_literal = u.host_type() == urls::host_type::ipv4 || u.host_type() == urls::host_type::ipv6;
  std::string target = std::string(u.encoded_path());
  if (target.empty()) target = "/";
  if (u.has_query()) target += "?" + std::string(u.encoded_query());

  auto deadline = Clock::now() + o.timeout;
  std::vector<tcp::endpoint> endpoints;
  if (ip_literal) {
    beast::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    unsigned long port_number = std::stoul(port);
    if (ec || port_number > 65535) throw ClientError(ClientError::Kind::bad_url, where + ": invalid address");
    endpoints.emplace_back(address, static_cast<unsigned short>(port_number));
  } else {
    endpoints = co_await resolve(host, port, deadline, where);
  }

  bh::request<bh::string_body> r{req.method, target, 11};
  r.set(bh::field::host, u.encoded_host_and_port());
  r.set(bh::field::user_agent, o.user_agent);
  r.set(bh::field::accept_encoding, "identity");
  r.set(bh::field::connection, "close");
  for (const auto& [k, v] : req.headers) r.set(k, v);
  r.body() = std::move(req.body);
  if (!r.body().empty() || req.method == bh::verb::post || req.method == bh::verb::put) r.prepare_payload();

  auto ex = impl_->executor;
  if (!https) {
    beast::tcp_stream stream(ex);
    stream.expires_at(deadline);
    auto [cec, ep] = co_await stream.async_connect(endpoints, tuple_awaitable);
    if (cec) fail(cec, ClientError::Kind::connect, where, "connecting");
    co_return co_await exchange(stream, r, o.max_response_bytes, where);
  }

  beast::ssl_stream<beast::tcp_stream> stream(ex, impl_->tls);
  SSL* ssl = stream.native_handle();
  if (ip_literal) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1)
      throw ClientError(ClientError::Kind::tls, where + ": cannot set the address to verify");
  } else {
    // SNI, and the name the certificate must carry.
    if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 || SSL_set1_host(ssl, host.c_str()) != 1)
      throw ClientError(ClientError::Kind::tls, where + ": cannot set the server name");
  }
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [cec, ep] = co_await beast::get_lowest_layer(stream).async_connect(endpoints, tuple_awaitable);
  if (cec) fail(cec, ClientError::Kind::connect, where, "connecting");
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
  if (hec) fail(hec, ClientError::Kind::tls, where, "the TLS handshake");
  co_return co_await exchange(stream, r, o.max_response_bytes, where);
}

}  // namespace feuille::http
