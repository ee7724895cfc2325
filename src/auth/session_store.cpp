#include "auth/session_store.hpp"

#include "db/database.hpp"
#include "db/users.hpp"

namespace feuille::auth {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string clip(std::string_view s, std::size_t n) {
  std::string out(s.substr(0, n));
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace

std::chrono::system_clock::time_point from_epoch(double seconds) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds)));
}

Identity identity_from(const db::User& u) {
  return Identity{u.id, u.handle, u.name, u.email, u.avatar_url, u.plan};
}

std::string SessionStore::create(pqxx::work& w, const std::string& user_id, Duration ttl, std::string_view client,
                                 std::string_view user_agent) {
  std::string token = random_token();
  w.exec_params(
      "INSERT INTO sessions (token_hash, user_id, expires_at, client, user_agent) "
      "VALUES (decode($1, 'hex'), $2::uuid, now() + $3 * interval '1 millisecond', $4, $5)",
      hex(hash_token(token)), user_id, static_cast<long long>(ttl.count()), clip(client, 64), clip(user_agent, 256));
  return token;
}

void SessionStore::make_room(SteadyClock::time_point now) {
  auto sys_now = SystemClock::now();
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (now - it->second.cached_at >= kCacheMaxAge || it->second.expires_at <= sys_now) it = cache_.erase(it);
    else ++it;
  }
  if (cache_.size() >= kCacheMaxEntries) cache_.clear();
}

boost::asio::awaitable<std::optional<SessionStore::Session>> SessionStore::find(std::string_view token) {
  if (!is_token(token)) co_return std::nullopt;
  const TokenHash h = hash_token(token);
  const auto now = SteadyClock::now();
  if (auto it = cache_.find(h); it != cache_.end()) {
    if (it->second.expires_at <= SystemClock::now()) {
      cache_.erase(it);
      co_return std::nullopt;
    }
    if (now - it->second.cached_at < kCacheMaxAge) co_return Session{it->second.identity, it->second.expires_at};
  }
  if (unknown_.contains(h, now)) co_return std::nullopt;
  // Keyed by generation too: a lookup made after a logout never joins a
  // read that started before it.
  std::string key = hex(h) + ":" + std::to_string(removals_.generation());
  auto job = [this, h] { return read(h); };
  co_return co_await reads_.run(std::move(key), std::move(job));
}

boost::asio::awaitable<std::optional<SessionStore::Session>> SessionStore::read(TokenHash h) {
  struct Row {
    db::User user;
    double expires_epoch;
  };
  const auto before = removals_.snapshot();
  const auto started = SteadyClock::now();  // trusted from the read, not from its answer
  const long long ttl_ms = ttl_.count();
  const std::string key = hex(h);
  // Lambdas given to db.run capture by reference: GCC 12 destroys a
  // non-trivial temporary of a co_await expression twice when an exception
  // passes through it.
  auto row = co_await db_.run([&](pqxx::work& w) -> std::optional<Row> {
    auto r = w.exec_params(std::string("WITH s AS (SELECT user_id, expires_at AS s_expires, refreshed_at AS s_refreshed "
                                       "FROM sessions WHERE token_hash = decode($1, 'hex') AND expires_at > now()) "
                                       "SELECT ") +
                               db::kUserColumns +
                               ", extract(epoch FROM s.s_expires)::float8, s.s_refreshed < now() - interval '1 day' "
                               "FROM s JOIN users ON users.id = s.user_id",
                           key);
    if (r.empty()) return std::nullopt;
    Row out{db::user_from_row(r[0]), r[0][7].as<double>()};
    if (r[0][8].as<bool>()) {
      // Sliding expiry, written at most once a day per session.
      auto u = w.exec_params(
          "UPDATE sessions SET expires_at = now() + $2 * interval '1 millisecond', refreshed_at = now() "
          "WHERE token_hash = decode($1, 'hex') RETURNING extract(epoch FROM expires_at)::float8",
          key, ttl_ms);
      if (!u.empty()) out.expires_epoch = u[0][0].as<double>();
    }
    return out;
  });
  const bool cacheable = removals_.cacheable(before);
  if (!row) {
    cache_.erase(h);
    if (cacheable) unknown_.add(h, SteadyClock::now());
    co_return std::nullopt;
  }
  Entry e{std::make_shared<const Identity>(identity_from(row->user)), from_epoch(row->expires_epoch), started};
  if (cacheable) {
    if (cache_.size() >= kCacheMaxEntries) make_room(e.cached_at);
    cache_.insert_or_assign(h, e);
  }
  co_return Session{std::move(e.identity), e.expires_at};
}

boost::asio::awaitable<std::vector<TokenHash>> SessionStore::remove(std::string_view token) {
  if (!is_token(token)) co_return std::vector<TokenHash>{};
  const TokenHash h = hash_token(token);
  Revocations::Scope removal(removals_);
  struct Forget {  // after the DELETE too, whatever happens
    SessionStore& self;
    const TokenHash& h;
    ~Forget() { self.cache_.erase(h); }
  } forget{*this, h};
  cache_.erase(h);
  const std::string key = hex(h);
  co_return co_await db_.run([&](pqxx::work& w) {
    std::vector<TokenHash> cookies;
    w.exec_params("SELECT 1 FROM sessions WHERE token_hash = decode($1, 'hex') FOR UPDATE", key);
    for (const auto& r : w.exec_params("DELETE FROM workspace_sessions WHERE session_hash = decode($1, 'hex') "
                                       "RETURNING encode(token_hash, 'hex')",
                                       key))
      if (auto c = from_hex(r[0].as<std::string>())) cookies.push_back(*c);
    w.exec_params("DELETE FROM sessions WHERE token_hash = decode($1, 'hex')", key);
    return cookies;
  });
}

boost::asio::awaitable<long> SessionStore::delete_expired() {
  auto sys_now = SystemClock::now();
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (it->second.expires_at <= sys_now) it = cache_.erase(it);
    else ++it;
  }
  co_return co_await db_.run([](pqxx::work& w) -> long {
    return static_cast<long>(w.exec("DELETE FROM sessions WHERE expires_at <= now()").affected_rows());
  });
}

}  // namespace feuille::auth
