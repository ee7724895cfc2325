#pragma once
// How feuilled's descriptors (RLIMIT_NOFILE, read after the daemon raised
// its soft limit to the hard one) are shared, so that tenants' connections
// are refused before feuilled's own work (database connections, Podman
// calls, probes, snapshot files, its listeners) can run out of them:
// `reserve` stays for that work; the rest is split between the proxy's
// connections (each request or WebSocket in flight holds the browser's and
// the editor's descriptors) and the runtime gateways' (each connection holds
// the editor side's and the runtime side's). docs/security.md, "Limits".
#include <algorithm>
#include <cstddef>

namespace feuille {

struct DescriptorBudget {
  std::size_t limit = 1024;  // RLIMIT_NOFILE

  std::size_t reserve() const { return std::clamp<std::size_t>(limit / 4, 256, limit / 2); }
  std::size_t tenant_descriptors() const { return limit - reserve(); }
  // Connections in flight through the proxy, and through every gateway.
  std::size_t proxy_connections() const { return std::max<std::size_t>(1, tenant_descriptors() / 4); }
  std::size_t gateway_connections() const { return std::max<std::size_t>(1, tenant_descriptors() / 4); }

  // This process's, now.
  static DescriptorBudget of_process();
};

}  // namespace feuille
