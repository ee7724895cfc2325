#pragma once
// The rule both token caches follow (sessions, workspace cookies): a lookup
// caches what it read only when no revocation overlapped it. A revocation
// is counted while in flight and bumps the generation at its start and its
// end; a lookup takes a snapshot before its read and asks cacheable() after.
#include <cstdint>

namespace feuille::auth {

class Revocations {
 public:
  struct Snapshot {
    std::uint64_t generation;
    bool quiet;  // no revocation was in flight
  };
  Snapshot snapshot() const { return {generation_, in_flight_ == 0}; }
  bool cacheable(const Snapshot& s) const { return s.quiet && s.generation == generation_; }
  std::uint64_t generation() const { return generation_; }
  void bump() { ++generation_; }  // rows already gone (deleted elsewhere)

  // One revocation, from construction to destruction.
  class Scope {
   public:
    explicit Scope(Revocations& r) : r_(r) {
      ++r_.in_flight_;
      ++r_.generation_;
    }
    ~Scope() {
      ++r_.generation_;
      --r_.in_flight_;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Revocations& r_;
  };

 private:
  std::uint64_t generation_ = 0;
  int in_flight_ = 0;
};

}  // namespace feuille::auth
