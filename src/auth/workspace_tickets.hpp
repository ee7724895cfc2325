#pragma once
// The outstanding tickets into workspaces (docs/auth.md, "Workspace
// origins"): single-use, short-lived, bound to a session, a workspace and
// the path they land on. Bounded so that no session can fill the table or
// lock others out (docs/security.md, "Limits"):
// - a session holds at most `per_session` tickets (a new one evicts its
//   oldest), one per workspace and target (a new one replaces it);
// - a session mints at most `burst` at once, then `per_minute`;
// - a workspace has at most `per_workspace` outstanding, the table `total`;
// - expired tickets leave in O(expired) (they are queued in expiry order).
// Pure bookkeeping with given times; used on the loop only.
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/rate_limiter.hpp"
#include "auth/tokens.hpp"

namespace feuille::auth {

class WorkspaceTickets {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    std::size_t per_session = 16;
    std::size_t per_workspace = 1000;
    std::size_t total = 100'000;
    double burst = 20;
    double per_minute = 60;
  };
  struct Ticket {
    TokenHash session;
    std::string caller, owner, target;
    Clock::time_point expires;
  };
  enum class Refusal { none, no_session, rate_limited, workspace_full, table_full };
  struct Minted {
    Refusal refusal = Refusal::none;
    std::string ticket;                // when refusal == none
    unsigned retry_after_seconds = 0;  // when refused
  };

  WorkspaceTickets() : WorkspaceTickets(Limits{}) {}
  explicit WorkspaceTickets(Limits limits) : limits_(limits) {}

  Minted issue(const TokenHash& session, std::string caller, std::string owner, std::string target,
               Clock::duration lifetime, Clock::time_point now);
  // Takes the ticket out (single use); nullopt when unknown or expired.
  std::optional<Ticket> take(const TokenHash& ticket, Clock::time_point now);

  std::size_t size() const { return tickets_.size(); }
  std::size_t sessions() const { return sessions_.size(); }

 private:
  struct SessionState {
    TokenBucket bucket;
    std::vector<TokenHash> outstanding;  // oldest first, at most per_session
  };
  void sweep(Clock::time_point now);
  void remove(const TokenHash& ticket);
  double per_second() const { return limits_.per_minute / 60.0; }

  Limits limits_;
  std::unordered_map<TokenHash, Ticket, TokenHashHasher> tickets_;
  std::unordered_map<TokenHash, SessionState, TokenHashHasher> sessions_;
  std::unordered_map<std::string, std::size_t> per_workspace_;
  std::deque<std::pair<Clock::time_point, TokenHash>> expiry_;  // in issue order
  static constexpr std::size_t kMinSessionPrune = 1024;
  std::size_t prune_sessions_at_ = kMinSessionPrune;
};

}  // namespace feuille::auth
