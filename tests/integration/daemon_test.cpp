// The real feuilled binary: start, configuration errors, HTTP limits and
// timeouts, signals, systemd notifications, health and metrics.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <thread>

#include "support/daemon.hpp"

using namespace feuille::test;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

namespace {

// Runs feuilled to completion; returns {exit status, stderr}.
std::pair<int, std::string> run_to_exit(std::vector<std::string> args) {
  args.insert(args.begin(), feuilled_path());
  Process p(args);
  auto st = p.wait(20s);
  EXPECT_TRUE(st.has_value()) << "feuilled did not exit";
  return {st.value_or(-1), p.stderr_text()};
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST(Daemon, BadConfigurationExitsOneWithOneLineNamingTheKey) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  auto unknown = dir.file("unknown.conf", "database-url = \"postgresql:///x\"\nidle-timout = \"5m\"\n");
  auto bad = dir.file("bad.conf", "database-url = \"postgresql:///x\"\nsession-ttl = \"soon\"\n");
  for (const auto& c : std::vector<Case>{
           {{"--database-url", "postgresql:///x", "--idle-timeout", "15x"}, "feuilled: idle-timeout: "},
           {{"--config", unknown}, "feuilled: idle-timout: unknown configuration key"},
           {{"--config", bad}, "feuilled: session-ttl: "},
           {{"--database-url", "postgresql:///x", "--dev-login", "--listen", "0.0.0.0:0"}, "feuilled: dev-login: "},
           {{"--listen", "127.0.0.1:0"}, "feuilled: database-url: "},
           {{"--database-url", "postgresql:///x", "--plan", "name=free,memory=lots"}, "feuilled: plan: "},
       }) {
    auto [status, err] = run_to_exit(c.args);
    EXPECT_EQ(status, 1) << c.expect;
    EXPECT_THAT(err, StartsWith(c.expect));
    EXPECT_EQ(count_lines(err), 1) << err;
  }
}

TEST(Daemon, VersionAndHelp) {
  Process v({feuilled_path(), "--version"});
  EXPECT_EQ(v.wait(10s), 0);
  EXPECT_THAT(v.stdout_text(), StartsWith("feuilled "));
  Process h({feuilled_path(), "--help"});
  EXPECT_EQ(h.wait(10s), 0);
  EXPECT_THAT(h.stdout_text(), HasSubstr("--compute-host"));
}

TEST(Daemon, ListensOnEveryAddressAndPrintsEach) {
  TestDatabase db;
  Process p({feuilled_path(), "--database-url", db.url(), "--listen", "127.0.0.1:0", "--listen", "[::1]:0"});
  ASSERT_TRUE(p.wait_for_stdout("listening on http://[::1]:", 30s)) << p.stderr_text();
  std::regex re(R"(listening on http://(127\.0\.0\.1|\[::1\]):(\d+)/)");
  std::string out = p.stdout_text();
  std::vector<std::pair<std::string, int>> found;
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it)
    found.emplace_back((*it)[1], std::stoi((*it)[2]));
  ASSERT_EQ(found.size(), 2u);
  EXPECT_NE(found[0].second, 0);
  EXPECT_EQ(http_request(found[0].second, "GET", "/healthz").body, "ok");
  EXPECT_EQ(http_request(found[1].second, "GET", "/healthz", {}, "", "::1").body, "ok");
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(15s), 0);
}

TEST(Daemon, PortInUseIsAClearError) {
  Daemon first;
  auto [status, err] = run_to_exit({"--database-url", "postgresql:///x", "--listen",
                                    "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_EQ(status, 1);
  EXPECT_THAT(err, HasSubstr("listen 127.0.0.1:" + std::to_string(first.port())));
}

TEST(Daemon, OwnResponsesCarryTheSecurityHeadersAndARequestId) {
  Daemon d;
  auto r = d.get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_THAT(r.header("content-security-policy"), HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.header("referrer-policy"), "same-origin");
  EXPECT_EQ(r.header("x-request-id").size(), 16u);
  EXPECT_NE(d.get("/healthz").header("x-request-id"), r.header("x-request-id"));
}

TEST(Daemon, NotFoundAndMethodNotAllowedAreJsonOrPages) {
  Daemon d;
  auto json = d.get("/no/such/page");
  EXPECT_EQ(json.status, 404);
  EXPECT_EQ(json.header("content-type"), "application/json");
  EXPECT_THAT(json.body, StartsWith("{\"error\":"));
  auto page = d.get("/no/such/page", {{"Accept", "text/html,application/xhtml+xml"}});
  EXPECT_EQ(page.status, 404);
  EXPECT_THAT(page.header("content-type"), StartsWith("text/html"));
  EXPECT_THAT(page.body, HasSubstr("<!doctype html>"));
  auto nav = d.get("/nope", {{"Sec-Fetch-Mode", "navigate"}});
  EXPECT_THAT(nav.header("content-type"), StartsWith("text/html"));
  auto post = d.request("POST", "/healthz");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.header("allow"), "GET, HEAD");
  EXPECT_THAT(post.body, HasSubstr("\"error\""));
}

TEST(Daemon, HeadGetsTheHeaderOnly) {
  Daemon d;
  RawConnection c("127.0.0.1", d.port());
  c.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response(5s, true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "2");
  // The connection is still usable and no body bytes were sent.
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto next = c.read_response(5s);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "ok");
}

TEST(Daemon, KeepAliveServesManyRequestsOnOneConnection) {
  Daemon d;
  RawConnection c("127.0.0.1", d.port());
  for (int i = 0; i < 50; ++i) {
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.read_response(5s);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "ok");
  }
  // Pipelined requests are answered in order.
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.read_response(5s)->status, 200);
  EXPECT_EQ(c.read_response(5s)->status, 404);
}

TEST(Daemon, MalformedRequestsGet400AndTheNextConnectionWorks) {
  Daemon d;
  for (std::string bad : std::vector<std::string>{"GARBAGE\r\n\r\n", "GET /healthz HTTP/9.9\r\n\r\n", "GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
                          "GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n",
                          "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                          "GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          std::string("GET /\0x HTTP/1.1\r\n\r\n", 20)}) {
    RawConnection c("127.0.0.1", d.port());
    c.send(bad);
    auto r = c.read_response(5s);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_THAT(r->body, HasSubstr("\"error\""));
    EXPECT_TRUE(c.closed_by_peer(5s));
  }
  EXPECT_EQ(d.get("/healthz").status, 200);
  EXPECT_TRUE(d.process().running());
}

TEST(Daemon, OversizedHeaderGets431) {
  Daemon d;
  RawConnection c("127.0.0.1", d.port());
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n");
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  // Just under the limit is fine.
  RawConnection ok("127.0.0.1", d.port());
  ok.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(15 * 1024, 'a') + "\r\n\r\n");
  EXPECT_EQ(ok.read_response(5s)->status, 200);
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Daemon, SlowHeaderTimesOutWith408) {
  Daemon d({"--http-header-timeout", "1s"});
  RawConnection c("127.0.0.1", d.port());
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
  auto start = std::chrono::steady_clock::now();
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(c.closed_by_peer(3s));
  // A connection that sends nothing is closed without an answer.
  RawConnection silent("127.0.0.1", d.port());
  EXPECT_TRUE(silent.closed_by_peer(4s));
  EXPECT_EQ(d.get("/healthz").status, 200);
}

TEST(Daemon, IdleKeepAliveConnectionsAreClosed) {
  Daemon d({"--http-keepalive-timeout", "1s"});
  RawConnection c("127.0.0.1", d.port());
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(c.read_response(5s));
  EXPECT_TRUE(c.closed_by_peer(4s));
}

TEST(Daemon, AccessLogHasOneLinePerRequest) {
  Daemon d({"--log-format", "text"});
  d.get("/healthz?secret=dontlogme");
  d.get("/nope");
  ASSERT_TRUE(d.process().wait_for_stderr("GET /nope 404", 5s));
  auto err = d.process().stderr_text();
  std::regex line(R"(info http: GET /healthz 200 2B [0-9.]+ms rid=[0-9a-f]{16} client=127\.0\.0\.1 user=-)");
  EXPECT_TRUE(std::regex_search(err, line)) << err;
  EXPECT_EQ(err.find("dontlogme"), std::string::npos);
}

TEST(Daemon, JsonLogFormatIsOneObjectPerLine) {
  Daemon d({"--log-format", "json"});
  d.get("/healthz");
  auto line = d.process().wait_for_stderr("GET /healthz 200", 5s);
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, StartsWith("{\"ts\":\""));
  EXPECT_THAT(*line, HasSubstr("\"level\":\"info\",\"logger\":\"http\",\"msg\":\"GET /healthz 200"));
}

TEST(Daemon, ForwardedForIsBelievedOnlyFromTrustedProxies) {
  Daemon d;  // trusted-proxies defaults to loopback
  d.get("/healthz", {{"X-Forwarded-For", "198.51.100.7, 203.0.113.9"}});
  EXPECT_TRUE(d.process().wait_for_stderr("client=203.0.113.9", 5s));
  Daemon strict({"--trusted-proxies", "10.0.0.0/8"});
  strict.get("/healthz", {{"X-Forwarded-For", "203.0.113.9"}});
  ASSERT_TRUE(strict.process().wait_for_stderr("GET /healthz 200", 5s));
  EXPECT_THAT(strict.process().stderr_text(), HasSubstr("client=127.0.0.1"));
}

TEST(Daemon, ReadyzReportsEachCheck) {
  Daemon d;
  auto r = d.get("/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"database\":{"));
  EXPECT_THAT(r.body, HasSubstr("\"status\":\"ok\""));
}

TEST(Daemon, MetricsInPrometheusFormat) {
  Daemon d;
  d.get("/healthz");
  d.get("/nope");
  auto m = d.get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.header("content-type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(m.body, HasSubstr("feuille_http_requests_total{code=\"200\",route=\"health\"} 1"));
  EXPECT_THAT(m.body, HasSubstr("feuille_http_requests_total{code=\"404\",route=\"unmatched\"} 1"));
  EXPECT_THAT(m.body, HasSubstr("feuille_http_request_duration_seconds_bucket{route=\"health\""));
  EXPECT_THAT(m.body, HasSubstr("feuille_build_info{"));
  EXPECT_THAT(m.body, HasSubstr("feuille_db_pool_connections{state=\"in_use\"}"));
  Daemon closed({"--metrics-allow", "10.0.0.0/8"});
  EXPECT_EQ(closed.get("/metrics").status, 403);
}

TEST(Daemon, StaticAssetsAreHashedAndLongCached) {
  Daemon d;
  auto page = d.get("/nope", {{"Accept", "text/html"}});
  std::smatch m;
  std::regex re(R"(/static/feuille\.([0-9a-f]{12})\.css)");
  ASSERT_TRUE(std::regex_search(page.body, m, re));
  auto css = d.get(m[0]);
  EXPECT_EQ(css.status, 200);
  EXPECT_THAT(css.header("content-type"), StartsWith("text/css"));
  EXPECT_EQ(css.header("cache-control"), "public, max-age=31536000, immutable");
  auto etag = css.header("etag");
  EXPECT_EQ(d.get(m[0], {{"If-None-Match", etag}}).status, 304);
  EXPECT_EQ(d.get("/static/feuille.css").header("cache-control"), "public, max-age=300");
  EXPECT_EQ(d.get("/static/missing.css").status, 404);
  EXPECT_EQ(d.get("/static/../CMakeLists.txt").status, 404);
}

TEST(Daemon, SigtermExitsZeroWithinTheGrace) {
  Daemon d({"--shutdown-grace", "2s"});
  RawConnection idle("127.0.0.1", d.port());  // an idle keep-alive connection must not hold shutdown
  idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(idle.read_response(5s));
  auto start = std::chrono::steady_clock::now();
  auto status = d.stop(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(idle.closed_by_peer(1s));
}

TEST(Daemon, SigintToo) {
  Daemon d;
  d.process().signal(SIGINT);
  EXPECT_EQ(d.process().wait(10s), 0);
}

TEST(Daemon, SdNotifyReadyWatchdogStopping) {
  TempDir dir;
  std::string path = dir.path() + "/notify.sock";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  struct timeval tv{0, 200'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto receive_until = [&](const std::string& needle, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> seen;
    while (std::chrono::steady_clock::now() < deadline) {
      char buf[512];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) continue;
      seen.emplace_back(buf, static_cast<std::size_t>(n));
      if (seen.back().find(needle) != std::string::npos) return seen;
    }
    ADD_FAILURE() << "no " << needle;
    return seen;
  };

  Daemon d({}, {{"NOTIFY_SOCKET", path}, {"WATCHDOG_USEC", "200000"}});
  auto first = receive_until("READY=1", 10s);
  EXPECT_EQ(first.back(), "READY=1");
  int watchdogs = 0;
  auto start = std::chrono::steady_clock::now();
  while (watchdogs < 3 && std::chrono::steady_clock::now() - start < 5s)
    for (const auto& m : receive_until("WATCHDOG=1", 2s)) watchdogs += m == "WATCHDOG=1";
  EXPECT_GE(watchdogs, 3);
  d.process().signal(SIGTERM);
  receive_until("STOPPING=1", 5s);
  EXPECT_EQ(d.process().wait(10s), 0);
  close(fd);
}

TEST(Daemon, SighupReloadsTheLogLevelAndKeepsTheOldConfigWhenBad) {
  TempDir dir;
  TestDatabase db;
  std::string base = "database-url = \"" + db.url() + "\"\nlisten = \"127.0.0.1:0\"\n";
  auto file = dir.file("feuilled.conf", base + "log-level = \"info\"\n");
  Process p({feuilled_path(), "--config", file});
  int port = wait_for_port(p);
  ASSERT_NE(port, 0) << p.stderr_text();

  // A bad file: refused, the daemon keeps serving with its old values.
  dir.file("feuilled.conf", base + "log-level = \"loud\"\n");
  p.signal(SIGHUP);
  ASSERT_TRUE(p.wait_for_stderr("reload refused", 5s)) << p.stderr_text();
  EXPECT_THAT(p.stderr_text(), HasSubstr("log-level: \"loud\" is not one of"));
  EXPECT_EQ(http_request(port, "GET", "/healthz").status, 200);

  // A good file: the new level applies (access lines vanish at warn).
  dir.file("feuilled.conf", base + "log-level = \"warn\"\nshutdown-grace = \"3s\"\n");
  p.signal(SIGHUP);
  ASSERT_TRUE(p.wait_for_stderr("shutdown-grace changed; it takes effect at the next restart", 5s));
  http_request(port, "GET", "/healthz?after-reload");
  std::this_thread::sleep_for(1500ms);  // the log is flushed every 500 ms
  int access_lines = 0;
  std::string err = p.stderr_text();
  for (std::size_t pos = 0; (pos = err.find("GET /healthz 200", pos)) != std::string::npos; ++pos) ++access_lines;
  EXPECT_EQ(access_lines, 1) << err;  // only the request made before the reload
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(10s), 0);
}
