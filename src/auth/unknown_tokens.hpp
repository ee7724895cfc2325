#pragma once
// Tokens recently found in no row: a flood of made-up cookies costs one
// database read per token per kLifetime, not one per request. Bounded: when
// full of live entries it starts over (memory stays bounded; the flood then
// costs reads again). Loop only.
#include <chrono>
#include <unordered_map>

#include "auth/tokens.hpp"

namespace feuille::auth {

class UnknownTokens {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kLifetime{10};
  static constexpr std::size_t kMaxEntries = 100'000;

  bool contains(const TokenHash& h, Clock::time_point now) {
    auto it = seen_.find(h);
    if (it == seen_.end()) return false;
    if (now - it->second < kLifetime) return true;
    seen_.erase(it);
    return false;
  }
  void add(const TokenHash& h, Clock::time_point now) {
    if (seen_.size() >= kMaxEntries) {
      std::erase_if(seen_, [now](const auto& e) { return now - e.second >= kLifetime; });
      if (seen_.size() >= kMaxEntries) seen_.clear();
    }
    seen_.insert_or_assign(h, now);
  }
  std::size_t size() const { return seen_.size(); }

 private:
  std::unordered_map<TokenHash, Clock::time_point, TokenHashHasher> seen_;
};

}  // namespace feuille::auth
