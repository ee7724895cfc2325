#pragma once
// Runs one coroutine to completion on a loop from a test (blocking), with a
// deadline; rethrows what the coroutine threw.
#include <chrono>
#include <future>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace feuille::test {

// `make_task` is a callable returning an awaitable (a lambda coroutine is
// passed uncalled: co_spawn keeps the closure alive while it runs).
template <class F>
auto run_coro(boost::asio::io_context& ioc, F make_task, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto future = boost::asio::co_spawn(ioc, std::move(make_task), boost::asio::use_future);
  ioc.restart();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("run_coro: timed out");
    ioc.run_one_for(std::chrono::milliseconds(10));
  }
  return future.get();
}

}  // namespace feuille::test
