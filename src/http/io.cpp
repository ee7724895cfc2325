#include "http/io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "http/server.hpp"

namespace feuille::http {

asio::awaitable<void> respond(Exchange& ex, const Response& res, bool keep_alive) {
  bool head = ex.parser.get().method() == bh::verb::head;
  std::string text;
  serialize_head(res, text, keep_alive, ex.ctx.request_id, true);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(text), head ? asio::const_buffer{} : asio::buffer(res.body())};
  auto ec = co_await write_fully(ex.stream.socket(), bufs, ex.deadline, std::chrono::seconds(30));
  ex.status = res.result_int();
  ex.bytes = ec || head ? 0 : res.body().size();
  ex.keep_alive = keep_alive && !ec;
}

}  // namespace feuille::http
