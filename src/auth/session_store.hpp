#pragma once
// Sessions: rows in `sessions` keyed by the SHA-256 of the cookie value, and
// an in-memory cache of recent lookups so that most requests (the proxy's
// above all) are authenticated without a database round trip.
//
// The cache is used on the loop only. A hit costs a SHA-256 of 43 bytes, a
// hash-map lookup and two clock reads, and hands out a shared pointer (no
// copy of the identity). An entry is trusted for at most kCacheMaxAge, then
// re-read (so changes made elsewhere, e.g. `feuilled user set-plan` or a
// row deleted by an operator, show within a minute); it is never trusted
// past the session's expiry; logout removes it at once (and no lookup that
// overlapped the logout can put it back). Tokens found in no row are
// remembered for a few seconds, so made-up cookies cost no query each.
// Concurrent misses of
// one token (a page's parallel requests; every connection of a busy client
// when its entry ages out) share one database read.
#include <chrono>
#include <cstdint>
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
#include "feuille/config.hpp"
#include "util/inflight.hpp"

namespace feuille::db {
class Database;
struct User;
}  // namespace feuille::db

namespace feuille::auth {

Identity identity_from(const db::User& u);
// A time from seconds since the epoch (as queries return it).
std::chrono::system_clock::time_point from_epoch(double seconds);

class SessionStore {
 public:
  using SystemClock = std::chrono::system_clock;
  static constexpr std::chrono::seconds kCacheMaxAge{60};
  static constexpr std::size_t kCacheMaxEntries = 200'000;

  struct Session {
    std::shared_ptr<const Identity> identity;
    SystemClock::time_point expires_at;
  };

  SessionStore(db::Database& db, Duration ttl) : db_(db), ttl_(ttl) {}

  // Creates a session row for the user inside the caller's transaction (so a
  // sign-in writes its user and its session together or not at all).
  // Returns the token: the cookie value, never stored.
  static std::string create(pqxx::work& w, const std::string& user_id, Duration ttl, std::string_view client,
                            std::string_view user_agent);

  // The live session of this token. A database read on a cache miss also
  // slides the expiry (now + ttl) when the last refresh is a day old.
  boost::asio::awaitable<std::optional<Session>> find(std::string_view token);

  // Logout: the row, its workspace cookies' rows (workspace_sessions, in the
  // same transaction, the session row locked first so that no ticket is
  // redeemed meanwhile) and the cache entry go. Returns the hashes of the
  // workspace cookies that ended.
  boost::asio::awaitable<std::vector<TokenHash>> remove(std::string_view token);

  // Deletes expired rows (and cache entries); returns the rows deleted.
  boost::asio::awaitable<long> delete_expired();

  std::size_t cached() const { return cache_.size(); }

 private:
  struct Entry {
    std::shared_ptr<const Identity> identity;
    SystemClock::time_point expires_at;
    std::chrono::steady_clock::time_point cached_at;
  };
  void make_room(std::chrono::steady_clock::time_point now);
  // The database read of a miss, cached unless a removal came meanwhile.
  boost::asio::awaitable<std::optional<Session>> read(TokenHash h);

  db::Database& db_;
  Duration ttl_;
  std::unordered_map<TokenHash, Entry, TokenHashHasher> cache_;
  // A lookup that overlapped a removal does not cache what it read (it may
  // be the row being deleted).
  Revocations removals_;
  UnknownTokens unknown_;  // tokens found in no row, for a few seconds
  Inflight<std::optional<Session>> reads_;  // by hex(token hash)
};

}  // namespace feuille::auth
