#include "http/core_routes.hpp"

#include "http/client_address.hpp"
#include "http/responses.hpp"
#include "http/static_assets.hpp"

namespace feuille::http {

void add_core_routes(Router& router, const Health& health, const Metrics& metrics,
                     std::vector<Cidr> metrics_allow) {
  router.add({bh::verb::get}, "/healthz", "health", [](Request&, RequestContext&) -> asio::awaitable<Response> {
    auto r = text_response(200, "ok");
    r.set(bh::field::cache_control, "no-store");
    co_return r;
  });

  router.add({bh::verb::get}, "/readyz", "health", [&health](Request&, RequestContext&) -> asio::awaitable<Response> {
    auto body = co_await health.run(std::chrono::seconds(3));
    co_return json_response(body["status"] == "ok" ? 200 : 503, body);
  });

  router.add({bh::verb::get}, "/metrics", "metrics",
             [&metrics, allow = std::move(metrics_allow)](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               if (!is_trusted(ctx.client_ip, allow)) co_return error_for(req, 403, "metrics are not served to this address");
               co_return text_response(200, metrics.serialize(), "text/plain; version=0.0.4; charset=utf-8");
             });

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
