// feuille::offload with jobs that own what they capture (strings, shared
// pointers): GCC 12 once relocated the job bitwise and freed a pointer into
// a coroutine frame (the publish routes crashed on their first request).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "support/run_coro.hpp"
#include "util/offload.hpp"

namespace asio = boost::asio;

TEST(Offload, JobsMayOwnTheirCaptures) {
  asio::io_context ioc;
  asio::thread_pool pool(2);
  for (std::string text : {std::string("short"), std::string(200, 'x')}) {
    auto total = feuille::test::run_coro(ioc, [&]() -> asio::awaitable<std::size_t> {
      std::size_t sum = 0;
      for (int i = 0; i < 200; ++i) {
        auto shared = std::make_shared<std::string>(text + std::to_string(i));
        auto job = [text, shared] { return text.size() + shared->size(); };
        sum += co_await feuille::offload(pool, std::move(job));
      }
      co_return sum;
    });
    std::size_t expected = 0;
    for (int i = 0; i < 200; ++i) expected += 2 * text.size() + std::to_string(i).size();
    EXPECT_EQ(total, expected);
  }
  pool.join();
}

// The same named jobs when they throw: the exception reaches the caller and
// nothing is freed twice. (A job written as a lambda inside the co_await
// expression itself still crashes with GCC 12: see docs/development.md.)
TEST(Offload, ThrowingJobsMayOwnTheirCaptures) {
  asio::io_context ioc;
  asio::thread_pool pool(2);
  for (std::string text : {std::string("short"), std::string(200, 'x')}) {
    auto caught = feuille::test::run_coro(ioc, [&]() -> asio::awaitable<int> {
      int n = 0;
      for (int i = 0; i < 200; ++i) {
        std::string mine = text + std::to_string(i);
        auto shared = std::make_shared<std::string>(mine);
        auto job = [mine, shared]() -> std::size_t { throw std::runtime_error(mine + "/" + *shared); };
        try {
          co_await feuille::offload(pool, std::move(job));
        } catch (const std::runtime_error& e) {
          if (e.what() == mine + "/" + mine) ++n;
        }
      }
      co_return n;
    });
    EXPECT_EQ(caught, 200);
  }
  pool.join();
}
