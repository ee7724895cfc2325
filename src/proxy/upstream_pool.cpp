#include "proxy/upstream_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <charconv>

namespace feuille::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

UpstreamConnection::UpstreamConnection(asio::any_io_executor ex)
    : socket(ex), deadline(Deadline::create(ex, [this] {
        boost::system::error_code ignored;
        socket.cancel(ignored);
      })) {}

UpstreamConnection::~UpstreamConnection() { deadline->stop(); }

UpstreamPool::UpstreamPool(asio::any_io_executor ex, std::size_t max_idle_per_editor, Duration idle_expiry)
    : ex_(std::move(ex)), max_idle_(max_idle_per_editor), expiry_(idle_expiry) {}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::get(const compute::EditorTarget& editor,
                                                                        Duration connect_timeout) {
  if (!editor.netns) throw boost::system::system_error(asio::error::not_connected, "the editor has no namespace");
  // Built in place, so a lookup allocates nothing (the common case). The
  // namespace's serial, not the address: every editor listens on 127.0.0.1 of
  // its own, and a restarted one gets a new namespace.
  char num[24];
  key_.assign(num, std::to_chars(num, num + sizeof num, editor.netns->serial()).ptr).append(":");
  key_.append(num, std::to_chars(num, num + sizeof num, editor.port).ptr).append("/").append(editor.token);
  if (auto it = idle_.find(key_); it != idle_.end()) {
    auto now = std::chrono::steady_clock::now();
    auto& list = it->second;
    while (!list.empty()) {
      auto c = std::move(list.back());  // most recently used first: least likely to be closed
      list.pop_back();
      if (now - c->idle_since < expiry_) {
        c->reused = true;
        co_return c;
      }
    }
  }
  auto c = std::make_unique<UpstreamConnection>(ex_);
  c->key = key_;
  // The socket is made inside the editor's namespace (one handoff to the
  // namespace thread), then connected on the loop like any other.
  c->socket = co_await editor.netns->socket(ex_);
  c->deadline->arm(connect_timeout);
  auto [cec] = co_await c->socket.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), editor.port),
                                                asio::as_tuple(asio::use_awaitable));
  if (cec) throw boost::system::system_error(c->deadline->expired() ? asio::error::timed_out : cec, "connect to editor");
  boost::system::error_code ec;
  c->socket.set_option(tcp::no_delay(true), ec);
  c->socket.non_blocking(true, ec);
  co_return c;
}

void UpstreamPool::put(std::unique_ptr<UpstreamConnection> c) {
  auto& list = idle_[c->key];
  if (list.size() >= max_idle_) return;  // closes it
  c->reused = false;
  c->deadline->disarm();
  c->idle_since = std::chrono::steady_clock::now();
  list.push_back(std::move(c));
}

void UpstreamPool::sweep() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    while (!list.empty() && now - list.front()->idle_since >= expiry_) list.pop_front();
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::close_all() { idle_.clear(); }

}  // namespace feuille::proxy
