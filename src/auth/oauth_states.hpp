#pragma once
// Sign-ins in progress: the `state` sent to the provider, what it was issued
// for, and the browser it is bound to (the SHA-256 of the feuille_oauth
// cookie). Single use, 10 minutes, in memory (a restart only costs a
// sign-in in flight a retry). Used on the loop only.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/tokens.hpp"

namespace feuille::auth {

class OAuthStates {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::minutes kLifetime{10};

  struct Pending {
    std::string provider;  // "github", "google"
    std::string next;      // a checked local path
    TokenHash browser;     // SHA-256 of the feuille_oauth cookie
    Clock::time_point expires;
  };

  explicit OAuthStates(std::size_t max_pending = 100'000) : max_pending_(max_pending) {}

  // Stores a new sign-in and returns its state value; nullopt when too many
  // are pending (after dropping expired ones).
  std::optional<std::string> add(std::string provider, std::string next, const TokenHash& browser,
                                 Clock::time_point now);

  // For the browser holding the feuille_oauth cookie whose hash is
  // `browser`: removes the state (a state is used once) and returns it if it
  // had not expired. A state presented by another browser is left in place
  // (someone who learnt it cannot burn the real sign-in) and nullopt returned.
  std::optional<Pending> take(std::string_view state, const TokenHash& browser, Clock::time_point now);

  std::size_t size() const { return pending_.size(); }

 private:
  void prune(Clock::time_point now);
  std::size_t max_pending_;
  std::unordered_map<std::string, Pending> pending_;
};

}  // namespace feuille::auth
