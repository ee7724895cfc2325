#pragma once
// Ports handed to workspaces: editors 20000-39999, runtimes (their gateways)
// 40000-59999. Every container has a network namespace of its own, so no
// process on the host (or in another container) can hold one of these ports
// where feuilled uses it: allocation only has to keep two workspaces from
// getting the same number. The ports in use are kept in memory (loaded at
// reconcile from `runtimes` and `workspaces`); the database's unique indexes
// stay the final guard, across the deployments sharing one database. Each
// range is scanned from a random point, so that several feuilled processes
// sharing one database table set rarely reach for the same port.
#include <cstdint>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace feuille::compute {

class PortAllocator {
 public:
  struct Range {
    std::uint16_t first, last;
  };
  PortAllocator();

  void mark_taken(std::uint16_t port) { taken_.insert(port); }
  void release(std::uint16_t port) { taken_.erase(port); }
  bool taken(std::uint16_t port) const { return taken_.count(port) > 0; }
  std::size_t taken_count() const { return taken_.size(); }

  // The next port of `range` not taken; it is marked taken. nullopt when the
  // whole range is used up.
  std::optional<std::uint16_t> allocate(Range range);

 private:
  std::unordered_set<std::uint16_t> taken_;
  std::unordered_map<std::uint16_t, std::uint16_t> cursor_;  // by range start
  std::mt19937 random_;
};

}  // namespace feuille::compute
