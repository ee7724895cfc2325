#include "proxy/tunnel.hpp"

#include <boost/asio/write.hpp>

namespace feuille::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Tunnel::Tunnel(tcp::socket browser, tcp::socket editor, FrameCounter counter, std::string owner,
               TunnelEvents& events)
    : browser_(std::move(browser)),
      editor_(std::move(editor)),
      counter_(counter),
      owner_(std::move(owner)),
      events_(events) {
  boost::system::error_code ignored;
  browser_.non_blocking(true, ignored);
  editor_.non_blocking(true, ignored);
}

void Tunnel::start() {
  wait(true);
  wait(false);
}

void Tunnel::wait(bool upward) {
  auto& from = upward ? browser_ : editor_;
  from.async_wait(tcp::socket::wait_read, [self = shared_from_this(), upward](const boost::system::error_code& ec) {
    if (ec || self->closed_) return self->close();
    self->readable(upward);
  });
}

void Tunnel::readable(bool upward) {
  auto& from = upward ? browser_ : editor_;
  auto& to = upward ? editor_ : browser_;
  auto& scratch = events_.scratch();
  boost::system::error_code ec;
  std::size_t n = from.read_some(asio::buffer(scratch), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) return wait(upward);
  if (ec) return close();  // end of stream or an error: the tunnel is over
  if (upward) {
    // Data frames from the browser are the user's activity; pings, pongs
    // and whatever the editor sends are not.
    if (auto frames = counter_.feed({reinterpret_cast<const std::uint8_t*>(scratch.data()), n}); frames > 0)
      events_.browser_frames(owner_, frames);
  }
  events_.relayed(n, upward);
  std::size_t written = to.write_some(asio::buffer(scratch.data(), n), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) written = 0;
  else if (ec) return close();
  if (written == n) return wait(upward);
  auto& rest = pending_[upward];
  rest.assign(scratch.begin() + static_cast<std::ptrdiff_t>(written), scratch.begin() + static_cast<std::ptrdiff_t>(n));
  asio::async_write(to, asio::buffer(rest),
                    [self = shared_from_this(), upward](const boost::system::error_code& wec, std::size_t) {
                      if (wec || self->closed_) return self->close();
                      auto& done = self->pending_[upward];
                      done.clear();
                      done.shrink_to_fit();
                      self->wait(upward);
                    });
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
