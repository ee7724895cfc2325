#include "http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <charconv>
#include <list>
#include <random>

#include "feuille/errors.hpp"
#include "http/client_address.hpp"
#include "http/io.hpp"
#include "http/responses.hpp"
#include "util/deadline.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"
#include "util/units.hpp"

namespace feuille::http {

using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// One client connection. Its Deadline enforces whichever phase's deadline
// applies; on expiry it cancels the socket's operations (the socket stays
// open, so a 408 can still be written).
struct Connection {
  explicit Connection(tcp::socket s)
      : stream(std::move(s)), deadline(Deadline::create(stream.get_executor(), [this] { cancel_io(); })) {}
  ~Connection() { deadline->stop(); }

  beast::tcp_stream stream;
  std::shared_ptr<Deadline> deadline;
  bool idle = true;  // between requests: closed at once on shutdown
  std::string head;  // serialized response header, reused across requests

  void arm(Duration d) { deadline->arm(d); }
  void disarm() { deadline->disarm(); }
  bool timed_out() const { return deadline->expired(); }
  void cancel_io() {
    beast::error_code ignored;
    stream.socket().cancel(ignored);
  }
};

const std::string_view kSecurityHeaders =
    "Content-Security-Policy: default-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: same-origin\r\n";

// Appends a string literal without a strlen.
template <std::size_t N>
void lit(std::string& out, const char (&text)[N]) {
  out.append(text, N - 1);
}

void append_number(std::string& out, std::uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

}  // namespace


void serialize_head(const Response& res, std::string& out, bool keep_alive, std::string_view request_id,
                    bool own_page) {
  out.clear();
  unsigned status = res.result_int();
  lit(out, "HTTP/1.1 ");
  append_number(out, status);
  out += ' ';
  out += bh::obsolete_reason(res.result());
  lit(out, "\r\n");
  for (const auto& f : res) {
    out += f.name_string();
    lit(out, ": ");
    out += f.value();
    lit(out, "\r\n");
  }
  bool bodiless = status < 200 || status == 204 || status == 304;
  if (!bodiless && res.find(bh::field::content_length) == res.end() &&
      res.find(bh::field::transfer_encoding) == res.end()) {
    lit(out, "Content-Length: ");
    append_number(out, res.body().size());
    lit(out, "\r\n");
  }
  if (!request_id.empty()) {
    lit(out, "X-Request-Id: ");
    out += request_id;
    lit(out, "\r\n");
  }
  if (own_page && res.find("Content-Security-Policy") == res.end()) out += kSecurityHeaders;
  if (keep_alive) lit(out, "Connection: keep-alive\r\n\r\n");
  else lit(out, "Connection: close\r\n\r\n");
}

struct Server::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& ioc, ServerOptions o, const Router& r, Metrics& m)
      : ioc(ioc), options(std::move(o)), router(r), metrics(m), log(logger("http")) {
    std::random_device rd;
    id_prefix = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  }

  asio::io_context& ioc;
  ServerOptions options;
  const Router& router;
  Metrics& metrics;
  std::shared_ptr<spdlog::logger> log;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::list<std::weak_ptr<Connection>> connections;
  bool stopping = false;
  std::uint64_t id_prefix = 0;
  std::uint64_t id_counter = 0;
  std::string access_line;  // reused by access_log (the loop is single-threaded)

  // 16 hex digits: a per-process random prefix mixed with a counter.
  void next_request_id(RequestContext& ctx) {
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t v = id_prefix + (++id_counter * 0x9E3779B97F4A7C15ull % 0xFFFFFFFFull);
    for (int i = 15; i >= 0; --i, v >>= 4) ctx.request_id_buf[i] = hex[v & 15];
    ctx.request_id = std::string_view(ctx.request_id_buf, 16);
  }

  // Reads until `parser` has a complete header. Bytes already buffered are
  // parsed without touching the socket (pipelined and keep-alive requests
  // usually arrive whole in one read). Deadlines: before the first byte of a
  // request, the keep-alive timeout (the header timeout for a connection's
  // first request); from the first byte, the header timeout. c.idle tells
  // whether any byte of this request arrived.
  asio::awaitable<beast::error_code> read_header(Connection& c, beast::flat_buffer& buffer, HeaderParser& parser,
                                                 bool first_request) {
    bool header_deadline = false;
    if (first_request) {
      c.arm(options.header_timeout);
      header_deadline = true;
    }
    for (;;) {
      if (buffer.size() > 0) {
        beast::error_code ec;
        std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec != bh::error::need_more) {
          c.idle = false;
          if (ec || parser.is_header_done()) co_return ec;
          continue;
        }
      }
      c.idle = buffer.size() == 0 && !parser.got_some();
      if (!c.idle && !header_deadline) {
        c.arm(options.header_timeout);
        header_deadline = true;
      } else if (c.idle && !header_deadline) {
        c.arm(options.keepalive_timeout);
      }
      auto [ec, n] = co_await c.stream.socket().async_read_some(buffer.prepare(4096), tuple_awaitable);
      if (ec) co_return ec;
      buffer.commit(n);
    }
  }

  asio::awaitable<beast::error_code> write_all(Connection& c, std::array<asio::const_buffer, 2> bufs) {
    co_return co_await write_fully(c.stream.socket(), bufs, *c.deadline, options.write_timeout);
  }

  // Writes a buffered response with one gathered write; returns the error.
  asio::awaitable<beast::error_code> write_buffered(Connection& c, const Response& res, bool keep_alive,
                                                    std::string_view request_id, bool head) {
    serialize_head(res, c.head, keep_alive, request_id, true);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(c.head),
                                           head ? asio::const_buffer{} : asio::buffer(res.body())};
    co_return co_await write_all(c, bufs);
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
      // Each connection's coroutine runs on the loop's one thread: Asio's
      // implicit strand. An explicit strand object per connection cost 16% of
      // a request's instructions (docs/architecture.md) and serializes nothing
      // more while the loop has one thread.
      tcp::socket socket(ioc.get_executor());
      auto [ec] = co_await acceptor.async_accept(socket, tuple_awaitable);
      if (stopping || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        log->warn("accept failed: {}", ec.message());
        // Out of file descriptors and the like: back off instead of spinning.
        asio::steady_timer pause(ioc, std::chrono::milliseconds(100));
        co_await pause.async_wait(tuple_awaitable);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto ex = socket.get_executor();
      spawn(ex, session(std::make_shared<Connection>(std::move(socket))), log, "connection");
    }
  }

  // Writes a response that ends the connection (protocol errors), then
  // closes gracefully: stop sending, drain what the client still sends for a
  // moment, so that its unread request bytes do not turn into a reset that
  // destroys the response before the client reads it.
  asio::awaitable<void> write_final(Connection& c, Response res) {
    auto ec = co_await write_buffered(c, res, false, {}, false);
    if (!ec) co_await linger(c);
  }

  asio::awaitable<void> linger(Connection& c) {
    beast::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.arm(std::chrono::seconds(2));
    char scratch[4096];
    for (std::size_t drained = 0; drained < 1024 * 1024;) {
      auto [ec, n] = co_await c.stream.socket().async_read_some(asio::buffer(scratch), tuple_awaitable);
      if (ec) break;
      drained += n;
    }
  }

  void access_log(const RequestContext& ctx, std::string_view method, std::string_view path, unsigned status,
                  std::uint64_t bytes, Clock::time_point start, const std::string& route_class) {
    auto elapsed = Clock::now() - start;
    metrics.observe_request(route_class, status, std::chrono::duration<double>(elapsed).count());
    if (!log->should_log(spdlog::level::info)) return;
    if (path.size() > 200) path = path.substr(0, 200);
    // Built by hand: fmt's general formatting was a fifth of a request's CPU.
    std::string& line = access_line;
    line.clear();
    line += method;
    line += ' ';
    line += path;
    line += ' ';
    append_number(line, status);
    line += ' ';
    append_number(line, bytes);
    lit(line, "B ");
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    append_number(line, static_cast<std::uint64_t>(us / 1000));
    line += '.';
    line += static_cast<char>('0' + (us / 100) % 10);
    line += static_cast<char>('0' + (us / 10) % 10);
    lit(line, "ms rid=");
    line += ctx.request_id;
    lit(line, " client=");
    line += ctx.client;
    lit(line, " user=");
    line += ctx.user.empty() ? std::string_view("-") : std::string_view(ctx.user);
    log_preformatted(*log, spdlog::level::info, line);
  }

  asio::awaitable<void> session(std::shared_ptr<Connection> conn) {
    auto self = shared_from_this();  // the server outlives its sessions
    connections.push_front(conn);
    auto registration = connections.begin();
    metrics.connection_opened();
    struct Cleanup {
      Impl& s;
      std::list<std::weak_ptr<Connection>>::iterator it;
      Connection& c;
      ~Cleanup() {
        c.deadline->stop();
        beast::error_code ignored;
        c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        c.stream.socket().close(ignored);
        s.connections.erase(it);
        s.metrics.connection_closed();
      }
    } cleanup{*this, registration, *conn};

    beast::error_code peer_ec;
    auto peer = conn->stream.socket().remote_endpoint(peer_ec);
    if (peer_ec) co_return;
    IpBytes peer_ip{};
    if (peer.address().is_v4()) {
      peer_ip[10] = peer_ip[11] = 0xff;
      auto b = peer.address().to_v4().to_bytes();
      std::copy(b.begin(), b.end(), peer_ip.begin() + 12);
    } else {
      auto b = peer.address().to_v6().to_bytes();
      std::copy(b.begin(), b.end(), peer_ip.begin());
    }
    const bool peer_trusted = is_trusted(peer_ip, options.trusted_proxies);
    conn->stream.socket().non_blocking(true, peer_ec);  // write_all's first attempt must not block
    std::string peer_text = ip_text(peer_ip);

    beast::flat_buffer buffer;
    bool first = true;
    for (;;) {
      // The next request's header: what is buffered is parsed first, the
      // socket is read only for more.
      if (stopping) co_return;
      HeaderParser parser;
      parser.header_limit(static_cast<std::uint32_t>(options.header_limit));
      parser.body_limit(boost::none);  // streaming routes take any size; buffered ones check below
      auto ec = co_await read_header(*conn, buffer, parser, first);
      first = false;
      conn->idle = false;
      auto start = Clock::now();
      if (ec) {
        RequestContext ctx;
        ctx.client = peer_text;
        if (ec == bh::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset)
          co_return;
        if (conn->timed_out() || ec == asio::error::operation_aborted) {
          if (stopping || conn->idle) co_return;  // nothing of a request arrived: close quietly
          Response res = json_error(408, "request header not received in time");
          co_await write_final(*conn, std::move(res));
          access_log(ctx, "-", "-", 408, 0, start, invalid_class);
          co_return;
        }
        // Temporaries stay out of co_await expressions: GCC 12 destroys some twice.
        unsigned status = ec == bh::error::header_limit ? 431 : 400;
        std::string message = "request header too large";
        if (status == 400) message = "malformed request: " + ec.message();
        Response res = json_error(status, message);
        co_await write_final(*conn, std::move(res));
        access_log(ctx, "-", "-", status, 0, start, invalid_class);
        co_return;
      }

      auto& header = parser.get();
      RequestContext ctx;
      next_request_id(ctx);
      ctx.peer_is_trusted_proxy = peer_trusted;
      ctx.client_ip = peer_ip;
      ctx.client = peer_text;
      if (peer_trusted) {
        auto [first_xff, last_xff] = header.equal_range("X-Forwarded-For");
        if (first_xff != last_xff) {
          std::string xff;
          for (auto it = first_xff; it != last_xff; ++it) {
            if (!xff.empty()) xff += ',';
            xff += it->value();
          }
          ctx.client_ip = resolve_client(peer_ip, xff, options.trusted_proxies);
          ctx.client = ip_text(ctx.client_ip);
        }
      }
      ctx.target = header.target();
      std::string_view target = ctx.target;
      const std::string method_text(header.method_string());
      if (target.empty() || target.front() != '/') {
        Response res = json_error(400, "malformed request: target must be an absolute path");
        co_await write_final(*conn, std::move(res));
        access_log(ctx, method_text, "-", 400, 0, start, invalid_class);
        co_return;
      }
      auto qmark = target.find('?');
      ctx.path = target.substr(0, qmark);
      ctx.query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
      bool has_body = parser.chunked() || (parser.content_length() && *parser.content_length() > 0);

      const Router* routes = &router;
      if (options.workspace_of_host) {
        if (auto owner = options.workspace_of_host(header[bh::field::host])) {
          static const Router nowhere;
          routes = owner->empty() ? &nowhere : options.workspace_router;
          ctx.workspace = std::move(*owner);
        }
      }
      RouteMatch match = routes->match(header.method(), ctx.path);
      const Route* route = match.route;
      ctx.params = std::move(match.params);
      std::string_view log_path = route && route->redact_path ? std::string_view(route->pattern) : ctx.path;
      const std::string* route_class = route ? &route->route_class : &unmatched_class;

      if (route && route->stream_handler) {
        Exchange ex{conn->stream, buffer, parser, ctx, *conn->deadline};
        conn->disarm();  // the handler sets its own deadlines
        std::optional<Response> failure;  // answered here when the handler wrote nothing yet
        try {
          co_await route->stream_handler(ex);
        } catch (const RequestError& e) {
          log->warn("rid={} {} {}: {}", ctx.request_id, method_text, log_path, e.what());
          ex.keep_alive = false;
          if (ex.status == 0) {
            failure = error_for(header, e.status, e.public_message);
            if (e.retry_after_seconds) failure->set(bh::field::retry_after, std::to_string(e.retry_after_seconds));
          }
        } catch (const std::exception& e) {
          log->error("rid={} {} {}: {}", ctx.request_id, method_text, log_path, e.what());
          ex.keep_alive = false;
          if (ex.status == 0) failure = error_for(header, 500, "Something went wrong on our side.");
        }
        if (failure) {
          ex.status = failure->result_int();
          ex.bytes = failure->body().size();
          co_await write_buffered(*conn, *failure, false, ctx.request_id, false);
        }
        access_log(ctx, method_text, log_path, ex.status, ex.bytes, start, *route_class);
        if (!ex.keep_alive || stopping) co_return;
        continue;
      }

      Response res;
      bool keep_alive = header.keep_alive();
      bool head = header.method() == bh::verb::head;
      if (!route) {
        keep_alive = keep_alive && !has_body;  // the body is not read: the connection cannot be reused
        if (match.method_not_allowed) {
          res = json_error(405, "method not allowed");
          res.set(bh::field::allow, match.allow);
        } else {
          res = error_for(header, 404, "There is nothing at this address.");
        }
      } else if (parser.content_length() && *parser.content_length() > options.body_limit) {
        res = json_error(413, "request body too large (limit 1 MiB)");
        keep_alive = false;
      } else {
        bh::request_parser<bh::string_body> body_parser{std::move(parser)};
        body_parser.body_limit(options.body_limit);
        bool read_ok = true;
        if (!body_parser.is_done()) {
          if (beast::iequals(body_parser.get()[bh::field::expect], "100-continue")) {
            static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
            auto wec = co_await write_all(*conn, {asio::buffer(cont), asio::const_buffer{}});
            if (wec) co_return;
          }
          conn->arm(options.body_timeout);
          auto [bec, bn] = co_await bh::async_read(conn->stream.socket(), buffer, body_parser, tuple_awaitable);
          if (bec) {
            read_ok = false;
            keep_alive = false;
            if (bec == bh::error::body_limit) res = json_error(413, "request body too large (limit 1 MiB)");
            else if (conn->timed_out()) res = json_error(408, "request body not received in time");
            else if (bec == bh::error::end_of_stream || bec == asio::error::eof || bec == asio::error::connection_reset)
              co_return;
            else res = json_error(400, "malformed request body: " + bec.message());
          }
        }
        if (read_ok) {
          Request req = body_parser.release();
          try {
            res = co_await route->handler(req, ctx);
          } catch (const RequestError& e) {
            log->warn("rid={} {} {}: {}", ctx.request_id, method_text, log_path, e.what());
            res = error_for(req, e.status, e.public_message);
            if (e.retry_after_seconds) res.set(bh::field::retry_after, std::to_string(e.retry_after_seconds));
          } catch (const std::exception& e) {
            // The client sees a bare 500; the details stay in the log.
            log->error("rid={} {} {}: {}", ctx.request_id, method_text, log_path, e.what());
            res = error_for(req, 500, "Something went wrong on our side.");
          }
        }
      }

      keep_alive = keep_alive && !stopping;
      std::uint64_t bytes = head ? 0 : res.body().size();
      unsigned status = res.result_int();
      auto wec = co_await write_buffered(*conn, res, keep_alive, ctx.request_id, head);
      access_log(ctx, method_text, log_path, status, wec ? 0 : bytes, start, *route_class);
      if (wec) co_return;
      if (!keep_alive) {
        if (status >= 400) co_await linger(*conn);
        co_return;
      }
    }
  }

  const std::string unmatched_class = "unmatched";
  const std::string invalid_class = "invalid";  // protocol errors before routing
};

Server::Server(asio::io_context& ioc, ServerOptions options, const Router& router, Metrics& metrics)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), router, metrics)) {}

Server::~Server() {
  beast::error_code ignored;
  for (auto& a : impl_->acceptors) a->close(ignored);
}

std::vector<Endpoint> Server::bind(const std::vector<Endpoint>& endpoints) {
  std::vector<Endpoint> bound;
  for (const auto& ep : endpoints) {
    beast::error_code ec;
    auto address = asio::ip::make_address(ep.host, ec);
    if (ec) throw std::runtime_error("listen " + ep.text() + ": " + ec.message());
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
    tcp::endpoint endpoint(address, ep.port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("listen " + ep.text() + ": " + ec.message());
    auto local = acceptor->local_endpoint();
    bound.push_back(Endpoint{ep.host, local.port()});
    impl_->acceptors.push_back(std::move(acceptor));
  }
  return bound;
}

void Server::start() {
  for (auto& a : impl_->acceptors)
    spawn(impl_->ioc, impl_->accept_loop(*a), impl_->log, "accept loop");
}

void Server::begin_shutdown() {
  impl_->stopping = true;
  beast::error_code ignored;
  for (auto& a : impl_->acceptors) a->close(ignored);
  for (auto& weak : impl_->connections)
    if (auto c = weak.lock(); c && c->idle) c->cancel_io();
}

void Server::close_all() {
  for (auto& weak : impl_->connections)
    if (auto c = weak.lock()) {
      beast::error_code ignored;
      c->stream.socket().close(ignored);
    }
}

std::size_t Server::open_connections() const { return impl_->connections.size(); }

}  // namespace feuille::http
