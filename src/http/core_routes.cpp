#include "http/core_routes.hpp"

#include <memory>

#include "http/client_address.hpp"
#include "http/responses.hpp"
#include "http/static_assets.hpp"
#include "util/inflight.hpp"
#include "util/logging.hpp"

namespace feuille::http {
namespace {

// The last /readyz result, shared by the requests of the next second.
struct Readiness {
  Readiness(Health& h, Metrics& m)
      : health(h),
        gauges(prometheus::BuildGauge()
                   .Name("feuille_ready_check")
                   .Help("1 when the readiness check passed at its last run (GET /readyz)")
                   .Register(m.registry())) {}

  asio::awaitable<nlohmann::json> get() {
    auto now = std::chrono::steady_clock::now();
    if (last && now - at < std::chrono::seconds(1)) co_return *last;
    auto job = [this]() -> asio::awaitable<nlohmann::json> {
      auto body = co_await health.run(std::chrono::seconds(3));
      at = std::chrono::steady_clock::now();
      for (auto& [name, c] : body["checks"].items()) {
        bool ok = c.value("ok", false);
        gauges.Add({{"check", name}}).Set(ok ? 1 : 0);
        auto& before = failing[name];
        std::string detail = c.value("detail", "");
        if (!ok && before != detail) logger("http")->warn("readiness check {} failing: {}", name, detail);
        if (ok && !before.empty()) logger("http")->info("readiness check {} passes again", name);
        before = ok ? "" : detail;
      }
      last = body;
      co_return body;
    };
    co_return co_await runs.run("readyz", std::move(job));
  }

  Health& health;
  prometheus::Family<prometheus::Gauge>& gauges;
  std::optional<nlohmann::json> last;
  std::chrono::steady_clock::time_point at;
  std::map<std::string, std::string> failing;  // check -> detail of its failure ("" = passing)
  Inflight<nlohmann::json> runs;
};

// What anyone may see of a readiness result: each check's ok and timing.
nlohmann::json public_view(const nlohmann::json& body) {
  nlohmann::json checks = nlohmann::json::object();
  for (auto& [name, c] : body["checks"].items()) checks[name] = {{"ok", c.value("ok", false)}, {"ms", c.value("ms", 0.0)}};
  return {{"status", body["status"]}, {"checks", std::move(checks)}};
}

}  // namespace

void add_core_routes(Router& router, Health& health, Metrics& metrics, std::vector<Cidr> metrics_allow) {
  router.add({bh::verb::get}, "/healthz", "health", [](Request&, RequestContext&) -> asio::awaitable<Response> {
    auto r = text_response(200, "ok");
    r.set(bh::field::cache_control, "no-store");
    co_return r;
  });

  auto readiness = std::make_shared<Readiness>(health, metrics);
  router.add({bh::verb::get}, "/readyz", "health",
             [readiness, allow = metrics_allow](Request&, RequestContext& ctx) -> asio::awaitable<Response> {
               auto body = co_await readiness->get();
               int status = body["status"] == "ok" ? 200 : 503;
               auto r = json_response(status, is_trusted(ctx.client_ip, allow) ? body : public_view(body));
               r.set(bh::field::cache_control, "no-store");
               co_return r;
             });

  router.add({bh::verb::get}, "/metrics", "metrics",
             [&metrics, allow = std::move(metrics_allow)](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               if (!is_trusted(ctx.client_ip, allow)) co_return error_for(req, 403, "metrics are not served to this address");
               co_return text_response(200, metrics.serialize(), "text/plain; version=0.0.4; charset=utf-8");
             });

  add_static_routes(router);
}

void add_static_routes(Router& router) {
  router.add({bh::verb::get}, "/static/{name*}", "static", [](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
    const Asset* asset = StaticAssets::instance().find(ctx.params.get("name"));
    if (!asset) co_return error_for(req, 404, "There is nothing at this address.");
    if (req[bh::field::if_none_match] == asset->etag) {
      Response r{bh::status::not_modified, 11};
      r.set(bh::field::etag, asset->etag);
      co_return r;
    }
    auto r = text_response(200, std::string(asset->data), asset->content_type);
    r.set(bh::field::etag, asset->etag);
    r.set(bh::field::cache_control, asset->immutable ? "public, max-age=31536000, immutable" : "public, max-age=300");
    co_return r;
  });
}

}  // namespace feuille::http
