#pragma once
// The daemon's configuration as typed values. Parsing and validation live in
// src/app/config.cpp; modules receive the parts they need.
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace feuille {

using Duration = std::chrono::milliseconds;

// An IP literal and a port ("127.0.0.1:8080", "[::1]:8080"). host is the
// address without brackets.
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  bool is_loopback() const;
  std::string text() const;  // host:port with brackets for IPv6
  bool operator==(const Endpoint&) const = default;
};

// An address range ("10.0.0.0/8", "::1/128", a bare address = one host).
struct Cidr {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 stored as IPv4-mapped IPv6
  int prefix = 128;                      // in IPv6 bits
  bool contains(const std::array<std::uint8_t, 16>& addr) const;
  std::string text;                      // as written
  bool operator==(const Cidr&) const = default;
};

// One Podman host that feuilled drives (`compute-host`).
struct ComputeHost {
  std::string name;
  std::string url;  // unix:///path (ssh:// comes with remote hosts)
  std::uint64_t memory_bytes = 0;  // 0 = not stated
  bool operator==(const ComputeHost&) const = default;
};

// A plan's resource limits (`plan`).
struct Plan {
  std::string name;
  std::uint64_t memory_bytes = 0;
  double cpus = 0;
  std::optional<Duration> idle_timeout;  // none: the idle-timeout key's; 0 = never sleeps
  int snapshots = 3;                                // named snapshots kept at once
  std::uint64_t snapshot_bytes = 2ULL << 30;        // every archive's total size (snapshots, sleep, forks)
  std::uint64_t disk_bytes = 1ULL << 30;            // the runtime's files outside /home/user (its writable layer)
  bool operator==(const Plan&) const = default;
};

enum class Signup { open, closed };

struct Config {
  // process
  std::string config_file;  // empty when none
  bool dev = false;
  std::string state_dir = "./.feuille";
  std::vector<Endpoint> listen;
  std::vector<Cidr> trusted_proxies;
  std::vector<Cidr> metrics_allow;
  std::string public_url;  // empty = first bound address (filled in at start)
  // Template of each workspace's origin ("https://{id}.ws.example.com");
  // "{port}" stands for the first bound port until the listeners are bound.
  // Empty = workspaces are served on public-url (and invites are refused).
  std::string workspace_origin;
  Duration workspace_ticket_lifetime{60'000};  // how long a ticket onto a workspace origin lasts (at most 60 s)
  Duration shutdown_grace{10'000};
  Duration header_timeout{10'000};
  Duration keepalive_timeout{75'000};
  std::string log_level = "info";
  std::string log_format = "text";
  int worker_threads = 4;

  // database
  std::string database_url;
  int db_pool_size = 8;
  Duration db_statement_timeout{5'000};
  Duration db_connect_timeout{3'000};

  // storage
  std::string data_dir = "/data/users";
  std::string snapshot_dir = "/data/snapshots";
  std::uint32_t workspace_uid = 1000;
  std::uint32_t workspace_gid = 1000;

  // compute
  std::vector<ComputeHost> compute_hosts;
  bool compute_hosts_given = false;
  // Tenant egress (compute/egress.hpp): containers' outbound connections are
  // made from this address; empty = not filtered (egress-address = off).
  std::string egress_address = "198.18.0.1";
  std::vector<Cidr> egress_allow;  // IPv4 ranges tenants may reach besides the internet
  std::string oci_runtime = "runc";
  std::string editor_image = "mrmd-editor:latest";
  std::string runtime_image = "mrmd-runtime:latest";
  std::string editor_command;
  std::string runtime_command;
  std::string runtime_user;  // uid[:gid] of the runtime's process; empty = the image's
  bool criu = true;          // criu = auto: checkpoints used when the start probe says they work
  std::string editor_health_path = "/health";
  std::string runtime_health_path = "/mrp/v1/capabilities";
  Duration start_timeout{60'000};
  int start_concurrency = 8;
  int proxy_max_per_user = 200;
  int proxy_max_per_client = 1000;         // proxied requests and WebSockets open at once per client address
  Duration proxy_websocket_ping{60'000};   // a quiet WebSocket gets a ping after this; 0 = never
  // Editor paths a page polls by itself: proxied, never counted as activity.
  std::vector<std::string> background_routes{"/api/machines", "/api/machines/active"};
  int gateway_max_per_workspace = 256;     // runtime gateway connections open at once per workspace
  Duration gateway_idle_timeout{1'800'000};  // a gateway connection with no byte this long is closed; 0 = never

  // publish
  std::uint64_t publish_cache_bytes = 64ULL * 1024 * 1024;  // rendered pages kept in memory
  std::uint64_t publish_render_memory = 128ULL * 1024 * 1024;  // cmark's memory for one render
  Duration publish_render_timeout{2'000};                       // time budget of one render

  // auth
  std::string github_client_id, github_client_secret;
  std::string github_authorize_url, github_token_url, github_api_url;
  std::string google_client_id, google_client_secret;
  std::string google_authorize_url, google_token_url, google_userinfo_url;
  std::string google_hosted_domain;
  Signup signup = Signup::open;
  std::vector<std::string> admins;
  bool dev_login = false;
  Duration session_ttl{30LL * 24 * 3600 * 1000};
  Duration oauth_timeout{10'000};

  // monitor and policies
  Duration monitor_interval{5'000};
  Duration idle_timeout{15 * 60'000};
  double idle_cpu_percent = 1;
  Duration drain_timeout{10'000};
  double preprovision_percent = 50;
  double migrate_percent = 75;
  std::vector<Plan> plans;

  const Plan* find_plan(const std::string& name) const;
  // How long a workspace on `plan` may be idle before it sleeps (0 = never).
  Duration idle_timeout_of(const Plan& plan) const { return plan.idle_timeout.value_or(idle_timeout); }
  bool operator==(const Config&) const = default;  // every field (the reload test compares whole configurations)
};

}  // namespace feuille
