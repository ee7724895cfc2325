#pragma once
// The auth module (SPEC.md section 2): sign-in with GitHub, Google and dev
// login, sessions, /login, /dashboard, /api/me, /auth/*, invites and
// memberships. It implements auth::Authenticator for every other module and
// owns the dashboard's section registry. Wired first.
#include <memory>

#include "app/module.hpp"
#include "auth/authenticator.hpp"
#include "auth/dashboard.hpp"

namespace feuille::auth {

class AuthModule final : public app::Module, public Authenticator {
 public:
  explicit AuthModule(app::ModuleContext& ctx);
  ~AuthModule() override;

  std::string_view name() const override { return "auth"; }
  boost::asio::awaitable<void> start() override;
  void stop() override;

  DashboardSections& dashboard();

  boost::asio::awaitable<std::optional<Identity>> identify(const http::bh::request_header<>& h) override;
  boost::asio::awaitable<std::shared_ptr<const Identity>> identify_shared(const http::bh::request_header<>& h) override;
  bool same_origin(const http::bh::request_header<>& h) const override;
  boost::asio::awaitable<std::optional<Role>> workspace_role(const std::string& user_id,
                                                             const std::string& owner_id) override;
  boost::asio::awaitable<std::optional<WorkspaceCaller>> identify_workspace(const http::bh::request_header<>& h,
                                                                            const std::string& owner_id) override;
  boost::asio::awaitable<WorkspaceTickets::Minted> workspace_ticket(const http::bh::request_header<>& h,
                                                                    const std::string& owner_id,
                                                                    std::string target) override;
  boost::asio::awaitable<void> end_workspace(std::string owner_id) override;
  void add_revocation_listener(RevocationListener l) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace feuille::auth
