// The runtime gateway between network namespaces the test makes (ip netns):
// an "editor" namespace where the gateway listens, "runtime" namespaces with
// the test's own servers on 8888. Byte relay both ways with half-close,
// holding connections while the runtime is away (then closing them), a
// refusing runtime held until the gateway points elsewhere, EADDRINUSE as a
// failure, 100 MiB through in bounded memory, close() ending everything, and
// a drain waiting for open connections then cutting those left.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "compute/netns.hpp"
#include "compute/runtime_gateway.hpp"
#include "support/netns.hpp"
#include "support/process.hpp"
#include "util/child_process.hpp"
#include "util/logging.hpp"

using namespace feuille;
using namespace feuille::compute;
using namespace feuille::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// A network namespace of the test's own, removed when it goes.
struct TestNetns {
  TestNetns() {
    name = "feuille-gw-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}() % 100000);
    auto r = run_command({"ip", "netns", "add", name}, {}, 10s);
    if (r.status != 0) throw std::runtime_error("ip netns add: " + r.output);
    run_command({"ip", "-n", name, "link", "set", "lo", "up"}, {}, 10s);
  }
  ~TestNetns() { run_command({"ip", "netns", "delete", name}, {}, 10s); }
  std::string path() const { return "/run/netns/" + name; }
  std::string name;
};

// A listening socket made inside a namespace (it stays there).
int listen_in(const std::string& ns, std::uint16_t port) {
  int fd = -1;
  in_netns(ns, [&] {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0)
      throw std::runtime_error("listen in " + ns);
  });
  return fd;
}

int connect_in(const std::string& ns, std::uint16_t port) {
  int fd = -1;
  in_netns(ns, [&] {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect in " + ns);
  });
  return fd;
}

// Reads until EOF (or `timeout`); returns what came, nullopt on timeout.
std::optional<std::string> read_to_eof(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The "runtime": on 127.0.0.1:8888 of its namespace. "reply" mode reads to
// EOF and answers "got N" (half-close); "echo" mode streams back what it reads.
class Runtime {
 public:
  Runtime(const std::string& ns, bool echo) : fd_(listen_in(ns, 8888)), echo_(echo) {
    thread_ = std::thread([this] { serve(); });
  }
  ~Runtime() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int accepted() const { return accepted_; }

 private:
  void serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      std::vector<char> buf(64 * 1024);
      std::size_t total = 0;
      for (;;) {
        ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
        if (echo_ && ::send(c, buf.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      if (!echo_) {
        std::string answer = "got " + std::to_string(total);
        (void)!::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }
  int fd_;
  bool echo_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A gateway on its own loop thread, as feuilled runs it.
class Harness {
 public:
  explicit Harness(Duration hold = Duration{30'000}) {
    options.hold = hold;
    auto& bytes = prometheus::BuildCounter().Name("b").Register(registry);
    metrics.to_runtime = &bytes.Add({{"d", "r"}});
    metrics.to_editor = &bytes.Add({{"d", "e"}});
    auto& conns = prometheus::BuildCounter().Name("c").Register(registry);
    metrics.accepted = &conns.Add({{"o", "a"}});
    metrics.refused = &conns.Add({{"o", "r"}});
    metrics.over_workspace = &conns.Add({{"o", "w"}});
    metrics.over_total = &conns.Add({{"o", "t"}});
    metrics.idle_closed = &conns.Add({{"o", "i"}});
    metrics.open = &prometheus::BuildGauge().Name("o").Register(registry).Add({});
    loop = std::thread([this] { ioc.run(); });
  }
  ~Harness() {
    on_loop([&] {
      if (gateway) gateway->close();
      gateway.reset();
      for (auto& g : others) g->close();
      others.clear();
    });
    work.reset();
    loop.join();
  }
  template <class F>
  void on_loop(F f) {
    std::promise<void> done;
    asio::post(ioc, [&] {
      f();
      done.set_value();
    });
    done.get_future().get();
  }
  void open(const TestNetns& editor, std::uint16_t port) {
    editor_ns = Netns::open(thread, editor.path());
    gateway = asio::co_spawn(ioc, RuntimeGateway::open(ioc.get_executor(), editor_ns, port, metrics, logger("compute"),
                                                       "test", options),
                             asio::use_future)
                  .get();
  }
  // Another gateway on the same loop (a sandbox's, or another workspace's).
  std::shared_ptr<RuntimeGateway> open_other(const TestNetns& editor, std::uint16_t port,
                                             RuntimeGateway::Options o) {
    auto ns = Netns::open(thread, editor.path());
    others.push_back(asio::co_spawn(ioc, RuntimeGateway::open(ioc.get_executor(), ns, port, metrics, logger("compute"),
                                                              "other", std::move(o)),
                                    asio::use_future)
                         .get());
    return others.back();
  }
  void point_at(const TestNetns& runtime) {
    auto ns = Netns::open(thread, runtime.path());
    on_loop([&] { gateway->set_runtime(ns); });
  }
  double value(prometheus::Counter* c) { return c->Value(); }
  // A count read on the loop until it is 0 or 5 s have passed; the last value.
  template <class F>
  std::size_t settled(F count) {
    std::size_t left = 1;
    for (auto deadline = std::chrono::steady_clock::now() + 5s;
         left != 0 && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms))
      on_loop([&] { left = count(); });
    return left;
  }

  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(ioc);
  NetnsThread thread;
  prometheus::Registry registry;
  GatewayMetrics metrics;
  RuntimeGateway::Options options;
  NetnsPtr editor_ns;
  std::shared_ptr<RuntimeGateway> gateway;
  std::vector<std::shared_ptr<RuntimeGateway>> others;
  std::thread loop;
};

constexpr std::uint16_t kPort = 41999;

}  // namespace

TEST(RuntimeGateway, RelaysBothWaysAcrossNamespacesWithHalfClose) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), false);
  Harness h;
  h.open(editor, kPort);
  h.point_at(runtime);
  int c = connect_in(editor.path(), kPort);
  ASSERT_EQ(::send(c, "hello", 5, 0), 5);
  ::shutdown(c, SHUT_WR);  // the runtime answers only after our end of the stream
  EXPECT_EQ(read_to_eof(c, 5s), std::optional<std::string>("got 5"));
  ::close(c);
  EXPECT_EQ(h.value(h.metrics.to_runtime), 5);
  EXPECT_EQ(h.value(h.metrics.to_editor), 5);
  EXPECT_EQ(h.value(h.metrics.accepted), 1);
  // Nothing listens on that port anywhere but in the editor's namespace.
  EXPECT_EQ(connect_from(runtime.path(), "127.0.0.1", kPort), "refused");
}

TEST(RuntimeGateway, HoldsConnectionsWhileTheRuntimeIsAwayThenClosesThem) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), false);
  Harness h(Duration{800});
  h.open(editor, kPort);
  // No runtime: accepted, held, closed at the bound without reaching anything.
  int c = connect_in(editor.path(), kPort);
  const auto t0 = std::chrono::steady_clock::now();
  auto got = read_to_eof(c, 5s);
  const auto held = std::chrono::steady_clock::now() - t0;
  ::close(c);
  EXPECT_EQ(got, std::optional<std::string>(""));
  EXPECT_GE(held, 700ms);
  EXPECT_EQ(h.value(h.metrics.refused), 1);
  EXPECT_EQ(rt.accepted(), 0);
  // The runtime back within the bound: the held connection goes through.
  c = connect_in(editor.path(), kPort);
  ASSERT_EQ(::send(c, "abc", 3, 0), 3);
  ::shutdown(c, SHUT_WR);
  std::this_thread::sleep_for(300ms);
  h.point_at(runtime);
  EXPECT_EQ(read_to_eof(c, 5s), std::optional<std::string>("got 3"));
  ::close(c);
}

TEST(RuntimeGateway, ARefusingRuntimeIsHeldUntilTheGatewayPointsElsewhere) {
  TestNetns editor, gone, back;
  Runtime rt(back.path(), false);
  Harness h;
  h.open(editor, kPort);
  h.point_at(gone);  // nothing listens there: a runtime that died
  int c = connect_in(editor.path(), kPort);
  ASSERT_EQ(::send(c, "wxyz", 4, 0), 4);
  ::shutdown(c, SHUT_WR);
  std::this_thread::sleep_for(300ms);
  h.point_at(back);  // restarted in a namespace of its own
  EXPECT_EQ(read_to_eof(c, 5s), std::optional<std::string>("got 4"));
  ::close(c);
}

TEST(RuntimeGateway, APortAlreadyHeldInTheEditorsNamespaceIsAFailure) {
  TestNetns editor;
  int squatter = listen_in(editor.path(), kPort);
  Harness h;
  try {
    h.open(editor, kPort);
    ADD_FAILURE() << "expected EADDRINUSE";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRINUSE);
  }
  ::close(squatter);
}

TEST(RuntimeGateway, HundredMebibytesStreamBothWaysInBoundedMemory) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), true);
  Harness h;
  h.open(editor, kPort);
  h.point_at(runtime);
  const std::size_t total = 100u << 20;
  const long before = status_kib(::getpid(), "VmRSS");
  int c = connect_in(editor.path(), kPort);
  std::size_t echoed = 0;
  std::thread reader([&] {
    std::vector<char> buf(64 * 1024);
    for (;;) {
      ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      echoed += static_cast<std::size_t>(n);
    }
  });
  std::vector<char> block(64 * 1024, 'x');
  for (std::size_t sent = 0; sent < total;) {
    ssize_t n = ::send(c, block.data(), std::min(block.size(), total - sent), MSG_NOSIGNAL);
    ASSERT_GT(n, 0);
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(c, SHUT_WR);
  reader.join();
  ::close(c);
  EXPECT_EQ(echoed, total);
  EXPECT_EQ(h.value(h.metrics.to_runtime), static_cast<double>(total));
  EXPECT_EQ(h.value(h.metrics.to_editor), static_cast<double>(total));
  EXPECT_LT(status_kib(::getpid(), "VmRSS") - before, 32 * 1024) << "RSS grew from " << before << " KiB";
}

TEST(RuntimeGateway, CloseEndsTheListenerAndEveryConnection) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), true);
  Harness h;
  h.open(editor, kPort);
  h.point_at(runtime);
  int c = connect_in(editor.path(), kPort);
  ASSERT_EQ(::send(c, "ping", 4, 0), 4);
  char buf[4];
  ASSERT_EQ(::recv(c, buf, 4, MSG_WAITALL), 4);
  h.on_loop([&] { EXPECT_EQ(h.gateway->connections(), 1u); });
  h.on_loop([&] { h.gateway->close(); });
  EXPECT_EQ(read_to_eof(c, 5s), std::optional<std::string>(""));
  ::close(c);
  EXPECT_EQ(connect_from(editor.path(), "127.0.0.1", kPort), "refused");
  // The pumps end on the loop's next turns after close(): wait for them, bounded.
  EXPECT_EQ(h.settled([&] { return h.gateway->connections(); }), 0u);
  EXPECT_EQ(h.metrics.open->Value(), 0);
}

TEST(RuntimeGateway, DrainWaitsForOpenConnectionsThenCutsThoseLeft) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), true);  // one connection at a time
  Harness h;
  h.open(editor, kPort);
  h.point_at(runtime);
  auto with_timeout = [](int c) {
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  };
  auto relayed = [&] {
    int c = with_timeout(connect_in(editor.path(), kPort));
    char buf[4];
    EXPECT_EQ(::send(c, "ping", 4, 0), 4);
    EXPECT_EQ(::recv(c, buf, 4, MSG_WAITALL), 4);
    return c;
  };
  auto drain = [&](Duration bound) { return asio::co_spawn(h.ioc, h.gateway->drain(bound), asio::use_future); };

  // A connection that ends during the drain: it returns then, nothing cut.
  int ending = relayed();
  auto began = std::chrono::steady_clock::now();
  auto first = drain(Duration{10'000});
  std::this_thread::sleep_for(200ms);
  ::close(ending);
  EXPECT_EQ(first.get(), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);

  // One still open at the bound is cut; one arriving meanwhile is held.
  h.point_at(runtime);
  int staying = relayed();
  began = std::chrono::steady_clock::now();
  auto second = drain(Duration{1'000});
  std::this_thread::sleep_for(200ms);
  int held = with_timeout(connect_in(editor.path(), kPort));
  ASSERT_EQ(::send(held, "late", 4, 0), 4);
  EXPECT_EQ(second.get(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - began, 1s);
  EXPECT_EQ(read_to_eof(staying, 5s), std::optional<std::string>(""));
  ::close(staying);
  // The cut one's pumps end on the loop's next turns: wait for them, bounded.
  EXPECT_EQ(h.settled([&] { return h.gateway->relaying(); }), 0u);
  h.on_loop([&] { EXPECT_FALSE(h.gateway->has_runtime()); });
  // The held one goes through once the gateway points at a runtime again.
  h.point_at(runtime);
  char buf[4] = {};
  EXPECT_EQ(::recv(held, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(std::string(buf, 4), "late");
  ::close(held);
  // Nothing open: a drain is immediate.
  EXPECT_EQ(drain(Duration{5'000}).get(), 0u);
}

// Connections through gateways have budgets: one per workspace, shared by
// its runtime's and its sandboxes' gateways, and one for every gateway of
// feuilled. Past either, a connection gets an HTTP 503 saying which, and is
// closed; a freed place is taken again.
TEST(RuntimeGateway, WorkspaceAndTotalBudgetsRefuseWithAnAnswer) {
  TestNetns editor, other_editor;
  Harness h;
  auto total = std::make_shared<ConnectionBudget>(5);
  h.options.workspace_budget = std::make_shared<ConnectionBudget>(3);
  h.options.total_budget = total;
  h.open(editor, kPort);                                    // the runtime's gateway: no runtime, so held
  auto sandbox = h.open_other(editor, kPort + 1, h.options);  // a sandbox's: the same workspace budget
  auto someone = h.options;
  someone.workspace_budget = std::make_shared<ConnectionBudget>(3);
  h.open_other(other_editor, kPort, someone);  // another workspace: the same total

  std::vector<int> held{connect_in(editor.path(), kPort), connect_in(editor.path(), kPort),
                        connect_in(editor.path(), kPort + 1)};
  EXPECT_EQ(h.settled([&] { return 3 - h.options.workspace_budget->used(); }), 0u);
  int over = connect_in(editor.path(), kPort + 1);
  auto answer = read_to_eof(over, 5s);
  ::close(over);
  ASSERT_TRUE(answer);
  EXPECT_THAT(*answer, ::testing::StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(*answer, ::testing::HasSubstr("Too many connections to this workspace's runtime at once (limit 3)"));
  EXPECT_EQ(h.value(h.metrics.over_workspace), 1);

  held.push_back(connect_in(other_editor.path(), kPort));
  held.push_back(connect_in(other_editor.path(), kPort));
  EXPECT_EQ(h.settled([&] { return 5 - total->used(); }), 0u);
  over = connect_in(other_editor.path(), kPort);
  answer = read_to_eof(over, 5s);
  ::close(over);
  ASSERT_TRUE(answer);
  EXPECT_THAT(*answer, ::testing::HasSubstr("at its limit of runtime connections"));
  EXPECT_EQ(h.value(h.metrics.over_total), 1);

  // One of the workspace's own goes: its place is free again, on either gateway.
  ::close(held[0]);
  EXPECT_EQ(h.settled([&] { return total->used() - 4; }), 0u);
  int again = connect_in(editor.path(), kPort + 1);
  EXPECT_EQ(h.settled([&] { return 5 - total->used(); }), 0u);
  EXPECT_EQ(h.value(h.metrics.over_workspace), 1);
  ::close(again);
  for (std::size_t i = 1; i < held.size(); ++i) ::close(held[i]);
  EXPECT_EQ(h.settled([&] { return total->used(); }), 0u);
}

// gateway-idle-timeout: a relayed connection with no byte either way is
// closed; one that keeps moving stays.
TEST(RuntimeGateway, QuietConnectionsAreClosedMovingOnesStay) {
  TestNetns editor, runtime;
  Runtime rt(runtime.path(), true);  // echoes, one connection at a time
  Harness h;
  h.options.idle_timeout = Duration{500};
  h.open(editor, kPort);
  h.point_at(runtime);
  int busy = connect_in(editor.path(), kPort);
  ASSERT_EQ(::send(busy, "x", 1, 0), 1);
  char byte = 0;
  ASSERT_EQ(::recv(busy, &byte, 1, 0), 1);  // the runtime serves this one
  int quiet = connect_in(editor.path(), kPort);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 2s) {
    ASSERT_EQ(::send(busy, "y", 1, MSG_NOSIGNAL), 1);
    ASSERT_EQ(::recv(busy, &byte, 1, 0), 1) << "the moving connection was closed";
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(read_to_eof(quiet, 1s), std::optional<std::string>(""));  // closed, nothing sent
  EXPECT_EQ(h.value(h.metrics.idle_closed), 1);
  ::close(quiet);
  ::close(busy);
}
