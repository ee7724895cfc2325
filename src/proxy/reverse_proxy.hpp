#pragma once
// /u/{user id}/...: the in-process reverse proxy to each user's editor
// (SPEC.md section 3). Authorizes every request (owner, or a member through an
// invite; viewers read only), streams HTTP both ways through bounded buffers,
// tunnels WebSockets byte for byte, pools upstream keep-alive connections,
// starts or waits for the workspace, and counts user activity.
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "app/module.hpp"
#include "compute/workspaces.hpp"
#include "proxy/headers.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/upstream_pool.hpp"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <class T>
class Family;
}  // namespace prometheus

namespace feuille::proxy {

struct ProxyOptions {
  Duration connect_timeout{5'000};
  Duration idle_timeout{600'000};  // nothing moved in either direction of an HTTP exchange
  Duration start_wait{30'000};     // how long requests wait for a starting/waking/migrating workspace
  std::size_t max_idle_upstream = 64;  // pooled connections per editor
  Duration upstream_idle{4'000};       // below Node's 5 s keep-alive timeout
  // Requests and WebSockets in flight across every workspace (0 = from the
  // descriptor limit: util/descriptor_budget.hpp); past it, 503.
  std::size_t max_open = 0;
};

class ReverseProxy : public app::Module, private TunnelEvents {
 public:
  ReverseProxy(app::ModuleContext& ctx, compute::Workspaces& workspaces, ProxyOptions options = {});
  ~ReverseProxy() override;
  std::string_view name() const override { return "proxy"; }
  boost::asio::awaitable<void> start() override;
  void stop() override;

 private:
  struct Metrics;
  struct Outcome;
  boost::asio::awaitable<void> handle(http::Exchange& ex);
  // An error page for a browser, a JSON error otherwise.
  using PageFn = std::function<http::Response(unsigned status, std::string_view title, std::string_view message)>;
  // Public-url with workspace-origin set, for someone allowed in: the 302
  // through a ticket (a navigation), or the refusal (anything else).
  boost::asio::awaitable<http::Response> to_workspace_origin(http::Exchange& ex, const std::string& owner, bool upgrade,
                                                             const PageFn& page);
  boost::asio::awaitable<Outcome> relay(http::Exchange& ex, UpstreamConnection& up, const ForwardInfo& info);
  boost::asio::awaitable<void> tunnel(http::Exchange& ex, UpstreamConnection& up, Caller who);
  // Whether the editor path /{rest} is one of background-routes (a page's
  // own polling, not a person's activity).
  bool is_background_route(std::string_view rest) const;
  void release(const Caller& who);  // a request's or a tunnel's places in active_ and per_client_
  // Closes the tunnels and streams a revocation names, at once.
  void revoke(const auth::Revocation& r);
  // TunnelEvents
  std::vector<char>& scratch() override;
  void browser_frames(const std::string& owner, std::size_t frames) override;
  void relayed(std::size_t bytes, bool upward) override;
  void ended(Tunnel& t) override;
  boost::asio::awaitable<bool> user_exists(const std::string& id);
  boost::asio::awaitable<void> sweep_loop();
  void probe_tunnels();  // quiet WebSockets get a ping; unanswered ones close

  app::ModuleContext ctx_;
  compute::Workspaces& workspaces_;
  ProxyOptions options_;
  std::string proto_;
  const auth::WorkspaceOrigin* origin_;  // null: one origin (public-url)
  UpstreamPool pool_;
  std::unordered_map<std::string, std::size_t> active_;      // per owner and caller (Caller::slot)
  std::unordered_map<std::string, std::size_t> per_client_;  // per client address (Caller::client)
  // HTTP exchanges in progress (Server-Sent Events last), for revocations.
  std::unordered_map<http::Exchange*, const Caller*> exchanges_;
  std::unordered_set<std::string> known_users_;
  std::vector<char> scratch_;  // the loop's one relay buffer (see Tunnel)
  // Body buffers of HTTP exchanges, kept for the next one: a fresh 64 KiB
  // block per request cost a brk and page faults (docs/benchmarks.md).
  std::vector<std::unique_ptr<char[]>> spare_chunks_;
  std::unordered_set<Tunnel*> tunnels_;  // open WebSockets, closed on stop
  std::unique_ptr<Metrics> metrics_;
  boost::asio::steady_timer sweep_timer_;
  bool stopping_ = false;
};

}  // namespace feuille::proxy
