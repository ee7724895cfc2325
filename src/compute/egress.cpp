#include "compute/egress.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/child_process.hpp"
#include "util/digest.hpp"
#include "util/units.hpp"

namespace feuille::compute {

namespace {

constexpr auto kToolTimeout = std::chrono::seconds(10);

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// The rules without the fingerprint comment.
std::string rules_body(const EgressPlan& p) {
  const std::string& a = p.address;
  std::ostringstream r;
  std::vector<std::string> allow;
  for (const auto& c : p.allow) allow.push_back(c.text);
  r << "  chain output {\n"
    << "    type filter hook output priority 0; policy accept;\n";
  if (!allow.empty()) r << "    ip saddr " << a << " ip daddr { " << join(allow) << " } accept\n";
  if (!p.resolvers.empty())
    r << "    ip saddr " << a << " ip daddr { " << join(p.resolvers) << " } meta l4proto { tcp, udp } th dport 53 accept\n";
  // The host's own addresses, on every interface, whatever they are.
  r << "    ip saddr " << a << " fib daddr type local meta l4proto tcp reject with tcp reset\n"
    << "    ip saddr " << a << " fib daddr type local reject with icmp type admin-prohibited\n"
    << "    ip saddr " << a << " ip daddr { " << join(egress_blocked_ranges())
    << " } meta l4proto tcp reject with tcp reset\n"
    << "    ip saddr " << a << " ip daddr { " << join(egress_blocked_ranges())
    << " } reject with icmp type admin-prohibited\n"
    << "  }\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat; policy accept;\n"
    << "    ip saddr " << a << " oifname != \"lo\" masquerade\n"
    << "  }\n";
  return r.str();
}

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}

RunResult tool(const std::vector<std::string>& argv) {
  try {
    return run_command(argv, {}, kToolTimeout);
  } catch (const std::runtime_error& e) {  // not installed
    throw std::runtime_error(std::string(e.what()) + " (needed for the tenant egress rules)");
  }
}

bool address_on_this_machine(const std::string& address) {
  auto r = tool({"ip", "-4", "-o", "addr", "show"});
  if (r.status != 0) throw std::runtime_error("ip addr show: " + one_line(r.output));
  return r.output.find(" " + address + "/") != std::string::npos;
}

// nft -f on a temporary file holding `text`.
RunResult nft_file(const std::string& text, bool check_only) {
  char path[] = "/tmp/feuille-egress-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("cannot write the egress rules to /tmp");
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  RunResult r;
  if (written) {
    std::vector<std::string> argv{"nft"};
    if (check_only) argv.push_back("--check");
    argv.insert(argv.end(), {"-f", path});
    try {
      r = tool(argv);
    } catch (...) {
      ::unlink(path);
      throw;
    }
  }
  ::unlink(path);
  if (!written) throw std::runtime_error("cannot write the egress rules to /tmp");
  return r;
}

}  // namespace

const std::vector<std::string>& egress_blocked_ranges() {
  static const std::vector<std::string> ranges = {
      "0.0.0.0/8",       // "this network"
      "10.0.0.0/8",      // private
      "100.64.0.0/10",   // shared (carrier-grade NAT; also some clouds' internal ranges)
      "127.0.0.0/8",     // loopback
      "169.254.0.0/16",  // link-local: cloud metadata (169.254.169.254)
      "172.16.0.0/12",   // private
      "192.0.0.0/24",    // IETF protocol assignments
      "192.168.0.0/16",  // private
      "198.18.0.0/15",   // benchmarking (the default egress address lives here)
      "224.0.0.0/3",     // multicast, reserved, broadcast
  };
  return ranges;
}

EgressPlan egress_plan(const Config& config, const std::string& resolv_conf) {
  EgressPlan p;
  p.address = config.egress_address;
  p.allow = config.egress_allow;
  std::ifstream in(resolv_conf);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string word, value;
    if (!(words >> word >> value) || word != "nameserver") continue;
    auto ip = units::parse_ip(value);
    if (ip && value.find(':') == std::string::npos) p.resolvers.push_back(value);
  }
  return p;
}

std::string egress_table(const std::string& address) {
  std::string name = "feuille_egress_" + address;
  for (auto& c : name)
    if (c == '.') c = '_';
  return name;
}

std::string egress_fingerprint(const EgressPlan& plan) { return util::sha256_hex(rules_body(plan), 16); }

std::string egress_ruleset(const EgressPlan& plan) {
  const std::string table = "table ip " + egress_table(plan.address);
  // Declaring then deleting makes the replacement one transaction whether or
  // not the table existed.
  return table + " {}\ndelete " + table + "\n" + table + " {\n  comment \"feuilled tenant egress " +
         egress_fingerprint(plan) + "\"\n" + rules_body(plan) + "}\n";
}

void install_egress(const EgressPlan& plan) {
  if (!address_on_this_machine(plan.address)) {
    auto r = tool({"ip", "addr", "add", plan.address + "/32", "dev", "lo"});
    // Another feuilled may have added it meanwhile.
    if (r.status != 0 && !address_on_this_machine(plan.address))
      throw std::runtime_error("cannot add " + plan.address + " to lo: " + one_line(r.output));
  }
  auto r = nft_file(egress_ruleset(plan), false);
  if (r.status != 0) throw std::runtime_error("nft: " + one_line(r.output));
}

EgressStatus egress_status(const EgressPlan& plan, bool dry_run_if_missing) {
  EgressStatus s;
  try {
    auto listed = tool({"nft", "list", "table", "ip", egress_table(plan.address)});
    const bool present = listed.status == 0;
    if (present && listed.output.find("feuilled tenant egress " + egress_fingerprint(plan)) == std::string::npos) {
      s.detail = "the nftables table " + egress_table(plan.address) +
                 " holds other rules than this configuration's (another egress-allow, or resolvers changed); "
                 "feuilled replaces them at start";
      return s;
    }
    if (!present) {
      if (!dry_run_if_missing) {
        s.detail = "the nftables table " + egress_table(plan.address) + " is not installed";
        return s;
      }
      auto r = nft_file(egress_ruleset(plan), true);
      if (r.status != 0) {
        s.detail = "the egress rules cannot be installed: " + one_line(r.output);
        return s;
      }
      s.ok = true;
      s.detail = "rules not installed yet (feuilled installs them at start; nft --check accepts them)";
      return s;
    }
    if (!address_on_this_machine(plan.address)) {
      s.detail = plan.address + " is not on this machine (feuilled adds it to lo at start)";
      s.ok = dry_run_if_missing;
      return s;
    }
    s.ok = true;
    s.detail = "rules installed (table " + egress_table(plan.address) + ")";
  } catch (const std::exception& e) {
    s.detail = e.what();
  }
  return s;
}

EgressUsers::EgressUsers(const std::string& address, const std::string& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  const std::string path = folder + "/egress-" + address + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  // Waits while a last user removes the table (briefly): installing after it.
  while (::flock(fd_, LOCK_SH) != 0)
    if (errno != EINTR) throw std::runtime_error("cannot lock " + path + ": " + std::strerror(errno));
}

EgressUsers::~EgressUsers() {
  if (fd_ >= 0) ::close(fd_);  // and its lock with it
}

bool EgressUsers::last() { return ::flock(fd_, LOCK_EX | LOCK_NB) == 0; }

void remove_egress_table(const std::string& address) {
  auto r = tool({"nft", "delete", "table", "ip", egress_table(address)});
  if (r.status != 0 && r.output.find("No such file") == std::string::npos)
    throw std::runtime_error("nft: " + one_line(r.output));
}

}  // namespace feuille::compute
