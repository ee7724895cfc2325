// The Podman client against the fixture's real podman service (unix socket)
// and one of its own over TCP: keep-alive reuse, Podman's own error messages,
// deadlines, unreachable hosts, the event stream.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <thread>

#include "compute/container_spec.hpp"
#include "compute/podman_client.hpp"
#include "http/url.hpp"
#include "support/podman.hpp"
#include "support/process.hpp"
#include "support/run_coro.hpp"

using namespace feuille;
using namespace feuille::compute;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;

namespace {

struct Client {
  explicit Client(std::string url = podman_url(), Duration timeout = Duration{10000}) {
    PodmanClient::Options o;
    o.host_name = "local";
    o.timeout = timeout;
    o.connect_timeout = Duration{2000};
    client = std::make_unique<PodmanClient>(ioc.get_executor(), url, o);
  }
  template <class F>
  auto run(F make, std::chrono::milliseconds timeout = 30s) {
    return run_coro(ioc, std::move(make), timeout);
  }
  asio::io_context ioc{1};
  std::unique_ptr<PodmanClient> client;
};

std::string unique_name(const char* what) {
  return std::string("feuille-test-") + what + "-" + std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

}  // namespace

TEST(PodmanClient, PingVersionAndKeepAliveReuse) {
  Client c;
  c.run([&]() { return c.client->ping(); });
  EXPECT_EQ(c.run([&]() { return c.client->version(); }), "4.3.1");
  auto info = c.run([&]() { return c.client->info(); });
  EXPECT_TRUE(info.contains("host"));
  for (int i = 0; i < 20; ++i) c.run([&]() { return c.client->ping(); });
  EXPECT_EQ(c.client->connections_opened(), 1u);  // one keep-alive connection served them all
  // Concurrent calls open more, and the pool keeps a few for later.
  int done = 0;
  for (int i = 0; i < 8; ++i)
    asio::co_spawn(c.ioc, [&]() { return c.client->ping(); }, [&](std::exception_ptr e) { done += e ? 100 : 1; });
  ASSERT_NO_THROW(c.run([&]() -> asio::awaitable<void> {
    while (done < 8) {
      asio::steady_timer t(c.ioc, 5ms);
      co_await t.async_wait(asio::use_awaitable);
    }
  }));
  EXPECT_EQ(done, 8);
  auto opened = c.client->connections_opened();
  EXPECT_LE(opened, 9u);
  for (int i = 0; i < 10; ++i) c.run([&]() { return c.client->ping(); });
  EXPECT_EQ(c.client->connections_opened(), opened);
}

TEST(PodmanClient, ErrorsCarryPodmansOwnMessage) {
  Client c;
  EXPECT_FALSE(c.run([&]() { return c.client->inspect_container("feuille-no-such-container"); }));
  EXPECT_FALSE(c.run([&]() { return c.client->remove_container("feuille-no-such-container", true); }));
  try {
    nlohmann::json spec = {{"name", unique_name("noimage")}, {"image", "localhost/no-such-image:1"}};
    c.run([&]() { return c.client->create_container(spec); });
    ADD_FAILURE() << "expected an error";
  } catch (const PodmanError& e) {
    EXPECT_EQ(e.status, 500u);  // what Podman 4.3 answers for a missing image
    EXPECT_FALSE(e.unreachable());
    EXPECT_THAT(e.what(), HasSubstr("podman local: 500 create feuille-test-noimage"));
    EXPECT_THAT(e.what(), HasSubstr("localhost/no-such-image:1: image not known"));
  }
  try {
    c.run([&]() { return c.client->start_container("feuille-no-such-container"); });
    ADD_FAILURE() << "expected an error";
  } catch (const PodmanError& e) {
    EXPECT_EQ(e.status, 404u);
    EXPECT_THAT(e.message, HasSubstr("no such container"));
  }
  // The connection is still good afterwards.
  c.run([&]() { return c.client->ping(); });
}

TEST(PodmanClient, DeadlinesAndUnreachableHosts) {
  Client gone("unix:///nonexistent/podman.sock");
  try {
    gone.run([&]() { return gone.client->ping(); });
    ADD_FAILURE() << "expected an error";
  } catch (const PodmanError& e) {
    EXPECT_TRUE(e.unreachable());
    EXPECT_THAT(e.what(), HasSubstr("cannot connect to unix:///nonexistent/podman.sock"));
  }
  // A call that outlives its deadline: a clean error, and the client goes on.
  Client c;
  auto name = unique_name("wait");
  nlohmann::json spec = {{"name", name},
                         {"image", standin_image()},
                         {"command", {"/feuille-standin", "runtime", "--port", "8888"}}};
  c.run([&]() { return c.client->create_container(spec); });
  try {
    c.run([&]() { return c.client->wait_container(name, "running", Duration{300}); });
    ADD_FAILURE() << "expected a timeout";
  } catch (const PodmanError& e) {
    EXPECT_TRUE(e.unreachable());
    EXPECT_THAT(e.what(), HasSubstr("timed out"));
  }
  c.run([&]() { return c.client->ping(); });
  EXPECT_TRUE(c.run([&]() { return c.client->remove_container(name, true); }));
}

TEST(PodmanClient, TheEventStreamIsReadAsItArrives) {
  Client c;
  auto name = unique_name("events");
  const std::string label = "io.feuille.instance=" + name;
  nlohmann::json filters = {{"type", {"container"}}, {"event", {"start", "died"}}, {"label", {label}}};
  auto stream = c.run([&]() {
    return c.client->open(boost::beast::http::verb::get,
                          "/v4.0.0/libpod/events?stream=true&filters=" + http::url_encode(filters.dump()), Duration{5000});
  });
  ASSERT_EQ(stream->status(), 200u);
  nlohmann::json spec = {{"name", name},
                         {"image", standin_image()},
                         {"command", {"/feuille-standin", "runtime", "--port", "8888"}},
                         {"labels", {{"io.feuille.instance", name}}}};
  TestPodman podman;
  podman.create(spec);
  c.run([&]() { return c.client->start_container(name); });
  podman.kill(name);
  std::string got;
  char buf[4096];
  while (got.find("\"died\"") == std::string::npos) {
    auto n = c.run([&]() { return stream->read_some(asio::buffer(buf), Duration{10000}); });
    ASSERT_GT(n, 0u);
    got.append(buf, n);
  }
  EXPECT_THAT(got, HasSubstr("\"Action\":\"start\""));
  EXPECT_THAT(got, HasSubstr("\"Action\":\"died\""));
  EXPECT_THAT(got, HasSubstr("\"containerExitCode\":\"137\""));
  stream->close();
  EXPECT_THROW(c.run([&]() { return stream->read_some(asio::buffer(buf), Duration{1000}); }), PodmanError);
  podman.remove(name);
}
