// The HTTP server in-process with routes of the test's own: body limits,
// 100-continue, streaming handlers, errors, graceful shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <thread>

#include "http/responses.hpp"
#include "http/server.hpp"
#include "support/http_client.hpp"

using namespace feuille;
using namespace feuille::http;
using namespace std::chrono_literals;
using feuille::test::RawConnection;
using ::testing::HasSubstr;

namespace {

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    router.add({bh::verb::post}, "/echo", "test", [](Request& req, RequestContext&) -> asio::awaitable<Response> {
      co_return text_response(200, "got " + std::to_string(req.body().size()));
    });
    router.add({bh::verb::get}, "/boom", "test", [](Request&, RequestContext&) -> asio::awaitable<Response> {
      throw std::runtime_error("secret internal detail");
      co_return Response{};
    });
    router.add({bh::verb::get}, "/slow", "test", [this](Request&, RequestContext&) -> asio::awaitable<Response> {
      asio::steady_timer t(ioc, 500ms);
      co_await t.async_wait(asio::use_awaitable);
      co_return text_response(200, "slow done");
    });
    router.add({bh::verb::get}, "/params/{a}/{rest*}", "test", [](Request&, RequestContext& ctx) -> asio::awaitable<Response> {
      co_return text_response(200, std::string(ctx.params.get("a")) + "|" + std::string(ctx.params.get("rest")) + "|" +
                                       std::string(ctx.query));
    });
    router.add_stream({bh::verb::get}, "/stream", "test", [](Exchange& ex) -> asio::awaitable<void> {
      std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
      co_await asio::async_write(ex.stream, asio::buffer(head), asio::use_awaitable);
      for (int i = 0; i < 3; ++i) {
        std::string chunk = "5\r\npart" + std::to_string(i) + "\r\n";
        co_await asio::async_write(ex.stream, asio::buffer(chunk), asio::use_awaitable);
      }
      co_await asio::async_write(ex.stream, asio::buffer(std::string_view("0\r\n\r\n")), asio::use_awaitable);
      ex.status = 200;
      ex.bytes = 15;
      ex.keep_alive = true;
    });
    ServerOptions o;
    o.header_timeout = 2s;
    server = std::make_unique<Server>(ioc, o, router, metrics);
    port = server->bind({Endpoint{"127.0.0.1", 0}}).front().port;
    server->start();
    thread = std::thread([this] { ioc.run(); });
  }
  void TearDown() override {
    asio::post(ioc, [this] {
      server->begin_shutdown();
      server->close_all();
    });
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!ioc.stopped() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    ioc.stop();
    thread.join();
  }

  asio::io_context ioc{1};
  Router router;
  Metrics metrics;
  std::unique_ptr<Server> server;
  int port = 0;
  std::thread thread;
};

}  // namespace

TEST_F(ServerFixture, ReadsBodiesUpToOneMebibyte) {
  auto r = feuille::test::http_request(port, "POST", "/echo", {}, std::string(1024 * 1024, 'x'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "got 1048576");
}

TEST_F(ServerFixture, DeclaredBodyOverTheLimitIs413) {
  RawConnection c("127.0.0.1", port);
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n");
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_THAT(r->body, HasSubstr("\"error\""));
}

TEST_F(ServerFixture, ChunkedBodyOverTheLimitIs413) {
  RawConnection c("127.0.0.1", port);
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string chunk(64 * 1024, 'y');
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  try {
    for (int i = 0; i < 20; ++i) c.send(size + chunk + "\r\n");
  } catch (const std::exception&) {
    // the server may stop reading once it has answered
  }
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST_F(ServerFixture, ExpectContinueGets100First) {
  RawConnection c("127.0.0.1", port);
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  auto cont = c.read_response(5s);
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  c.send("hello");
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got 5");
}

TEST_F(ServerFixture, HandlerExceptionIsABare500) {
  auto r = feuille::test::http_request(port, "GET", "/boom");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("secret internal detail"), std::string::npos);
  EXPECT_EQ(feuille::test::http_request(port, "GET", "/params/x/y").status, 200);
}

TEST_F(ServerFixture, ParamsAndQueryAreRaw) {
  auto r = feuille::test::http_request(port, "GET", "/params/a%20b/c/d%2F?q=1&r=%41");
  EXPECT_EQ(r.body, "a%20b|c/d%2F|q=1&r=%41");
}

TEST_F(ServerFixture, StreamHandlersOwnTheConnection) {
  RawConnection c("127.0.0.1", port);
  c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "part0part1part2");
  c.send("GET /params/1/2 HTTP/1.1\r\nHost: x\r\n\r\n");  // keep-alive afterwards
  EXPECT_EQ(c.read_response(5s)->body, "1|2|");
}

TEST_F(ServerFixture, UnreadBodyOfAnUnknownRouteClosesTheConnection) {
  RawConnection c("127.0.0.1", port);
  c.send("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->header("connection"), "close");
}

TEST_F(ServerFixture, ShutdownLetsInFlightRequestsFinish) {
  RawConnection busy("127.0.0.1", port);
  busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  RawConnection idle("127.0.0.1", port);
  idle.send("GET /params/1/2 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(idle.read_response(5s));
  std::this_thread::sleep_for(100ms);
  asio::post(ioc, [this] { server->begin_shutdown(); });
  EXPECT_TRUE(idle.closed_by_peer(2s));          // idle: closed at once
  auto r = busy.read_response(5s);               // busy: finishes its response
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_THROW(RawConnection("127.0.0.1", port), std::runtime_error);  // no longer accepting
}
