#include "auth/workspace_access.hpp"

#include "db/database.hpp"
#include "db/users.hpp"
#include "auth/session_store.hpp"

namespace feuille::auth {
WorkspaceTickets::Minted WorkspaceAccess::issue(const TokenHash& session, const std::string& caller,
                                                const std::string& owner, std::string target) {
  if (target.size() > kMaxTicketTarget) target = "/u/" + owner + "/";
  return tickets_.issue(session, caller, owner, std::move(target), ticket_lifetime_, SteadyClock::now());
}

boost::asio::awaitable<std::optional<WorkspaceAccess::Entered>> WorkspaceAccess::redeem(std::string_view ticket,
                                                                                         const std::string& owner) {
  if (!is_token(ticket)) co_return std::nullopt;
  auto t = tickets_.take(hash_token(ticket), SteadyClock::now());
  if (!t || t->owner != owner) co_return std::nullopt;
  std::string cookie = random_token();
  const std::string cookie_hash = hex(hash_token(cookie)), session_hash = hex(t->session);
  // The session must still be live: a logout in between (its row locked,
  // then deleted) leaves nothing to insert from. So must the caller's way
  // in: a member removed since the ticket was issued gets nothing (and a
  // removal that commits after this insert deletes the row it made).
  auto max_age = co_await db_.run([&](pqxx::work& w) -> std::optional<long long> {
    auto r = w.exec_params(
        "INSERT INTO workspace_sessions (token_hash, session_hash, user_id, owner_id, expires_at) "
        "SELECT decode($1, 'hex'), s.token_hash, s.user_id, $3::uuid, s.expires_at FROM sessions s "
        "WHERE s.token_hash = decode($2, 'hex') AND s.expires_at > now() AND s.user_id = $4::uuid "
        "AND ($4::uuid = $3::uuid OR EXISTS (SELECT 1 FROM memberships m "
        "WHERE m.owner_id = $3::uuid AND m.member_id = $4::uuid)) "
        "RETURNING extract(epoch FROM expires_at - now())::bigint",
        cookie_hash, session_hash, t->owner, t->caller);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<long long>();
  });
  if (!max_age) co_return std::nullopt;
  co_return Entered{std::move(cookie), std::move(t->target), *max_age};
}

boost::asio::awaitable<std::optional<WorkspaceAccess::Entry>> WorkspaceAccess::find(std::string_view cookie) {
  if (!is_token(cookie)) co_return std::nullopt;
  const TokenHash h = hash_token(cookie);
  const auto now = SteadyClock::now();
  if (auto it = cache_.find(h); it != cache_.end()) {
    if (it->second.expires_at <= SystemClock::now()) {
      cache_.erase(it);
      co_return std::nullopt;
    }
    if (now - it->second.cached_at < kCacheMaxAge) co_return it->second.entry;
  }
  if (unknown_.contains(h, now)) co_return std::nullopt;
  std::string key = hex(h) + ":" + std::to_string(revocations_.generation());
  auto job = [this, h] { return read(h); };
  co_return co_await reads_.run(std::move(key), std::move(job));
}

boost::asio::awaitable<std::optional<WorkspaceAccess::Entry>> WorkspaceAccess::read(TokenHash h) {
  struct Row {
    db::User user;
    std::string owner;
    double expires_epoch;
  };
  const auto before = revocations_.snapshot();
  const auto started = SteadyClock::now();
  const std::string key = hex(h);
  auto row = co_await db_.run([&](pqxx::work& w) -> std::optional<Row> {
    auto r = w.exec_params(std::string("WITH e AS (SELECT ws.user_id AS e_user, ws.owner_id AS e_owner, "
                                       "least(ws.expires_at, s.expires_at) AS e_expires FROM workspace_sessions ws "
                                       "JOIN sessions s ON s.token_hash = ws.session_hash "
                                       "WHERE ws.token_hash = decode($1, 'hex') AND ws.expires_at > now() "
                                       "AND s.expires_at > now()) SELECT ") +
                               db::kUserColumns +
                               ", e.e_owner::text, extract(epoch FROM e.e_expires)::float8 "
                               "FROM e JOIN users ON users.id = e.e_user",
                           key);
    if (r.empty()) return std::nullopt;
    return Row{db::user_from_row(r[0]), r[0][7].as<std::string>(), r[0][8].as<double>()};
  });
  const bool cacheable = revocations_.cacheable(before);
  if (!row) {
    cache_.erase(h);
    if (cacheable) unknown_.add(h, SteadyClock::now());
    co_return std::nullopt;
  }
  Entry e{std::make_shared<const Identity>(identity_from(row->user)), std::move(row->owner), h};
  if (cacheable) {
    if (cache_.size() >= kCacheMaxEntries) {
      auto sys_now = SystemClock::now();
      std::erase_if(cache_, [&](const auto& c) {
        return started - c.second.cached_at >= kCacheMaxAge || c.second.expires_at <= sys_now;
      });
      if (cache_.size() >= kCacheMaxEntries) cache_.clear();
    }
    cache_.insert_or_assign(h, CacheEntry{e, from_epoch(row->expires_epoch), started});
  }
  co_return e;
}

void WorkspaceAccess::forget(const std::vector<TokenHash>& cookies) {
  revocations_.bump();
  for (const auto& h : cookies) cache_.erase(h);
}

boost::asio::awaitable<void> WorkspaceAccess::revoke(std::function<bool(const Entry&)> ended,
                                                    std::function<void(pqxx::work&)> remove) {
  Revocations::Scope revocation(revocations_);
  auto purge = [&] { std::erase_if(cache_, [&](const auto& c) { return ended(c.second.entry); }); };
  purge();
  co_await db_.run([&](pqxx::work& w) { remove(w); });
  purge();
}

boost::asio::awaitable<void> WorkspaceAccess::revoke_member(const std::string& member, const std::string& owner) {
  auto ended = [&](const Entry& e) { return e.owner_id == owner && e.caller->id == member; };
  auto remove = [&](pqxx::work& w) {
    w.exec_params("DELETE FROM workspace_sessions WHERE user_id = $1::uuid AND owner_id = $2::uuid", member, owner);
  };
  co_await revoke(ended, remove);
}

boost::asio::awaitable<void> WorkspaceAccess::revoke_workspace(const std::string& owner) {
  auto ended = [&](const Entry& e) { return e.owner_id == owner; };
  auto remove = [&](pqxx::work& w) { w.exec_params("DELETE FROM workspace_sessions WHERE owner_id = $1::uuid", owner); };
  co_await revoke(ended, remove);
}

}  // namespace feuille::auth
