#include "http/io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "http/server.hpp"

namespace feuille::http {

asio::awaitable<bool> write_response(Exchange& ex, const Response& res, std::string_view body) {
  if (ex.parser.get().method() == bh::verb::head) body = {};
  std::string text;
  serialize_head(res, text, ex.keep_alive, ex.ctx.request_id, true);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(text), asio::buffer(body)};
  auto ec = co_await write_fully(ex.stream.socket(), bufs, ex.deadline, std::chrono::seconds(30));
  ex.status = res.result_int();
  ex.bytes = ec ? 0 : body.size();
  if (ec) ex.keep_alive = false;
  co_return !ec;
}

asio::awaitable<void> respond(Exchange& ex, const Response& res, bool keep_alive) {
  ex.keep_alive = keep_alive;
  co_await write_response(ex, res, res.body());
}

}  // namespace feuille::http
