#include "auth/workspace_tickets.hpp"

#include <algorithm>

namespace feuille::auth {

void WorkspaceTickets::remove(const TokenHash& ticket) {
  auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return;
  if (auto w = per_workspace_.find(it->second.owner); w != per_workspace_.end() && --w->second == 0)
    per_workspace_.erase(w);
  if (auto s = sessions_.find(it->second.session); s != sessions_.end()) std::erase(s->second.outstanding, ticket);
  tickets_.erase(it);
}

void WorkspaceTickets::sweep(Clock::time_point now) {
  // Tickets leave the queue when they expire, whether or not they were used
  // (a used or replaced one is simply no longer in the table).
  while (!expiry_.empty() && expiry_.front().first <= now) {
    remove(expiry_.front().second);
    expiry_.pop_front();
  }
  // A session with nothing outstanding and a full bucket is the same as
  // none. They are dropped each time the map doubles (amortised O(1)).
  if (sessions_.size() > prune_sessions_at_) {
    std::erase_if(sessions_, [&](const auto& s) {
      return s.second.outstanding.empty() && s.second.bucket.full(limits_.burst, per_second(), now);
    });
    prune_sessions_at_ = std::max<std::size_t>(kMinSessionPrune, 2 * sessions_.size());
  }
}

WorkspaceTickets::Minted WorkspaceTickets::issue(const TokenHash& session, std::string caller, std::string owner,
                                                 std::string target, Clock::duration lifetime, Clock::time_point now) {
  sweep(now);
  SessionState& s = sessions_.try_emplace(session, SessionState{TokenBucket{limits_.burst, now}, {}}).first->second;
  if (unsigned wait = s.bucket.take(limits_.burst, per_second(), now); wait > 0)
    return Minted{Refusal::rate_limited, {}, wait};
  // The same way in again replaces the ticket still outstanding for it.
  for (const auto& h : s.outstanding) {
    const Ticket& t = tickets_.at(h);
    if (t.owner == owner && t.target == target) {
      remove(TokenHash(h));
      break;
    }
  }
  if (s.outstanding.size() >= limits_.per_session) remove(TokenHash(s.outstanding.front()));
  if (tickets_.size() >= limits_.total) return Minted{Refusal::table_full, {}, 1};
  std::size_t& in_workspace = per_workspace_[owner];
  if (in_workspace >= limits_.per_workspace) return Minted{Refusal::workspace_full, {}, 1};
  ++in_workspace;
  std::string ticket = random_token();
  const TokenHash h = hash_token(ticket);
  tickets_.emplace(h, Ticket{session, std::move(caller), std::move(owner), std::move(target), now + lifetime});
  s.outstanding.push_back(h);
  expiry_.emplace_back(now + lifetime, h);
  return Minted{Refusal::none, std::move(ticket), 0};
}

std::optional<WorkspaceTickets::Ticket> WorkspaceTickets::take(const TokenHash& ticket, Clock::time_point now) {
  auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return std::nullopt;
  Ticket t = it->second;
  remove(ticket);  // single use, whatever happens next
  if (t.expires <= now) return std::nullopt;
  return t;
}

}  // namespace feuille::auth
