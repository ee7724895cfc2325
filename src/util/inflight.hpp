#pragma once
// Concurrent requests for the same work (same key) share one job: the first
// runs it, the others wait for its result (or its exception). Loop only.
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace feuille {

template <class T>
class Inflight {
 public:
  // job(): an awaitable of T, run only when no job of this key is running.
  template <class Job>
  boost::asio::awaitable<T> run(std::string key, Job job) {
    if (auto it = slots_.find(key); it != slots_.end()) {
      auto slot = it->second;
      co_await slot->done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (slot->error) std::rethrow_exception(slot->error);
      co_return *slot->value;
    }
    boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
    auto slot = std::make_shared<Slot>(ex);
    slots_.emplace(key, slot);
    try {
      // The awaitable is a named local (GCC 12 destroys temporaries inside
      // some co_await expressions twice).
      auto work = job();
      T value = co_await std::move(work);
      slot->value.emplace(std::move(value));
    } catch (...) {
      slot->error = std::current_exception();
    }
    slots_.erase(key);
    slot->done.cancel();
    if (slot->error) std::rethrow_exception(slot->error);
    co_return *slot->value;
  }

 private:
  struct Slot {
    explicit Slot(boost::asio::any_io_executor ex) : done(ex, boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer done;
    std::optional<T> value;
    std::exception_ptr error;
  };
  std::unordered_map<std::string, std::shared_ptr<Slot>> slots_;
};

}  // namespace feuille
