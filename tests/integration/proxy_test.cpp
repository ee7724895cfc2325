// The reverse proxy through the real feuilled, real PostgreSQL and real Podman
// running the stand-in editor: routing and who may pass, the headers the
// editor gets, streaming both ways with bounded memory, Server-Sent Events,
// WebSockets end to end, a workspace that is not running, an editor killed
// mid-stream, the per-user cap, activity and metrics, and no leaked sockets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "support/podman.hpp"
#include "support/workspace_daemon.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

namespace {

// Every value of a header in the stand-in's echo ([[name, value], ...]).
std::vector<std::string> echoed(const json& echo, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& pair : echo["headers"]) {
    std::string n = pair[0];
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    if (n == name) out.push_back(pair[1]);
  }
  return out;
}

// Open sockets of a process (its /proc fd entries that are sockets).
int open_sockets(int pid) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    auto target = std::filesystem::read_symlink(e.path(), lec);
    if (!lec && target.string().rfind("socket:", 0) == 0) ++n;
  }
  return n;
}

// Waits (bounded) for a count to come back to `expected` or below.
bool settles(const std::function<int()>& count, int expected, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (count() > expected) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// Reads exactly n bytes (or fewer if the connection ends or the timeout passes).
std::size_t drain(int fd, std::uint64_t n, const std::function<void()>& every_mib = {},
                  std::chrono::milliseconds timeout = 120s) {
  std::vector<char> buf(256 * 1024);
  std::uint64_t got = 0, next_mark = 1 << 20;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t r = recv(fd, buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - got)), 0);
    if (r <= 0) break;
    got += static_cast<std::uint64_t>(r);
    if (every_mib && got >= next_mark) {
      every_mib();
      next_mark += 1 << 20;
    }
  }
  return got;
}

// A minimal WebSocket client (RFC 6455): masked frames out, frames in.
class WsClient {
 public:
  struct Frame {
    bool fin = true;
    int opcode = 0;
    std::string payload;
  };

  WsClient(int port, const std::string& path, const std::map<std::string, std::string>& headers)
      : conn_("127.0.0.1", port) {
    std::string req = "GET " + path + " HTTP/1.1\r\n" + (headers.count("Host") ? "" : "Host: 127.0.0.1\r\n") +
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    conn_.send(req + "\r\n");
    auto head = read_until(conn_, "\r\n\r\n", 30s);
    auto end = head.find("\r\n\r\n");
    status_line_ = head.substr(0, head.find("\r\n"));
    if (end != std::string::npos) pending_ = head.substr(end + 4);
  }

  bool upgraded() const { return status_line_.rfind("HTTP/1.1 101", 0) == 0; }
  const std::string& status_line() const { return status_line_; }
  int fd() const { return conn_.fd(); }

  void send(int opcode, const std::string& payload, bool fin = true) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const std::size_t n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(n >> 8);
      f += static_cast<char>(n & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xff);
    }
    const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    conn_.send(f);
  }

  std::optional<Frame> read(std::chrono::milliseconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto f = parse()) return f;
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      pollfd p{conn_.fd(), POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      ssize_t r = recv(conn_.fd(), buf, sizeof buf, 0);
      if (r <= 0) return std::nullopt;
      pending_.append(buf, static_cast<std::size_t>(r));
    }
  }

  bool closed_by_peer(std::chrono::milliseconds timeout) { return conn_.closed_by_peer(timeout); }

 private:
  std::optional<Frame> parse() {
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(pending_[i]); };
    if (pending_.size() < 2) return std::nullopt;
    std::uint64_t n = b(1) & 0x7f;
    std::size_t at = 2;
    if (n == 126) {
      if (pending_.size() < 4) return std::nullopt;
      n = (b(2) << 8) | b(3);
      at = 4;
    } else if (n == 127) {
      if (pending_.size() < 10) return std::nullopt;
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | b(2 + static_cast<std::size_t>(i));
      at = 10;
    }
    if (pending_.size() < at + n) return std::nullopt;
    Frame f{(b(0) & 0x80) != 0, b(0) & 0x0f, pending_.substr(at, n)};
    pending_.erase(0, at + n);
    return f;
  }

  RawConnection conn_;
  std::string status_line_;
  std::string pending_;
};

}  // namespace

// One daemon for the suite: alice's workspace runs; bob is signed in with
// none; vera is a viewer and eddie an editor of alice's workspace.
class Proxy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Loopback is not a trusted proxy here: the test's X-Forwarded-For is a spoof.
    w = new WorkspaceDaemon({"--trusted-proxies", "10.9.9.9/32", "--workspace-ticket-lifetime", "1s"});
    alice = w->login("alice");
    bob = w->login("bob");
    vera = w->login("vera");
    eddie = w->login("eddie");
    alice_id = me(alice)["id"];
    bob_id = me(bob)["id"];
    auto start = w->post("/api/workspace/start", alice);
    ASSERT_EQ(start.status, 202) << start.body;
    ASSERT_TRUE(w->wait_state(alice, "running"));
    for (auto [member, role] : {std::pair{vera, "viewer"}, std::pair{eddie, "editor"}}) {
      auto headers = w->as(alice, true);
      headers["Content-Type"] = "application/json";
      auto inv = w->daemon->request("POST", "/api/invites", headers,
                                    json{{"project", "Scratch"}, {"role", role}}.dump());
      ASSERT_EQ(inv.status, 201) << inv.body;
      auto joined = w->daemon->request("POST", "/join/" + json::parse(inv.body)["token"].get<std::string>(),
                                       w->as(member, true));
      ASSERT_EQ(joined.status, 303) << joined.body;
    }
  }
  static void TearDownTestSuite() {
    delete w;
    w = nullptr;
  }
  static json me(const std::string& token) {
    auto r = w->daemon->get("/api/me", w->as(token));
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }

  Daemon& d() { return *w->daemon; }
  int pid() { return d().process().pid(); }
  std::string base() { return "/u/" + alice_id + "/"; }
  // On feuilled's own origin (public-url).
  std::map<std::string, std::string> as(const std::string& token, bool post = false) { return w->as(token, post); }
  // On owner's workspace origin (alice's unless named), entered as token's user.
  std::map<std::string, std::string> in(const std::string& token, bool post = false, std::string owner = "") {
    return w->in(token, owner.empty() ? alice_id : owner, post);
  }
  // The same as raw header lines (Host and Cookie; Origin for a state change).
  std::string lines(const std::string& token, bool post = false, std::string owner = "") {
    std::string out;
    for (const auto& [k, v] : in(token, post, owner)) out += k + ": " + v + "\r\n";
    return out;
  }
  int websockets_open() {
    auto metrics = d().get("/metrics").body;
    auto at = metrics.find("\nfeuille_proxy_websockets_open ");
    return at == std::string::npos ? -1 : std::stoi(metrics.substr(at + 31));
  }

  static inline WorkspaceDaemon* w = nullptr;
  static inline std::string alice, bob, vera, eddie, alice_id, bob_id;
};

TEST_F(Proxy, RoutesAndWhoMayPass) {
  auto slash = d().get("/u/" + alice_id + "?project=Scratch", in(alice));
  EXPECT_EQ(slash.status, 301);
  EXPECT_EQ(slash.header("location"), "/u/" + alice_id + "/?project=Scratch");

  auto owner = d().get(base() + "hello", in(alice));
  ASSERT_EQ(owner.status, 200) << owner.body;
  EXPECT_EQ(json::parse(owner.body)["path"], "/hello");
  EXPECT_EQ(json::parse(d().get(base(), in(alice)).body)["target"], "/");  // empty rest = /

  // Not signed in: a browser page goes to the login, anything else gets 401;
  // on the workspace origin without its cookie, a page goes back to public-url.
  auto page = d().get(base() + "notes?x=1", {{"Accept", "text/html"}});
  EXPECT_EQ(page.status, 302);
  EXPECT_EQ(page.header("location"), "/login?next=%2Fu%2F" + alice_id + "%2Fnotes%3Fx%3D1");
  EXPECT_EQ(d().get(base() + "api/files").status, 401);
  auto back = d().get(base() + "notes?x=1", {{"Host", w->workspace_host(alice_id)}, {"Accept", "text/html"}});
  EXPECT_EQ(back.status, 302);
  EXPECT_EQ(back.header("location"), w->origin() + base() + "notes?x=1");
  EXPECT_EQ(d().get(base() + "api/files", {{"Host", w->workspace_host(alice_id)}}).status, 401);

  // Someone else: 403, the same for a page and an upgrade; an unknown or malformed id: 404.
  EXPECT_EQ(d().get(base(), as(bob)).status, 403);
  WsClient stranger(d().port(), base() + "events", as(bob));
  EXPECT_THAT(stranger.status_line(), HasSubstr(" 403 "));
  EXPECT_EQ(d().get("/u/00000000-0000-4000-8000-000000000000/", as(alice)).status, 404);
  EXPECT_EQ(d().get("/u/not-a-uuid/", as(alice)).status, 404);
  EXPECT_EQ(d().get("/u/" + bob_id + "/", as(alice)).status, 403);  // bob exists, alice is no member
  // bob's cookie for his own workspace opens nothing on alice's origin.
  auto bobs = w->in(bob, bob_id);
  bobs["Host"] = w->workspace_host(alice_id);
  EXPECT_EQ(d().get(base() + "x", bobs).status, 401);

  // A viewer reads and opens WebSockets, but changes nothing; an editor may.
  auto viewed = d().get(base() + "doc", in(vera));
  ASSERT_EQ(viewed.status, 200);
  EXPECT_THAT(echoed(json::parse(viewed.body), "x-feuille-role"), ::testing::ElementsAre("viewer"));
  EXPECT_EQ(d().request("POST", base() + "api/save", in(vera, true), "x").status, 403);
  EXPECT_EQ(d().request("DELETE", base() + "api/file", in(vera, true)).status, 403);
  // An Upgrade header does not make a POST an upgrade: still a viewer's POST.
  auto sneaky = in(vera, true);
  sneaky["Connection"] = "Upgrade";
  sneaky["Upgrade"] = "websocket";
  EXPECT_EQ(d().request("POST", base() + "api/save", sneaky, "x").status, 403);
  WsClient viewer_ws(d().port(), base() + "yjs/doc", in(vera));
  EXPECT_TRUE(viewer_ws.upgraded()) << viewer_ws.status_line();
  auto edited = d().request("POST", base() + "api/save", in(eddie, true), "x");
  ASSERT_EQ(edited.status, 200) << edited.body;
  EXPECT_THAT(echoed(json::parse(edited.body), "x-feuille-role"), ::testing::ElementsAre("editor"));

  // Cross-site: unsafe methods and upgrades with a foreign Origin are refused
  // (feuilled's own origin is foreign to a workspace's).
  for (const std::string& foreign : std::vector<std::string>{"https://evil.example", w->origin(), w->workspace_origin(bob_id)}) {
    auto evil = in(alice);
    evil["Origin"] = foreign;
    EXPECT_EQ(d().request("POST", base() + "api/save", evil, "x").status, 403) << foreign;
    WsClient hijack(d().port(), base() + "events", evil);
    EXPECT_THAT(hijack.status_line(), HasSubstr(" 403 ")) << foreign;
  }
  EXPECT_EQ(d().request("POST", base() + "api/save", in(alice, true), "x").status, 200);
}

TEST_F(Proxy, TheEditorGetsTheRightHeadersAndTheQueryByteForByte) {
  RawConnection c("127.0.0.1", d().port());
  c.send("GET " + base() + "a/b%2Fc?x=%2F&y=a+b&&z=%zz HTTP/1.1\r\n" + lines(alice) +
         "Cookie: theme=dark; feuille_session=" + alice + "; lang=fr\r\n"
         "X-Feuille-User: " + bob_id + "\r\nX-Feuille-Role: owner\r\nX-Feuille-Other: 1\r\nX-Token: stolen\r\n"
         "X-Forwarded-For: 6.6.6.6\r\nConnection: keep-alive, X-Custom-Hop\r\nX-Custom-Hop: 1\r\nX-Kept: yes\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;  // the stand-in got the real token, not "stolen"
  auto echo = json::parse(r->body);
  EXPECT_EQ(echo["target"], "/a/b%2Fc?x=%2F&y=a+b&&z=%zz");
  EXPECT_THAT(echoed(echo, "x-feuille-user"), ::testing::ElementsAre(alice_id));
  EXPECT_THAT(echoed(echo, "x-feuille-role"), ::testing::ElementsAre("owner"));
  EXPECT_TRUE(echoed(echo, "x-feuille-other").empty());
  EXPECT_THAT(echoed(echo, "x-forwarded-for"), ::testing::ElementsAre("127.0.0.1"));
  EXPECT_THAT(echoed(echo, "x-forwarded-proto"), ::testing::ElementsAre("http"));
  EXPECT_THAT(echoed(echo, "x-forwarded-host"), ::testing::ElementsAre(w->workspace_host(alice_id)));
  EXPECT_EQ(echoed(echo, "x-token").size(), 1u);
  EXPECT_TRUE(echoed(echo, "x-custom-hop").empty());
  EXPECT_THAT(echoed(echo, "x-kept"), ::testing::ElementsAre("yes"));
  std::string cookies;
  for (const auto& v : echoed(echo, "cookie")) cookies += v + ";";
  EXPECT_THAT(cookies, HasSubstr("theme=dark"));
  EXPECT_THAT(cookies, HasSubstr("lang=fr"));
  EXPECT_THAT(cookies, Not(HasSubstr("feuille_")));  // neither the session nor the workspace cookie
  EXPECT_THAT(cookies, Not(HasSubstr(alice)));
  EXPECT_EQ(r->header("server"), "feuille-standin");  // the editor's own headers pass

  // The same connection serves the next request (keep-alive both sides).
  c.send("HEAD " + base() + "_bytes?size=1000 HTTP/1.1\r\n" + lines(alice) + "\r\n");
  auto head = c.read_response(10s, true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-length"), "1000");
  EXPECT_TRUE(head->body.empty());
}

TEST_F(Proxy, RequestBodiesChunkedAndWithExpectContinue) {
  RawConnection c("127.0.0.1", d().port());
  c.send("POST " + base() + "upload HTTP/1.1\r\n" + lines(alice, true) +
         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["body_bytes"], 11);

  c.send("PUT " + base() + "upload HTTP/1.1\r\n" + lines(alice, true) +
         "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_THAT(read_until(c, "\r\n\r\n", 10s), HasSubstr("HTTP/1.1 100 Continue"));
  c.send("data");
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto echo = json::parse(r->body);
  EXPECT_EQ(echo["body_bytes"], 4);
  EXPECT_EQ(echo["method"], "PUT");
}

TEST_F(Proxy, ServerSentEventsArriveOneByOne) {
  RawConnection c("127.0.0.1", d().port());
  c.send("GET " + base() + "_sse?count=3&interval_ms=700 HTTP/1.1\r\n" + lines(alice) + "\r\n");
  auto first = read_until(c, "data: {\"n\":0}", 10s);
  EXPECT_THAT(first, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(first, HasSubstr("text/event-stream"));
  EXPECT_THAT(first, HasSubstr("data: {\"n\":0}"));
  EXPECT_THAT(first, Not(HasSubstr("\"n\":1")));  // the second is 700 ms away: nothing waited for it
  auto rest = read_until(c, "0\r\n\r\n", 10s);
  EXPECT_THAT(rest, HasSubstr("data: {\"n\":2}"));
}

TEST_F(Proxy, LargeBodiesStreamBothWaysInBoundedMemory) {
  const int p = pid();
  // Warm up (the first relay allocates its buffers) before the baseline.
  ASSERT_EQ(d().get(base() + "_bytes?size=1000000", in(alice)).body.size(), 1000000u);
  const long before = status_kib(p, "VmRSS");
  long peak = before;
  auto sample = [&] { peak = std::max(peak, status_kib(p, "VmRSS")); };

  const std::uint64_t down = 200ull << 20;
  RawConnection c("127.0.0.1", d().port());
  c.send("GET " + base() + "_bytes?size=" + std::to_string(down) + " HTTP/1.1\r\n" + lines(alice) +
         "\r\n");
  auto head = read_until(c, "\r\n\r\n", 10s);
  ASSERT_THAT(head, HasSubstr("Content-Length: " + std::to_string(down)));
  std::uint64_t already = head.size() - (head.find("\r\n\r\n") + 4);
  EXPECT_EQ(already + drain(c.fd(), down - already, sample), down);

  const std::uint64_t up = 100ull << 20;
  RawConnection u("127.0.0.1", d().port());
  u.send("POST " + base() + "upload HTTP/1.1\r\n" + lines(alice, true) +
         "Content-Length: " + std::to_string(up) + "\r\n\r\n");
  std::string block(1 << 20, 'u');
  for (std::uint64_t sent = 0; sent < up; sent += block.size()) {
    u.send(block);
    sample();
  }
  auto r = u.read_response(60s);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["body_bytes"], up);
  sample();
  EXPECT_LT(peak - before, 32 * 1024) << "feuilled's RSS grew from " << before << " KiB to " << peak << " KiB";
}

TEST_F(Proxy, WebSocketsPassFramesAndCloseCodesEndToEnd) {
  WsClient ws(d().port(), base() + "yjs/notes", in(alice));
  ASSERT_TRUE(ws.upgraded()) << ws.status_line();
  ws.send(1, "hello");
  auto text = ws.read();
  ASSERT_TRUE(text);
  EXPECT_EQ(text->opcode, 1);
  EXPECT_EQ(text->payload, "hello");

  std::string binary(64 * 1024, '\0');
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 31 + 7);
  ws.send(2, binary);
  std::string got;
  for (;;) {  // the editor may fragment; the proxy passes its frames as they are
    auto f = ws.read();
    ASSERT_TRUE(f);
    got += f->payload;
    if (f->fin) break;
  }
  EXPECT_EQ(got, binary);

  // A message sent in fragments by the browser arrives whole at the editor.
  ws.send(1, "frag", false);
  ws.send(0, "mented");
  auto whole = ws.read();
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->payload, "fragmented");

  ws.send(9, "are you there");  // ping: the editor (Beast) answers with a pong
  auto pong = ws.read();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 10);
  EXPECT_EQ(pong->payload, "are you there");

  ws.send(1, "__close 4000 bye");
  auto close = ws.read();
  ASSERT_TRUE(close);
  EXPECT_EQ(close->opcode, 8);
  ASSERT_GE(close->payload.size(), 2u);
  EXPECT_EQ((static_cast<unsigned char>(close->payload[0]) << 8) | static_cast<unsigned char>(close->payload[1]), 4000);
  EXPECT_EQ(close->payload.substr(2), "bye");
  ws.send(8, close->payload.substr(0, 2));
  EXPECT_TRUE(ws.closed_by_peer(10s));
}

TEST_F(Proxy, TheBrowserReachesTheRuntimeThroughTheEditorAndTheGateway) {
  // mrmd-server's shim sends the browser's runtime calls to
  // /proxy/RUNTIME_PORT/... and /sync/RUNTIME_PORT/...; the editor forwards
  // them to 127.0.0.1:RUNTIME_PORT in its namespace, where the gateway relays
  // to the runtime's own namespace.
  const auto rt_port = std::to_string(w->workspace(alice)["runtime"]["port"].get<int>());
  auto caps = d().get(base() + "proxy/" + rt_port + "/mrp/v1/capabilities", in(alice));
  ASSERT_EQ(caps.status, 200) << caps.body;
  EXPECT_EQ(json::parse(caps.body)["protocol"], "mrp/1");
  auto state = d().get(base() + "proxy/" + rt_port + "/_standin/state?set=kept", in(alice));
  ASSERT_EQ(state.status, 200) << state.body;
  auto again = json::parse(d().get(base() + "proxy/" + rt_port + "/_standin/state", in(alice)).body);
  EXPECT_EQ(again["value"], "kept");  // one process, holding its state
  EXPECT_EQ(again["instance"], json::parse(state.body)["instance"]);
  WsClient ws(d().port(), base() + "sync/" + rt_port + "/stream", in(alice));
  ASSERT_TRUE(ws.upgraded()) << ws.status_line();
  ws.send(1, "to the runtime");
  auto echoed_back = ws.read();
  ASSERT_TRUE(echoed_back);
  EXPECT_EQ(echoed_back->payload, "to the runtime");
  // Another port of the editor's namespace has nothing behind it.
  EXPECT_EQ(d().get(base() + "proxy/1/x", in(alice)).status, 502);
}

TEST_F(Proxy, AThousandWebSocketsLeaveNoDescriptorsBehind) {
  const int p = pid();
  const int baseline = open_sockets(p);
  for (int round = 0; round < 10; ++round) {
    std::vector<std::unique_ptr<WsClient>> open;
    for (int i = 0; i < 100; ++i) {
      open.push_back(std::make_unique<WsClient>(d().port(), base() + "events", in(alice)));
      ASSERT_TRUE(open.back()->upgraded()) << "WebSocket " << round * 100 + i << ": " << open.back()->status_line();
    }
    open.front()->send(1, "still there");
    auto echo = open.front()->read();
    ASSERT_TRUE(echo);
    EXPECT_EQ(echo->payload, "still there");
    // Half close politely, half just go away; every tunnel ends before the
    // next round (the per-user cap would refuse them otherwise).
    for (std::size_t i = 0; i < open.size(); i += 2) open[i]->send(8, std::string("\x03\xe8", 2));
    open.clear();
    EXPECT_TRUE(settles([&] { return websockets_open(); }, 0)) << websockets_open() << " still open";
  }
  EXPECT_TRUE(settles([&] { return open_sockets(p); }, baseline)) << open_sockets(p) << " sockets, " << baseline
                                                                  << " before";
}

TEST_F(Proxy, MetricsCountRequestsBytesAndWebSocketFrames) {
  ASSERT_EQ(d().get(base() + "_bytes?size=5000", in(alice)).status, 200);
  WsClient ws(d().port(), base() + "events", in(alice));
  ASSERT_TRUE(ws.upgraded());
  ws.send(1, "one");
  ASSERT_TRUE(ws.read());
  auto metrics = d().get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_requests_total{code=\"200\"}"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_requests_total{code=\"101\"}"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_bytes_total{direction=\"to_client\"}"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_bytes_total{direction=\"to_editor\"}"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_websockets_open 1"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_websocket_data_frames_total"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_time_to_first_byte_seconds_count"));
  EXPECT_THAT(metrics, HasSubstr("feuille_proxy_upstream_connect_errors_total"));
}

TEST_F(Proxy, OneTenantCannotTakeEveryConnection) {
  std::vector<std::unique_ptr<RawConnection>> streams;
  for (int i = 0; i < 200; ++i) {
    streams.push_back(std::make_unique<RawConnection>("127.0.0.1", d().port()));
    streams.back()->send("GET " + base() + "_sse?count=0&interval_ms=1000 HTTP/1.1\r\n" +
                         lines(alice) + "\r\n");
  }
  for (auto& s : streams) ASSERT_THAT(read_until(*s, "\"n\":0}", 30s), HasSubstr("\"n\":0}"));
  auto refused = d().get(base() + "x", in(alice));
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.header("retry-after"), "1");
  EXPECT_EQ(d().get("/api/workspace", as(bob)).status, 200);  // everyone else is served
  EXPECT_EQ(d().get(base() + "x", in(eddie)).status, 200);     // a member too: each caller has their own allowance
  streams.clear();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  int status = 0;
  while ((status = d().get(base() + "x", in(alice)).status) == 429 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(status, 200);
}

// A workspace of its own (carol's): its editor is killed from outside in the
// middle of a stream and of a WebSocket.
TEST_F(Proxy, AnEditorKilledMidStreamClosesBothSidesAndLeaksNothing) {
  auto carol = w->login("carol");
  std::string carol_id = me(carol)["id"];
  ASSERT_EQ(w->post("/api/workspace/start", carol).status, 202);
  ASSERT_TRUE(w->wait_state(carol, "running"));
  const int p = pid();
  const int baseline = open_sockets(p);
  const std::string at = "/u/" + carol_id + "/";

  RawConnection sse("127.0.0.1", d().port());
  sse.send("GET " + at + "_sse?count=0&interval_ms=100 HTTP/1.1\r\n" + lines(carol, false, carol_id) + "\r\n");
  ASSERT_THAT(read_until(sse, "\"n\":1}", 10s), HasSubstr("\"n\":1}"));
  WsClient ws(d().port(), at + "events", in(carol, false, carol_id));
  ASSERT_TRUE(ws.upgraded());

  TestPodman().kill("feuille-ed-" + carol_id);
  EXPECT_TRUE(sse.closed_by_peer(15s));
  EXPECT_TRUE(ws.closed_by_peer(15s));
  EXPECT_TRUE(settles([&] { return open_sockets(p); }, baseline)) << open_sockets(p) << " sockets, " << baseline
                                                                  << " before";
  // The compute module noticed and brings the editor back.
  ASSERT_TRUE(w->wait_state(carol, "running", nullptr, 60s));
  auto deadline = std::chrono::steady_clock::now() + 30s;
  int status = 0;
  while ((status = d().get(at + "again", in(carol, false, carol_id)).status) != 200 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200ms);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(w->post("/api/workspace/stop", carol).status, 200);
}

// dave's workspace is not running: his page load starts it, other requests
// get 503, a member waits for a start on its way but never starts it, and
// the page becomes the editor.
TEST_F(Proxy, AWorkspaceThatIsNotRunning) {
  auto dave = w->login("dave");
  std::string dave_id = me(dave)["id"];
  const std::string at = "/u/" + dave_id + "/";

  auto page_headers = in(dave, false, dave_id);  // entering does not start it
  EXPECT_EQ(w->workspace(dave)["state"], "stopped");
  page_headers["Accept"] = "text/html";
  auto page = d().get(at, page_headers);
  EXPECT_EQ(page.status, 503);
  EXPECT_EQ(page.header("retry-after"), "5");
  EXPECT_THAT(page.body, HasSubstr("Starting your workspace"));
  EXPECT_THAT(page.body, HasSubstr("starting."));  // the script that follows the events
  EXPECT_THAT(w->workspace(dave)["state"].get<std::string>(), ::testing::AnyOf("starting", "running"));

  // While it starts, requests wait for it instead of failing.
  auto waited = d().get(at + "waited", in(dave, false, dave_id));
  EXPECT_EQ(waited.status, 200) << waited.body;
  EXPECT_EQ(json::parse(waited.body)["path"], "/waited");

  // Stopping it ends every way into it: the cookie too.
  EXPECT_EQ(w->post("/api/workspace/stop", dave).status, 200);
  EXPECT_EQ(d().get(at + "api/files", in(dave, false, dave_id)).status, 401);
  auto api_stopped = d().get(at + "api/files", w->in(dave, dave_id, false, nullptr, true));  // not a page: starts it, 503
  EXPECT_EQ(api_stopped.status, 503);
  EXPECT_EQ(api_stopped.header("retry-after"), "5");
  EXPECT_THAT(w->workspace(dave)["state"].get<std::string>(), ::testing::AnyOf("starting", "running"));
  ASSERT_TRUE(w->wait_state(dave, "running"));

  // A member finds a stopped workspace stopped, and cannot start it. (The
  // invite needs dave's Scratch project, made by his first start.)
  auto inv_headers = w->as(dave, true);
  inv_headers["Content-Type"] = "application/json";
  auto inv = d().request("POST", "/api/invites", inv_headers, R"({"project":"Scratch","role":"editor"})");
  ASSERT_EQ(inv.status, 201) << inv.body;
  ASSERT_EQ(d().request("POST", "/join/" + json::parse(inv.body)["token"].get<std::string>(), as(bob, true)).status,
            303);
  // A member's request while the owner's start is on its way waits for it.
  EXPECT_EQ(w->post("/api/workspace/stop", dave).status, 200);
  EXPECT_EQ(w->post("/api/workspace/start", dave).status, 202);
  auto member_waited = d().get(at + "member-waited", w->in(bob, dave_id, false, nullptr, true));
  EXPECT_EQ(member_waited.status, 200) << member_waited.body;
  EXPECT_EQ(json::parse(member_waited.body)["path"], "/member-waited");
  EXPECT_EQ(w->post("/api/workspace/stop", dave).status, 200);
  auto member = d().get(at + "x", w->in(bob, dave_id, false, nullptr, true));
  EXPECT_EQ(member.status, 503);
  EXPECT_THAT(member.body, HasSubstr("its owner can start it"));
  EXPECT_EQ(w->workspace(dave)["state"], "stopped");
}

// The first /static/ path a page links to.
std::string http_static_path(const std::string& page) {
  auto at = page.find("/static/");
  return at == std::string::npos ? "/static/none" : page.substr(at, page.find('"', at) - at);
}

// The way onto a workspace's origin: a single-use ticket (60 s here cut to
// 1 s), bound to the session that asked and to the workspace it names.
TEST_F(Proxy, TicketsAreSingleUseShortLivedAndBound) {
  auto ticket_for = [&](const std::string& token, const std::string& path) {
    auto r = d().get(path, as(token));
    std::string location = r.header("location");
    EXPECT_EQ(r.status, 302) << r.body;
    EXPECT_EQ(r.header("cache-control"), "no-store");
    auto at = location.find("ticket=");
    EXPECT_NE(at, std::string::npos) << location;
    return at == std::string::npos ? std::string() : location.substr(at + 7);
  };
  auto redeem = [&](const std::string& ticket, const std::string& owner) {
    return d().get("/_feuille/enter?ticket=" + ticket, {{"Host", w->workspace_host(owner)}});
  };
  // The path and query asked for are where the ticket lands.
  auto t = ticket_for(alice, base() + "notes/a%20b?x=1&y");
  auto entered = redeem(t, alice_id);
  ASSERT_EQ(entered.status, 302) << entered.body;
  EXPECT_EQ(entered.header("location"), base() + "notes/a%20b?x=1&y");
  std::string cookie = entered.header("set-cookie");
  EXPECT_THAT(cookie, ::testing::StartsWith("feuille_ws="));
  EXPECT_THAT(cookie, AllOf(HasSubstr("; Path=/"), HasSubstr("HttpOnly"), HasSubstr("SameSite=Lax")));
  EXPECT_THAT(cookie, Not(HasSubstr("Domain")));  // host-only: no other workspace sees it
  EXPECT_EQ(redeem(t, alice_id).status, 400);      // replay
  // For another workspace: refused, and spent all the same.
  auto elsewhere = ticket_for(alice, base());
  EXPECT_EQ(redeem(elsewhere, bob_id).status, 400);
  EXPECT_EQ(redeem(elsewhere, alice_id).status, 400);
  // Its session ended before it was used: refused.
  auto temp = w->login("alice");
  auto orphan = ticket_for(temp, base());
  ASSERT_EQ(d().request("POST", "/auth/logout", as(temp, true)).status, 302);
  EXPECT_EQ(redeem(orphan, alice_id).status, 400);
  // Expired (the suite runs with workspace-ticket-lifetime 1s).
  auto late = ticket_for(alice, base());
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(redeem(late, alice_id).status, 400);
  for (const std::string& bad : std::vector<std::string>{"", "x", std::string(43, 'A'), "%00"}) EXPECT_EQ(redeem(bad, alice_id).status, 400) << bad;
  // Nobody but the owner and members gets one; nor does a POST or an upgrade.
  EXPECT_EQ(d().get(base(), as(bob)).status, 403);
  EXPECT_EQ(d().request("POST", base() + "api/save", as(alice, true), "x").status, 403);
  // Tickets and cookies never reach the log.
  EXPECT_THAT(d().process().stderr_text(), AllOf(Not(HasSubstr(t)), Not(HasSubstr(elsewhere)),
                                                   Not(HasSubstr(cookie.substr(11, 43)))));
}

// A workspace origin serves that workspace and nothing of feuilled's own.
TEST_F(Proxy, AWorkspaceOriginServesNothingElse) {
  auto there = in(alice);
  for (const std::string& path : std::vector<std::string>{"/api/me", "/auth/validate", "/dashboard", "/login", "/", "/healthz", "/metrics",
                           "/join/x", "/@alice", "/u/" + bob_id + "/", "/api/workspace/events"})
    EXPECT_EQ(d().get(path, there).status, 404) << path;
  EXPECT_EQ(d().request("POST", "/auth/logout", in(alice, true)).status, 404);
  auto css = d().get(http_static_path(d().get("/login").body), there);  // the pages' own CSS and JS
  EXPECT_EQ(css.status, 200);
  // A name under the workspace domain that is no workspace is not feuilled either.
  for (std::string host : {"nobody.ws.localhost", "00000000-0000-4000-8000-00000000000g.ws.localhost"})
    EXPECT_EQ(d().get("/login", {{"Host", host + ":" + std::to_string(d().port())}}).status, 404) << host;
}

// Losing access closes what is open at once: a member removed, a logout.
TEST_F(Proxy, RemovalAndLogoutCloseOpenWebSocketsAtOnce) {
  auto mia = w->login("mia");
  std::string mia_id = me(mia)["id"];
  auto inv_headers = as(alice, true);
  inv_headers["Content-Type"] = "application/json";
  auto inv = d().request("POST", "/api/invites", inv_headers, R"({"project":"Scratch","role":"editor"})");
  ASSERT_EQ(inv.status, 201) << inv.body;
  ASSERT_EQ(d().request("POST", "/join/" + json::parse(inv.body)["token"].get<std::string>(), as(mia, true)).status, 303);
  WsClient member_ws(d().port(), base() + "events", in(mia));
  ASSERT_TRUE(member_ws.upgraded()) << member_ws.status_line();
  WsClient owner_ws(d().port(), base() + "events", in(alice));
  ASSERT_TRUE(owner_ws.upgraded());
  ASSERT_EQ(d().request("DELETE", "/api/members/" + mia_id, as(alice, true)).status, 204);
  EXPECT_TRUE(member_ws.closed_by_peer(1s));
  EXPECT_EQ(d().get(base() + "x", in(mia)).status, 401);  // the cookie ended too
  owner_ws.send(1, "still here");  // the owner's tunnel lives on
  auto echo = owner_ws.read();
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->payload, "still here");

  // A second session of alice's: its logout closes its tunnels, not the first's.
  auto other = w->login("alice");
  WsClient other_ws(d().port(), base() + "events", w->in(other, alice_id));
  ASSERT_TRUE(other_ws.upgraded());
  ASSERT_EQ(d().request("POST", "/auth/logout", as(other, true)).status, 302);
  EXPECT_TRUE(other_ws.closed_by_peer(1s));
  EXPECT_EQ(d().get(base() + "x", w->in(other, alice_id)).status, 401);
  owner_ws.send(1, "and still");
  ASSERT_TRUE(owner_ws.read());
}

// Quiet tunnels are probed with a ping (here after 1 s): a browser that
// answers keeps its tunnel, one that does not loses it. And one client
// address has its own cap (here 3) on what it holds open.
TEST(ProxyWebSockets, QuietTunnelsArePingedAndDeadOnesClosed) {
  WorkspaceDaemon w({"--proxy-websocket-ping", "1s", "--proxy-max-per-client", "3"});
  auto token = w.login("pia");
  std::string id = json::parse(w.daemon->get("/api/me", w.as(token)).body)["id"];
  ASSERT_EQ(w.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(w.wait_state(token, "running"));
  const std::string at = "/u/" + id + "/";
  WsClient alive(w.daemon->port(), at + "events", w.in(token, id));
  WsClient dead(w.daemon->port(), at + "events", w.in(token, id));
  ASSERT_TRUE(alive.upgraded() && dead.upgraded());

  // The third is the last this address may hold.
  WsClient third(w.daemon->port(), at + "events", w.in(token, id));
  ASSERT_TRUE(third.upgraded());
  auto refused = w.daemon->get(at + "x", w.in(token, id));
  EXPECT_EQ(refused.status, 429);
  EXPECT_THAT(refused.body, HasSubstr("from your address"));
  third.send(8, std::string("\x03\xe8", 2));
  ASSERT_TRUE(third.closed_by_peer(10s));

  auto ping = dead.read(10s);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->opcode, 9);
  EXPECT_TRUE(ping->payload.empty());
  // `alive` answers every ping for a while, then still talks to the editor.
  auto until = std::chrono::steady_clock::now() + 5s;
  int pings = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (auto f = alive.read(200ms); f && f->opcode == 9) {
      ++pings;
      alive.send(10, f->payload);
    }
  }
  EXPECT_GE(pings, 1);
  alive.send(1, "still here");
  std::optional<WsClient::Frame> echo;
  while ((echo = alive.read(10s)) && echo->opcode == 9) alive.send(10, echo->payload);
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->payload, "still here");
  // `dead` never answered: closed.
  EXPECT_TRUE(dead.closed_by_peer(10s));
  EXPECT_THAT(w.daemon->get("/metrics").body, HasSubstr("feuille_proxy_websocket_dead_total 1"));
}

// Proxied requests are the user's activity, written in batches (and when
// feuilled stops).
TEST(ProxyActivity, ProxiedRequestsAreRecordedAsActivity) {
  WorkspaceDaemon w;
  auto token = w.login("erin");
  ASSERT_EQ(w.post("/api/workspace/start", token).status, 202);
  ASSERT_TRUE(w.wait_state(token, "running"));
  auto& d = *w.daemon;
  std::string id = json::parse(d.get("/api/me", w.as(token)).body)["id"];
  auto before = d.db().scalar("SELECT coalesce(extract(epoch FROM last_activity_at)::text, '0') FROM workspaces");
  std::this_thread::sleep_for(1100ms);
  ASSERT_EQ(d.get("/u/" + id + "/typing", w.in(token, id)).status, 200);
  auto stopped = d.stop();
  ASSERT_TRUE(stopped);
  EXPECT_EQ(*stopped, 0);
  auto after = d.db().scalar("SELECT extract(epoch FROM last_activity_at)::text FROM workspaces");
  EXPECT_GT(std::stod(after), std::stod(before) + 1.0) << before << " -> " << after;
}
