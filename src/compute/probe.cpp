#include "compute/probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace feuille::compute {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;

asio::awaitable<ProbeResult> probe_http(asio::any_io_executor ex, NetnsPtr netns, std::uint16_t port,
                                        std::string path, std::string token, Duration timeout) {
  constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
  ProbeResult out;
  if (!netns) {
    out.error = "no network namespace";
    co_return out;
  }
  beast::error_code ec;
  std::optional<beast::tcp_stream> opened;
  try {
    auto socket = co_await netns->socket(ex);
    opened.emplace(std::move(socket));
  } catch (const std::exception& e) {
    out.error = e.what();
    co_return out;
  }
  beast::tcp_stream& stream = *opened;
  stream.expires_after(timeout);
  std::tie(ec) = co_await stream.async_connect(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), port),
                                               tuple_awaitable);
  if (!ec) {
    bh::request<bh::empty_body> req{bh::verb::get, path, 11};
    req.set(bh::field::host, "127.0.0.1:" + std::to_string(port));
    req.set(bh::field::user_agent, "feuilled-probe");
    if (!token.empty()) req.set("X-Token", token);
    req.keep_alive(false);
    std::tie(ec, std::ignore) = co_await bh::async_write(stream, req, tuple_awaitable);
  }
  if (!ec) {
    beast::flat_buffer buffer;
    bh::response_parser<bh::string_body> parser;
    parser.body_limit(64 * 1024);
    std::tie(ec, std::ignore) = co_await bh::async_read(stream, buffer, parser, tuple_awaitable);
    if (!ec) out.status = parser.get().result_int();
  }
  if (ec) out.error = ec == beast::error::timeout ? "timed out" : ec.message();
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  co_return out;
}

}  // namespace feuille::compute
