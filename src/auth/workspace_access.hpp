#pragma once
// Entering a workspace on its own origin (SPEC.md section 3, docs/auth.md):
// on public-url, someone allowed into /u/{id}/... gets a single-use ticket
// (256 random bits, kept hashed in memory for at most 60 s, bound to their
// session, the workspace and the path they asked for; bounded per session
// and workspace: WorkspaceTickets); the workspace origin
// redeems it for its own cookie (`feuille_ws`, host-only, HttpOnly), a row in
// `workspace_sessions` that belongs to the session (a logout ends it) and is
// checked on every request there, from a cache like the session cache's.
//
// Revocation is immediate: revoke() drops cached entries before and after
// the rows go, and a lookup that overlapped a revocation does not cache what
// it read (it may be a row being deleted).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <pqxx/pqxx>

#include "auth/authenticator.hpp"
#include "auth/revocations.hpp"
#include "auth/tokens.hpp"
#include "auth/unknown_tokens.hpp"
#include "auth/workspace_tickets.hpp"
#include "util/inflight.hpp"

namespace feuille::db {
class Database;
}

namespace feuille::auth {

class WorkspaceAccess {
 public:
  using SteadyClock = std::chrono::steady_clock;
  using SystemClock = std::chrono::system_clock;
  // A longer target is not stored: the ticket lands on the workspace's root.
  static constexpr std::size_t kMaxTicketTarget = 2048;
  static constexpr std::chrono::seconds kCacheMaxAge{60};
  static constexpr std::size_t kCacheMaxEntries = 200'000;

  // Tickets last `ticket_lifetime` (workspace-ticket-lifetime, at most 60 s).
  WorkspaceAccess(db::Database& db, std::chrono::milliseconds ticket_lifetime)
      : db_(db), ticket_lifetime_(ticket_lifetime) {}

  // A ticket for `caller` (signed in with `session`) into owner's workspace,
  // landing on `target` ("/u/{owner}/..."), or why there is none.
  WorkspaceTickets::Minted issue(const TokenHash& session, const std::string& caller, const std::string& owner,
                                 std::string target);

  struct Entered {
    std::string cookie;  // the feuille_ws value
    std::string target;  // where the ticket was going
    long long max_age;   // seconds: the session's remaining life
  };
  // Redeems a ticket on owner's workspace origin: single use; refused when
  // unknown, expired, for another workspace, or when its session has ended.
  boost::asio::awaitable<std::optional<Entered>> redeem(std::string_view ticket, const std::string& owner);

  // The caller of a feuille_ws cookie, with the workspace it is for.
  struct Entry {
    std::shared_ptr<const Identity> caller;
    std::string owner_id;
    TokenHash cookie{};
  };
  boost::asio::awaitable<std::optional<Entry>> find(std::string_view cookie);

  // Ends every cookie of `member` into owner's workspace (a membership
  // removed or its invite revoked), or every cookie into it (it stopped).
  boost::asio::awaitable<void> revoke_member(const std::string& member, const std::string& owner);
  boost::asio::awaitable<void> revoke_workspace(const std::string& owner);
  // Cookies whose rows a logout's transaction deleted (SessionStore::remove).
  void forget(const std::vector<TokenHash>& cookies);

  std::size_t tickets() const { return tickets_.size(); }

 private:
  struct CacheEntry {
    Entry entry;
    SystemClock::time_point expires_at;
    SteadyClock::time_point cached_at;
  };
  boost::asio::awaitable<std::optional<Entry>> read(TokenHash h);
  // Runs `remove` (the rows' DELETE) between two purges of the cached
  // entries `ended` matches, counted as a revocation in flight.
  boost::asio::awaitable<void> revoke(std::function<bool(const Entry&)> ended, std::function<void(pqxx::work&)> remove);

  db::Database& db_;
  std::chrono::milliseconds ticket_lifetime_;
  WorkspaceTickets tickets_;
  std::unordered_map<TokenHash, CacheEntry, TokenHashHasher> cache_;
  UnknownTokens unknown_;
  Revocations revocations_;
  Inflight<std::optional<Entry>> reads_;
};

}  // namespace feuille::auth
