#pragma once
// Value types shared by the HTTP server, the router and every module's handlers.
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "util/deadline.hpp"

namespace feuille::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;

using Request = bh::request<bh::string_body>;
using Response = bh::response<bh::string_body>;
using HeaderParser = bh::request_parser<bh::empty_body>;

// Path parameters of a matched route, as raw (still percent-encoded) views
// into the request target. Fixed capacity: routing never allocates.
class Params {
 public:
  static constexpr std::size_t capacity = 8;
  void add(std::string_view name, std::string_view value) {
    if (size_ < capacity) items_[size_++] = {name, value};
  }
  std::string_view get(std::string_view name) const {
    for (std::size_t i = 0; i < size_; ++i)
      if (items_[i].first == name) return items_[i].second;
    return {};
  }
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }

 private:
  std::array<std::pair<std::string_view, std::string_view>, capacity> items_{};
  std::size_t size_ = 0;
};

// What the server knows about a request beyond its header.
struct RequestContext {
  std::string_view request_id;  // 16 hex digits, also sent as X-Request-Id
  char request_id_buf[16] = {};
  std::array<std::uint8_t, 16> client_ip{};  // after trusted X-Forwarded-For
  std::string client;                         // the same, as text
  bool peer_is_trusted_proxy = false;
  std::string target;      // the request target as received
  std::string_view path;   // raw target path, without the query (into target)
  std::string_view query;  // raw query, without '?' (into target)
  Params params;
  std::string workspace;  // on a workspace origin: the owner's id its Host names ("" on public-url)
  std::string user;  // user id once known; shown in the access log
};

// A handler for a request whose body (at most 1 MiB) has been read.
using Handler = std::function<asio::awaitable<Response>(Request&, RequestContext&)>;

// A handler that takes over the connection after the request header: it
// reads the body (if any) and writes the whole response itself. Used by the
// proxy, streamed files and Server-Sent Events.
struct Exchange {
  beast::tcp_stream& stream;
  beast::flat_buffer& buffer;  // bytes read past the header (start of the body, pipelined requests)
  HeaderParser& parser;
  RequestContext& ctx;
  // The connection's deadline: disarmed when the handler starts; on expiry it
  // cancels the client socket's operations (the handler sees
  // operation_aborted and deadline.expired()).
  Deadline& deadline;
  // Filled in by the handler for the access log and the connection's fate.
  unsigned status = 0;
  std::uint64_t bytes = 0;
  bool keep_alive = false;

  // Ends it from outside (a revocation): its coroutine sees its reads and
  // writes fail and ends, and the connection closes.
  void end_now() {
    boost::system::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream.socket().cancel(ignored);
    keep_alive = false;
  }
};
using StreamHandler = std::function<asio::awaitable<void>(Exchange&)>;

}  // namespace feuille::http
