#include "auth/oauth_states.hpp"

namespace feuille::auth {

void OAuthStates::prune(Clock::time_point now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.expires <= now) it = pending_.erase(it);
    else ++it;
  }
}

std::optional<std::string> OAuthStates::add(std::string provider, std::string next, const TokenHash& browser,
                                            Clock::time_point now) {
  if (pending_.size() >= max_pending_) prune(now);
  if (pending_.size() >= max_pending_) return std::nullopt;
  std::string state = random_token();
  pending_.emplace(state, Pending{std::move(provider), std::move(next), browser, now + kLifetime});
  return state;
}

std::optional<OAuthStates::Pending> OAuthStates::take(std::string_view state, const TokenHash& browser,
                                                      Clock::time_point now) {
  if (!is_token(state)) return std::nullopt;
  auto it = pending_.find(std::string(state));
  if (it == pending_.end() || !equal_hashes(it->second.browser, browser)) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.expires <= now) return std::nullopt;
  return p;
}

}  // namespace feuille::auth
