#include "auth/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace feuille::auth {

RateLimiter::RateLimiter(double burst, double per_minute, std::size_t max_addresses)
    : burst_(burst),
      per_second_(per_minute / 60.0),
      max_addresses_(max_addresses),
      overflow_{burst * kOverflowFactor, Clock::time_point{}} {}

std::size_t RateLimiter::Hasher::operator()(const Address& a) const noexcept {
  std::size_t h = 1469598103934665603ull;  // FNV-1a
  for (auto b : a) h = (h ^ b) * 1099511628211ull;
  return h;
}

void RateLimiter::prune(Clock::time_point now) {
  // A bucket that has refilled completely is the same as no bucket.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (it->second.full(burst_, per_second_, now)) it = buckets_.erase(it);
    else ++it;
  }
}

unsigned RateLimiter::take(const Address& client, Clock::time_point now) {
  Address key = client;
  static constexpr std::uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!std::equal(std::begin(v4_mapped), std::end(v4_mapped), key.begin())) std::fill(key.begin() + 8, key.end(), 0);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_addresses_) prune(now);
    if (buckets_.size() >= max_addresses_)
      return overflow_.take(burst_ * kOverflowFactor, per_second_ * kOverflowFactor, now);
    it = buckets_.emplace(key, Bucket{burst_, now}).first;
  }
  return it->second.take(burst_, per_second_, now);
}

unsigned TokenBucket::take(double burst, double per_second, std::chrono::steady_clock::time_point now) {
  double elapsed = std::chrono::duration<double>(now - updated).count();
  tokens = std::min(burst, tokens + std::max(0.0, elapsed) * per_second);
  updated = now;
  if (tokens >= 1.0) {
    tokens -= 1.0;
    return 0;
  }
  return static_cast<unsigned>(std::max(1.0, std::ceil((1.0 - tokens) / per_second)));
}

bool TokenBucket::full(double burst, double per_second, std::chrono::steady_clock::time_point now) const {
  return tokens + std::chrono::duration<double>(now - updated).count() * per_second >= burst;
}

}  // namespace feuille::auth
