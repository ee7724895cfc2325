#pragma once
// The runtime gateway of one workspace: a listener feuilled keeps on
// 127.0.0.1:RUNTIME_PORT inside the editor's network namespace, relaying each
// connection byte for byte to the runtime's port inside the runtime's own
// namespace (wherever the runtime runs now). The editor and the browser
// (through the editor's /proxy/{port}/ route) find the runtime there for the
// workspace's whole life. While there is no runtime to reach (stopped,
// restarting, and later asleep or moving; or the one it points at refuses)
// new connections are held, up to `hold` (30 s) in all, then closed.
// docs/compute.md, "The runtime gateway".
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "compute/netns.hpp"
#include "compute/notifier.hpp"
#include "feuille/config.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace spdlog {
class logger;
}

namespace feuille::compute {

// What every gateway counts (owned by the workspace manager, in /metrics).
struct GatewayMetrics {
  prometheus::Counter* to_runtime = nullptr;  // bytes
  prometheus::Counter* to_editor = nullptr;   // bytes
  prometheus::Counter* accepted = nullptr;    // connections
  prometheus::Counter* refused = nullptr;     // closed without a runtime (hold ran out, runtime refused)
  prometheus::Counter* over_workspace = nullptr;  // refused: the workspace's connections at their limit
  prometheus::Counter* over_total = nullptr;      // refused: every gateway's connections at their limit
  prometheus::Counter* idle_closed = nullptr;     // closed after gateway-idle-timeout without a byte
  prometheus::Gauge* open = nullptr;              // connections open now (held or relaying)
};

// Connections open at once, up to a limit, counted across the gateways that
// share it: one per workspace (its runtime's and its sandboxes' gateways)
// and one for all of feuilled's. Used on the loop only.
class ConnectionBudget {
 public:
  explicit ConnectionBudget(std::size_t limit) : limit_(limit) {}
  bool try_take() {
    if (used_ >= limit_) return false;
    ++used_;
    return true;
  }
  void give_back() {
    if (used_ > 0) --used_;
  }
  std::size_t used() const { return used_; }
  std::size_t limit() const { return limit_; }

 private:
  const std::size_t limit_;
  std::size_t used_ = 0;
};

class RuntimeGateway : public std::enable_shared_from_this<RuntimeGateway> {
 public:
  struct Options {
    Duration hold{30'000};              // how long a connection waits for a runtime
    Duration connect_timeout{5'000};    // to the runtime's port
    Duration idle_timeout{0};           // a relayed connection with no byte either way this long is closed; 0 = never
    std::uint16_t runtime_port = 8888;  // inside the runtime's namespace
    // The workspace's budget (shared with its sandboxes' gateways; null =
    // one of kDefaultPerWorkspace of its own) and every gateway's (null = none).
    std::shared_ptr<ConnectionBudget> workspace_budget;
    std::shared_ptr<ConnectionBudget> total_budget;
  };
  static constexpr std::size_t kDefaultPerWorkspace = 256;

  // Binds 127.0.0.1:port inside `editor_ns` and starts accepting. Throws
  // (std::system_error EADDRINUSE when something in that namespace already
  // holds the port: never a silent fallback).
  static boost::asio::awaitable<std::shared_ptr<RuntimeGateway>> open(boost::asio::any_io_executor ex,
                                                                      NetnsPtr editor_ns, std::uint16_t port,
                                                                      GatewayMetrics& metrics,
                                                                      std::shared_ptr<spdlog::logger> log,
                                                                      std::string owner, Options options);
  ~RuntimeGateway();

  // Where the runtime is now (its namespace); held connections go there.
  void set_runtime(NetnsPtr runtime_ns);
  // The runtime is away: new connections wait for the next set_runtime().
  // Connections already relayed stay until either end closes them.
  void clear_runtime();
  bool has_runtime() const { return runtime_ != nullptr; }
  // Holds new connections (clear_runtime) and waits, up to `bound`, for the
  // relayed ones to end; those still open then are cut (closed both ways).
  // Returns how many were cut. Before a sleep or a move: nothing may reach
  // the runtime after its dump.
  boost::asio::awaitable<std::size_t> drain(Duration bound);
  // Connections relayed to the runtime now (not the held ones).
  std::size_t relaying() const;
  // Ends the listener and every connection (the editor is going).
  void close();

  std::uint16_t port() const { return port_; }
  const NetnsPtr& editor_ns() const { return editor_ns_; }
  std::size_t connections() const { return conns_.size(); }
  // Bytes relayed either way since it opened (the idle policy's activity).
  std::uint64_t relayed() const { return relayed_; }

 private:
  struct Conn;
  RuntimeGateway(boost::asio::any_io_executor ex, NetnsPtr editor_ns, std::uint16_t port, GatewayMetrics& metrics,
                 std::shared_ptr<spdlog::logger> log, std::string owner, Options options,
                 boost::asio::ip::tcp::acceptor acceptor);
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Conn> c);
  void watch_held(const std::shared_ptr<Conn>& c);
  boost::asio::awaitable<void> pump(std::shared_ptr<Conn> c, bool to_runtime);
  boost::asio::awaitable<void> close_idle_loop();
  // Which budget, if any, refuses one more connection (taking from both
  // when neither does).
  ConnectionBudget* over_budget();
  void refuse(boost::asio::ip::tcp::socket& socket, const std::string& why);
  void drop(Conn& c);

  boost::asio::any_io_executor ex_;
  NetnsPtr editor_ns_;
  std::uint16_t port_;
  GatewayMetrics& metrics_;
  std::shared_ptr<spdlog::logger> log_;
  std::string owner_;
  Options options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer idle_timer_;  // close_idle_loop's
  NetnsPtr runtime_;
  Notifier changed_;
  std::unordered_set<Conn*> conns_;
  bool closed_ = false;
  std::uint64_t relayed_ = 0;
};

}  // namespace feuille::compute
