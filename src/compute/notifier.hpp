#pragma once
// Wakes every coroutine waiting on it (all on one executor). A waiter sleeps
// on its own timer until a deadline; notify_all() cancels the waits.
#include <algorithm>
#include <chrono>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace feuille::compute {

class Notifier {
 public:
  void notify_all() {
    for (auto* t : waiters_) t->cancel();
  }
  // True when notified (or cancelled), false when the deadline passed.
  boost::asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline) {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, deadline);
    waiters_.push_back(&timer);
    auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &timer));
    co_return ec == boost::asio::error::operation_aborted;
  }
  std::size_t waiting() const { return waiters_.size(); }

 private:
  std::vector<boost::asio::steady_timer*> waiters_;
};

}  // namespace feuille::compute
