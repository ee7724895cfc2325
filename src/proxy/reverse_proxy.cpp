#include "proxy/reverse_proxy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <charconv>

#include "feuille/errors.hpp"
#include "http/io.hpp"
#include "http/page.hpp"
#include "http/responses.hpp"
#include "http/static_assets.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/ws_frames.hpp"
#include "util/descriptor_budget.hpp"
#include "util/logging.hpp"
#include "util/spawn.hpp"

namespace feuille::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunk = 64 * 1024;

bool valid_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::string login_location(std::string_view target) {
  return "/login?next=" + boost::urls::encode(target, boost::urls::unreserved_chars);
}

// Reads the next piece of a body through `parser` into [data, data + cap):
// bytes already buffered first, the socket only when more are needed (and
// `may_read`). Returns the bytes produced; 0 with no error means the body is
// complete (or, without `may_read`, that nothing was buffered).
template <class Parser>
asio::awaitable<std::pair<beast::error_code, std::size_t>> read_piece(tcp::socket& socket, beast::flat_buffer& buffer,
                                                                       Parser& parser, char* data, std::size_t cap,
                                                                       Deadline& deadline, Duration idle,
                                                                       bool may_read = true) {
  auto& body = parser.get().body();
  body.data = data;
  body.size = cap;
  for (;;) {
    while (buffer.size() > 0 && !parser.is_done()) {
      beast::error_code ec;
      std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == bh::error::need_buffer) break;
      if (ec == bh::error::need_more) break;
      if (ec) co_return std::pair{ec, std::size_t{0}};
      if (used == 0) break;
    }
    std::size_t produced = cap - body.size;
    if (produced > 0 || parser.is_done() || !may_read) co_return std::pair{beast::error_code{}, produced};
    deadline.arm(idle);
    auto [ec, n] = co_await socket.async_read_some(buffer.prepare(kChunk), tuple_awaitable);
    deadline.disarm();
    if (ec == asio::error::eof) {
      beast::error_code eof_ec;
      parser.put_eof(eof_ec);  // completes a body delimited by the end of the connection
      if (eof_ec) co_return std::pair{eof_ec, std::size_t{0}};
      co_return std::pair{beast::error_code{}, std::size_t{0}};
    }
    if (ec) co_return std::pair{ec, std::size_t{0}};
    buffer.commit(n);
  }
}

// "1a2b\r\n" for a chunk of n bytes, after the previous chunk's CRLF.
std::string_view chunk_prefix(char (&buf)[24], std::size_t n, bool first) {
  char* p = buf;
  if (!first) {
    *p++ = '\r';
    *p++ = '\n';
  }
  p = std::to_chars(p, buf + sizeof buf - 2, n, 16).ptr;
  *p++ = '\r';
  *p++ = '\n';
  return {buf, static_cast<std::size_t>(p - buf)};
}

std::size_t count_of(const std::unordered_map<std::string, std::size_t>& counts, const std::string& key) {
  auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

}  // namespace

// One exchange's body buffer, taken from the proxy's spares on first use and
// given back (up to kSpareChunks of them) when the exchange ends.
class ChunkLease {
 public:
  explicit ChunkLease(std::vector<std::unique_ptr<char[]>>& spare) : spare_(spare) {}
  ChunkLease(const ChunkLease&) = delete;
  ChunkLease& operator=(const ChunkLease&) = delete;
  ~ChunkLease() {
    if (chunk_ && spare_.size() < kSpareChunks) spare_.push_back(std::move(chunk_));
  }
  char* get() {
    if (!chunk_) {
      if (spare_.empty()) {
        chunk_.reset(new char[kChunk]);
      } else {
        chunk_ = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    return chunk_.get();
  }
  char* data() const { return chunk_.get(); }  // null until get()

 private:
  static constexpr std::size_t kSpareChunks = 16;  // 1 MiB at most, kept
  std::vector<std::unique_ptr<char[]>>& spare_;
  std::unique_ptr<char[]> chunk_;
};

struct ReverseProxy::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : requests(prometheus::BuildCounter()
                     .Name("feuille_proxy_requests_total")
                     .Help("Proxied requests by the status the client got")
                     .Register(r)),
        bytes(prometheus::BuildCounter().Name("feuille_proxy_bytes_total").Help("Bytes relayed, by direction").Register(r)),
        bytes_up(bytes.Add({{"direction", "to_editor"}})),
        bytes_down(bytes.Add({{"direction", "to_client"}})),
        websockets(prometheus::BuildGauge()
                       .Name("feuille_proxy_websockets_open")
                       .Help("WebSocket tunnels open")
                       .Register(r)
                       .Add({})),
        frames(prometheus::BuildCounter()
                   .Name("feuille_proxy_websocket_data_frames_total")
                   .Help("WebSocket data frames from browsers (counted as activity)")
                   .Register(r)
                   .Add({})),
        dead_tunnels(prometheus::BuildCounter()
                         .Name("feuille_proxy_websocket_dead_total")
                         .Help("Quiet WebSockets closed because the browser did not answer feuilled's ping")
                         .Register(r)
                         .Add({})),
        connect_errors(prometheus::BuildCounter()
                           .Name("feuille_proxy_upstream_connect_errors_total")
                           .Help("Editors that could not be reached")
                           .Register(r)
                           .Add({})),
        ttfb(prometheus::BuildHistogram()
                 .Name("feuille_proxy_time_to_first_byte_seconds")
                 .Help("From the request header to the editor's response header")
                 .Register(r)
                 .Add({}, http::Metrics::latency_buckets())) {}

  void count(unsigned status) {
    auto& c = by_status[status];
    if (!c) c = &requests.Add({{"code", std::to_string(status)}});
    c->Increment();
  }

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& bytes_up;
  prometheus::Counter& bytes_down;
  prometheus::Gauge& websockets;
  prometheus::Counter& frames;
  prometheus::Counter& dead_tunnels;
  prometheus::Counter& connect_errors;
  prometheus::Histogram& ttfb;
  std::unordered_map<unsigned, prometheus::Counter*> by_status;
};

struct ReverseProxy::Outcome {
  bool upstream_failed = false;  // the editor failed before any response byte reached the client
  bool reusable = false;         // the upstream connection can serve another request
  bool upgraded = false;
};

ReverseProxy::ReverseProxy(app::ModuleContext& ctx, compute::Workspaces& workspaces, ProxyOptions options)
    : ctx_(ctx),
      workspaces_(workspaces),
      options_(options),
      proto_(ctx.config.public_url.rfind("https://", 0) == 0 ? "https" : "http"),
      origin_(ctx.workspace_origin),
      pool_(ctx.executor, options.max_idle_upstream, options.upstream_idle),
      scratch_(kChunk),
      metrics_(std::make_unique<Metrics>(ctx.metrics.registry())),
      sweep_timer_(ctx.executor) {
  if (options_.max_open == 0) options_.max_open = DescriptorBudget::of_process().proxy_connections();
  prometheus::BuildGauge()
      .Name("feuille_proxy_connections_limit")
      .Help("Proxied requests and WebSockets allowed in flight at once across workspaces (from the descriptor limit)")
      .Register(ctx.metrics.registry())
      .Add({})
      .Set(static_cast<double>(options_.max_open));
  for (http::Router* router : {&ctx.router, &ctx.workspace_router}) {
    router->add({}, "/u/{id}", "proxy", [](http::Request&, http::RequestContext& c) -> asio::awaitable<http::Response> {
      std::string location = std::string(c.path) + "/";
      if (!c.query.empty()) location += "?" + std::string(c.query);
      co_return http::redirect(301, location);
    });
    router->add_stream({}, "/u/{id}/{rest*}", "proxy", [this](http::Exchange& ex) { return handle(ex); });
  }
  ctx.authenticator->add_revocation_listener([this](const auth::Revocation& r) { revoke(r); });
  // A stopped workspace: its tunnels close now, and every way into it ends
  // (a sleeping one keeps its cookies: a visit wakes it).
  workspaces_.on_stopping([this](const std::string& owner, bool asleep) {
    revoke(auth::Revocation{auth::Revocation::workspace, {}, "", owner});
    if (!asleep)
      spawn(ctx_.executor, ctx_.authenticator->end_workspace(owner), logger("proxy"), "end workspace cookies");
  });
}

ReverseProxy::~ReverseProxy() = default;

asio::awaitable<void> ReverseProxy::start() {
  spawn(ctx_.executor, sweep_loop(), logger("proxy"), "proxy pool sweep");
  co_return;
}

void ReverseProxy::stop() {
  stopping_ = true;
  sweep_timer_.cancel();
  pool_.close_all();
  // WebSockets would live on past any grace period: close them now (the
  // browser's reconnects once feuilled is back).
  std::vector<Tunnel*> open(tunnels_.begin(), tunnels_.end());
  for (auto* t : open) t->close();
}

asio::awaitable<void> ReverseProxy::sweep_loop() {
  while (!stopping_) {
    sweep_timer_.expires_after(std::chrono::seconds(2));
    if (auto [ec] = co_await sweep_timer_.async_wait(tuple_awaitable); ec) co_return;
    pool_.sweep();
    probe_tunnels();
  }
}

asio::awaitable<bool> ReverseProxy::user_exists(const std::string& id) {
  if (known_users_.count(id)) co_return true;
  bool exists = co_await ctx_.db.run([&id](pqxx::work& w) {  // by reference: GCC 12 (architecture.md)
    return !w.exec_params("SELECT 1 FROM users WHERE id::text = $1", id).empty();
  });
  if (exists) known_users_.insert(id);
  co_return exists;
}

asio::awaitable<void> ReverseProxy::handle(http::Exchange& ex) {
  auto& h = ex.parser.get();
  const bool browser = http::is_browser_page(h);
  auto answer = [&](http::Response res) -> asio::awaitable<void> {
    metrics_->count(res.result_int());
    co_await http::respond(ex, res, false);
  };
  // On a workspace origin, feuilled's pages are on public-url.
  const std::string home = ex.ctx.workspace.empty() ? "/" : ctx_.config.public_url + "/";
  PageFn page = [&](unsigned status, std::string_view title, std::string_view message) {
    return browser ? http::html_response(status, http::error_page(status, title, message, home))
                   : http::json_error(status, message);
  };

  std::string owner(ex.ctx.params.get("id"));
  if (!valid_uuid(owner)) {
    http::Response res = page(404, "Not Found", "There is nothing at this address.");
    co_await answer(std::move(res));
    co_return;
  }

  const bool on_workspace_origin = !ex.ctx.workspace.empty();
  if (on_workspace_origin && owner != ex.ctx.workspace) {  // another workspace's path on this one's origin
    http::Response res = page(404, "Not Found", "There is nothing at this address.");
    co_await answer(std::move(res));
    co_return;
  }

  // Who is calling (a workspace cookie on a workspace origin, the session on
  // a single origin), and may they?
  Caller who{owner, "", {}, "", ""};
  std::shared_ptr<const auth::Identity> caller;
  if (on_workspace_origin) {
    if (auto wc = co_await ctx_.authenticator->identify_workspace(h, owner)) {
      caller = std::move(wc->identity);
      who.credential = wc->cookie;
    }
  } else {
    caller = co_await ctx_.authenticator->identify_shared(h);
    if (caller) who.credential = ctx_.authenticator->session_hash(h);
  }
  if (!caller) {
    // On a workspace origin, a page goes back to public-url to sign in or
    // get a ticket (the same path: it comes back here).
    std::string back = on_workspace_origin ? ctx_.config.public_url + ex.ctx.target : login_location(ex.ctx.target);
    http::Response res = browser ? http::redirect(302, back) : http::json_error(401, "sign in to reach this workspace");
    // Two workspace cookies: one was tossed by another workspace's script
    // (Domain=, a longer Path). Neither counts; both go, so that the fresh
    // ticket's cookie is the only one when the browser comes back.
    const std::string& ws_cookie = ctx_.authenticator->workspace_cookie();
    if (on_workspace_origin && auth::cookie_repeated(h, ws_cookie))
      for (auto& c : auth::clear_cookie_everywhere(ws_cookie, h[bh::field::host], ex.ctx.target, origin_->secure()))
        res.insert(bh::field::set_cookie, c);
    co_await answer(std::move(res));
    co_return;
  }
  ex.ctx.user = caller->id;
  who.caller = caller->id;
  who.slot = owner + "/" + caller->id;
  auto role = co_await ctx_.authenticator->workspace_role(caller->id, owner);
  if (!role) {
    bool exists = co_await user_exists(owner);
    http::Response res = exists ? page(403, "Forbidden", "This workspace is not shared with you.")
                                : page(404, "Not Found", "There is nothing at this address.");
    co_await answer(std::move(res));
    co_return;
  }
  const bool upgrade = is_upgrade(h);
  // One caller cannot take every connection: each one (the owner, each
  // member) has their own allowance; and one client address has its own.
  // Checked before a ticket is minted too. And every tenant together stays
  // within the descriptors feuilled leaves them (its own work keeps the rest).
  who.client = ex.ctx.client;
  if (exchanges_.size() + tunnels_.size() >= options_.max_open) {
    http::Response res = page(503, "Service Unavailable", "This server is at its connection limit; try again shortly.");
    res.set(bh::field::retry_after, "1");
    co_await answer(std::move(res));
    co_return;
  }
  const bool over_caller = count_of(active_, who.slot) >= static_cast<std::size_t>(ctx_.config.proxy_max_per_user);
  if (over_caller ||
      count_of(per_client_, who.client) >= static_cast<std::size_t>(ctx_.config.proxy_max_per_client)) {
    http::Response res = page(429, "Too Many Requests",
                              over_caller ? "Too many connections to this workspace at once."
                                          : "Too many connections from your address at once.");
    res.set(bh::field::retry_after, "1");
    co_await answer(std::move(res));
    co_return;
  }
  // On public-url while workspaces have their own origin: a navigation goes
  // there through a ticket; nothing is proxied here.
  if (origin_ && !on_workspace_origin) {
    http::Response res = co_await to_workspace_origin(ex, owner, upgrade, page);
    co_await answer(std::move(res));
    co_return;
  }
  const bool safe = is_safe_method(h.method());
  if (!upgrade && !auth::role_allows(*role, h.method())) {
    http::Response res = page(403, "Forbidden", "You can read this workspace but not change it.");
    co_await answer(std::move(res));
    co_return;
  }
  // No cross-site WebSocket hijacking or request forgery into a workspace.
  if (upgrade || !safe) {
    auto o = h.find(bh::field::origin);
    bool allowed = on_workspace_origin ? (o == h.end() ? h["Sec-Fetch-Site"].empty() || h["Sec-Fetch-Site"] == "same-origin"
                                                       : origin_->origin_matches(o->value(), owner))
                                       : o == h.end() || ctx_.authenticator->same_origin(h);
    if (!allowed) {
      http::Response res = page(403, "Forbidden", "Cross-site requests to a workspace are refused.");
      co_await answer(std::move(res));
      co_return;
    }
  }

  ++active_[who.slot];
  ++per_client_[who.client];
  struct Release {
    ReverseProxy& p;
    http::Exchange& ex;
    const Caller& who;
    ~Release() {
      p.exchanges_.erase(&ex);
      p.release(who);
    }
  } slot{*this, ex, who};
  exchanges_.emplace(&ex, &who);

  // The editor: running, on its way (wait for it), or stopped (the owner's
  // requests start it).
  using compute::State;
  const bool is_owner = *role == auth::Role::owner;
  std::optional<compute::EditorTarget> editor = workspaces_.editor(owner);
  const State state = editor ? editor->state : State::stopped;
  if (state != State::running) {
    // Falling asleep counts as asleep: the wake follows the sleep.
    const bool asleep = state == State::sleeping || (editor && editor->falling_asleep);
    const bool startable = state == State::stopped || asleep || state == State::failed;
    const bool coming = compute::on_its_way(state);
    if (is_owner && (startable || coming)) {
      // Starts or wakes it, or joins the operation in flight. A start is
      // not waited for by a page load (it gets the starting page, which
      // follows the events), nor by other requests to a stopped workspace
      // (503 + Retry-After); a wake is: a script's request to a sleeping
      // workspace waits for it (start_wait) and then goes through.
      const bool wait_for_it = !startable || (asleep && !browser);
      const Duration wait = wait_for_it ? options_.start_wait : Duration{0};
      try {
        editor = co_await workspaces_.start_and_wait(owner, wait);
      } catch (const RequestError& e) {
        metrics_->count(e.status);  // 429 past start-concurrency, 503 when Podman is away
        throw;
      }
    } else if (coming) {
      editor = co_await workspaces_.wait_on_its_way(owner, options_.start_wait);  // a member never starts it
    }
    if (startable && is_owner && browser && editor && editor->state != State::running) {
      // On a workspace origin, its own event stream; feuilled's pages are on public-url.
      const std::string events = on_workspace_origin ? "/_feuille/events" : "/api/workspace/events";
      const std::string dashboard = (on_workspace_origin ? ctx_.config.public_url : std::string()) + "/dashboard";
      http::Response res = http::html_response(
          503, http::page("Starting your workspace",
                          "<main class=\"starting\"><h1>Starting your workspace</h1><p id=\"status\" data-events=\"" +
                              events +
                              "\">Your editor and Python runtime are starting. This page reloads when they are "
                              "ready.</p><p><a href=\"\">Reload</a> · <a href=\"" +
                              http::html_escape(dashboard) + "\">Dashboard</a></p></main>",
                          {"", "<meta http-equiv=\"refresh\" content=\"10\"><script src=\"" +
                                   http::StaticAssets::instance().url("starting.js") + "\" defer></script>"}));
      res.set(bh::field::retry_after, "5");
      co_await answer(std::move(res));
      co_return;
    }
    if (!editor || editor->state != State::running) {
      std::string why = editor && editor->state == State::failed && is_owner
                            ? "Your workspace failed: " + editor->reason + ". Start it again from the dashboard."
                        : is_owner ? std::string("Your workspace is starting; try again in a moment.")
                                   : std::string("This workspace is not running; its owner can start it.");
      http::Response res = page(503, "Workspace not running", why);
      res.set(bh::field::retry_after, "5");
      co_await answer(std::move(res));
      co_return;
    }
  }
  // The upstream request.
  std::string_view rest = ex.ctx.params.get("rest");
  // A person's request is activity; a page's own polling is not.
  if (!is_background_route(rest)) workspaces_.record_activity(owner);
  std::string target;
  target.reserve(2 + rest.size() + ex.ctx.query.size());
  target.append("/").append(rest);
  if (upgrade) target.append("?").append(upgrade_query(ex.ctx.query, editor->token));
  else if (!ex.ctx.query.empty()) target.append("?").append(ex.ctx.query);
  ForwardInfo info{target, ex.ctx.client, proto_, caller->id, auth::to_string(*role), editor->token,
                   ex.ctx.request_id};
  const bool retryable = is_idempotent(h.method()) && !upgrade && request_framing(ex.parser).kind == Framing::none;

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<UpstreamConnection> up;
    boost::system::error_code connect_error;
    try {
      up = co_await pool_.get(*editor, options_.connect_timeout);
    } catch (const boost::system::system_error& e) {
      connect_error = e.code();
    } catch (const std::system_error& e) {  // the editor's namespace could not be entered
      connect_error = boost::system::error_code(e.code().value(), boost::system::generic_category());
    }
    if (connect_error) {
      metrics_->connect_errors.Increment();
      logger("proxy")->warn("rid={} editor of {} unreachable at {}:{}: {}", ex.ctx.request_id, owner, editor->address, editor->port,
                            connect_error.message());
      workspaces_.editor_refused(owner);
      http::Response res = page(502, "Bad Gateway", "The editor is not answering. Try again in a moment.");
      res.set(bh::field::retry_after, "2");
      co_await answer(std::move(res));
      co_return;
    }
    bool reused = up->reused;
    Outcome out = co_await relay(ex, *up, info);
    if (out.upstream_failed) {
      if (reused && retryable && attempt == 0) continue;  // a pooled connection the editor had closed
      workspaces_.editor_refused(owner);
      http::Response res = page(502, "Bad Gateway", "The editor dropped the request. Try again in a moment.");
      res.set(bh::field::retry_after, "2");
      co_await answer(std::move(res));
      co_return;
    }
    metrics_->count(ex.status);
    if (out.upgraded) {
      co_await tunnel(ex, *up, who);
      ex.keep_alive = false;
    } else if (out.reusable && !stopping_) {
      pool_.put(std::move(up));
    }
    co_return;
  }
}

asio::awaitable<ReverseProxy::Outcome> ReverseProxy::relay(http::Exchange& ex, UpstreamConnection& up,
                                                           const ForwardInfo& info) {
  Outcome out;
  auto& h = ex.parser.get();
  const bool upgrade = is_upgrade(h);
  const bool head = h.method() == bh::verb::head;
  const bool client_keep_alive = h.keep_alive();
  const bool client_http11 = h.version() >= 11;
  const bool expect_continue = beast::iequals(h[bh::field::expect], "100-continue");
  const Framing request_body = request_framing(ex.parser);
  auto& client = ex.stream.socket();
  const auto started = Clock::now();

  std::string text;
  write_upstream_request(h, info, request_body, upgrade, text);
  auto ec = co_await http::write_fully(up.socket, std::array<asio::const_buffer, 1>{asio::buffer(text)}, *up.deadline,
                                       options_.idle_timeout);
  if (ec) {
    out.upstream_failed = true;
    co_return out;
  }

  ChunkLease chunk(spare_chunks_);

  // The request body, streamed through a bounded buffer.
  if (request_body.kind != Framing::none) {
    if (expect_continue) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      ec = co_await http::write_fully(client, std::array<asio::const_buffer, 1>{asio::buffer(cont)}, ex.deadline,
                                      options_.idle_timeout);
      if (ec) co_return out;
    }
    bh::request_parser<bh::buffer_body> body{std::move(ex.parser)};
    body.body_limit(boost::none);
    bool first = true;
    for (;;) {
      auto [rec, n] = co_await read_piece(client, ex.buffer, body, chunk.get(), kChunk, ex.deadline,
                                          options_.idle_timeout);
      if (rec) co_return out;  // the client went away: nothing to answer
      if (n == 0) break;
      metrics_->bytes_up.Increment(static_cast<double>(n));
      char prefix[24];
      std::string_view framing = request_body.kind == Framing::chunked ? chunk_prefix(prefix, n, first)
                                                                       : std::string_view{};
      first = false;
      ec = co_await http::write_fully(up.socket,
                                      std::array<asio::const_buffer, 2>{asio::buffer(framing), asio::buffer(chunk.get(), n)},
                                      *up.deadline, options_.idle_timeout);
      if (ec) {
        out.upstream_failed = true;
        co_return out;
      }
    }
    if (request_body.kind == Framing::chunked) {
      std::string_view end = first ? "0\r\n\r\n" : "\r\n0\r\n\r\n";
      ec = co_await http::write_fully(up.socket, std::array<asio::const_buffer, 1>{asio::buffer(end)}, *up.deadline,
                                      options_.idle_timeout);
      if (ec) {
        out.upstream_failed = true;
        co_return out;
      }
    }
  }

  // The response header (skipping interim 100s, passing other 1xx on).
  std::optional<bh::response_parser<bh::buffer_body>> rp;
  for (;;) {
    rp.emplace();
    rp->header_limit(64 * 1024);
    rp->body_limit(boost::none);
    if (head) rp->skip(true);
    beast::error_code hec;
    for (;;) {
      if (up.buffer.size() > 0) {
        std::size_t used = rp->put(up.buffer.data(), hec);
        up.buffer.consume(used);
        if (hec == bh::error::need_more) hec = {};
        else if (hec || rp->is_header_done()) break;
      }
      up.deadline->arm(options_.idle_timeout);
      auto [rec, n] = co_await up.socket.async_read_some(up.buffer.prepare(16 * 1024), tuple_awaitable);
      up.deadline->disarm();
      if (rec) {
        hec = rec;
        break;
      }
      up.buffer.commit(n);
    }
    if (hec) {
      out.upstream_failed = true;
      co_return out;
    }
    unsigned status = rp->get().result_int();
    if (status == 100) continue;
    if (status == 101 || status >= 200) break;
    write_client_response(rp->get().base(), {}, true, text);  // 102, 103...: passed on
    ec = co_await http::write_fully(client, std::array<asio::const_buffer, 1>{asio::buffer(text)}, ex.deadline,
                                    options_.idle_timeout);
    if (ec) co_return out;
  }
  metrics_->ttfb.Observe(std::chrono::duration<double>(Clock::now() - started).count());
  auto& res = rp->get();
  unsigned status = res.result_int();
  ex.status = status;

  if (status == 101) {
    if (!upgrade) {
      out.upstream_failed = true;  // an upgrade nobody asked for
      co_return out;
    }
    write_client_response(res.base(), {}, false, text);
    ec = co_await http::write_fully(client, std::array<asio::const_buffer, 1>{asio::buffer(text)}, ex.deadline,
                                    options_.idle_timeout);
    out.upgraded = !ec;
    co_return out;
  }

  // Framing towards the client.
  Framing down;
  bool no_body = head || status == 204 || status == 304;
  if (no_body) {
    if (head && rp->content_length()) down = {Framing::sized, *rp->content_length()};
  } else if (rp->content_length()) {
    down = {Framing::sized, *rp->content_length()};
  } else if (client_http11) {
    down = {Framing::chunked, 0};
  } else {
    down = {Framing::until_close, 0};
  }
  bool keep_alive = client_keep_alive && down.kind != Framing::until_close && !stopping_;
  // (A HEAD answer keeps the Content-Length of the GET it describes, and has no body.)
  write_client_response(res.base(), down, keep_alive, text);

  // The first piece of the body, if already here, goes out with the header.
  std::size_t n = 0;
  if (!no_body && !rp->is_done()) {
    auto [rec, got] = co_await read_piece(up.socket, up.buffer, *rp, chunk.get(), kChunk, *up.deadline,
                                          options_.idle_timeout, false);
    if (rec) {
      out.upstream_failed = true;
      co_return out;
    }
    n = got;
  }
  bool chunked = down.kind == Framing::chunked;
  bool first = true;
  char prefix[24];
  std::string_view framing = chunked && n > 0 ? chunk_prefix(prefix, n, true) : std::string_view{};
  if (n > 0) first = false;
  ec = co_await http::write_fully(
      client,
      std::array<asio::const_buffer, 3>{asio::buffer(text), asio::buffer(framing),
                                        asio::buffer(chunk.data(), n)},
      ex.deadline, options_.idle_timeout);
  std::uint64_t sent = n;
  if (ec) {
    ex.keep_alive = false;
    co_return out;
  }

  // The rest of the body, piece by piece: the next read waits for the write.
  while (!no_body && !rp->is_done()) {
    auto [rec, got] = co_await read_piece(up.socket, up.buffer, *rp, chunk.get(), kChunk, *up.deadline,
                                          options_.idle_timeout);
    if (rec) {
      // The editor broke off mid-response: the client must not take a short
      // body for a whole one, so its connection closes too.
      ex.keep_alive = false;
      ex.bytes = sent;
      metrics_->bytes_down.Increment(static_cast<double>(sent));
      co_return out;
    }
    if (got == 0) break;
    framing = chunked ? chunk_prefix(prefix, got, first) : std::string_view{};
    first = false;
    ec = co_await http::write_fully(
        client, std::array<asio::const_buffer, 2>{asio::buffer(framing), asio::buffer(chunk.get(), got)}, ex.deadline,
        options_.idle_timeout);
    if (ec) {
      ex.keep_alive = false;
      ex.bytes = sent;
      metrics_->bytes_down.Increment(static_cast<double>(sent));
      co_return out;
    }
    sent += got;
  }
  if (chunked) {
    std::string_view end = first ? "0\r\n\r\n" : "\r\n0\r\n\r\n";
    ec = co_await http::write_fully(client, std::array<asio::const_buffer, 1>{asio::buffer(end)}, ex.deadline,
                                    options_.idle_timeout);
  }
  metrics_->bytes_down.Increment(static_cast<double>(sent));
  ex.bytes = sent;
  ex.keep_alive = keep_alive && !ec;
  // Not after HEAD: an editor that wrongly sends a body would poison the pool.
  out.reusable = !head && rp->is_done() && rp->keep_alive() && up.buffer.size() == 0;
  co_return out;
}

// Sends the bytes that came with the upgrade on either side, then hands both
// sockets to a Tunnel of their own: the request (its connection, parser and
// coroutine frames) ends here; the tunnel holds the workspace's slot.
asio::awaitable<void> ReverseProxy::tunnel(http::Exchange& ex, UpstreamConnection& up, Caller who) {
  const std::string& owner = who.owner;
  auto& client = ex.stream.socket();
  FrameCounter from_browser;
  if (ex.buffer.size() > 0) {
    auto data = ex.buffer.data();
    if (from_browser.feed({static_cast<const std::uint8_t*>(data.data()), data.size()})) workspaces_.record_activity(owner);
    auto ec = co_await http::write_fully(up.socket, std::array<asio::const_buffer, 1>{data}, *up.deadline,
                                         options_.idle_timeout);
    if (ec) co_return;
    ex.buffer.consume(ex.buffer.size());
  }
  if (up.buffer.size() > 0) {
    auto ec = co_await http::write_fully(client, std::array<asio::const_buffer, 1>{up.buffer.data()}, ex.deadline,
                                         options_.idle_timeout);
    if (ec) co_return;
    up.buffer.consume(up.buffer.size());
  }
  up.deadline->disarm();
  ex.deadline.disarm();
  if (stopping_) co_return;
  TunnelEvents& events = *this;
  ++active_[who.slot];  // both released in ended()
  ++per_client_[who.client];
  auto t = std::make_shared<Tunnel>(std::move(client), std::move(up.socket), from_browser, std::move(who), events);
  tunnels_.insert(t.get());
  metrics_->websockets.Increment();
  t->start();
}

bool ReverseProxy::is_background_route(std::string_view rest) const {
  for (const auto& route : ctx_.config.background_routes)
    if (route.size() == rest.size() + 1 && route.compare(1, std::string::npos, rest) == 0) return true;
  return false;
}

std::vector<char>& ReverseProxy::scratch() { return scratch_; }

void ReverseProxy::browser_frames(const std::string& owner, std::size_t frames) {
  metrics_->frames.Increment(static_cast<double>(frames));
  workspaces_.record_activity(owner);
}

void ReverseProxy::relayed(std::size_t bytes, bool upward) {
  (upward ? metrics_->bytes_up : metrics_->bytes_down).Increment(static_cast<double>(bytes));
}

void ReverseProxy::ended(Tunnel& t) {
  tunnels_.erase(&t);
  metrics_->websockets.Decrement();
  release(t.who());
}

void ReverseProxy::probe_tunnels() {
  const auto quiet = std::chrono::milliseconds(ctx_.config.proxy_websocket_ping.count());
  if (quiet.count() == 0) return;
  const auto now = Tunnel::Clock::now();
  std::vector<std::shared_ptr<Tunnel>> all;
  all.reserve(tunnels_.size());
  for (auto* t : tunnels_) all.push_back(t->shared_from_this());  // probe() may close (and end) one
  for (auto& t : all)
    if (t->probe(now, quiet, quiet)) metrics_->dead_tunnels.Increment();
}

void ReverseProxy::release(const Caller& who) {
  if (auto it = active_.find(who.slot); it != active_.end() && --it->second == 0) active_.erase(it);
  if (auto it = per_client_.find(who.client); it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

void ReverseProxy::revoke(const auth::Revocation& r) {
  auto matches = [&r](const Caller& c) { return r.ends(c.owner, c.caller, c.credential); };
  std::vector<Tunnel*> tunnels;
  for (auto* t : tunnels_)
    if (matches(t->who())) tunnels.push_back(t);
  for (auto* t : tunnels) t->close();
  std::size_t streams = 0;
  for (auto& [ex, who] : exchanges_) {
    if (!matches(*who)) continue;
    ex->end_now();
    ++streams;
  }
  if (!tunnels.empty() || streams > 0)
    logger("proxy")->info("access ended: closed {} WebSocket(s) and {} request(s) into the workspace of {}",
                          tunnels.size(), streams, r.owner_id.empty() ? std::string("a signed-out session") : r.owner_id);
}

asio::awaitable<http::Response> ReverseProxy::to_workspace_origin(http::Exchange& ex, const std::string& owner,
                                                                  bool upgrade, const PageFn& page) {
  auto& h = ex.parser.get();
  const std::string there = origin_->origin(owner);
  // Only a navigation can follow the redirect with its method and body.
  if ((h.method() != bh::verb::get && h.method() != bh::verb::head) || upgrade)
    co_return page(403, "Forbidden", "This workspace is served at " + there + "/u/" + owner + "/.");
  auto minted = co_await ctx_.authenticator->workspace_ticket(h, owner, ex.ctx.target);
  using Refusal = auth::WorkspaceTickets::Refusal;
  if (minted.refusal != Refusal::none) {
    http::Response res =
        minted.refusal == Refusal::no_session ? page(401, "Unauthorized", "Sign in to reach this workspace.")
        : minted.refusal == Refusal::rate_limited
            ? page(429, "Too Many Requests", "Too many links into workspaces from this session; try again shortly.")
            : page(503, "Service Unavailable", "Too many people are entering this workspace; try again.");
    if (minted.retry_after_seconds) res.set(bh::field::retry_after, std::to_string(minted.retry_after_seconds));
    co_return res;
  }
  http::Response res = http::redirect(302, there + "/_feuille/enter?ticket=" + minted.ticket);
  res.set(bh::field::cache_control, "no-store");
  co_return res;
}

}  // namespace feuille::proxy
