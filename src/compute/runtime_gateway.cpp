#include "compute/runtime_gateway.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/logger.h>

#include "util/spawn.hpp"

#include <algorithm>

#include <sys/socket.h>

namespace feuille::compute {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunk = 32 * 1024;  // per direction of a relayed connection
}  // namespace

struct RuntimeGateway::Conn {
  explicit Conn(tcp::socket s) : client(std::move(s)), upstream(client.get_executor()) {}
  tcp::socket client;    // the editor's side, in the editor's namespace
  tcp::socket upstream;  // the runtime's side, in the runtime's namespace
  int pumps = 0;
  bool dropped = false;
  bool client_gone = false;  // closed by its client while held
  Clock::time_point last_bytes = Clock::now();  // either way
  void close_both() {
    boost::system::error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
  }
};

asio::awaitable<std::shared_ptr<RuntimeGateway>> RuntimeGateway::open(asio::any_io_executor ex, NetnsPtr editor_ns,
                                                                      std::uint16_t port, GatewayMetrics& metrics,
                                                                      std::shared_ptr<spdlog::logger> log,
                                                                      std::string owner, Options options) {
  auto acceptor = co_await editor_ns->listen(ex, port);
  if (!options.workspace_budget) options.workspace_budget = std::make_shared<ConnectionBudget>(kDefaultPerWorkspace);
  std::shared_ptr<RuntimeGateway> g(new RuntimeGateway(ex, std::move(editor_ns), port, metrics, std::move(log),
                                                       std::move(owner), options, std::move(acceptor)));
  spawn(ex, g->accept_loop(), g->log_, "gateway of " + g->owner_);
  if (options.idle_timeout.count() > 0) spawn(ex, g->close_idle_loop(), g->log_, "gateway idle check of " + g->owner_);
  co_return g;
}

RuntimeGateway::RuntimeGateway(asio::any_io_executor ex, NetnsPtr editor_ns, std::uint16_t port,
                               GatewayMetrics& metrics, std::shared_ptr<spdlog::logger> log, std::string owner,
                               Options options, tcp::acceptor acceptor)
    : ex_(std::move(ex)),
      editor_ns_(std::move(editor_ns)),
      port_(port),
      metrics_(metrics),
      log_(std::move(log)),
      owner_(std::move(owner)),
      options_(options),
      acceptor_(std::move(acceptor)),
      idle_timer_(ex_) {}

RuntimeGateway::~RuntimeGateway() = default;

void RuntimeGateway::set_runtime(NetnsPtr runtime_ns) {
  runtime_ = std::move(runtime_ns);
  changed_.notify_all();
}

void RuntimeGateway::clear_runtime() {
  runtime_.reset();
  changed_.notify_all();
}

std::size_t RuntimeGateway::relaying() const {
  return static_cast<std::size_t>(std::count_if(conns_.begin(), conns_.end(), [](Conn* c) { return c->pumps > 0; }));
}

asio::awaitable<std::size_t> RuntimeGateway::drain(Duration bound) {
  auto self = shared_from_this();
  clear_runtime();
  const auto deadline = Clock::now() + bound;
  while (relaying() > 0 && !closed_ && Clock::now() < deadline) co_await changed_.wait_until(deadline);
  std::size_t cut = 0;
  for (auto* c : conns_)
    if (c->pumps > 0) {
      c->close_both();  // its pumps end and drop it
      ++cut;
    }
  co_return cut;
}

void RuntimeGateway::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  idle_timer_.cancel();
  for (auto* c : conns_) c->close_both();  // their pumps end and drop them
  runtime_.reset();
  changed_.notify_all();
}

asio::awaitable<void> RuntimeGateway::accept_loop() {
  auto self = shared_from_this();
  while (!closed_) {
    auto [ec, socket] = co_await acceptor_.async_accept(tuple_awaitable);
    if (closed_) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
      // Out of descriptors and the like: do not spin.
      log_->warn("gateway of {} on 127.0.0.1:{}: accept: {}", owner_, port_, ec.message());
      asio::steady_timer pause(ex_, std::chrono::milliseconds(100));
      co_await pause.async_wait(tuple_awaitable);
      continue;
    }
    if (ConnectionBudget* over = over_budget()) {
      const bool workspace = over == options_.workspace_budget.get();
      (workspace ? metrics_.over_workspace : metrics_.over_total)->Increment();
      refuse(socket, workspace ? "Too many connections to this workspace's runtime at once (limit " +
                                     std::to_string(over->limit()) + ")."
                               : "This server is at its limit of runtime connections; try again shortly.");
      continue;
    }
    auto c = std::make_shared<Conn>(std::move(socket));
    conns_.insert(c.get());
    metrics_.accepted->Increment();
    metrics_.open->Increment();
    spawn(ex_, serve(std::move(c)), log_, "gateway connection of " + owner_);
  }
}

ConnectionBudget* RuntimeGateway::over_budget() {
  ConnectionBudget& mine = *options_.workspace_budget;
  if (!mine.try_take()) return &mine;
  if (options_.total_budget && !options_.total_budget->try_take()) {
    mine.give_back();
    return options_.total_budget.get();
  }
  return nullptr;
}

void RuntimeGateway::refuse(tcp::socket& socket, const std::string& why) {
  // The runtime speaks HTTP: its clients read why they were refused. One
  // non-blocking write into an empty socket buffer; nothing waits for it.
  const std::string answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                             std::to_string(why.size() + 1) + "\r\n\r\n" + why + "\n";
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(answer), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

asio::awaitable<void> RuntimeGateway::close_idle_loop() {
  auto self = shared_from_this();
  const auto idle = std::chrono::duration_cast<Clock::duration>(options_.idle_timeout);
  const auto period = std::clamp<Clock::duration>(idle / 4, std::chrono::milliseconds(50), std::chrono::seconds(15));
  while (!closed_) {
    idle_timer_.expires_after(period);
    co_await idle_timer_.async_wait(tuple_awaitable);
    if (closed_) break;
    const auto now = Clock::now();
    for (auto* c : conns_)
      if (c->pumps > 0 && now - c->last_bytes >= idle) {
        metrics_.idle_closed->Increment();
        c->close_both();  // its pumps end and drop it
      }
  }
}

void RuntimeGateway::watch_held(const std::shared_ptr<Conn>& c) {
  // A held connection reads nothing: without this, one its client closed
  // would keep its place in the budgets until the hold ran out.
  c->client.async_wait(tcp::socket::wait_read, [self = shared_from_this(), c](boost::system::error_code ec) {
    if (ec || c->pumps > 0 || c->dropped) return;
    char byte;
    const ssize_t n = ::recv(c->client.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      c->client_gone = true;
      self->changed_.notify_all();
    }
    // Bytes waiting (the request, sent early): relayed once a runtime is there.
  });
}

asio::awaitable<void> RuntimeGateway::serve(std::shared_ptr<Conn> c) {
  auto self = shared_from_this();
  const auto deadline = Clock::now() + options_.hold;
  watch_held(c);
  for (;;) {
    while (!runtime_ && !closed_ && !c->client_gone && Clock::now() < deadline)
      co_await changed_.wait_until(deadline);
    if (c->client_gone) {
      drop(*c);
      co_return;
    }
    if (closed_ || !runtime_ || c->dropped) {
      metrics_.refused->Increment();
      drop(*c);
      co_return;
    }
    NetnsPtr target = runtime_;
    boost::system::error_code ec;
    try {
      c->upstream = co_await target->socket(ex_);
    } catch (const std::exception& e) {
      log_->warn("gateway of {}: no socket in the runtime's namespace: {}", owner_, e.what());
      ec = asio::error::connection_refused;
    }
    if (!ec) {
      asio::steady_timer timer(ex_, options_.connect_timeout);
      timer.async_wait([c](boost::system::error_code tec) {
        if (!tec) c->upstream.cancel();
      });
      std::tie(ec) = co_await c->upstream.async_connect(
          tcp::endpoint(asio::ip::address_v4::loopback(), options_.runtime_port), tuple_awaitable);
      timer.cancel();
    }
    if (!ec) break;
    boost::system::error_code ignored;
    c->upstream.close(ignored);
    // Refused: the runtime is away (it died and is being restarted, or is
    // moving) and feuilled will point the gateway elsewhere; hold on until
    // it does, within the same bound.
    while (runtime_ == target && !closed_ && !c->client_gone && Clock::now() < deadline)
      co_await changed_.wait_until(deadline);
    if (closed_ || Clock::now() >= deadline || c->dropped || c->client_gone) {
      metrics_.refused->Increment();
      drop(*c);
      co_return;
    }
  }
  boost::system::error_code ignored;
  c->client.set_option(tcp::no_delay(true), ignored);
  c->upstream.set_option(tcp::no_delay(true), ignored);
  c->pumps = 2;
  spawn(ex_, pump(c, true), log_, "gateway relay of " + owner_);
  spawn(ex_, pump(c, false), log_, "gateway relay of " + owner_);
}

asio::awaitable<void> RuntimeGateway::pump(std::shared_ptr<Conn> c, bool to_runtime) {
  auto self = shared_from_this();
  tcp::socket& from = to_runtime ? c->client : c->upstream;
  tcp::socket& to = to_runtime ? c->upstream : c->client;
  prometheus::Counter& counted = to_runtime ? *metrics_.to_runtime : *metrics_.to_editor;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf.get(), kChunk), tuple_awaitable);
    if (n) {
      c->last_bytes = Clock::now();
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.get(), n), tuple_awaitable);
      counted.Increment(static_cast<double>(wn));
      relayed_ += wn;
      if (wec) {
        c->close_both();
        break;
      }
    }
    if (ec == asio::error::eof) {  // half-close: pass it on, the other direction goes on
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      break;
    }
    if (ec) {
      c->close_both();
      break;
    }
  }
  if (--c->pumps == 0) drop(*c);
}

void RuntimeGateway::drop(Conn& c) {
  if (c.dropped) return;
  c.dropped = true;
  c.close_both();
  conns_.erase(&c);
  options_.workspace_budget->give_back();
  if (options_.total_budget) options_.total_budget->give_back();
  metrics_.open->Decrement();
  if (!runtime_) changed_.notify_all();  // a drain may be waiting for it
}

}  // namespace feuille::compute
