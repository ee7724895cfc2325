#pragma once
// Socket writes shared by the server and the stream handlers.
#include <array>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>

#include "feuille/config.hpp"
#include "http/types.hpp"
#include "util/deadline.hpp"

namespace feuille::http {

// Writes all of `bufs`: first straight away without blocking (the socket is
// in non-blocking mode; a small message usually fits in its buffer, which
// saves a trip through the scheduler), then asynchronously for what is left,
// with `deadline` armed for `timeout`.
template <std::size_t N>
asio::awaitable<beast::error_code> write_fully(asio::ip::tcp::socket& socket, std::array<asio::const_buffer, N> bufs,
                                               Deadline& deadline, Duration timeout) {
  beast::error_code ec;
  std::size_t n = socket.write_some(bufs, ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return ec;
  std::size_t left = 0;
  for (auto& b : bufs) {
    std::size_t used = std::min(n, b.size());
    b += used;
    n -= used;
    left += b.size();
  }
  if (left == 0) co_return beast::error_code{};
  deadline.arm(timeout);
  std::tie(ec, n) = co_await asio::async_write(socket, bufs, asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// Writes one of feuilled's own responses from a stream handler (the proxy's
// error pages, SSE headers, published pages...): the head of `res` (security
// headers, X-Request-Id, Content-Length unless set, Connection per
// ex.keep_alive), then `body`, not for a HEAD request. Records status and
// bytes in `ex` for the access log; false (and ex.keep_alive off) when the
// connection failed.
asio::awaitable<bool> write_response(Exchange& ex, const Response& res, std::string_view body);

// write_response with res.body() as the body and `keep_alive`.
asio::awaitable<void> respond(Exchange& ex, const Response& res, bool keep_alive);

}  // namespace feuille::http
