// feuille-standin: a small static program that stands in for the mrmd-editor
// and mrmd-runtime images where they cannot be pulled (tests, `feuilled
// --dev` on a machine without them). Packed alone into an image with
// `podman import` (see src/compute/standin_image.cpp).
//
//   feuille-standin editor --port P [--host 127.0.0.1] [--token T] [--health-path /health]
//   feuille-standin runtime [--port 8888] [--host 0.0.0.0] [--health-path /mrp/v1/capabilities] [--unhealthy]
//
// Both roles answer their health path and echo every other request as JSON
// (method, target, path, query, headers, body size and FNV-1a hash; the body
// is streamed, never buffered). The editor checks its token the way
// mrmd-server does (SPEC.md section 3): on /api/* from ?token=, an
// Authorization: Bearer header or X-Token (401 without one, 403 for a wrong
// one); on WebSocket upgrades only from ?token= (without it the socket is
// accepted and closed with 4001); never on the health path, /proxy/{port}/...
// and /sync/{port}/..., which forward to 127.0.0.1:{port} in its own network
// namespace (RUNTIME_HOST for RUNTIME_PORT, as mrmd-server routes the runtime)
// without a token. The editor also has:
//   POST /api/runtime/update-port      recorded; GET /api/_standin/update-port lists the calls
//   GET  /api/_standin/runtime         the runtime's capabilities via RUNTIME_HOST:RUNTIME_PORT
// and, in both roles:
//   GET  /_sse?count=N&interval_ms=M   N Server-Sent Events (0 = until closed)
//   GET  /_bytes?size=N[&chunked=1]    N bytes of 'a'..'z' repeated
//   GET  /_standin/state[?set=V]       {"instance", "pid", "counter", "value"}: instance is random per process
//                                      and counter counts the calls, so a test can tell one process (or a
//                                      checkpoint's restored copy, which keeps them) from another
//   GET  /_standin/env                 the process environment
//   GET  /_standin/alloc?mb=N          allocates and touches N MiB (OOM tests)
//   GET  /_standin/write?path=P&mb=N   writes N MiB to the file P (disk tests: outside /home/user it is
//                                      the container's writable layer)
//   GET  /_standin/exit?code=N         exits at once with code N (crash tests)
//   WebSocket upgrade on any path      echoes every message (text or binary, any
//                                      fragmentation, up to 64 MiB); the text message
//                                      "__close CODE REASON" makes it close with CODE.
// SIGTERM/SIGINT end it at once (it runs as PID 1 in its container).
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <random>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;
namespace ws = beast::websocket;
using tcp = asio::ip::tcp;
using nlohmann::json;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

struct Options {
  std::string role;
  std::string host;
  unsigned short port = 0;
  std::string token;
  std::string health_path;
  bool unhealthy = false;
};

std::vector<json> g_update_port_calls;
std::vector<std::vector<char>> g_allocations;
// The state a test reads to tell processes apart.
const std::uint64_t g_instance = std::random_device{}() * 4294967296ull + std::random_device{}();
std::uint64_t g_counter = 0;
std::string g_value;

std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (part.substr(0, eq) == name) return eq == std::string_view::npos ? "" : std::string(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

long long number(const std::string& s, long long fallback) {
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size() ? v : fallback;
}

struct Fnv {
  std::uint64_t h = 1469598103934665603ull;
  void add(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

bh::response<bh::string_body> reply(unsigned status, const json& body, unsigned version, bool keep_alive) {
  bh::response<bh::string_body> r{static_cast<bh::status>(status), version};
  r.set(bh::field::content_type, "application/json");
  r.set(bh::field::server, "feuille-standin");
  r.body() = body.dump();
  r.keep_alive(keep_alive);
  r.prepare_payload();
  return r;
}

asio::awaitable<void> websocket_echo(beast::tcp_stream stream, bh::request<bh::empty_body> req) {
  ws::stream<beast::tcp_stream> w(std::move(stream));
  beast::get_lowest_layer(w).expires_never();
  w.set_option(ws::stream_base::timeout::suggested(beast::role_type::server));
  w.read_message_max(64ull << 20);
  w.auto_fragment(false);
  auto [aec] = co_await w.async_accept(req, tuple_awaitable);
  if (aec) co_return;
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await w.async_read(buf, tuple_awaitable);
    if (ec) co_return;  // a close frame was answered by Beast with the same code
    if (w.got_text()) {
      std::string_view text(static_cast<const char*>(buf.data().data()), buf.size());
      if (text.rfind("__close ", 0) == 0) {
        text.remove_prefix(8);
        auto sp = text.find(' ');
        ws::close_reason cr(static_cast<std::uint16_t>(number(std::string(text.substr(0, sp)), 1000)));
        if (sp != std::string_view::npos) cr.reason = std::string(text.substr(sp + 1));
        co_await w.async_close(cr, tuple_awaitable);
        // Drain until the peer's close arrives.
        for (;;) {
          auto [rec, rn] = co_await w.async_read(buf, tuple_awaitable);
          if (rec) co_return;
          buf.consume(rn);
        }
      }
    }
    w.text(w.got_text());
    auto [wec, wn] = co_await w.async_write(buf.data(), tuple_awaitable);
    if (wec) co_return;
    buf.consume(buf.size());
  }
}

// A GET to the runtime from inside the editor's container, where it finds it.
asio::awaitable<bh::response<bh::string_body>> fetch_runtime(unsigned version) {
  const char* h = std::getenv("RUNTIME_HOST");
  const char* p = std::getenv("RUNTIME_PORT");
  if (!h || !p) co_return reply(500, {{"error", "RUNTIME_HOST or RUNTIME_PORT is not set"}}, version, false);
  boost::system::error_code aec;
  auto address = asio::ip::make_address(h, aec);
  if (aec) co_return reply(500, {{"error", std::string("RUNTIME_HOST is not an IP: ") + h}}, version, false);
  beast::tcp_stream s(co_await asio::this_coro::executor);
  s.expires_after(std::chrono::seconds(5));
  auto [cec] = co_await s.async_connect(tcp::endpoint(address, static_cast<unsigned short>(number(p, 0))), tuple_awaitable);
  if (cec) co_return reply(502, {{"error", "cannot reach the runtime: " + cec.message()}}, version, false);
  bh::request<bh::empty_body> req{bh::verb::get, "/mrp/v1/capabilities", 11};
  req.set(bh::field::host, std::string(h) + ":" + p);
  req.keep_alive(false);
  auto [wec, wn] = co_await bh::async_write(s, req, tuple_awaitable);
  beast::flat_buffer b;
  bh::response<bh::string_body> res;
  auto [rec, rn] = co_await bh::async_read(s, b, res, tuple_awaitable);
  if (wec || rec) co_return reply(502, {{"error", "runtime did not answer"}}, version, false);
  json body = {{"status", res.result_int()}, {"body", res.body()}};
  co_return reply(200, body, version, false);
}

// Where mrmd-server's /proxy/{port} and /sync/{port} routes send a port: the
// runtime's to RUNTIME_HOST, everything else to 127.0.0.1 (its own namespace).
std::string forward_host(unsigned short port) {
  const char* h = std::getenv("RUNTIME_HOST");
  const char* p = std::getenv("RUNTIME_PORT");
  if (h && p && number(p, -1) == port) return h;
  return "127.0.0.1";
}

asio::awaitable<void> pipe_bytes(tcp::socket& from, tcp::socket& to) {
  std::vector<char> buf(32 * 1024);
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (n) {
      auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), tuple_awaitable);
      if (wec) break;
    }
    if (ec) break;
  }
  boost::system::error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

// Forwards this request, and the rest of the connection, to port's
// `new_target` byte for byte (an HTTP request with Connection: close, or an
// upgrade whose answer and frames then flow through).
asio::awaitable<void> forward(beast::tcp_stream stream, beast::flat_buffer& buffer, const bh::request_header<>& h,
                              std::string new_target, long long port) {
  const unsigned version = h.version();
  if (port <= 0 || port > 65535) {
    auto r = reply(400, {{"error", "bad port"}}, version, false);
    co_await bh::async_write(stream, r, tuple_awaitable);
    co_return;
  }
  const auto p = static_cast<unsigned short>(port);
  boost::system::error_code aec;
  auto address = asio::ip::make_address(forward_host(p), aec);
  tcp::socket upstream(stream.get_executor());
  boost::system::error_code cec = aec;
  if (!cec) std::tie(cec) = co_await upstream.async_connect(tcp::endpoint(address, p), tuple_awaitable);
  if (cec) {
    auto r = reply(502, {{"error", "Proxy error: " + cec.message()}}, version, false);
    co_await bh::async_write(stream, r, tuple_awaitable);
    co_return;
  }
  const bool upgrade = ws::is_upgrade(h);
  std::string head = std::string(h.method_string()) + " " + new_target + " HTTP/1.1\r\n";
  for (const auto& f : h) {
    if (!upgrade && f.name() == bh::field::connection) continue;
    head.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
  }
  if (!upgrade) head += "Connection: close\r\n";
  head += "\r\n";
  auto [wec, wn] = co_await asio::async_write(upstream, asio::buffer(head), tuple_awaitable);
  if (!wec && buffer.size()) std::tie(wec, wn) = co_await asio::async_write(upstream, buffer.data(), tuple_awaitable);
  if (wec) co_return;
  buffer.consume(buffer.size());
  stream.expires_never();
  tcp::socket client = stream.release_socket();
  // Both directions, then both sockets close with this frame.
  auto ex = client.get_executor();
  bool other_done = false;
  asio::steady_timer both(ex, asio::steady_timer::time_point::max());
  asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
    co_await pipe_bytes(upstream, client);
    other_done = true;
    both.cancel();
  }, asio::detached);
  co_await pipe_bytes(client, upstream);
  if (!other_done) co_await both.async_wait(tuple_awaitable);
}

asio::awaitable<void> refuse_websocket(beast::tcp_stream stream, bh::request<bh::empty_body> req) {
  ws::stream<beast::tcp_stream> w(std::move(stream));
  auto [aec] = co_await w.async_accept(req, tuple_awaitable);
  if (aec) co_return;
  ws::close_reason unauthorized(static_cast<std::uint16_t>(4001));
  unauthorized.reason = "Unauthorized";
  co_await w.async_close(unauthorized, tuple_awaitable);
  beast::flat_buffer buf;
  for (;;) {  // until the peer's close
    auto [rec, rn] = co_await w.async_read(buf, tuple_awaitable);
    if (rec) co_return;
    buf.consume(rn);
  }
}

// "/proxy/8888/a?b" -> {8888, "/a?b"}; port -1 when the path is not one.
std::pair<long long, std::string> forwarded(const std::string& target, std::string_view prefix) {
  if (target.rfind(prefix, 0) != 0) return {-1, ""};
  auto rest = target.substr(prefix.size());
  auto end = rest.find_first_of("/?");
  long long port = number(rest.substr(0, end), -1);
  std::string tail = end == std::string::npos ? "/" : rest.substr(end);
  if (tail[0] == '?') tail = "/" + tail;
  return {port, tail};
}

asio::awaitable<void> session(tcp::socket socket, const Options& o) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    stream.expires_after(std::chrono::minutes(10));
    bh::request_parser<bh::empty_body> hp;
    hp.header_limit(64 * 1024);
    hp.body_limit(boost::none);
    auto [ec, n] = co_await bh::async_read_header(stream, buffer, hp, tuple_awaitable);
    if (ec) co_return;
    const auto& h = hp.get();
    const std::string target(h.target());
    auto qpos = target.find('?');
    const std::string path = target.substr(0, qpos);
    const std::string query = qpos == std::string::npos ? "" : target.substr(qpos + 1);
    const unsigned version = h.version();
    const bool keep_alive = h.keep_alive();

    bool is_health = path == o.health_path;
    const bool upgrade = ws::is_upgrade(h);
    if (o.role == "editor") {
      // mrmd-server's routes that forward without a token.
      if (auto [port, tail] = forwarded(target, upgrade ? "/sync/" : "/proxy/"); port >= 0) {
        co_await forward(std::move(stream), buffer, h, tail, port);
        co_return;
      }
      if (upgrade && query_param(query, "token") != o.token) {
        stream.expires_never();
        co_await refuse_websocket(std::move(stream), hp.release());
        co_return;
      }
      if (!upgrade && path.rfind("/api/", 0) == 0) {
        // mrmd-server's order (src/auth.js): the query, then Authorization
        // (any value, a "Bearer " taken off), then X-Token.
        std::string given = query_param(query, "token");
        std::string authorization(h[bh::field::authorization]);
        if (given.empty() && !authorization.empty())
          given = authorization.rfind("Bearer ", 0) == 0 ? authorization.substr(7) : authorization;
        if (given.empty()) given = std::string(h["X-Token"]);
        if (given != o.token) {
          auto r = given.empty() ? reply(401, {{"error", "Authentication required"}}, version, false)
                                 : reply(403, {{"error", "Invalid token"}}, version, false);
          co_await bh::async_write(stream, r, tuple_awaitable);
          co_return;
        }
      }
    }

    if (upgrade) {
      stream.expires_never();
      co_await websocket_echo(std::move(stream), hp.release());
      co_return;
    }

    // Read (and count) the body without keeping it, except a small prefix.
    bh::request_parser<bh::buffer_body> bp{std::move(hp)};
    std::uint64_t body_bytes = 0;
    Fnv fnv;
    std::string head_of_body;
    char chunk[64 * 1024];
    while (!bp.is_done()) {
      bp.get().body().data = chunk;
      bp.get().body().size = sizeof chunk;
      auto [rec, rn] = co_await bh::async_read(stream, buffer, bp, tuple_awaitable);
      if (rec && rec != bh::error::need_buffer) co_return;
      std::size_t got = sizeof chunk - bp.get().body().size;
      body_bytes += got;
      fnv.add(chunk, got);
      if (head_of_body.size() < 64 * 1024) head_of_body.append(chunk, std::min(got, 64 * 1024 - head_of_body.size()));
    }
    const auto& req = bp.get();

    if (is_health) {
      unsigned status = o.unhealthy ? 503 : 200;
      json body = o.role == "runtime"
                      ? json{{"protocol", "mrp/1"}, {"runtime", "feuille-standin"}, {"languages", {"python"}},
                             {"features", {"execute", "complete", "inspect"}}}
                      : json{{"ok", true}, {"role", "editor"}};
      if (o.unhealthy) body = {{"error", "unhealthy on purpose"}};
      auto r = reply(status, body, version, keep_alive);
      auto [wec, wn] = co_await bh::async_write(stream, r, tuple_awaitable);
      if (wec || !keep_alive) co_return;
      continue;
    }

    if (path == "/_standin/exit") std::_Exit(static_cast<int>(number(query_param(query, "code"), 1)));

    if (path == "/_sse") {
      long long count = number(query_param(query, "count"), 3);
      long long interval = number(query_param(query, "interval_ms"), 100);
      bh::response<bh::empty_body> res{bh::status::ok, version};
      res.set(bh::field::content_type, "text/event-stream");
      res.set(bh::field::cache_control, "no-cache");
      res.chunked(true);
      bh::response_serializer<bh::empty_body> sr{res};
      stream.expires_never();
      auto [hec, hn] = co_await bh::async_write_header(stream, sr, tuple_awaitable);
      if (hec) co_return;
      asio::steady_timer timer(co_await asio::this_coro::executor);
      for (long long i = 0; count == 0 || i < count; ++i) {
        std::string ev = "id: " + std::to_string(i) + "\nevent: tick\ndata: {\"n\":" + std::to_string(i) + "}\n\n";
        auto [cec, cn] = co_await asio::async_write(stream, bh::make_chunk(asio::buffer(ev)), tuple_awaitable);
        if (cec) co_return;
        timer.expires_after(std::chrono::milliseconds(interval));
        co_await timer.async_wait(tuple_awaitable);
      }
      auto [lec, ln] = co_await asio::async_write(stream, bh::make_chunk_last(), tuple_awaitable);
      if (lec || !keep_alive) co_return;
      continue;
    }

    if (path == "/_bytes") {
      const std::uint64_t size = static_cast<std::uint64_t>(std::max(0LL, number(query_param(query, "size"), 0)));
      const bool chunked = query_param(query, "chunked") == "1";
      const bool head = req.method() == bh::verb::head;  // the header only
      bh::response<bh::empty_body> res{bh::status::ok, version};
      res.set(bh::field::content_type, "application/octet-stream");
      if (chunked) res.chunked(true);
      else res.content_length(size);
      res.keep_alive(keep_alive);
      bh::response_serializer<bh::empty_body> sr{res};
      stream.expires_after(std::chrono::minutes(10));
      auto [hec, hn] = co_await bh::async_write_header(stream, sr, tuple_awaitable);
      if (hec) co_return;
      std::vector<char> block(64 * 1024);
      for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
      // 64 KiB is a multiple of 26 plus 16: keep the pattern continuous by offset.
      for (std::uint64_t sent = 0; !head && sent < size;) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size - sent, 26 * 2048));
        std::size_t off = static_cast<std::size_t>(sent % 26);
        asio::const_buffer piece(block.data() + off, n);
        boost::system::error_code wec;
        if (chunked) std::tie(wec, std::ignore) = co_await asio::async_write(stream, bh::make_chunk(piece), tuple_awaitable);
        else std::tie(wec, std::ignore) = co_await asio::async_write(stream, piece, tuple_awaitable);
        if (wec) co_return;
        sent += n;
      }
      if (chunked && !head) {
        auto [lec, ln] = co_await asio::async_write(stream, bh::make_chunk_last(), tuple_awaitable);
        if (lec) co_return;
      }
      if (!keep_alive) co_return;
      continue;
    }

    bh::response<bh::string_body> res;
    if (o.role == "editor" && path == "/api/runtime/update-port" && req.method() == bh::verb::post) {
      g_update_port_calls.push_back(json::parse(head_of_body, nullptr, false));
      if (g_update_port_calls.back().is_discarded()) g_update_port_calls.back() = head_of_body;
      res = reply(200, {{"ok", true}}, version, keep_alive);
    } else if (o.role == "editor" && path == "/api/_standin/update-port") {
      res = reply(200, {{"calls", g_update_port_calls}}, version, keep_alive);
    } else if (o.role == "editor" && path == "/api/_standin/runtime") {
      res = co_await fetch_runtime(version);
      res.keep_alive(keep_alive);
    } else if (path == "/_standin/state") {
      if (query.find("set=") != std::string::npos) g_value = query_param(query, "set");
      res = reply(200, {{"instance", g_instance}, {"pid", ::getpid()}, {"counter", ++g_counter}, {"value", g_value}},
                  version, keep_alive);
    } else if (path == "/_standin/env") {
      json env = json::object();
      for (char** e = environ; *e; ++e) {
        std::string kv(*e);
        auto eq = kv.find('=');
        env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      }
      res = reply(200, env, version, keep_alive);
    } else if (path == "/_standin/alloc") {
      std::size_t mb = static_cast<std::size_t>(std::max(0LL, number(query_param(query, "mb"), 0)));
      std::vector<char> block(mb << 20);
      for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = 1;
      g_allocations.push_back(std::move(block));
      res = reply(200, {{"allocated_mb", mb}}, version, keep_alive);
    } else if (path == "/_standin/write") {
      const std::string file = query_param(query, "path");
      const std::size_t mb = static_cast<std::size_t>(std::max(0LL, number(query_param(query, "mb"), 0)));
      std::FILE* f = std::fopen(file.c_str(), "wb");
      std::size_t written = 0;
      if (f) {
        std::vector<char> block(1 << 20, 'x');
        for (; written < mb && std::fwrite(block.data(), 1, block.size(), f) == block.size(); ++written) {
        }
        std::fclose(f);
      }
      res = reply(f ? 200 : 500, {{"path", file}, {"written_mb", written}}, version, keep_alive);
    } else {
      json headers = json::array();
      for (const auto& f : req) headers.push_back({std::string(f.name_string()), std::string(f.value())});
      json body = {{"role", o.role},          {"method", std::string(req.method_string())},
                   {"target", target},        {"path", path},
                   {"query", query},          {"headers", headers},
                   {"body_bytes", body_bytes}, {"body_fnv1a", fnv.hex()}};
      res = reply(200, body, version, keep_alive);
    }
    auto [wec, wn] = co_await bh::async_write(stream, res, tuple_awaitable);
    if (wec || !keep_alive) co_return;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, const Options& o) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(tuple_awaitable);
    if (ec) continue;
    // Headers and bodies go out in separate writes: without this, Nagle and
    // delayed ACKs add 40 ms to small responses.
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), o), asio::detached);
  }
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "feuille-standin: %s\nusage: feuille-standin editor|runtime [--port P] [--host H] [--token T] "
               "[--health-path PATH] [--unhealthy]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("missing role");
  // Thousands of WebSockets in the proxy's benchmark: the hard descriptor limit.
  if (rlimit l{}; getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur < l.rlim_max) {
    l.rlim_cur = l.rlim_max;
    setrlimit(RLIMIT_NOFILE, &l);
  }
  Options o;
  o.role = argv[1];
  if (o.role != "editor" && o.role != "runtime") usage("role must be editor or runtime");
  o.host = o.role == "editor" ? "127.0.0.1" : "0.0.0.0";
  o.port = o.role == "editor" ? 0 : 8888;
  o.health_path = o.role == "editor" ? "/health" : "/mrp/v1/capabilities";
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--port") o.port = static_cast<unsigned short>(number(value(), 0));
    else if (a == "--host") o.host = value();
    else if (a == "--token") o.token = value();
    else if (a == "--health-path") o.health_path = value();
    else if (a == "--unhealthy") o.unhealthy = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (o.port == 0) usage("--port is required");

  asio::io_context ioc{1};
  boost::system::error_code ec;
  auto address = asio::ip::make_address(o.host, ec);
  if (ec) usage("--host must be an IP address");
  tcp::acceptor acceptor(ioc);
  tcp::endpoint ep(address, o.port);
  acceptor.open(ep.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(ep, ec);
  if (ec) {
    std::fprintf(stderr, "feuille-standin: cannot listen on %s:%u: %s\n", o.host.c_str(), o.port, ec.message().c_str());
    return 1;
  }
  acceptor.listen(asio::socket_base::max_listen_connections);
  asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([](const boost::system::error_code&, int) { std::_Exit(0); });
  asio::co_spawn(ioc, accept_loop(acceptor, o), asio::detached);
  std::printf("feuille-standin %s listening on %s:%u%s\n", o.role.c_str(), o.host.c_str(), o.port,
              o.unhealthy ? " (unhealthy on purpose)" : "");
  // mrmd-server prints its access URL, token included, when it starts.
  if (!o.token.empty()) std::printf("  Access: http://%s:%u/?token=%s\n", o.host.c_str(), o.port, o.token.c_str());
  std::fflush(stdout);
  ioc.run();
  return 0;
}
