#include "db/database.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <regex>

#include "util/logging.hpp"

namespace feuille::db {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string redact_url(const std::string& url) {
  static const std::regex uri_password(R"(^(postgres(?:ql)?://[^:/@?]*:)[^@/?]*@)");
  static const std::regex kv_password(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))");
  static const std::regex query_password(R"(([?&]password=)[^&]*)");
  if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0)
    return std::regex_replace(std::regex_replace(url, uri_password, "$1***@"), query_password, "$1***");
  return std::regex_replace(url, kv_password, "$1***");
}

std::string connection_string(const std::string& url, Duration connect_timeout) {
  long secs = std::max<long>(2, static_cast<long>((connect_timeout.count() + 999) / 1000));
  bool uri = url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
  std::string out = url;
  auto add = [&](const std::string& key, const std::string& value) {
    if (out.find(key + "=") != std::string::npos) return;
    if (uri) out += (out.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
    else out += " " + key + "=" + value;
  };
  add("connect_timeout", std::to_string(secs));
  add("application_name", "feuilled");
  return out;
}

struct Database::Waiter {
  explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  Slot* slot = nullptr;
};

Database::Database(asio::any_io_executor loop, asio::thread_pool& pool, PoolOptions options,
                   prometheus::Registry* metrics)
    : loop_(std::move(loop)),
      pool_(pool),
      options_(std::move(options)),
      conninfo_(connection_string(options_.url, options_.connect_timeout)),
      slots_(static_cast<std::size_t>(options_.size)) {
  if (metrics) {
    auto& family = prometheus::BuildGauge()
                       .Name("feuille_db_pool_connections")
                       .Help("Database pool connections by state (size, open, in_use) and waiting callers")
                       .Register(*metrics);
    size_gauge_ = &family.Add({{"state", "size"}});
    open_gauge_ = &family.Add({{"state", "open"}});
    in_use_gauge_ = &family.Add({{"state", "in_use"}});
    waiting_gauge_ = &family.Add({{"state", "waiting"}});
    size_gauge_->Set(options_.size);
  }
}

Database::~Database() { close(); }

void Database::close() {
  closed_ = true;
  for (auto& w : waiters_) w->timer.cancel();
  waiters_.clear();
}

bool Database::down() const { return Clock::now().time_since_epoch().count() < down_until_.load(); }

void Database::unavailable(const std::exception& e) {
  down_until_.store((Clock::now() + std::chrono::seconds(1)).time_since_epoch().count());
  std::string msg = e.what();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  for (auto& c : msg)
    if (c == '\n') c = ' ';
  throw Unavailable("database unavailable: " + msg);
}

void Database::drop(Slot& slot) {
  if (slot.conn) {
    slot.conn.reset();
    --open_;
  }
}

pqxx::connection& Database::connected(Slot& slot) {
  if (slot.conn && slot.conn->is_open()) return *slot.conn;
  drop(slot);
  if (down()) throw Unavailable("database unavailable (retrying shortly)");
  try {
    auto c = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::nontransaction setup(*c);
    setup.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()));
    setup.exec("SET idle_in_transaction_session_timeout = " +
               std::to_string(std::max<long long>(options_.statement_timeout.count() * 2, 10'000)));
    setup.commit();
    slot.conn = std::move(c);
    ++open_;
    down_until_.store(0);
  } catch (const pqxx::broken_connection& e) {
    unavailable(e);
  }
  return *slot.conn;
}

asio::awaitable<Database::Lease> Database::acquire() {
  if (closed_) throw Unavailable("database pool is closed");
  for (auto& s : slots_) {
    if (!s.in_use) {
      s.in_use = true;
      update_gauges();
      co_return Lease{this, &s};
    }
  }
  auto waiter = std::make_shared<Waiter>(loop_);
  waiter->timer.expires_after(options_.acquire_timeout);
  waiters_.push_back(waiter);
  update_gauges();
  co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (waiter->slot) co_return Lease{this, waiter->slot};
  std::erase(waiters_, waiter);
  update_gauges();
  if (closed_) throw Unavailable("database pool is closed");
  throw Unavailable("database busy: no connection free within " + std::to_string(options_.acquire_timeout.count()) + " ms");
}

void Database::release(Slot* slot) {
  if (slot->conn && !slot->conn->is_open()) drop(*slot);
  while (!waiters_.empty()) {
    auto w = waiters_.front();
    waiters_.pop_front();
    if (w->timer.expiry() <= asio::steady_timer::clock_type::now()) continue;  // timing out already
    w->slot = slot;  // hand over: stays in use
    w->timer.cancel();
    update_gauges();
    return;
  }
  slot->in_use = false;
  update_gauges();
}

Database::Stats Database::stats() const {
  Stats s;
  s.size = options_.size;
  for (const auto& slot : slots_) s.in_use += slot.in_use;
  s.open = open_.load();
  s.waiting = static_cast<int>(waiters_.size());
  return s;
}

void Database::update_gauges() {
  if (!in_use_gauge_) return;
  auto s = stats();
  in_use_gauge_->Set(s.in_use);
  open_gauge_->Set(s.open);
  waiting_gauge_->Set(s.waiting);
}

asio::awaitable<http::CheckResult> Database::check() {
  try {
    co_await run([](pqxx::work& w) { w.exec("SELECT 1"); });
    auto s = stats();
    co_return http::CheckResult{true, "", {{"pool", {{"size", s.size}, {"in_use", s.in_use}, {"waiting", s.waiting}}}}};
  } catch (const std::exception& e) {
    co_return http::CheckResult{false, e.what(), {}};
  }
}

}  // namespace feuille::db
