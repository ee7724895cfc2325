#pragma once
// Sharing a workspace: invite links (POST/GET/DELETE /api/invites, GET
// /join/{token}), the memberships they create, and the role lookup the
// proxy asks on every request (workspace_role), cached in memory.
//
// An invite names one project under the owner's Projects/ folder and a role
// (viewer or editor). Its token is shown once, at creation; the database
// keeps its SHA-256. Joining records (owner, member, project, role); a
// member's access is to the owner's whole workspace, with the strongest role
// among their memberships.
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <pqxx/pqxx>

#include "auth/authenticator.hpp"
#include "auth/dashboard.hpp"
#include "feuille/config.hpp"
#include "http/router.hpp"

namespace feuille::db {
class Database;
}

namespace feuille::auth {

class Invites {
 public:
  static constexpr std::chrono::seconds kRoleCacheMaxAge{60};
  static constexpr int kMaxActiveInvites = 1000;

  Invites(db::Database& db, boost::asio::thread_pool& pool, const Config& config, Authenticator& auth);

  void add_routes(http::Router& router);

  // Called when a member loses access (removed, or their invite revoked):
  // the auth module ends their workspace cookies and tunnels.
  std::function<boost::asio::awaitable<void>(const std::string& member, const std::string& owner)> on_access_ended;
  void add_dashboard_section(DashboardSections& sections);

  boost::asio::awaitable<std::optional<Role>> role(const std::string& user_id, const std::string& owner_id);

  // True when `token` is an invite that can still be used (closed signup
  // lets its holder create an account).
  static bool is_live(pqxx::work& w, std::string_view token);

  // A project name as a folder under Projects/: 1-255 bytes, no '/', '\',
  // control characters, not "." or "..", not hidden.
  static bool valid_project_name(std::string_view name);

 private:
  struct Invite {
    std::string id, project, role, created_at;
  };
  struct Created {
    Invite invite;
    std::string token;
  };
  struct Member {
    std::string user_id, handle, name, project, role, created_at;
  };
  struct Shared {
    std::string owner_id, owner_handle, owner_name, project, role;
  };
  using Key = std::array<std::uint8_t, 32>;  // member uuid + owner uuid
  struct KeyHasher {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct RoleEntry {
    std::optional<Role> role;
    std::chrono::steady_clock::time_point cached_at;
  };

  boost::asio::awaitable<Created> create(const Identity& owner, const std::string& project, const std::string& role);
  boost::asio::awaitable<std::vector<Invite>> list(const std::string& owner_id);
  boost::asio::awaitable<bool> revoke(const std::string& owner_id, std::string_view token_or_id);
  boost::asio::awaitable<std::vector<Member>> members(const std::string& owner_id);
  boost::asio::awaitable<bool> remove_member(const std::string& owner_id, std::string_view member_id);
  boost::asio::awaitable<std::vector<Shared>> shared_with(const std::string& user_id);
  void forget_role(const std::string& user_id, const std::string& owner_id);
  boost::asio::awaitable<void> access_ended(const std::string& member, const std::string& owner_id);
  std::string invite_url(const std::string& token) const;

  db::Database& db_;
  boost::asio::thread_pool& pool_;
  const Config& config_;
  Authenticator& auth_;
  std::unordered_map<Key, RoleEntry, KeyHasher> roles_;
  std::uint64_t generation_ = 0;
};

}  // namespace feuille::auth
