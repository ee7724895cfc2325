#pragma once
// Host ports handed to workspaces: editors 20000-39999, runtimes 40000-59999.
// feuilled is the only writer of its database, so the ports in use are kept
// in memory (loaded at reconcile from `runtimes` and `workspaces`; the
// database's unique indexes stay the final guard). Each range is scanned from
// a random point, skipping ports already handed out and ports that something
// on the host is listening on (the `usable` check), so that several feuilled
// processes sharing one Podman host rarely reach for the same port.
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
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

  // The next port of `range` not taken and accepted by `usable`; it is marked
  // taken. nullopt when the whole range is used up.
  std::optional<std::uint16_t> allocate(Range range, const std::function<bool(std::uint16_t)>& usable);

 private:
  std::unordered_set<std::uint16_t> taken_;
  std::unordered_map<std::uint16_t, std::uint16_t> cursor_;  // by range start
  std::mt19937 random_;
};

// True unless something on this machine listens on address:port (a bind
// test with SO_REUSEADDR, as servers bind). An address this machine does not
// have (a remote host's) cannot be tested here: true.
bool port_free_on_host(const std::string& address, std::uint16_t port);

}  // namespace feuille::compute
