#include "publish/publish_module.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "db/users.hpp"
#include "feuille/errors.hpp"
#include "http/io.hpp"
#include "http/responses.hpp"
#include "publish/conditional.hpp"
#include "publish/folder_watcher.hpp"
#include "publish/lru.hpp"
#include "publish/markdown.hpp"
#include "publish/page_html.hpp"
#include "publish/project.hpp"
#include "util/inflight.hpp"
#include "util/logging.hpp"
#include "util/offload.hpp"

namespace feuille::publish {
namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using http::Request;
using http::RequestContext;
using http::Response;
using Clock = std::chrono::steady_clock;

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

// Every "not here" of the publish routes is this one answer: unknown
// handles, private projects, missing pages and hostile paths alike.
constexpr std::string_view kNotFound = "There is nothing at this address.";

constexpr std::size_t kProjectCacheBytes = 32 * 1024 * 1024;
constexpr std::size_t kProjectCacheEntries = 256;  // each holds an open folder
// Even without any inotify event, the stamps of a cached project are checked
// again after this long (changes inotify cannot see: another host's writes
// on a network file system, writes through a shared mapping).
constexpr auto kRecheckEvery = std::chrono::seconds(1);
constexpr std::size_t kHandleCacheEntries = 10'000;
constexpr auto kHandleTtl = std::chrono::seconds(10);
constexpr std::size_t kMaxPageBytes = 8 * 1024 * 1024;
constexpr std::size_t kRenderThreads = 2;
constexpr std::size_t kMaxPendingRenders = 64;
constexpr std::size_t kAssetChunk = 256 * 1024;
constexpr auto kWriteTimeout = std::chrono::seconds(30);

// Assets are the user's bytes on feuilled's origin: they must never run as
// a document of that origin (an SVG or HTML file with scripts).
constexpr std::string_view kAssetCsp =
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; sandbox";
constexpr std::string_view kPdfCsp = "default-src 'none'; img-src 'self' data:; frame-ancestors 'none'";

struct Owner {
  std::string id, handle, name;
};

// A scanned project, its open folder, the watches on its folders (null when
// they could not all be set: then its stamps are checked on every request),
// and the generation that identifies this scan: pages rendered from an older
// scan (old nav, old titles) are not reused.
struct Loaded {
  std::shared_ptr<const Project> project;
  std::shared_ptr<Fd> user_dir;  // <data-dir>/<user id>
  std::shared_ptr<Fd> dir;       // the project folder
  std::shared_ptr<WatchSet> watches;
  std::uint64_t generation = 0;
  std::uint64_t checked_epoch = 0;  // watcher epoch when the stamps were last found equal (0: never)
  Clock::time_point checked_at{};
};

struct Scanned {
  std::shared_ptr<const Project> project;
  std::shared_ptr<WatchSet> watches;
};

struct CachedPage {
  std::uint64_t generation = 0;  // of the project scan it was rendered with
  Stamp stamp;                   // of the page's file when it was read
  std::shared_ptr<const std::string> html;
  std::string etag;
  std::int64_t last_modified = 0;  // newest mtime of the page, mrmd.md and the folders (seconds)
  std::string last_modified_text;
  std::uint64_t checked_epoch = 0;  // watcher epoch when the stamp was last found equal
  Clock::time_point checked_at{};
};

struct Rendered {
  std::shared_ptr<const std::string> html;
  std::string etag;
  bool missing = false;          // the file could not be read (gone, or a link out of the project)
  bool heading_changed = false;  // its "# heading" is not the one the nav knows
  std::optional<RenderTooCostly::Limit> abandoned;  // the limit a render passed (a notice in its place)
};

struct HandleEntry {
  std::optional<Owner> owner;
  Clock::time_point expires;
};

struct OpenedAsset {
  std::shared_ptr<Fd> fd;
  std::uint64_t size = 0;
  Stamp stamp;
};

bool valid_handle(std::string_view h) {
  if (h.empty() || h.size() > 46) return false;
  for (char c : h)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string join(const std::vector<std::string>& segments) {
  std::string out;
  for (const auto& s : segments) {
    if (!out.empty()) out.push_back('/');
    out += s;
  }
  return out;
}

std::string hex(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string content_etag(std::string_view body) {
  return "\"" + hex(std::hash<std::string_view>{}(body)) + "-" + hex(body.size()) + "\"";
}

std::string asset_type(std::string_view name) {
  auto dot = name.rfind('.');
  std::string ext = dot == std::string_view::npos ? "" : lower(name.substr(dot + 1));
  static const std::unordered_map<std::string, std::string> types{
      {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
      {"webp", "image/webp"}, {"avif", "image/avif"}, {"svg", "image/svg+xml"}, {"ico", "image/x-icon"},
      {"bmp", "image/bmp"}, {"pdf", "application/pdf"}, {"csv", "text/csv; charset=utf-8"},
      {"tsv", "text/tab-separated-values; charset=utf-8"}, {"txt", "text/plain; charset=utf-8"},
      {"md", "text/plain; charset=utf-8"}, {"json", "application/json"}, {"mp4", "video/mp4"},
      {"webm", "video/webm"}, {"mp3", "audio/mpeg"}, {"ogg", "audio/ogg"}, {"wav", "audio/wav"},
      {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"}, {"otf", "font/otf"},
      {"css", "text/css; charset=utf-8"},
      // Never as a document or script of feuilled's origin.
      {"html", "text/plain; charset=utf-8"}, {"htm", "text/plain; charset=utf-8"},
      {"xhtml", "text/plain; charset=utf-8"}, {"js", "text/plain; charset=utf-8"},
      {"mjs", "text/plain; charset=utf-8"}, {"xml", "text/plain; charset=utf-8"}};
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

std::optional<OpenedAsset> open_asset(int dir, const std::string& rel) {
  Fd f = open_beneath(dir, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!f) return std::nullopt;
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return OpenedAsset{std::make_shared<Fd>(std::move(f)), static_cast<std::uint64_t>(st.st_size), Stamp::of(st)};
}

std::string read_chunk(int fd, std::uint64_t offset, std::size_t len) {
  std::string buf(len, '\0');
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, buf.data() + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  return buf;
}

// Renders one page (or the empty-project page when current < 0) on the
// render pool. A page past the render limits gets a notice in its place; it
// is cached like any page, so it is not rendered again until the file changes.
Rendered render_page(int dir, const std::shared_ptr<const Project>& project, int current, const std::string& handle,
                     bool check_heading, const RenderLimits& limits) {
  Rendered r;
  std::string article;
  if (current >= 0) {
    const Page& page = project->pages[current];
    bool truncated = false;
    auto text = read_beneath(dir, page.file, kMaxPageBytes, nullptr, &truncated);
    if (!text) {
      r.missing = true;
      return r;
    }
    if (check_heading && first_heading(std::string_view(*text).substr(0, kTitleScanBytes)) != page.heading) {
      r.heading_changed = true;
      return r;
    }
    if (truncated) {
      article = "<p>This page is too large to be published (over 8 MiB).</p>";
    } else {
      try {
        article = render_markdown(*text, link_rewriter(*project, project_url(handle, project->folder), page), limits);
      } catch (const RenderTooCostly& e) {
        r.abandoned = e.limit;
        article = "<p class=\"render-error\">This page could not be published: " + http::html_escape(e.what()) +
                  ". Split it into smaller pages, or simplify its tables.</p>";
      }
    }
  }
  auto html = std::make_shared<const std::string>(project_page(handle, *project, current, article));
  r.etag = content_etag(*html);
  r.html = std::move(html);
  return r;
}

class PublishModule final : public app::Module {
 public:
  explicit PublishModule(app::ModuleContext& ctx)
      : pool_(ctx.pool),
        config_(ctx.config),
        db_(ctx.db),
        log_(logger("publish")),
        watcher_(std::make_shared<FolderWatcher>()),
        pages_(static_cast<std::size_t>(ctx.config.publish_cache_bytes)) {
    if (!watcher_->enabled()) log_->warn("inotify unavailable: cached pages are checked with stat on every request");
    auto& registry = ctx.metrics.registry();
    auto& lookups = prometheus::BuildCounter()
                        .Name("feuille_publish_page_lookups_total")
                        .Help("Published page requests by cache result")
                        .Register(registry);
    cache_hits_ = &lookups.Add({{"result", "hit"}});
    cache_misses_ = &lookups.Add({{"result", "render"}});
    scans_total_ = &prometheus::BuildCounter()
                        .Name("feuille_publish_project_scans_total")
                        .Help("Project folders scanned (first visit or after a change)")
                        .Register(registry)
                        .Add({});
    renders_abandoned_ = &prometheus::BuildCounter()
                              .Name("feuille_publish_renders_abandoned_total")
                              .Help("Page renders stopped at a render limit (memory, time or output)")
                              .Register(registry)
                              .Add({});
    cache_bytes_ = &prometheus::BuildGauge()
                        .Name("feuille_publish_page_cache_bytes")
                        .Help("Rendered pages held in memory")
                        .Register(registry)
                        .Add({});

    auto& r = ctx.router;
    r.add({bh::verb::get}, "/@{handle}", "publish",
          [this](Request& req, RequestContext& c) { return listing(req, c); });
    r.add_stream({bh::verb::get}, "/@{handle}/{project}", "publish", [this](http::Exchange& ex) { return page(ex); });
    r.add_stream({bh::verb::get}, "/@{handle}/{project}/{page*}", "publish",
                 [this](http::Exchange& ex) { return page(ex); });
    r.add_stream({bh::verb::get}, "/@{handle}/{project}/_assets/{file*}", "publish",
                 [this](http::Exchange& ex) { return asset(ex); });
  }

  std::string_view name() const override { return "publish"; }

 private:
  static Response not_found(const bh::request_header<>& req) { return http::error_for(req, 404, kNotFound); }

  // The user behind a handle, remembered for a few seconds (found or not).
  // Concurrent misses of one handle share one query: when its entry expires
  // under load, every connection misses at once.
  asio::awaitable<std::optional<Owner>> find_owner(std::string_view raw) {
    if (!valid_handle(raw)) co_return std::nullopt;
    std::string key = lower(raw);
    if (auto* e = handles_.find(key); e && e->expires > Clock::now()) co_return e->owner;
    auto job = [this, key] { return read_owner(key); };
    co_return co_await owners_.run(key, std::move(job));
  }

  asio::awaitable<std::optional<Owner>> read_owner(std::string key) {
    // The query is built first: a temporary with a destructor inside a
    // co_await expression is destroyed twice by GCC 12.
    auto query = [&key](pqxx::work& w) { return db::find_user_by_handle(w, key); };
    auto user = co_await db_.run(query);
    std::optional<Owner> owner;
    if (user) owner = Owner{user->id, user->handle, user->name};
    handles_.put(key, HandleEntry{owner, Clock::now() + kHandleTtl}, 1);
    co_return owner;
  }

  // The project's scan: the cached one while it is known unchanged (no
  // inotify event under its folders since its stamps were last found equal,
  // less than kRecheckEvery ago) or its stamps are still equal; else a new
  // scan. `epoch` is the watcher's, read at the start of the request.
  asio::awaitable<Loaded> load_project(const Owner& owner, const std::string& name, std::uint64_t epoch) {
    std::string key = owner.id + "/" + name;
    const auto now = Clock::now();
    if (Loaded* cached = projects_.find(key)) {
      if (cached->watches && cached->checked_epoch != 0 && now - cached->checked_at < kRecheckEvery &&
          watcher_->last_change(cached->watches->ids()) <= cached->checked_epoch)
        co_return *cached;
      // The path must still lead to the folder that is open (not renamed
      // away, not replaced by a link), and nothing in it changed.
      const std::string path = "Projects/" + name;
      if (stamp_at(cached->user_dir->get(), path.c_str(), false) == cached->project->folders.front().second &&
          cached->project->fresh(cached->dir->get())) {
        cached->checked_epoch = epoch;
        cached->checked_at = now;
        co_return *cached;
      }
    }
    auto user_dir = std::make_shared<Fd>(open_user_dir(config_.data_dir, owner.id));
    auto dir = std::make_shared<Fd>(*user_dir ? open_project_dir(user_dir->get(), name) : Fd{});
    if (!*dir) {
      projects_.erase(key);
      co_return Loaded{};
    }
    // Jobs are named locals: a temporary with a destructor inside a
    // co_await expression is mishandled by GCC 12.
    auto job = [this, key, name, dir, user_dir, handle = owner.handle]() {
      return scan(key, name, dir, user_dir, handle);
    };
    Loaded loaded = co_await scans_.run(key, std::move(job));
    // A scan this request joined may have started before the change it
    // must see: then scan again.
    if (!loaded.project->fresh(loaded.dir->get())) {
      std::string handle = owner.handle;
      auto again_dir = loaded.dir, again_user_dir = loaded.user_dir;
      loaded = co_await scan(std::move(key), name, std::move(again_dir), std::move(again_user_dir), std::move(handle));
    }
    co_return loaded;
  }

  asio::awaitable<Loaded> scan(std::string key, std::string name, std::shared_ptr<Fd> dir,
                               std::shared_ptr<Fd> user_dir, std::string handle) {
    auto job = [watcher = watcher_, dir, user_dir, name]() {
      std::shared_ptr<WatchSet> watches;
      bool complete = watcher->enabled();
      if (complete) {
        // The Projects folder too: a project folder renamed or replaced.
        watches = std::make_shared<WatchSet>(watcher);
        Fd projects = open_beneath(user_dir->get(), "Projects", O_RDONLY | O_DIRECTORY, Symlinks::never);
        complete = projects && watches->add(projects.get());
      }
      auto on_folder = [&](int fd) { complete = complete && watches->add(fd); };
      auto project = std::make_shared<const Project>(scan_project(dir->get(), name, on_folder));
      return Scanned{std::move(project), complete ? std::move(watches) : nullptr};
    };
    Scanned scanned = co_await offload(pool_, std::move(job));
    const auto& project = scanned.project;
    scans_total_->Increment();
    if (project->config || project->problem != "no readable mrmd.md") {
      if (!project->problem.empty()) log_->warn("@{} project \"{}\" is not published: {}", handle, name, project->problem);
      for (const auto& w : project->warnings) log_->warn("@{} project \"{}\": {}", handle, name, w);
    }
    // checked_epoch 0: the next request checks the stamps once, now that the
    // watches are set (a change between the scan and the watch is not lost).
    Loaded loaded{project, user_dir, dir, std::move(scanned.watches), ++generation_, 0, {}};
    std::size_t cost = 4096;
    for (const auto& p : project->pages) cost += p.url.size() + p.file.size() + p.title.size() + 256;
    projects_.put(key, loaded, std::max(cost, kProjectCacheBytes / kProjectCacheEntries));
    co_return loaded;
  }

  asio::awaitable<Response> listing(Request& req, RequestContext& ctx) {
    auto owner = co_await find_owner(ctx.params.get("handle"));
    if (!owner) co_return not_found(req);
    auto job = [data_dir = config_.data_dir, o = *owner] {
      Fd user_dir = open_user_dir(data_dir, o.id);
      std::vector<ProjectSummary> projects;
      if (user_dir) projects = list_projects(user_dir.get());
      return listing_page(o.handle, o.name, projects);
    };
    auto html = co_await offload(pool_, std::move(job));
    std::string etag = content_etag(html);
    if (not_modified(req[bh::field::if_none_match], "", etag, 0)) co_return not_modified_response(etag, std::nullopt);
    auto res = http::text_response(200, std::move(html), "text/html; charset=utf-8");
    res.set(bh::field::etag, etag);
    res.set(bh::field::cache_control, "no-cache");
    co_return res;
  }

  static Response not_modified_response(const std::string& etag, std::optional<std::int64_t> last_modified) {
    Response r{bh::status::not_modified, 11};
    r.set(bh::field::etag, etag);
    if (last_modified) r.set(bh::field::last_modified, http_date(*last_modified));
    r.set(bh::field::cache_control, "no-cache");
    return r;
  }

  // A page of a project: a streaming route, so that a cached page is
  // written from the cache without a copy.
  asio::awaitable<void> page(http::Exchange& ex) {
    const auto& req = ex.parser.get();
    const bool has_body = ex.parser.chunked() || (ex.parser.content_length() && *ex.parser.content_length() > 0);
    ex.keep_alive = req.keep_alive() && !has_body;  // a body is never read here
    PageAnswer answer = co_await answer_page(req, ex.ctx);
    if (!answer.body) {
      co_await http::write_response(ex, answer.head, answer.head.body());
      co_return;
    }
    answer.head.content_length(answer.body->size());
    co_await http::write_response(ex, answer.head, *answer.body);
  }

  struct PageAnswer {
    Response head;  // the whole response when body is null
    std::shared_ptr<const std::string> body;
  };

  asio::awaitable<PageAnswer> answer_page(const bh::request_header<>& req, RequestContext& ctx) {
    std::string_view raw_handle = ctx.params.get("handle");
    std::string_view raw_project = ctx.params.get("project");
    std::string_view raw_page = ctx.params.get("page");
    if (ctx.path.back() == '/') {
      // "/@h/p/" and "/@h/p/page/": the canonical URL has no trailing slash.
      std::string_view trimmed = raw_page.empty() ? raw_page : raw_page.substr(0, raw_page.size() - 1);
      if (!valid_handle(raw_handle) || !decode_segment(raw_project) || (!trimmed.empty() && !decode_path(trimmed)))
        co_return PageAnswer{not_found(req), nullptr};
      std::string location = "/@" + std::string(raw_handle) + "/" + std::string(raw_project);
      if (!trimmed.empty()) location += "/" + std::string(trimmed);
      co_return PageAnswer{http::redirect(301, location), nullptr};
    }
    auto owner = co_await find_owner(raw_handle);
    auto name = decode_segment(raw_project);
    auto segments = decode_path(raw_page);
    if (!owner || !name || !segments) co_return PageAnswer{not_found(req), nullptr};
    const std::string url = join(*segments);
    const std::string project_key = owner->id + "/" + *name;

    for (int attempt = 0;; ++attempt) {
      const std::uint64_t epoch = watcher_->drain();
      Loaded loaded = co_await load_project(*owner, *name, epoch);
      if (!loaded.project || !loaded.project->served()) co_return PageAnswer{not_found(req), nullptr};
      const Project& p = *loaded.project;
      int current = p.home();
      if (!url.empty()) {
        auto it = p.by_url.find(url);
        if (it == p.by_url.end()) co_return PageAnswer{not_found(req), nullptr};
        current = static_cast<int>(it->second);
      }
      const Page* page = current >= 0 ? &p.pages[current] : nullptr;
      const auto now = Clock::now();
      std::string key = project_key + "\n" + (page ? page->url : std::string("\x01"));
      CachedPage* cached = pages_.find(key);
      if (cached && cached->generation != loaded.generation) cached = nullptr;
      // A cached page is known unchanged without a stat while nothing moved
      // under the project's watched folders since it was last checked (a
      // page that is a symlink may change elsewhere: always checked).
      bool quiet = cached && loaded.watches && page && !page->link && cached->checked_epoch != 0 &&
                   now - cached->checked_at < kRecheckEvery &&
                   watcher_->last_change(loaded.watches->ids()) <= cached->checked_epoch;
      if (!quiet) {
        Stamp stamp = page ? stamp_at(loaded.dir->get(), page->file.c_str(), true) : Stamp{};
        if (cached && cached->stamp == stamp) {
          cached->checked_epoch = epoch;
          cached->checked_at = now;
        } else {
          cache_misses_->Increment();
          auto shared_dir = loaded.dir;
          bool check_heading = attempt == 0;
          std::string job_key = key + "\n" + std::to_string(loaded.generation) + "\n" + std::to_string(stamp.ino) +
                                ":" + std::to_string(stamp.size) + ":" + std::to_string(stamp.mtime_ns);
          auto job = [this, shared_dir, project = loaded.project, current, handle = owner->handle,
                      check_heading]() -> asio::awaitable<Rendered> {
            if (renders_pending_ >= kMaxPendingRenders) {
              RequestError busy(503, "Too many pages are being rendered right now; try again shortly.",
                                "render queue full");
              busy.retry_after_seconds = 2;
              throw busy;
            }
            RenderLimits limits;
            limits.memory_bytes = config_.publish_render_memory;
            limits.time = std::chrono::duration_cast<std::chrono::milliseconds>(config_.publish_render_timeout);
            ++renders_pending_;
            struct Pending {
              std::size_t& n;
              ~Pending() { --n; }
            } pending{renders_pending_};
            auto render = [shared_dir, project, current, handle, check_heading, limits] {
              return render_page(shared_dir->get(), project, current, handle, check_heading, limits);
            };
            Rendered r = co_await offload(render_pool_, std::move(render));
            if (r.abandoned) {
              renders_abandoned_->Increment();
              log_->warn("page of @{} abandoned: {} (a notice is shown until the file changes)", handle,
                         *r.abandoned == RenderTooCostly::Limit::memory ? "memory limit"
                         : *r.abandoned == RenderTooCostly::Limit::time ? "time limit"
                                                                         : "output limit");
            }
            co_return r;
          };
          Rendered r = co_await renders_.run(std::move(job_key), std::move(job));
          if (r.missing) co_return PageAnswer{not_found(req), nullptr};
          if (r.heading_changed) {
            // The nav of every page shows this title: scan the project again.
            projects_.erase(project_key);
            continue;
          }
          std::int64_t newest = std::max(stamp.mtime_ns, p.config_stamp.mtime_ns);
          for (const auto& f : p.folders) newest = std::max(newest, f.second.mtime_ns);
          CachedPage fresh{loaded.generation, stamp, r.html, r.etag, newest / 1'000'000'000,
                           http_date(newest / 1'000'000'000), epoch, now};
          std::size_t cost = fresh.html->size() + key.size() + 256;
          pages_.put(key, fresh, cost);
          cache_bytes_->Set(static_cast<double>(pages_.used()));
          co_return respond(req, fresh);
        }
      }
      cache_hits_->Increment();
      co_return respond(req, *cached);
    }
  }

  static PageAnswer respond(const bh::request_header<>& req, const CachedPage& page) {
    if (not_modified(req[bh::field::if_none_match], req[bh::field::if_modified_since], page.etag,
                     page.last_modified))
      return PageAnswer{not_modified_response(page.etag, page.last_modified), nullptr};
    Response res{bh::status::ok, 11};
    res.set(bh::field::content_type, "text/html; charset=utf-8");
    res.set(bh::field::etag, page.etag);
    res.set(bh::field::last_modified, page.last_modified_text);
    res.set(bh::field::cache_control, "no-cache");
    return PageAnswer{std::move(res), page.html};
  }

  asio::awaitable<void> asset(http::Exchange& ex) {
    const auto& req = ex.parser.get();
    const bool head_only = req.method() == bh::verb::head;
    const bool has_body = ex.parser.chunked() || (ex.parser.content_length() && *ex.parser.content_length() > 0);
    ex.keep_alive = req.keep_alive() && !has_body;  // a body is never read here

    auto owner = co_await find_owner(ex.ctx.params.get("handle"));
    auto name = decode_segment(ex.ctx.params.get("project"));
    auto segments = decode_path(ex.ctx.params.get("file"));
    bool ok = owner && name && segments && !segments->empty();
    if (ok)
      for (const auto& s : *segments)
        if (s.front() == '.' || s.front() == '_') ok = false;  // hidden inside _assets/ too
    std::optional<OpenedAsset> file;
    if (ok) {
      std::uint64_t epoch = watcher_->drain();
      Loaded loaded = co_await load_project(*owner, *name, epoch);
      if (loaded.project && loaded.project->served()) {
        auto shared_dir = loaded.dir;
        std::string rel = "_assets/" + join(*segments);
        auto job = [shared_dir, rel] { return open_asset(shared_dir->get(), rel); };
        file = co_await offload(pool_, std::move(job));
      }
    }
    if (!file) {
      Response missing = not_found(req);
      co_await http::write_response(ex, missing, missing.body());
      co_return;
    }

    const std::string etag = "\"" + hex(file->stamp.ino) + "-" + hex(file->stamp.size) + "-" +
                             hex(static_cast<std::uint64_t>(file->stamp.mtime_ns)) + "\"";
    const std::int64_t last_modified = file->stamp.mtime_ns / 1'000'000'000;
    if (not_modified(req[bh::field::if_none_match], req[bh::field::if_modified_since], etag, last_modified)) {
      Response unchanged = not_modified_response(etag, last_modified);
      co_await http::write_response(ex, unchanged, {});
      co_return;
    }

    const std::string type = asset_type(segments->back());
    Response res{bh::status::ok, 11};
    res.set(bh::field::content_type, type);
    res.set(bh::field::etag, etag);
    res.set(bh::field::last_modified, http_date(last_modified));
    res.set(bh::field::cache_control, "no-cache");
    res.set(bh::field::accept_ranges, "bytes");
    res.set("Content-Security-Policy", type == "application/pdf" ? kPdfCsp : kAssetCsp);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "same-origin");

    ByteRange range{0, file->size ? file->size - 1 : 0};
    std::uint64_t length = file->size;
    auto range_header = req[bh::field::range];
    auto if_range = req[bh::field::if_range];
    bool range_applies = !range_header.empty() &&
                         (if_range.empty() || if_range == etag || parse_http_date(if_range) == last_modified);
    if (range_applies) {
      switch (parse_range(range_header, file->size, range)) {
        case RangeKind::whole:
          range = {0, file->size ? file->size - 1 : 0};
          break;
        case RangeKind::unsatisfiable: {
          res.result(bh::status::range_not_satisfiable);
          res.set(bh::field::content_range, "bytes */" + std::to_string(file->size));
          res.content_length(0);
          co_await http::write_response(ex, res, {});
          co_return;
        }
        case RangeKind::partial:
          res.result(bh::status::partial_content);
          res.set(bh::field::content_range, "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) +
                                                "/" + std::to_string(file->size));
          length = range.last - range.first + 1;
          break;
      }
    }
    res.content_length(length);
    bool sent = co_await http::write_response(ex, res, {});  // the head
    if (!sent || head_only) co_return;

    std::uint64_t offset = range.first, remaining = length;
    auto fd = file->fd;
    while (remaining > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kAssetChunk));
      auto job = [fd, offset, want] { return read_chunk(fd->get(), offset, want); };
      std::string chunk = co_await offload(pool_, std::move(job));
      if (chunk.empty()) {
        // The file shrank under us: the promised length cannot be sent.
        ex.keep_alive = false;
        co_return;
      }
      auto ec = co_await http::write_fully(ex.stream.socket(), std::array<asio::const_buffer, 1>{asio::buffer(chunk)},
                                           ex.deadline, kWriteTimeout);
      if (ec) {
        ex.keep_alive = false;
        co_return;
      }
      ex.bytes += chunk.size();
      offset += chunk.size();
      remaining -= chunk.size();
    }
  }

  asio::thread_pool& pool_;
  // Renders have threads of their own: a slow page never holds a thread
  // the database's queries need (each render is bounded: RenderLimits).
  asio::thread_pool render_pool_{kRenderThreads};
  std::size_t renders_pending_ = 0;  // queued or running; past kMaxPendingRenders: 503
  const Config& config_;
  db::Database& db_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<FolderWatcher> watcher_;  // before the caches: their entries give watches back
  Lru<HandleEntry> handles_{kHandleCacheEntries};
  Lru<Loaded> projects_{kProjectCacheBytes};
  Lru<CachedPage> pages_;  // bounded by publish-cache-size
  Inflight<std::optional<Owner>> owners_;
  Inflight<Loaded> scans_;
  Inflight<Rendered> renders_;
  std::uint64_t generation_ = 0;
  prometheus::Counter* cache_hits_ = nullptr;
  prometheus::Counter* cache_misses_ = nullptr;
  prometheus::Counter* scans_total_ = nullptr;
  prometheus::Gauge* cache_bytes_ = nullptr;
  prometheus::Counter* renders_abandoned_ = nullptr;
};

}  // namespace

std::unique_ptr<app::Module> make_module(app::ModuleContext& ctx) { return std::make_unique<PublishModule>(ctx); }

}  // namespace feuille::publish
