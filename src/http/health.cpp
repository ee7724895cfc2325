#include "http/health.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::http {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

void Health::add(std::string name, Check check) { checks_.emplace_back(std::move(name), std::move(check)); }

asio::awaitable<nlohmann::json> Health::run(Duration timeout) const {
  auto ex = co_await asio::this_coro::executor;
  struct Outcome {
    std::size_t index;
    CheckResult result;
    double ms;
  };
  using Channel = asio::experimental::channel<void(boost::system::error_code, Outcome)>;
  // Shared with the checks so that a cancelled /readyz leaves them nothing dangling.
  auto done = std::make_shared<Channel>(ex, checks_.size());
  for (std::size_t i = 0; i < checks_.size(); ++i) {
    auto check = checks_[i].second;
    spawn(
        ex,
        [done, check, i, timeout]() -> asio::awaitable<void> {
          auto ex = co_await asio::this_coro::executor;
          auto start = std::chrono::steady_clock::now();
          Outcome o{i, {}, 0};
          try {
            asio::steady_timer timer(ex, timeout);
            auto r = co_await (check() || timer.async_wait(asio::use_awaitable));
            if (r.index() == 0) o.result = std::get<0>(r);
            else o.result = {false, "timed out after " + std::to_string(timeout.count()) + " ms", {}};
          } catch (const std::exception& e) {
            o.result = {false, e.what(), {}};
          }
          o.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
          done->try_send(boost::system::error_code{}, std::move(o));
        },
        logger("http"), "readiness check");
  }
  nlohmann::json checks = nlohmann::json::object();
  bool ok = true;
  for (std::size_t n = 0; n < checks_.size(); ++n) {
    Outcome o = co_await done->async_receive(asio::use_awaitable);
    nlohmann::json c = {{"ok", o.result.ok}, {"ms", std::round(o.ms * 10) / 10}};
    if (!o.result.detail.empty()) c["detail"] = o.result.detail;
    if (o.result.extra.is_object()) c.update(o.result.extra);
    checks[checks_[o.index].first] = std::move(c);
    ok = ok && o.result.ok;
  }
  co_return nlohmann::json{{"status", ok ? "ok" : "failing"}, {"checks", std::move(checks)}};
}

}  // namespace feuille::http
