#include "auth/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace feuille::auth {

RateLimiter::RateLimiter(double burst, double per_minute, std::size_t max_addresses)
    : burst_(burst), per_second_(per_minute / 60.0), max_addresses_(max_addresses) {}

std::size_t RateLimiter::Hasher::operator()(const Address& a) const noexcept {
  std::size_t h = 1469598103934665603ull;  // FNV-1a
  for (auto b : a) h = (h ^ b) * 1099511628211ull;
  return h;
}

void RateLimiter::prune(Clock::time_point now) {
  // A bucket that has refilled completely is the same as no bucket.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    double elapsed = std::chrono::duration<double>(now - it->second.updated).count();
    if (it->second.tokens + elapsed * per_second_ >= burst_) it = buckets_.erase(it);
    else ++it;
  }
}

unsigned RateLimiter::take(const Address& client, Clock::time_point now) {
  auto it = buckets_.find(client);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_addresses_) prune(now);
    if (buckets_.size() >= max_addresses_) return 1;  // under a flood of addresses, everyone waits a little
    it = buckets_.emplace(client, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * per_second_);
  b.updated = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return 0;
  }
  return static_cast<unsigned>(std::max(1.0, std::ceil((1.0 - b.tokens) / per_second_)));
}

}  // namespace feuille::auth
