#pragma once
// The PostgreSQL pool. Queries run on the thread pool, each job on one leased
// connection, and the awaiting coroutine resumes on its own executor: the
// loop never blocks. Waiting for a free connection happens on the loop
// (bounded). A broken connection is dropped and the job retried once on a new
// one; while the server is unreachable, calls fail fast with db::Unavailable
// (answered 503) instead of hanging.
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <pqxx/pqxx>

#include "feuille/config.hpp"
#include "feuille/errors.hpp"
#include "http/health.hpp"
#include "util/offload.hpp"

namespace prometheus {
class Registry;
template <class T>
class Family;
class Gauge;
}  // namespace prometheus

namespace feuille::db {

// The database cannot be reached or the pool is exhausted: the request gets a
// 503 and nothing changed.
struct Unavailable : RequestError {
  explicit Unavailable(const std::string& detail)
      : RequestError(503, "The database is unavailable; try again in a moment.", detail) {
    retry_after_seconds = 2;
  }
};

struct PoolOptions {
  std::string url;
  int size = 8;
  Duration statement_timeout{5'000};
  Duration connect_timeout{3'000};
  Duration acquire_timeout{5'000};  // waiting for a free connection
};

// The URL with any password replaced by "***" (for logs and messages).
std::string redact_url(const std::string& url);
// The URL with connect_timeout and application_name added when absent.
std::string connection_string(const std::string& url, Duration connect_timeout);

class Database {
 public:
  Database(boost::asio::any_io_executor loop, boost::asio::thread_pool& pool, PoolOptions options,
           prometheus::Registry* metrics = nullptr);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // fn(pqxx::work&) in one transaction, committed when fn returns.
  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F, pqxx::work&>> run(F fn) {
    using R = std::invoke_result_t<F, pqxx::work&>;
    // The job refers to fn (alive in this frame until the job is done): a
    // closure owning a non-trivially destructible fn, made inside the
    // co_await expression, is destroyed twice by GCC 12.
    co_return co_await with_connection([&fn](pqxx::connection& c) -> R {
      pqxx::work w(c);
      if constexpr (std::is_void_v<R>) {
        fn(w);
        w.commit();
      } else {
        R r = fn(w);
        w.commit();
        return r;
      }
    });
  }

  // fn(pqxx::connection&) for session-level work (advisory locks, several
  // transactions in a row).
  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F, pqxx::connection&>> with_connection(F fn) {
    Lease lease = co_await acquire();
    co_return co_await offload(pool_, [this, &lease, &fn]() { return execute(lease, fn); });
  }

  // SELECT 1, for /readyz and `feuilled check`.
  boost::asio::awaitable<http::CheckResult> check();

  struct Stats {
    int size = 0, in_use = 0, open = 0, waiting = 0;
  };
  Stats stats() const;
  std::string redacted_url() const { return redact_url(options_.url); }
  // Refuse new work and wake every waiter (shutdown).
  void close();

 private:
  struct Slot {
    std::unique_ptr<pqxx::connection> conn;
    bool in_use = false;
  };
  struct Waiter;
  class Lease {
   public:
    Lease(Database* db, Slot* slot) : db_(db), slot_(slot) {}
    Lease(Lease&& o) noexcept : db_(o.db_), slot_(o.slot_) { o.slot_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (slot_) db_->release(slot_);
    }
    Slot& slot() { return *slot_; }

   private:
    Database* db_;
    Slot* slot_;
  };

  boost::asio::awaitable<Lease> acquire();
  void release(Slot* slot);
  pqxx::connection& connected(Slot& slot);  // thread pool: opens the connection if needed
  [[noreturn]] void unavailable(const std::exception& e);  // thread pool

  template <class F>
  auto execute(Lease& lease, F& fn) {
    for (int attempt = 0;; ++attempt) {
      try {
        return fn(connected(lease.slot()));
      } catch (const pqxx::broken_connection& e) {
        drop(lease.slot());
        if (attempt == 0 && !down()) continue;  // a stale connection: one retry on a fresh one
        unavailable(e);
      }
    }
  }
  bool down() const;
  void drop(Slot& slot);  // closes the slot's connection
  void update_gauges();

  boost::asio::any_io_executor loop_;
  boost::asio::thread_pool& pool_;
  PoolOptions options_;
  std::string conninfo_;
  std::vector<Slot> slots_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  bool closed_ = false;
  // Until when new connections are not even tried (after a failure), as
  // steady_clock ticks; written from pool threads.
  std::atomic<std::int64_t> down_until_{0};
  std::atomic<int> open_{0};  // connections open (slots are touched by pool threads)
  prometheus::Gauge* in_use_gauge_ = nullptr;
  prometheus::Gauge* open_gauge_ = nullptr;
  prometheus::Gauge* waiting_gauge_ = nullptr;
  prometheus::Gauge* size_gauge_ = nullptr;
};

}  // namespace feuille::db
