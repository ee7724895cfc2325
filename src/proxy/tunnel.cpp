#include "proxy/tunnel.hpp"

#include <algorithm>

#include <boost/asio/write.hpp>

namespace feuille::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Tunnel::Tunnel(tcp::socket browser, tcp::socket editor, FrameCounter counter, Caller who, TunnelEvents& events)
    : browser_(std::move(browser)),
      editor_(std::move(editor)),
      counter_(counter),
      who_(std::move(who)),
      events_(events) {
  boost::system::error_code ignored;
  browser_.non_blocking(true, ignored);
  editor_.non_blocking(true, ignored);
}

void Tunnel::start() {
  read(true);
  read(false);
}

void Tunnel::read(bool upward) {
  auto& from = upward ? browser_ : editor_;
  from.async_read_some(asio::buffer(inbox_[upward]),
                       [self = shared_from_this(), upward](const boost::system::error_code& ec, std::size_t n) {
                         if (ec || self->closed_) return self->close();  // end of stream, an error, or closed
                         self->forward(upward, n);
                       });
}

void Tunnel::forward(bool upward, std::size_t n) {
  auto& from = upward ? browser_ : editor_;
  auto& to = upward ? editor_ : browser_;
  const char* data = inbox_[upward].data();
  boost::system::error_code ec;
  if (n == kInbox) {
    // More may be waiting: take it in the same write.
    auto& scratch = events_.scratch();
    std::copy_n(inbox_[upward].data(), n, scratch.data());
    std::size_t more = from.read_some(asio::buffer(scratch.data() + n, scratch.size() - n), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return close();
    n += ec ? 0 : more;
    data = scratch.data();
  }
  last_moved_ = Clock::now();
  const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(data), n};
  if (upward) {
    last_from_browser_ = last_moved_;
    // Data frames from the browser are the user's activity; pings, pongs
    // and whatever the editor sends are not.
    if (auto frames = counter_.feed(bytes); frames > 0) events_.browser_frames(who_.owner, frames);
  } else {
    down_.feed(bytes);
  }
  events_.relayed(n, upward);
  std::size_t written = to.write_some(asio::buffer(data, n), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) written = 0;
  else if (ec) return close();
  if (written == n) return read(upward);
  auto& rest = pending_[upward];
  rest.assign(data + written, data + n);
  asio::async_write(to, asio::buffer(rest),
                    [self = shared_from_this(), upward](const boost::system::error_code& wec, std::size_t) {
                      if (wec || self->closed_) return self->close();
                      auto& done = self->pending_[upward];
                      done.clear();
                      done.shrink_to_fit();
                      self->read(upward);
                    });
}

bool Tunnel::probe(Clock::time_point now, Clock::duration quiet, Clock::duration answer_within) {
  if (closed_) return false;
  if (ping_outstanding_) {
    if (last_from_browser_ > ping_sent_) {
      ping_outstanding_ = false;  // the browser is there
    } else if (now - ping_sent_ >= answer_within) {
      close();
      return true;
    }
    return false;
  }
  if (now - last_moved_ < quiet || !pending_[false].empty() || !down_.at_boundary()) return false;
  static constexpr char ping[2] = {static_cast<char>(0x89), 0};
  boost::system::error_code ec;
  std::size_t n = browser_.write_some(asio::buffer(ping), ec);
  if (ec || n != sizeof ping) {  // a quiet socket that cannot take two bytes: its reader is gone
    close();
    return true;
  }
  ping_sent_ = now;
  ping_outstanding_ = true;
  return false;
}

void Tunnel::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  browser_.shutdown(tcp::socket::shutdown_both, ignored);
  editor_.shutdown(tcp::socket::shutdown_both, ignored);
  browser_.close(ignored);  // cancels the other direction's wait
  editor_.close(ignored);
  events_.ended(*this);
}

}  // namespace feuille::proxy
