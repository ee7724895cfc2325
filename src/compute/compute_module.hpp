#pragma once
// The compute module: the Podman hosts, the workspace manager, the
// /api/workspace* routes, the snapshot and sandbox routes, a readiness check
// per host, and in dev mode the stand-in images.
#include <memory>
#include <unordered_map>
#include <string>

#include "app/module.hpp"
#include "compute/egress.hpp"
#include "compute/workspace_manager.hpp"

namespace feuille::compute {

class ComputeModule : public app::Module {
 public:
  explicit ComputeModule(app::ModuleContext& ctx);
  ~ComputeModule() override;
  std::string_view name() const override { return "compute"; }
  boost::asio::awaitable<void> start() override;
  void stop() override;

  WorkspaceManager& workspaces() { return *manager_; }
  // Set in dev mode when the stand-in images replace absent real ones; shown
  // on the dashboard.
  const std::string& standin_notice() const { return standin_notice_; }

 private:
  void add_routes(app::ModuleContext& ctx);
  // Server-Sent Events of user_id's workspace, for `caller` (at most
  // kMaxEventStreams open per caller: 429 past it).
  // Registered until it ends: a revocation matching `owner` (the workspace
  // origin's owner, "" on public-url), `caller` and `credential` closes it.
  struct StreamAccess {
    std::string owner, caller;
    std::array<std::uint8_t, 32> credential{};
  };
  boost::asio::awaitable<void> stream_events(http::Exchange& ex, std::string user_id, StreamAccess access);
  void revoke(const auth::Revocation& r);
  static constexpr int kMaxEventStreams = 8;
  std::string dashboard_section(const auth::Identity& me, const nlohmann::json& doc) const;
  boost::asio::awaitable<void> install_egress_rules();
  // At shutdown: the egress table goes when this is its address's last
  // feuilled and no tenant container runs on this host (egress.hpp).
  boost::asio::awaitable<void> remove_egress_rules_if_unused();
  boost::asio::awaitable<void> use_standin_images_if_needed();

  boost::asio::any_io_executor executor_;
  const Config& config_;
  boost::asio::thread_pool& pool_;
  auth::Authenticator* auth_;
  std::unique_ptr<WorkspaceManager> manager_;
  std::unique_ptr<EgressUsers> egress_users_;  // while this process's rules are installed
  std::string standin_notice_;
  std::unordered_map<std::string, int> event_streams_;  // open per caller
  std::unordered_map<http::Exchange*, const StreamAccess*> open_streams_;  // for revocations
};

}  // namespace feuille::compute
