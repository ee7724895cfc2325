#pragma once
// Runs blocking work (libpqxx, file I/O, big renders) on the thread pool and
// resumes the awaiting coroutine on its own executor with the result or the
// exception. The loop never blocks and never waits on a future.
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace feuille {

template <class F, class R = std::invoke_result_t<F>>
boost::asio::awaitable<R> offload(boost::asio::thread_pool& pool, F fn) {
  namespace asio = boost::asio;
  using Stored = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
  // The initiation is a named local, not a temporary of the co_await
  // expression: GCC 12 relocates such temporaries bitwise, which corrupts
  // captures like std::string (fn capturing one by value crashed).
  auto initiation = [&pool, fn = std::move(fn)](auto handler) mutable {
    auto ex = asio::get_associated_executor(handler);
    // The guard keeps the caller's loop alive while the job runs.
    auto work = asio::make_work_guard(ex);
    asio::post(pool, [fn = std::move(fn), handler = std::move(handler), work = std::move(work)]() mutable {
      std::exception_ptr ep;
      Stored value{};
      try {
        if constexpr (std::is_void_v<R>) fn();
        else value.emplace(fn());
      } catch (...) {
        ep = std::current_exception();
      }
      auto ex = work.get_executor();
      asio::dispatch(ex, [handler = std::move(handler), ep, value = std::move(value)]() mutable {
        std::move(handler)(std::tuple<std::exception_ptr, Stored>{ep, std::move(value)});
      });
      work.reset();
    });
  };
  auto [ep, value] = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                   void(std::tuple<std::exception_ptr, Stored>)>(
      std::move(initiation), asio::use_awaitable);
  if (ep) std::rethrow_exception(ep);
  if constexpr (!std::is_void_v<R>) co_return std::move(*value);
}

}  // namespace feuille
