#pragma once
// Per-address token buckets for the sign-in routes. Used on the loop only.
#include <array>
#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace feuille::auth {

// `burst` tokens at most, refilled at `per_second`.
struct TokenBucket {
  double tokens;
  std::chrono::steady_clock::time_point updated;
  // 0 when a token was taken, else the seconds until one would be there
  // (for Retry-After).
  unsigned take(double burst, double per_second, std::chrono::steady_clock::time_point now);
  // Refilled completely: the same as no bucket.
  bool full(double burst, double per_second, std::chrono::steady_clock::time_point now) const;
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Address = std::array<std::uint8_t, 16>;

  // `burst` requests at once, then `per_minute` a minute.
  RateLimiter(double burst, double per_minute, std::size_t max_addresses = 100'000);

  // 0 when the request may go ahead (a token is taken), else the seconds to
  // wait before the next one would be allowed (for Retry-After). IPv6
  // clients are keyed by their /64 (one host holds a whole /64). When the
  // table is full of live buckets, new addresses share one overflow bucket
  // (kOverflowFactor times larger): known addresses keep their own, and a
  // flood of addresses slows only the other newcomers.
  unsigned take(const Address& client, Clock::time_point now);
  static constexpr double kOverflowFactor = 10;
  std::size_t size() const { return buckets_.size(); }

 private:
  using Bucket = TokenBucket;
  struct Hasher {
    std::size_t operator()(const Address& a) const noexcept;
  };
  void prune(Clock::time_point now);

  double burst_, per_second_;
  std::size_t max_addresses_;
  std::unordered_map<Address, Bucket, Hasher> buckets_;
  Bucket overflow_;
};

}  // namespace feuille::auth
