#pragma once
// A WebSocket tunnel after the editor's 101: the browser's and the editor's
// sockets, bytes relayed verbatim both ways. It owns both sockets and outlives
// the request that opened it (the HTTP connection, its parser and the
// handler's coroutine frames are gone by then), so an idle tunnel costs two
// sockets and this object (with a 1 KiB inbox per direction): no coroutine
// frame. Each direction reads into its inbox (Asio tries the read at once, a
// recv that may find nothing, then waits on the socket's edge-triggered epoll
// registration; a bare wait for readability would cost an epoll_ctl per
// message instead), tops a full inbox up from
// the loop's one scratch buffer, and writes on at once; only what the other
// side cannot take now is copied and written asynchronously (that direction
// reads again when it is out).
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "proxy/ws_frames.hpp"

namespace feuille::proxy {

class Tunnel;

// Who a request or tunnel is for: whose workspace, who is calling, with
// which credential (the hash of their workspace cookie, or of their session
// on a single origin), and the slot they hold in the connection cap.
struct Caller {
  std::string owner, caller;
  std::array<std::uint8_t, 32> credential{};
  std::string slot;    // owner + "/" + caller
  std::string client;  // the client's address (after trusted proxies)
};

// What a tunnel tells the proxy (which outlives every tunnel: it closes them
// when it stops).
class TunnelEvents {
 public:
  virtual std::vector<char>& scratch() = 0;  // the loop's relay buffer
  virtual void browser_frames(const std::string& owner, std::size_t frames) = 0;  // activity
  virtual void relayed(std::size_t bytes, bool upward) = 0;
  virtual void ended(Tunnel& t) = 0;  // once, when both sides are closed

 protected:
  ~TunnelEvents() = default;
};

class Tunnel : public std::enable_shared_from_this<Tunnel> {
 public:
  Tunnel(boost::asio::ip::tcp::socket browser, boost::asio::ip::tcp::socket editor, FrameCounter counter,
         Caller who, TunnelEvents& events);
  const std::string& owner() const { return who_.owner; }
  const Caller& who() const { return who_; }
  void start();
  // Closes both sides (shutdown, or either side went); idempotent.
  void close();

  using Clock = std::chrono::steady_clock;
  // The quiet-tunnel probe, called by the proxy's sweep: after `quiet` with
  // nothing moving either way, a ping (opcode 9, empty) goes to the browser
  // between two of the editor's frames; when nothing at all comes from the
  // browser within `answer_within` of it (a browser answers a ping with a
  // pong, which passes on to the editor like any frame), both sides are
  // closed. Returns true when this call closed the tunnel.
  bool probe(Clock::time_point now, Clock::duration quiet, Clock::duration answer_within);

 private:
  void read(bool upward);
  void forward(bool upward, std::size_t n);

  boost::asio::ip::tcp::socket browser_, editor_;
  FrameCounter counter_;  // browser -> editor frames
  FrameCounter down_;     // editor -> browser frames: where a ping may go in
  Clock::time_point last_moved_ = Clock::now(), last_from_browser_ = last_moved_, ping_sent_{};
  bool ping_outstanding_ = false;
  Caller who_;
  TunnelEvents& events_;
  static constexpr std::size_t kInbox = 1024;
  std::array<std::array<char, kInbox>, 2> inbox_;  // [upward]
  std::array<std::vector<char>, 2> pending_;        // [upward]: bytes the other side has not taken yet
  bool closed_ = false;
};

}  // namespace feuille::proxy
