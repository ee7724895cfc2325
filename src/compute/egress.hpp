#pragma once
// Tenant egress: where a container's outbound connections may go. slirp4netns
// makes them from a host process, so without rules they would reach every
// address the host can: its own addresses on any interface (PostgreSQL,
// feuilled, a Podman API), the LAN, and cloud metadata (169.254.169.254).
// Every container's slirp4netns binds its outbound sockets to one dedicated
// address (`egress-address`, put on the loopback interface), and an nftables
// table keyed on that source address lets them out to the internet only
// (masqueraded), refusing the host's own addresses, link-local, private,
// shared and multicast ranges, except the operator's `egress-allow` list and
// DNS to the host's resolvers. docs/security.md explains the rules.
#include <string>
#include <vector>

#include "feuille/config.hpp"

namespace feuille::compute {

struct EgressPlan {
  std::string address;             // the dedicated source address (IPv4)
  std::vector<Cidr> allow;         // operator exceptions (IPv4 ranges)
  std::vector<std::string> resolvers;  // DNS servers tenants may ask (port 53 only)
};

// The ranges refused besides the host's own addresses.
const std::vector<std::string>& egress_blocked_ranges();

// The plan of a configuration: resolvers from /etc/resolv.conf (IPv4 ones).
EgressPlan egress_plan(const Config& config, const std::string& resolv_conf = "/etc/resolv.conf");

// The nftables table (family ip) of one egress address, and its rules as
// `nft -f` reads them: the table is replaced as a whole, atomically. The
// table's comment carries a fingerprint of the plan, which is how a check
// tells the installed rules are this configuration's.
std::string egress_table(const std::string& address);
std::string egress_ruleset(const EgressPlan& plan);
std::string egress_fingerprint(const EgressPlan& plan);

struct EgressStatus {
  bool ok = false;
  std::string detail;  // what is wrong, or what is in place
};

// Puts the address on `lo` (when absent) and installs the table. Blocking
// (runs `ip` and `nft`); needs CAP_NET_ADMIN. Throws std::runtime_error with
// the tool's message.
void install_egress(const EgressPlan& plan);
// Whether the address is on this machine and the installed table is this
// plan's. With `dry_run_if_missing`, a missing table is validated with
// `nft --check` instead (ok = it could be installed).
EgressStatus egress_status(const EgressPlan& plan, bool dry_run_if_missing);

// The feuilled processes using one egress address, told apart by a lock
// file (/run/feuille/egress-<address>.lock): each holds it shared for its
// life, from before it installs the table; at its shutdown, the one that can
// take it exclusively is the last, and may remove the table when no tenant
// container runs any more (containers outlive feuilled: their rules stay
// while they do). Blocking (flock): used on the pool.
class EgressUsers {
 public:
  explicit EgressUsers(const std::string& address, const std::string& folder = "/run/feuille");
  ~EgressUsers();
  EgressUsers(const EgressUsers&) = delete;
  EgressUsers& operator=(const EgressUsers&) = delete;
  // Whether this process is the address's only user now (the lock taken
  // exclusively and kept until destruction; false when another holds it).
  bool last();

 private:
  int fd_ = -1;
};

// Deletes the address's table (a missing one is fine). The address stays on
// `lo`: slirp4netns processes may still be bound to it.
void remove_egress_table(const std::string& address);

}  // namespace feuille::compute
