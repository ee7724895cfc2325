#include "compute/probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace feuille::compute {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;

asio::awaitable<ProbeResult> probe_http(asio::any_io_executor ex, std::string address, std::uint16_t port,
                                        std::string path, std::string token, Duration timeout) {
  constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
  ProbeResult out;
  beast::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    out.error = "bad address " + address;
    co_return out;
  }
  beast::tcp_stream stream(ex);
  stream.expires_after(timeout);
  std::tie(ec) = co_await stream.async_connect(asio::ip::tcp::endpoint(ip, port), tuple_awaitable);
  if (!ec) {
    bh::request<bh::empty_body> req{bh::verb::get, path, 11};
    std::string host = ip.is_v6() ? "[" + address + "]" : address;
    req.set(bh::field::host, host + ":" + std::to_string(port));
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
