#include "compute/compute_module.hpp"

#include <linux/capability.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/logger.h>

#include "auth/authenticator.hpp"
#include "auth/dashboard.hpp"
#include "compute/egress.hpp"
#include "util/capabilities.hpp"
#include "util/descriptor_budget.hpp"
#include "compute/standin_image.hpp"
#include "feuille/errors.hpp"
#include "http/responses.hpp"
#include "http/server.hpp"
#include "http/static_assets.hpp"
#include "util/logging.hpp"
#include "util/offload.hpp"
#include "util/spawn.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using namespace std::chrono_literals;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

ComputeSettings settings_from(const Config& c) {
  ComputeSettings s;
  s.data_dir = c.data_dir;
  s.uid = c.workspace_uid;
  s.gid = c.workspace_gid;
  s.oci_runtime = c.oci_runtime;
  s.editor_image = c.editor_image;
  s.runtime_image = c.runtime_image;
  s.editor_command = c.editor_command;
  s.runtime_command = c.runtime_command;
  s.runtime_user = c.runtime_user;
  s.criu = c.criu;
  s.snapshot_dir = c.snapshot_dir;
  s.editor_health_path = c.editor_health_path;
  s.runtime_health_path = c.runtime_health_path;
  s.start_timeout = c.start_timeout;
  s.isolation.egress_address = c.egress_address;
  s.gateway.idle_timeout = c.gateway_idle_timeout;
  s.gateway.total_budget = std::make_shared<ConnectionBudget>(DescriptorBudget::of_process().gateway_connections());
  s.gateway_per_workspace = static_cast<std::size_t>(c.gateway_max_per_workspace);
  return s;
}

std::vector<std::unique_ptr<Host>> hosts_from(const Config& c, asio::any_io_executor ex) {
  std::vector<std::unique_ptr<Host>> out;
  for (const auto& h : c.compute_hosts) {
    auto host = std::make_unique<Host>();
    host->config = h;
    PodmanClient::Options o;
    o.host_name = h.name;
    host->client = std::make_unique<PodmanClient>(ex, h.url, o);
    out.push_back(std::move(host));
  }
  return out;
}

// One Server-Sent Event as a chunk of a chunked body.
std::string sse_chunk(const std::string& event_text) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", event_text.size());
  return size + event_text + "\r\n";
}

std::string sse_event(const StepEvent& e) {
  nlohmann::json data = e.detail.is_object() ? e.detail : nlohmann::json::object();
  data["step"] = e.step;
  data["state"] = to_string(e.state);
  data["at"] = e.at;
  return "id: " + std::to_string(e.seq) + "\nevent: " + e.step + "\ndata: " + data.dump() + "\n\n";
}

}  // namespace

ComputeModule::ComputeModule(app::ModuleContext& ctx)
    : executor_(ctx.executor),
      config_(ctx.config),
      pool_(ctx.pool),
      auth_(ctx.authenticator),
      manager_(std::make_unique<WorkspaceManager>(ctx.executor, ctx.pool, ctx.db, ctx.config, settings_from(ctx.config),
                                                  hosts_from(ctx.config, ctx.executor), ctx.metrics.registry())) {
  if (!auth_) throw std::logic_error("the compute module needs the auth module wired before it");
  for (const auto& h : manager_->hosts()) {
    Host* host = h.get();
    ctx.health.add("host:" + host->config.name, [host]() -> asio::awaitable<http::CheckResult> {
      http::CheckResult r;
      try {
        co_await host->client->ping(2s);
        r.ok = true;
      } catch (const PodmanError& e) {
        r.detail = e.what();
      }
      r.extra = {{"url", host->client->url()},
                 {"criu", host->checkpoint ? to_json(*host->checkpoint) : nlohmann::json(nullptr)}};
      co_return r;
    });
  }
  add_routes(ctx);
}

ComputeModule::~ComputeModule() = default;

asio::awaitable<void> ComputeModule::start() {
  // Every workspace is reached inside its containers' network namespaces
  // (setns): without the capability none could ever start.
  if (!has_capability(CAP_SYS_ADMIN))
    throw std::runtime_error(
        "feuilled lacks CAP_SYS_ADMIN, which setns(2) into its containers' network namespaces needs: run it as root "
        "or with that capability (deploy/feuilled.service has it)");
  co_await install_egress_rules();
  if (config_.dev) co_await use_standin_images_if_needed();
  co_await manager_->open();
  manager_->run_background();
}

void ComputeModule::stop() {
  manager_->shutdown();
  if (egress_users_) spawn(executor_, remove_egress_rules_if_unused(), logger("compute"), "egress rules at shutdown");
}

asio::awaitable<void> ComputeModule::remove_egress_rules_if_unused() {
  auto log = logger("compute");
  const std::string address = config_.egress_address;
  auto users = std::move(egress_users_);
  auto last = [&users] { return users->last(); };
  if (!co_await offload(pool_, std::move(last))) {
    log->info("tenant egress from {}: rules kept (another feuilled uses them)", address);
    co_return;
  }
  // Any feuilled's tenant containers running on this host from this address
  // (or without the label, from before it) keep them.
  std::size_t running = 0;
  try {
    std::vector<std::string> tenants{kLabelRole};  // a local: the GCC 12 trap (architecture.md)
    auto all = co_await manager_->hosts().front()->client->list_containers(std::move(tenants));
    for (const auto& c : all) {
      if (c.value("State", "") != "running") continue;
      const auto& labels = c.contains("Labels") && c["Labels"].is_object() ? c["Labels"] : nlohmann::json::object();
      const std::string egress = labels.value(std::string(kLabelEgress), address);
      if (egress == address) ++running;
    }
  } catch (const std::exception& e) {
    log->warn("tenant egress from {}: rules kept (cannot list the containers: {})", address, e.what());
    co_return;
  }
  if (running > 0) {
    log->info("tenant egress from {}: rules kept for the {} tenant container(s) still running", address, running);
    co_return;
  }
  auto remove = [address] { remove_egress_table(address); };
  co_await offload(pool_, std::move(remove));
  log->info("tenant egress from {}: no tenant container runs here any more; table {} removed", address,
            egress_table(address));
}

asio::awaitable<void> ComputeModule::install_egress_rules() {
  auto log = logger("compute");
  if (config_.egress_address.empty()) {
    log->warn("egress-address = off: tenants' outbound connections are not filtered (they reach this host's "
              "addresses, the LAN and cloud metadata)");
    co_return;
  }
  auto plan = egress_plan(config_);
  std::optional<std::string> failed;
  try {
    // Counted as a user of the address first: a last user removing the
    // table at its shutdown is waited for, never undone afterwards. Without
    // the lock file the table is simply kept at shutdown.
    auto job = [&plan, log]() {
      std::unique_ptr<EgressUsers> users;
      try {
        users = std::make_unique<EgressUsers>(plan.address);
      } catch (const std::exception& e) {
        log->warn("tenant egress from {}: {}; the rules will stay after shutdown", plan.address, e.what());
      }
      install_egress(plan);
      return users;
    };  // named: the GCC 12 trap (architecture.md)
    egress_users_ = co_await offload(pool_, std::move(job));
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (!failed) {
    log->info("tenant egress from {}: rules installed (nftables table {}; {} allowed range(s), {} resolver(s))",
              plan.address, egress_table(plan.address), plan.allow.size(), plan.resolvers.size());
    co_return;
  }
  // Production never runs tenants unfiltered by accident; dev mode says so and goes on.
  if (!config_.dev)
    throw std::runtime_error("egress-address " + plan.address + ": cannot install the tenant egress rules: " + *failed +
                             " (feuilled needs CAP_NET_ADMIN and nft; or set egress-address = off)");
  log->warn("dev: cannot install the tenant egress rules ({}); containers' outbound connections are not filtered",
            *failed);
  manager_->configure().isolation.egress_address.clear();
}

asio::awaitable<void> ComputeModule::use_standin_images_if_needed() {
  auto log = logger("compute");
  auto& host = *manager_->hosts().front();
  bool editor_missing = false, runtime_missing = false;
  try {
    editor_missing = !co_await host.client->image_exists(config_.editor_image);
    runtime_missing = !co_await host.client->image_exists(config_.runtime_image);
  } catch (const PodmanError& e) {
    log->warn("dev: cannot look for the images on {}: {}", host.config.name, e.what());
    co_return;
  }
  if (!editor_missing && !runtime_missing) co_return;
  auto binary = find_standin_binary();
  if (!binary) {
    log->warn("dev: {} is absent and there is no feuille-standin next to feuilled: workspaces cannot start",
              editor_missing ? config_.editor_image : config_.runtime_image);
    co_return;
  }
  StandinImage image;
  try {
    image = co_await ensure_standin_image(*host.client, pool_, *binary, config_.workspace_uid, config_.workspace_gid);
  } catch (const std::exception& e) {
    log->warn("dev: cannot import the stand-in image: {}", e.what());
    co_return;
  }
  auto& s = manager_->configure();
  std::string replaced;
  if (editor_missing) {
    s.editor_image = image.reference;
    s.editor_command = standin_editor_command(s.editor_health_path);
    replaced = config_.editor_image;
  }
  if (runtime_missing) {
    s.runtime_image = image.reference;
    s.runtime_command = standin_runtime_command(s.runtime_health_path);
    replaced += (replaced.empty() ? "" : " and ") + config_.runtime_image;
  }
  s.standin = true;
  standin_notice_ = "Dev mode: " + replaced + (editor_missing && runtime_missing ? " are" : " is") +
                    " not on this machine, so workspaces run the stand-in image " + image.reference +
                    " (an echo server, not the real editor and runtime).";
  log->warn("dev: {} absent; using the stand-in image {}{} (an echo server, not the real editor and runtime)", replaced,
            image.reference, image.imported ? ", imported now" : "");
}

void ComputeModule::add_routes(app::ModuleContext& ctx) {
  auto& router = ctx.router;
  auto& auth = *auth_;

  router.add({bh::verb::get}, "/api/workspace", "workspace",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               co_return http::json_response(200, co_await manager_->describe(me->id));
             });

  router.add({bh::verb::post}, "/api/workspace/start", "workspace",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               State s = co_await manager_->start(me->id);
               co_return http::json_response(s == State::running ? 200 : 202, {{"state", to_string(s)}});
             });

  router.add({bh::verb::post}, "/api/workspace/stop", "workspace",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               State s = co_await manager_->stop(me->id, 20s);
               co_return http::json_response(s == State::stopped ? 200 : 202, {{"state", to_string(s)}});
             });

  router.add_stream({bh::verb::get}, "/api/workspace/events", "workspace-events",
                    [this, &auth](http::Exchange& ex) -> asio::awaitable<void> {
                      auto me = co_await auth::require_identity(auth, ex.parser.get());
                      ex.ctx.user = me->id;
                      co_await stream_events(ex, me->id, StreamAccess{"", me->id, auth.session_hash(ex.parser.get())});
                    });
  // The same on a workspace origin (its starting page), for whoever holds
  // that workspace's cookie and still has a role there.
  ctx.workspace_router.add_stream(
      {bh::verb::get}, "/_feuille/events", "workspace-events", [this, &auth](http::Exchange& ex) -> asio::awaitable<void> {
        const std::string owner = ex.ctx.workspace;
        auto caller = co_await auth.identify_workspace(ex.parser.get(), owner);
        if (!caller) throw RequestError(401, "Sign in first.");
        if (!co_await auth.workspace_role(caller->identity->id, owner))
          throw RequestError(403, "This workspace is not shared with you.");
        ex.ctx.user = caller->identity->id;
        co_await stream_events(ex, owner, StreamAccess{owner, caller->identity->id, caller->cookie});
      });
  auth.add_revocation_listener([this](const auth::Revocation& r) { revoke(r); });

  // Snapshots (compute/snapshots.cpp): the owner's own, of the running runtime.
  router.add({bh::verb::get}, "/api/snapshots", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               co_return http::json_response(200, co_await manager_->list_snapshots(me->id));
             });
  router.add({bh::verb::post}, "/api/snapshots", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               std::string name;
               if (!req.body().empty()) {
                 auto body = nlohmann::json::parse(req.body(), nullptr, false);
                 if (!body.is_object() || (body.contains("name") && !body["name"].is_string()))
                   throw RequestError(400, "The body is a JSON object with an optional \"name\" string.");
                 name = body.value("name", "");
               }
               co_return http::json_response(201, co_await manager_->create_snapshot(me->id, name));
             });
  router.add({bh::verb::post}, "/api/snapshots/{id}/restore", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               co_await manager_->restore_snapshot(me->id, std::string(rc.params.get("id")));
               co_return http::json_response(200, {{"state", "running"}});
             });
  router.add({bh::verb::delete_}, "/api/snapshots/{id}", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               co_await manager_->delete_snapshot(me->id, std::string(rc.params.get("id")));
               co_return http::Response{bh::status::no_content, 11};
             });
  // Sandboxes (compute/sandboxes.cpp): forks of the owner's running runtime.
  router.add({bh::verb::post}, "/api/workspace/sandbox", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               co_return http::json_response(201, co_await manager_->fork_sandbox(me->id));
             });
  router.add({bh::verb::delete_}, "/api/workspace/sandbox/{id}", "snapshots",
             [this, &auth](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
               auto me = co_await auth::require_identity(auth, req);
               rc.user = me->id;
               auth::require_state_change(auth, req);
               co_await manager_->remove_sandbox(me->id, std::string(rc.params.get("id")));
               co_return http::Response{bh::status::no_content, 11};
             });

  // The dashboard's buttons (forms: they work without JavaScript).
  auto form_action = [this, &auth](bool start) {
    return [this, &auth, start](http::Request& req, http::RequestContext& rc) -> asio::awaitable<http::Response> {
      auto me = co_await auth::require_identity(auth, req);
      rc.user = me->id;
      auth::require_state_change(auth, req);
      std::optional<RequestError> refused;
      try {
        if (start) co_await manager_->start(me->id);
        else co_await manager_->stop(me->id, 20s);
      } catch (const RequestError& e) {
        if (e.status >= 500 && e.status != 503) throw;
        refused = e;
      }
      if (refused) {
        std::string reason(bh::obsolete_reason(static_cast<bh::status>(refused->status)));
        auto page = http::html_response(refused->status, http::error_page(refused->status, reason, refused->public_message));
        if (refused->retry_after_seconds) page.set(bh::field::retry_after, std::to_string(refused->retry_after_seconds));
        co_return page;
      }
      co_return http::redirect(303, "/dashboard");
    };
  };
  router.add({bh::verb::post}, "/dashboard/workspace/start", "workspace", form_action(true));
  router.add({bh::verb::post}, "/dashboard/workspace/stop", "workspace", form_action(false));

  if (ctx.dashboard)
    ctx.dashboard->add("workspace", 100,
                       [this](const auth::Identity& me, const http::Request&) -> asio::awaitable<std::string> {
                         // A visit wakes a sleeping workspace (SPEC.md section 6); the
                         // page shows it waking (its script follows the events).
                         if (manager_->state_of(me.id) == State::sleeping) {
                           try {
                             co_await manager_->start(me.id);
                           } catch (const RequestError& e) {
                             logger("compute")->info("dashboard visit of {}: no wake ({})", me.id, e.what());
                           }
                         }
                         auto doc = co_await manager_->describe(me.id);
                         co_return dashboard_section(me, doc);
                       });
}

void ComputeModule::revoke(const auth::Revocation& r) {
  for (auto& [ex, access] : open_streams_)
    if (r.ends(access->owner, access->caller, access->credential)) ex->end_now();
}

asio::awaitable<void> ComputeModule::stream_events(http::Exchange& ex, std::string user_id, StreamAccess access) {
  const std::string& caller = access.caller;
  // A few streams per caller (a tab each); an event stream lives long.
  auto& open = event_streams_[caller];
  if (open >= kMaxEventStreams) {
    RequestError e(429, "Too many event streams open; close a tab.");
    e.retry_after_seconds = 5;
    throw e;
  }
  ++open;
  open_streams_.emplace(&ex, &access);
  struct Release {
    ComputeModule& m;
    http::Exchange& ex;
    const std::string& caller;
    ~Release() {
      m.open_streams_.erase(&ex);
      if (auto it = m.event_streams_.find(caller); it != m.event_streams_.end() && --it->second <= 0)
        m.event_streams_.erase(it);
    }
  } release{*this, ex, caller};
  http::Response head{bh::status::ok, 11};
  head.set(bh::field::content_type, "text/event-stream");
  head.set(bh::field::cache_control, "no-store");
  head.set(bh::field::transfer_encoding, "chunked");
  head.set("X-Accel-Buffering", "no");
  std::string out;
  http::serialize_head(head, out, false, ex.ctx.request_id, true);
  ex.status = 200;
  ex.keep_alive = false;
  auto [state, recent] = manager_->snapshot(user_id);
  std::uint64_t last = recent.empty() ? 0 : recent.back().seq;
  nlohmann::json first = {{"state", to_string(state)}};
  out += sse_chunk("retry: 2000\nevent: state\ndata: " + first.dump() + "\n\n");
  // Joining an operation in flight: its steps so far.
  if (in_transition(state))
    for (const auto& e : recent) out += sse_chunk(sse_event(e));
  for (;;) {
    ex.stream.expires_after(10s);
    auto [ec, n] = co_await asio::async_write(ex.stream, asio::buffer(out), tuple_awaitable);
    if (ec) co_return;
    ex.bytes += n;
    out.clear();
    if (manager_->shutting_down()) break;
    auto events = co_await manager_->next_events(user_id, last, std::chrono::steady_clock::now() + 15s);
    if (manager_->shutting_down()) break;
    if (events.empty()) out = sse_chunk(": keep-alive\n\n");
    for (const auto& e : events) {
      out += sse_chunk(sse_event(e));
      last = e.seq;
    }
  }
  ex.stream.expires_after(5s);
  static const std::string end = "0\r\n\r\n";
  auto [ec, n] = co_await asio::async_write(ex.stream, asio::buffer(end), tuple_awaitable);
  if (!ec) ex.bytes += n;
}

std::string ComputeModule::dashboard_section(const auth::Identity& me, const nlohmann::json& doc) const {
  using http::html_escape;
  const std::string state = doc.value("state", "stopped");
  const auto parsed = parse_state(state);
  const bool busy = parsed && in_transition(*parsed);
  std::string h = "<section class=\"card workspace\" data-workspace-state=\"" + html_escape(state) + "\">";
  h += "<h2>Workspace</h2>";
  if (!standin_notice_.empty()) h += "<p class=\"notice\">" + html_escape(standin_notice_) + "</p>";
  h += "<p class=\"workspace-state\"><strong>" + html_escape(state) + "</strong>";
  if (doc["host"].is_string()) h += " <span class=\"muted\">on " + html_escape(doc["host"].get<std::string>()) + "</span>";
  h += "</p>";
  if (doc["reason"].is_string()) h += "<p class=\"reason\">" + html_escape(doc["reason"].get<std::string>()) + "</p>";
  const auto& rt = doc["runtime"];
  if (state == "running") {
    auto mib = [](const nlohmann::json& v) {
      char buf[32];
      double m = static_cast<double>(v.get<std::uint64_t>()) / (1 << 20);
      std::snprintf(buf, sizeof buf, m < 10 ? "%.1f MiB" : "%.0f MiB", m);
      return std::string(buf);
    };
    std::string usage;
    if (rt["memory_bytes"].is_number() && rt["memory_limit_bytes"].is_number())
      usage = "Memory " + mib(rt["memory_bytes"]) + " of " + mib(rt["memory_limit_bytes"]);
    if (rt["cpu_percent"].is_number()) {
      char cpu[32];
      std::snprintf(cpu, sizeof cpu, "%.1f", rt["cpu_percent"].get<double>());
      usage += std::string(usage.empty() ? "" : " · ") + "CPU " + cpu + "%";
    }
    if (!usage.empty()) h += "<p class=\"muted\">" + html_escape(usage) + "</p>";
    h += "<p><a class=\"button\" href=\"/u/" + html_escape(me.id) + "/\">Open the editor</a></p>";
  }
  // Steps of a start in flight appear here (static/workspace.js follows /api/workspace/events).
  h += "<ol class=\"workspace-steps muted\"></ol>";
  h += "<form class=\"row\" method=\"post\" action=\"/dashboard/workspace/";
  if (state == "running" || busy) h += "stop\"><button class=\"secondary\" type=\"submit\">Stop</button>";
  else h += "start\"><button type=\"submit\">Start</button>";
  h += "</form>";
  // What an idle sleep does to the Python state here (the host's checkpoint probe).
  h += doc.value("criu", false)
           ? "<p class=\"muted\" data-criu=\"true\">When idle, your workspace sleeps with its Python state and wakes "
             "as you left it.</p>"
           : "<p class=\"muted\" data-criu=\"false\">When idle, your workspace sleeps; on this server Python then "
             "starts afresh at the next visit (your files are kept).</p>";
  h += "<p class=\"muted\">Snapshots: not available on this server yet.</p>";
  h += "<script src=\"" + http::StaticAssets::instance().url("workspace.js") + "\" defer></script>";
  h += "</section>";
  return h;
}

}  // namespace feuille::compute
