#include "compute/podman_client.hpp"

#include "http/url.hpp"
#include "util/offload.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>

namespace feuille::compute {

using http::url_encode;
using namespace boost::asio::experimental::awaitable_operators;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;
using Clock = std::chrono::steady_clock;
using Protocol = asio::local::stream_protocol;
using Stream = beast::basic_stream<Protocol, asio::any_io_executor>;

// The piece a streamed body (archive) is read, written and uploaded in.
constexpr std::size_t kUploadPiece = 1 << 20;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr const char* kBase = "/v4.0.0/libpod";
constexpr std::size_t kReplyLimit = 64u << 20;

std::string clip(std::string s, std::size_t n = 300) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

bool stale_connection_error(const beast::error_code& ec) {
  return ec == asio::error::eof || ec == bh::error::end_of_stream || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == bh::error::partial_message;
}

}  // namespace

PodmanError::PodmanError(std::string h, unsigned s, std::string c, const std::string& m)
    : std::runtime_error("podman " + h + ": " + (s ? std::to_string(s) + " " : std::string()) + m),
      host(std::move(h)),
      status(s),
      cause(std::move(c)),
      message(m) {}

nlohmann::json PodmanReply::json() const {
  if (body.empty()) return nullptr;
  auto j = nlohmann::json::parse(body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

struct Connection {
  // Beast reads at most the buffer's free capacity (512 bytes at least):
  // without room, a 128 MiB archive took 260,000 reads of ~500 bytes.
  explicit Connection(asio::any_io_executor ex) : stream(ex) { buffer.reserve(64 * 1024); }
  Stream stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since{};
};

struct PodmanClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, std::string u, Options o) : executor(ex), url(std::move(u)), options(std::move(o)) {
    // Plain TCP is refused (docs/security.md): a Podman API there is root
    // on that host for anyone who reaches it.
    if (url.rfind("unix://", 0) != 0) throw std::invalid_argument("compute host url must be unix:///path: " + url);
    socket_path = url.substr(7);
  }

  asio::any_io_executor executor;
  std::string url;
  Options options;
  std::string socket_path;
  std::deque<std::unique_ptr<Connection>> idle;
  std::size_t opened = 0;

  PodmanError unreachable(const std::string& what, const beast::error_code& ec) const {
    std::string m = what + ": " + (ec == beast::error::timeout ? std::string("timed out") : ec.message());
    return PodmanError(options.host_name, 0, ec == beast::error::timeout ? "timeout" : "unreachable", m);
  }

  asio::awaitable<std::unique_ptr<Connection>> connect() {
    ++opened;
    auto c = std::make_unique<Connection>(executor);
    c->stream.expires_after(options.connect_timeout);
    Protocol::endpoint ep(socket_path);
    auto [ec] = co_await c->stream.async_connect(ep, tuple_awaitable);
    if (ec) throw unreachable("cannot connect to " + url, ec);
    co_return c;
  }

  // A pooled connection young enough to trust, else a new one.
  asio::awaitable<std::pair<std::unique_ptr<Connection>, bool>> lease() {
    auto now = Clock::now();
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (now - c->idle_since < options.idle_keep && c->stream.socket().is_open()) co_return std::pair{std::move(c), true};
    }
    co_return std::pair{co_await connect(), false};
  }

  void give_back(std::unique_ptr<Connection> c) {
    if (idle.size() >= options.max_idle) return;
    c->stream.expires_never();
    c->idle_since = Clock::now();
    idle.push_back(std::move(c));
  }

  void close_all() {
    for (auto& c : idle) {
      beast::error_code ignored;
      c->stream.socket().close(ignored);
    }
    idle.clear();
  }
};

PodmanClient::PodmanClient(asio::any_io_executor executor, std::string url, Options options)
    : impl_(std::make_shared<Impl>(executor, std::move(url), std::move(options))) {}

PodmanClient::~PodmanClient() { impl_->close_all(); }

const std::string& PodmanClient::url() const { return impl_->url; }
const std::string& PodmanClient::host_name() const { return impl_->options.host_name; }
std::size_t PodmanClient::connections_opened() const { return impl_->opened; }

PodmanError PodmanClient::error_of(const PodmanReply& reply, const std::string& what) const {
  auto j = reply.json();
  std::string cause, message;
  if (j.is_object()) {
    if (j.contains("cause") && j["cause"].is_string()) cause = j["cause"];
    if (j.contains("message") && j["message"].is_string()) message = j["message"];
  }
  if (message.empty()) message = clip(reply.body.empty() ? "no message" : reply.body);
  return PodmanError(impl_->options.host_name, reply.status, cause, what + ": " + message);
}

asio::awaitable<PodmanReply> PodmanClient::request(bh::verb method, std::string target, std::string body,
                                                   std::string content_type, std::optional<Duration> timeout) {
  auto self = impl_;  // the client may be destroyed while this runs
  const Duration limit = timeout.value_or(self->options.timeout);
  for (int attempt = 0;; ++attempt) {
    auto [conn, reused] = co_await self->lease();
    bh::request<bh::string_body> req{method, target, 11};
    req.set(bh::field::host, "d");
    req.set(bh::field::user_agent, "feuilled");
    if (!content_type.empty()) req.set(bh::field::content_type, content_type);
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();
    conn->stream.expires_after(limit);
    auto [wec, wn] = co_await bh::async_write(conn->stream, req, tuple_awaitable);
    bh::response_parser<bh::string_body> parser;
    parser.body_limit(kReplyLimit);
    beast::error_code rec = wec;
    if (!wec) std::tie(rec, std::ignore) = co_await bh::async_read(conn->stream, conn->buffer, parser, tuple_awaitable);
    if (rec) {
      if (reused && attempt == 0 && stale_connection_error(rec) && !parser.got_some()) continue;
      throw self->unreachable(std::string(bh::to_string(method)) + " " + target, rec);
    }
    PodmanReply reply{parser.get().result_int(), std::move(parser.get().body())};
    if (parser.get().keep_alive()) self->give_back(std::move(conn));
    co_return reply;
  }
}

asio::awaitable<PodmanReply> PodmanClient::upload(bh::verb method, std::string target, std::string content_type,
                                                  BodySource source, Duration idle_timeout) {
  auto self = impl_;
  auto conn = co_await self->connect();  // never a pooled one: a streamed body cannot be replayed
  bh::request<bh::empty_body> req{method, target, 11};
  req.set(bh::field::host, "d");
  req.set(bh::field::user_agent, "feuilled");
  req.set(bh::field::content_type, content_type);
  req.chunked(true);
  req.keep_alive(true);
  bh::request_serializer<bh::empty_body> sr{req};
  conn->stream.expires_after(idle_timeout);
  auto [hec, hn] = co_await bh::async_write_header(conn->stream, sr, tuple_awaitable);
  beast::error_code wec = hec;
  std::vector<char> chunk(kUploadPiece);
  while (!wec) {
    std::size_t n = co_await source(asio::buffer(chunk));
    conn->stream.expires_after(idle_timeout);
    if (n == 0) {
      std::tie(wec, std::ignore) = co_await asio::async_write(conn->stream, bh::make_chunk_last(), tuple_awaitable);
      break;
    }
    std::tie(wec, std::ignore) =
        co_await asio::async_write(conn->stream, bh::make_chunk(asio::buffer(chunk.data(), n)), tuple_awaitable);
  }
  // Podman may answer (an error) before taking the whole body: read what it said.
  bh::response_parser<bh::string_body> parser;
  parser.body_limit(kReplyLimit);
  conn->stream.expires_after(idle_timeout);
  auto [rec, rn] = co_await bh::async_read(conn->stream, conn->buffer, parser, tuple_awaitable);
  if (rec) throw self->unreachable(std::string(bh::to_string(method)) + " " + target, wec ? wec : rec);
  PodmanReply reply{parser.get().result_int(), std::move(parser.get().body())};
  if (!wec && parser.get().keep_alive()) self->give_back(std::move(conn));
  co_return reply;
}

namespace {

class StreamImpl : public PodmanClient::ResponseStream {
 public:
  StreamImpl(std::unique_ptr<Connection> c, std::string host, std::string what)
      : conn_(std::move(c)), host_(std::move(host)), what_(std::move(what)) {
    parser_.body_limit(boost::none);
  }

  asio::awaitable<void> read_header(Duration timeout) {
    conn_->stream.expires_after(timeout);
    auto [ec, n] = co_await bh::async_read_header(conn_->stream, conn_->buffer, parser_, tuple_awaitable);
    if (ec) throw failure(ec);
  }

  unsigned status() const override { return parser_.get().result_int(); }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer out, std::optional<Duration> idle) override {
    while (!parser_.is_done()) {
      if (closed_) throw PodmanError(host_, 0, "closed", what_ + ": closed");
      auto& body = parser_.get().body();
      body.data = out.data();
      body.size = out.size();
      if (idle) conn_->stream.expires_after(*idle);
      else conn_->stream.expires_never();
      auto [ec, n] = co_await bh::async_read_some(conn_->stream, conn_->buffer, parser_, tuple_awaitable);
      if (ec == bh::error::need_buffer) ec = {};
      if (ec) throw failure(ec);
      std::size_t got = out.size() - parser_.get().body().size;
      if (got > 0) co_return got;
    }
    co_return 0;
  }

  asio::awaitable<std::string> read_rest(Duration timeout) override {
    std::string out;
    char buf[8192];
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
      if (left.count() <= 0) break;
      std::size_t n = co_await read_some(asio::buffer(buf), left);
      if (n == 0) break;
      out.append(buf, n);
      if (out.size() > (1u << 20)) break;
    }
    co_return out;
  }

  void close() override {
    closed_ = true;
    beast::error_code ignored;
    conn_->stream.socket().cancel(ignored);
    conn_->stream.socket().close(ignored);
  }

 private:
  PodmanError failure(const beast::error_code& ec) const {
    std::string m = what_ + ": " + (ec == beast::error::timeout ? std::string("timed out") : ec.message());
    return PodmanError(host_, 0, closed_ ? "closed" : "unreachable", m);
  }

  std::unique_ptr<Connection> conn_;
  std::string host_, what_;
  bh::response_parser<bh::buffer_body> parser_;
  bool closed_ = false;
};

}  // namespace

asio::awaitable<std::unique_ptr<PodmanClient::ResponseStream>> PodmanClient::open(bh::verb method, std::string target,
                                                                                   Duration header_timeout) {
  auto self = impl_;
  auto conn = co_await self->connect();
  bh::request<bh::empty_body> req{method, target, 11};
  req.set(bh::field::host, "d");
  req.set(bh::field::user_agent, "feuilled");
  req.keep_alive(false);
  conn->stream.expires_after(header_timeout);
  auto [ec, n] = co_await bh::async_write(conn->stream, req, tuple_awaitable);
  if (ec) throw self->unreachable(std::string(bh::to_string(method)) + " " + target, ec);
  auto s = std::make_unique<StreamImpl>(std::move(conn), self->options.host_name,
                                        std::string(bh::to_string(method)) + " " + target);
  co_await s->read_header(header_timeout);
  co_return s;
}

// ---- libpod calls ----

asio::awaitable<void> PodmanClient::ping(std::optional<Duration> timeout) {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/_ping", {}, {}, timeout);
  if (r.status != 200) throw error_of(r, "ping");
}

asio::awaitable<std::string> PodmanClient::version() {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/version");
  if (r.status != 200) throw error_of(r, "version");
  auto j = r.json();
  if (j.is_object() && j.contains("Version") && j["Version"].is_string()) co_return j["Version"].get<std::string>();
  co_return "unknown";
}

asio::awaitable<nlohmann::json> PodmanClient::info() {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/info");
  if (r.status != 200) throw error_of(r, "info");
  co_return r.json();
}

asio::awaitable<std::uint64_t> PodmanClient::checkpoint_export(std::string name, CheckpointOptions options, Sink sink,
                                                             Duration dump_timeout, Duration idle) {
  auto target = std::string(kBase) + "/containers/" + url_encode(name) + "/checkpoint?export=true&leaveRunning=" +
                (options.leave_running ? "true" : "false") +
                "&tcpEstablished=" + (options.tcp_established ? "true" : "false");
  auto stream = co_await open(bh::verb::post, target, dump_timeout);
  if (stream->status() != 200) {
    // Not co_await inside the braces: GCC 12 destroys such temporaries twice.
    std::string body = co_await stream->read_rest(idle);
    throw error_of(PodmanReply{stream->status(), std::move(body)}, "checkpoint " + name);
  }
  // Podman sends the archive in chunks of a few KiB: gathered into 1 MiB
  // pieces (a sink call per chunk cost 2.8x the time), and the next piece
  // is read while the sink takes the last one.
  ResponseStream& from = *stream;
  auto fill = [&from, idle](std::vector<char>& piece) -> asio::awaitable<std::size_t> {
    std::size_t filled = 0;
    while (filled < piece.size()) {
      std::size_t n = co_await from.read_some(asio::buffer(piece.data() + filled, piece.size() - filled), idle);
      if (n == 0) break;
      filled += n;
    }
    co_return filled;
  };
  std::vector<char> ready(kUploadPiece), next(kUploadPiece);
  std::size_t have = co_await fill(ready);
  std::uint64_t total = have;
  while (have > 0) {
    auto given = sink(asio::const_buffer(ready.data(), have));
    auto read = fill(next);
    std::size_t got = 0;
    try {
      got = co_await (std::move(given) && std::move(read));
    } catch (const asio::multiple_exceptions& e) {
      // The sink refused (the plan's space, the disk) and the read was cut
      // with it: the sink's reason is the one that counts.
      std::rethrow_exception(e.first_exception());
    }
    total += got;
    have = got;
    ready.swap(next);
  }
  co_return total;
}

PodmanClient::BodySource PodmanClient::file_source(const std::string& path, asio::thread_pool& pool) {
  std::shared_ptr<std::FILE> file(std::fopen(path.c_str(), "rbe"), [](std::FILE* f) {
    if (f) std::fclose(f);
  });
  if (!file) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return [file, path, &pool](asio::mutable_buffer b) -> asio::awaitable<std::size_t> {
    auto read = [file, path, b]() {
      std::size_t n = std::fread(b.data(), 1, b.size(), file.get());
      if (n == 0 && std::ferror(file.get())) throw std::runtime_error("reading " + path + " failed");
      return n;
    };
    co_return co_await offload(pool, std::move(read));
  };
}

asio::awaitable<std::string> PodmanClient::restore_import(std::string name, BodySource tarball, bool tcp_established,
                                                          Duration timeout) {
  auto target = std::string(kBase) + "/containers/" + url_encode(name) + "/restore?import=true&name=" + url_encode(name) +
                "&tcpEstablished=" + (tcp_established ? "true" : "false");
  auto r = co_await upload(bh::verb::post, target, "application/x-tar", std::move(tarball), timeout);
  if (r.status != 200) throw error_of(r, "restore " + name);
  auto j = r.json();
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string()) throw error_of(r, "restore " + name + ": no Id");
  co_return j["Id"].get<std::string>();
}

asio::awaitable<void> PodmanClient::rename_container(std::string name, std::string new_name) {
  auto r = co_await request(bh::verb::post,
                            std::string(kBase) + "/containers/" + url_encode(name) + "/rename?name=" + url_encode(new_name));
  if (r.status != 204 && r.status != 200) throw error_of(r, "rename " + name);
}

asio::awaitable<std::string> PodmanClient::create_container(nlohmann::json spec,
                                                            std::optional<Duration> timeout) {
  std::string name = spec.value("name", "");
  auto r = co_await request(bh::verb::post, std::string(kBase) + "/containers/create", spec.dump(), "application/json",
                            timeout);
  if (r.status != 201 && r.status != 200) throw error_of(r, "create " + name);
  auto j = r.json();
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string()) throw error_of(r, "create " + name + ": no Id in answer");
  co_return j["Id"].get<std::string>();
}

asio::awaitable<void> PodmanClient::start_container(std::string name, std::optional<Duration> timeout) {
  auto r = co_await request(bh::verb::post, std::string(kBase) + "/containers/" + url_encode(name) + "/start", {}, {},
                            timeout);
  if (r.status != 204 && r.status != 304) throw error_of(r, "start " + name);
}

asio::awaitable<void> PodmanClient::stop_container(std::string name, int timeout_seconds) {
  auto target = std::string(kBase) + "/containers/" + url_encode(name) + "/stop?timeout=" + std::to_string(timeout_seconds);
  auto limit = impl_->options.timeout + std::chrono::seconds(timeout_seconds);
  auto r = co_await request(bh::verb::post, target, {}, {}, limit);
  if (r.status != 204 && r.status != 304) throw error_of(r, "stop " + name);
}

asio::awaitable<void> PodmanClient::kill_container(std::string name, std::string signal) {
  auto r = co_await request(bh::verb::post,
                            std::string(kBase) + "/containers/" + url_encode(name) + "/kill?signal=" + url_encode(signal));
  if (r.status != 204) throw error_of(r, "kill " + name);
}

asio::awaitable<bool> PodmanClient::remove_container(std::string name, bool force, int stop_timeout_seconds,
                                                     std::optional<Duration> timeout) {
  auto target = std::string(kBase) + "/containers/" + url_encode(name) + "?force=" + (force ? "true" : "false") +
                "&timeout=" + std::to_string(stop_timeout_seconds);
  auto limit = timeout.value_or(impl_->options.timeout + std::chrono::seconds(stop_timeout_seconds));
  auto r = co_await request(bh::verb::delete_, target, {}, {}, limit);
  if (r.status == 404) co_return false;
  if (r.status != 200 && r.status != 204) throw error_of(r, "remove " + name);
  co_return true;
}

asio::awaitable<std::optional<nlohmann::json>> PodmanClient::inspect_container(std::string name,
                                                                               std::optional<Duration> timeout) {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/containers/" + url_encode(name) + "/json", {}, {},
                            timeout);
  if (r.status == 404) co_return std::nullopt;
  if (r.status != 200) throw error_of(r, "inspect " + name);
  co_return r.json();
}

asio::awaitable<std::string> PodmanClient::logs_tail(std::string name, int lines, Duration timeout) {
  auto r = co_await request(bh::verb::get,
                            std::string(kBase) + "/containers/" + url_encode(name) +
                                "/logs?stdout=true&stderr=true&tail=" + std::to_string(lines),
                            {}, {}, timeout);
  if (r.status != 200) throw error_of(r, "logs of " + name);
  // Without a terminal the answer is multiplexed: frames of an 8-byte
  // header (stream, 0, 0, 0, big-endian length) and their bytes.
  constexpr std::size_t kCap = 64 * 1024;
  std::string out;
  std::string_view rest = r.body;
  bool framed = true;
  while (!rest.empty() && out.size() < kCap) {
    const auto* h = reinterpret_cast<const unsigned char*>(rest.data());
    if (rest.size() < 8 || h[0] > 2 || h[1] || h[2] || h[3]) {
      framed = false;  // a terminal's raw bytes
      break;
    }
    const std::size_t n = (std::size_t(h[4]) << 24) | (std::size_t(h[5]) << 16) | (std::size_t(h[6]) << 8) | h[7];
    rest.remove_prefix(8);
    out.append(rest.substr(0, n));
    rest.remove_prefix(std::min(n, rest.size()));
  }
  if (!framed && out.empty()) out = r.body.substr(0, kCap);
  co_return out;
}

asio::awaitable<void> PodmanClient::update_resources(std::string name, nlohmann::json limits, Duration timeout) {
  auto r = co_await request(bh::verb::post, std::string(kBase) + "/containers/" + url_encode(name) + "/update",
                            limits.dump(), "application/json", timeout);
  if (r.status != 201 && r.status != 200 && r.status != 204) throw error_of(r, "update the limits of " + name);
}

asio::awaitable<std::uint64_t> PodmanClient::writable_layer_bytes(std::string name, Duration timeout) {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/containers/" + url_encode(name) + "/json?size=true",
                            {}, {}, timeout);
  if (r.status != 200) throw error_of(r, "inspect the size of " + name);
  auto j = r.json();
  const auto& size = j["SizeRw"];
  co_return size.is_number_unsigned() || size.is_number_integer() ? size.get<std::uint64_t>() : 0;
}

asio::awaitable<nlohmann::json> PodmanClient::list_containers(std::vector<std::string> labels) {
  nlohmann::json filters = {{"label", labels}};
  auto r = co_await request(bh::verb::get,
                            std::string(kBase) + "/containers/json?all=true&filters=" + url_encode(filters.dump()));
  if (r.status != 200) throw error_of(r, "list containers");
  auto j = r.json();
  co_return j.is_array() ? j : nlohmann::json::array();
}

asio::awaitable<int> PodmanClient::wait_container(std::string name, std::string condition,
                                                  Duration timeout) {
  auto r = co_await request(bh::verb::post,
                            std::string(kBase) + "/containers/" + url_encode(name) + "/wait?condition=" + url_encode(condition),
                            {}, {}, timeout);
  if (r.status != 200) throw error_of(r, "wait " + name);
  auto j = r.json();
  co_return j.is_number_integer() ? j.get<int>() : -1;
}

asio::awaitable<nlohmann::json> PodmanClient::container_stats(std::vector<std::string> names,
                                                              std::optional<Duration> timeout) {
  std::string target = std::string(kBase) + "/containers/stats?stream=false";
  for (const auto& n : names) target += "&containers=" + url_encode(n);
  auto r = co_await request(bh::verb::get, target, {}, {}, timeout);
  if (r.status != 200) throw error_of(r, "stats");
  auto j = r.json();
  if (j.is_object() && j.contains("Stats") && j["Stats"].is_array()) co_return j["Stats"];
  co_return nlohmann::json::array();
}

asio::awaitable<std::string> PodmanClient::create_pod(nlohmann::json spec, std::optional<Duration> timeout) {
  std::string name = spec.value("name", "");
  auto r = co_await request(bh::verb::post, std::string(kBase) + "/pods/create", spec.dump(), "application/json",
                            timeout);
  if (r.status != 201 && r.status != 200) throw error_of(r, "create pod " + name);
  auto j = r.json();
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string()) throw error_of(r, "create pod " + name + ": no Id");
  co_return j["Id"].get<std::string>();
}

asio::awaitable<void> PodmanClient::start_pod(std::string name, std::optional<Duration> timeout) {
  auto r = co_await request(bh::verb::post, std::string(kBase) + "/pods/" + url_encode(name) + "/start", {}, {},
                            timeout);
  if (r.status != 200 && r.status != 304) throw error_of(r, "start pod " + name);
}

asio::awaitable<bool> PodmanClient::remove_pod(std::string name, std::optional<Duration> timeout) {
  auto r = co_await request(bh::verb::delete_, std::string(kBase) + "/pods/" + url_encode(name) + "?force=true", {},
                            {}, timeout);
  if (r.status == 404) co_return false;
  if (r.status != 200) throw error_of(r, "remove pod " + name);
  co_return true;
}

asio::awaitable<bool> PodmanClient::image_exists(std::string reference) {
  auto r = co_await request(bh::verb::get, std::string(kBase) + "/images/" + url_encode(reference) + "/exists");
  if (r.status == 204) co_return true;
  if (r.status == 404) co_return false;
  throw error_of(r, "image exists " + reference);
}

asio::awaitable<std::string> PodmanClient::import_image(std::string reference,
                                                        std::vector<std::string> changes, BodySource tarball) {
  std::string target = std::string(kBase) + "/images/import?reference=" + url_encode(reference);
  for (const auto& c : changes) target += "&changes=" + url_encode(c);
  auto r = co_await upload(bh::verb::post, target, "application/x-tar", std::move(tarball), impl_->options.timeout);
  if (r.status != 200) throw error_of(r, "import " + reference);
  auto j = r.json();
  co_return j.is_object() && j.contains("Id") && j["Id"].is_string() ? j["Id"].get<std::string>() : std::string();
}

}  // namespace feuille::compute
