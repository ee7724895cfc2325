#pragma once
// One timer enforcing the deadline of whatever phase a connection is in
// (waiting, reading a header, writing, relaying). It is re-armed only when a
// deadline moves earlier, so per-request deadlines cost at most one timer
// operation. On expiry it runs `on_expire` (typically: cancel the socket's
// operations without closing it, so an answer can still be written) and
// records that it expired.
#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "feuille/config.hpp"

namespace feuille {

class Deadline : public std::enable_shared_from_this<Deadline> {
 public:
  using Clock = std::chrono::steady_clock;

  static std::shared_ptr<Deadline> create(boost::asio::any_io_executor ex, std::function<void()> on_expire) {
    return std::shared_ptr<Deadline>(new Deadline(std::move(ex), std::move(on_expire)));
  }

  void arm(Duration d) {
    expired_ = false;
    deadline_ = Clock::now() + d;
    if (deadline_ < armed_at_) wait_until(deadline_);
  }
  void disarm() { deadline_ = Clock::time_point::max(); }
  // Ends the timer for good (the connection is closing).
  void stop() {
    stopped_ = true;
    ++generation_;
    timer_.cancel();
  }
  bool expired() const { return expired_; }

 private:
  Deadline(boost::asio::any_io_executor ex, std::function<void()> on_expire)
      : timer_(std::move(ex)), on_expire_(std::move(on_expire)) {}

  void wait_until(Clock::time_point t) {
    armed_at_ = t;
    timer_.expires_at(t);
    timer_.async_wait([self = shared_from_this(), gen = ++generation_](boost::system::error_code ec) {
      if (gen != self->generation_ || self->stopped_) return;  // superseded
      self->armed_at_ = Clock::time_point::max();
      if (ec || self->deadline_ == Clock::time_point::max()) return;
      if (Clock::now() >= self->deadline_) {
        self->expired_ = true;
        self->on_expire_();
      } else {
        self->wait_until(self->deadline_);
      }
    });
  }

  boost::asio::steady_timer timer_;
  std::function<void()> on_expire_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_at_ = Clock::time_point::max();  // expiry of the pending wait
  unsigned generation_ = 0;
  bool expired_ = false;
  bool stopped_ = false;
};

}  // namespace feuille
