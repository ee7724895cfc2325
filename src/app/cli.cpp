#include "app/cli.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>

#include "auth/workspace_origin.hpp"
#include "util/units.hpp"

namespace feuille::app {
namespace {

using Values = std::vector<std::string>;
using Apply = std::function<void(Config&, const Values&)>;

enum class Kind { value, list, flag };

struct Key {
  KeyInfo info;
  Kind kind;
  Apply apply;  // called with the effective values (given, else default); not called when empty
};

[[noreturn]] void fail(const std::string& key, const std::string& message) {
  throw ConfigError(key + ": " + message);
}

const std::string& single(const std::string& key, const Values& v) {
  if (v.size() != 1) fail(key, "takes one value, got " + std::to_string(v.size()));
  return v.front();
}

std::string show(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) out += "?";
    else out.push_back(c);
  }
  return out + "\"";
}

// An http(s) origin whose host is loopback: 127.0.0.0/8, ::1, localhost
// or a name under .localhost (browsers resolve those to loopback).
bool loopback_origin(const std::string& origin) {
  std::string host = origin.substr(origin.find("://") + 3);
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else {
    host = host.substr(0, host.find(':'));
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (host == "localhost" || (host.size() > 10 && host.ends_with(".localhost"))) return true;
  }
  return Endpoint{host, 0}.is_loopback();
}

// Builders that know their key name (set when the table is built).
struct Builder {
  std::string key;

  Apply duration(Duration Config::*field, bool allow_zero = true) const {
    return [key = key, field, allow_zero](Config& c, const Values& v) {
      auto d = units::parse_duration(single(key, v));
      if (!d) fail(key, show(v.front()) + " is not a duration (use e.g. 500ms, 30s, 15m, 2h, 30d, or 0)");
      if (!allow_zero && d->count() == 0) fail(key, "must be greater than 0");
      c.*field = *d;
    };
  }
  Apply text(std::string Config::*field, bool secret = false) const {
    return [key = key, field, secret](Config& c, const Values& v) {
      const auto& s = single(key, v);
      if (s.find_first_of("\r\n") != std::string::npos)
        fail(key, secret ? "must be one line" : show(s) + " must be one line");
      c.*field = s;
    };
  }
  Apply integer(int Config::*field, int min, int max) const {
    return [key = key, field, min, max](Config& c, const Values& v) {
      const auto& s = single(key, v);
      int n = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || n < min || n > max)
        fail(key, show(s) + " is not a whole number from " + std::to_string(min) + " to " +
                      std::to_string(max));
      c.*field = n;
    };
  }
  Apply percent(double Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      auto p = units::parse_percent(single(key, v));
      if (!p) fail(key, show(v.front()) + " is not a percentage from 0 to 100");
      c.*field = *p;
    };
  }
  Apply url(std::string Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      static const std::regex re(R"(^https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?(/[^\s]*)?$)");
      if (!std::regex_match(s, re)) fail(key, show(s) + " is not an http:// or https:// URL");
      c.*field = s;
    };
  }
  Apply path(std::string Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      if (s.empty()) fail(key, "must not be empty");
      c.*field = std::filesystem::absolute(s).lexically_normal().string();
      if (c.*field != "/" && (c.*field).back() == '/') (c.*field).pop_back();
    };
  }
  Apply health_path(std::string Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      if (s.empty() || s.front() != '/' || s.find_first_of(" \r\n\t") != std::string::npos)
        fail(key, show(s) + " must be a path starting with /");
      c.*field = s;
    };
  }
  Apply command(std::string Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      try {
        if (units::shell_split(s).empty()) fail(key, "must not be empty");
      } catch (const std::invalid_argument& e) {
        fail(key, std::string("cannot be split into words: ") + e.what());
      }
      c.*field = s;
    };
  }
  Apply cidrs(std::vector<Cidr> Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      (c.*field).clear();
      for (const auto& item : v)
        for (const auto& part : units::split_list(item)) {
          auto cidr = units::parse_cidr(part);
          if (!cidr) fail(key, show(part) + " is not an address or address/prefix");
          (c.*field).push_back(*cidr);
        }
    };
  }
  Apply image(std::string Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      static const std::regex re(R"(^[A-Za-z0-9][A-Za-z0-9._/:@\-]*$)");
      if (!std::regex_match(s, re)) fail(key, show(s) + " is not an image reference");
      c.*field = s;
    };
  }
  Apply size(std::uint64_t Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      auto n = units::parse_size(s);
      if (!n || s.find('-') != std::string::npos) fail(key, show(s) + " is not a size (e.g. 64M, 512K, 0)");
      c.*field = *n;
    };
  }
  Apply id(std::uint32_t Config::*field) const {
    return [key = key, field](Config& c, const Values& v) {
      const auto& s = single(key, v);
      std::uint32_t n = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size())
        fail(key, show(s) + " is not a numeric user or group id");
      c.*field = n;
    };
  }
};

// "k=v,k=v" into a map; keys must be among `allowed`.
std::map<std::string, std::string> parse_kv(const std::string& key, const std::string& text,
                                            std::initializer_list<std::string_view> allowed) {
  std::map<std::string, std::string> out;
  for (const auto& part : units::split_list(text)) {
    auto eq = part.find('=');
    if (eq == std::string::npos) fail(key, show(part) + " is not name=value");
    std::string k(units::trim(std::string_view(part).substr(0, eq)));
    std::string v(units::trim(std::string_view(part).substr(eq + 1)));
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(key, "unknown field " + show(k) + " (fields: " + list + ")");
    }
    if (!out.emplace(k, v).second) fail(key, "field " + show(k) + " given twice");
  }
  return out;
}

bool valid_name(const std::string& s) {
  static const std::regex re("^[a-z0-9][a-z0-9-]{0,31}$");
  return std::regex_match(s, re);
}

void apply_compute_hosts(Config& c, const Values& values) {
  const std::string key = "compute-host";
  c.compute_hosts.clear();
  for (const auto& text : values) {
    auto kv = parse_kv(key, text, {"name", "url", "address", "memory"});
    ComputeHost h;
    h.name = kv["name"];
    h.url = kv["url"];
    if (!valid_name(h.name)) fail(key, "name " + show(h.name) + " must be lowercase letters, digits and -");
    if (h.url.rfind("tcp://", 0) == 0)
      fail(key, "url " + show(h.url) +
                    " is refused: a Podman API over plain TCP is root on that host for anyone who reaches it "
                    "(use unix:///path)");
    static const std::regex url_re(R"(^unix://(/[^\s]+)$)");
    if (!std::regex_match(h.url, url_re)) fail(key, "url " + show(h.url) + " must be unix:///path");
    // address= is from before isolation, when runtimes were published on it:
    // still accepted, without effect, but never 0.0.0.0.
    if (kv.count("address")) {
      const auto& a = kv["address"];
      if (!units::parse_ip(a)) fail(key, "address " + show(a) + " must be an IP address");
      if (a == "0.0.0.0" || a == "::" || a == "[::]")
        fail(key, "address " + show(a) + " is refused (it would publish on every interface); leave it out");
    }
    if (kv.count("memory")) {
      auto m = units::parse_size(kv["memory"]);
      if (!m || *m == 0) fail(key, "memory " + show(kv["memory"]) + " is not a size (e.g. 64G)");
      h.memory_bytes = *m;
    }
    for (const auto& other : c.compute_hosts)
      if (other.name == h.name) fail(key, "name " + show(h.name) + " given twice");
    c.compute_hosts.push_back(h);
  }
}

void apply_plans(Config& c, const Values& values) {
  const std::string key = "plan";
  c.plans = default_plans();
  for (const auto& text : values) {
    auto kv = parse_kv(key, text, {"name", "memory", "cpus", "idle-timeout", "snapshots", "snapshot-bytes", "disk"});
    const std::string name = kv["name"];
    if (!valid_name(name)) fail(key, "name " + show(name) + " must be lowercase letters, digits and -");
    auto it = std::find_if(c.plans.begin(), c.plans.end(), [&](auto& p) { return p.name == name; });
    bool builtin = it != c.plans.end();
    if (!builtin && (!kv.count("memory") || !kv.count("cpus")))
      fail(key, "plan " + show(name) + " needs memory= and cpus=");
    Plan p = builtin ? *it : Plan{name, 0, 0, std::nullopt, 3, 2ull << 30, 1ull << 30};
    if (kv.count("memory")) {
      auto m = units::parse_size(kv["memory"]);
      if (!m || *m < 6 * 1024 * 1024) fail(key, "memory " + show(kv["memory"]) + " is not a size of at least 6M");
      p.memory_bytes = *m;
    }
    if (kv.count("cpus")) {
      double cpus = 0;
      const auto& s = kv["cpus"];
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), cpus);
      if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || !(cpus > 0) || cpus > 1024)
        fail(key, "cpus " + show(s) + " is not a positive number");
      p.cpus = cpus;
    }
    if (kv.count("idle-timeout")) {
      auto d = units::parse_duration(kv["idle-timeout"]);
      if (!d) fail(key, "idle-timeout " + show(kv["idle-timeout"]) + " is not a duration (e.g. 15m, or 0 for never)");
      p.idle_timeout = *d;
    }
    if (kv.count("snapshots")) {
      int n = -1;
      const auto& s = kv["snapshots"];
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || n < 0 || n > 1000)
        fail(key, "snapshots " + show(s) + " is not a whole number from 0 to 1000");
      p.snapshots = n;
    }
    if (kv.count("snapshot-bytes")) {
      auto b = units::parse_size(kv["snapshot-bytes"]);
      if (!b) fail(key, "snapshot-bytes " + show(kv["snapshot-bytes"]) + " is not a size");
      p.snapshot_bytes = *b;
    }
    if (kv.count("disk")) {
      auto b = units::parse_size(kv["disk"]);
      if (!b) fail(key, "disk " + show(kv["disk"]) + " is not a size");
      p.disk_bytes = *b;
    }
    if (builtin) *it = p;
    else c.plans.push_back(p);
  }
}

const std::string kEditorCommand =
    "node /app/mrmd-server/bin/cli.js --port {port} --host 127.0.0.1 --token {token} /home/user";
const std::string kRuntimeCommand =
    "bash -lc 'rm -f ~/.mrmd/runtimes/default.json && exec mrmd-python --foreground --port 8888 "
    "--host 0.0.0.0 --id default'";

std::vector<Key> build_table() {
  std::vector<Key> t;
  auto add = [&](std::string name, Kind kind, std::string def, std::string help, bool reloadable,
                 std::function<Apply(const Builder&)> make, bool secret = false) {
    Builder b{name};
    t.push_back(Key{KeyInfo{name, def, help, reloadable, kind == Kind::list, secret}, kind, make(b)});
  };
  using B = const Builder&;
  auto flag = [](bool Config::*field) {
    return [field](B) -> Apply {
      return [field](Config& c, const Values& v) { c.*field = !v.empty() && v.back() == "true"; };
    };
  };

  // process
  add("state-dir", Kind::value, "./.feuille", "state folder of --dev (embedded PostgreSQL, podman socket, data)", false,
      [](B b) { return b.path(&Config::state_dir); });
  add("listen", Kind::list, "127.0.0.1:8080", "HTTP listen address host:port (repeatable; port 0 = any free port)", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          c.listen.clear();
          for (const auto& item : v)
            for (const auto& part : units::split_list(item)) {
              auto ep = units::parse_endpoint(part);
              if (!ep) fail(key, show(part) + " is not host:port (IP literal or localhost; IPv6 in brackets)");
              c.listen.push_back(*ep);
            }
          if (c.listen.empty()) fail(key, "needs at least one address");
        };
      });
  add("trusted-proxies", Kind::list, "127.0.0.1/32, ::1/128", "addresses whose X-Forwarded-For is believed", false,
      [](B b) { return b.cidrs(&Config::trusted_proxies); });
  add("metrics-allow", Kind::list, "127.0.0.1/32, ::1/128", "client addresses allowed to read /metrics", false,
      [](B b) { return b.cidrs(&Config::metrics_allow); });
  add("public-url", Kind::value, "", "external origin (default: http://<first listen address>)", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          static const std::regex re(R"(^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|^https?://\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?)");
          std::string trimmed = s;
          while (!trimmed.empty() && trimmed.back() == '/') trimmed.pop_back();
          if (!std::regex_match(trimmed, re))
            fail(key, show(s) + " must be an origin like https://feuille.example.org (no path)");
          c.public_url = trimmed;
        };
      });
  add("workspace-origin", Kind::value, "",
      "origin each workspace is served on, {id} = the owner's id (e.g. https://{id}.ws.example.com; {port} = the first "
      "bound port; --dev: http://{id}.ws.localhost:{port})",
      false, [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          std::string probe = s;
          if (auto at = probe.find("{port}"); at != std::string::npos) probe.replace(at, 6, "1");
          try {
            auth::WorkspaceOrigin check(probe);
          } catch (const std::invalid_argument& e) {
            fail(key, show(s) + " " + e.what());
          }
          c.workspace_origin = s;
        };
      });
  add("workspace-ticket-lifetime", Kind::value, "60s",
      "how long the single-use ticket onto a workspace origin lasts (1s to 60s)", false, [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          auto d = units::parse_duration(s);
          if (!d || d->count() < 1000 || d->count() > 60'000) fail(key, show(s) + " is not a duration from 1s to 60s");
          c.workspace_ticket_lifetime = *d;
        };
      });
  add("shutdown-grace", Kind::value, "10s", "time given to in-flight work on SIGTERM", false,
      [](B b) { return b.duration(&Config::shutdown_grace); });
  add("http-header-timeout", Kind::value, "10s", "time a client has to send a request's header", false,
      [](B b) { return b.duration(&Config::header_timeout, false); });
  add("http-keepalive-timeout", Kind::value, "75s", "idle time before a keep-alive connection is closed", false,
      [](B b) { return b.duration(&Config::keepalive_timeout, false); });
  add("worker-threads", Kind::value, "4", "threads for blocking work (database, rendering, files)", false,
      [](B b) { return b.integer(&Config::worker_threads, 1, 64); });
  add("log-level", Kind::value, "info", "trace, debug, info, warn, error, critical or off", true,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          static const std::vector<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
          if (std::find(levels.begin(), levels.end(), s) == levels.end())
            fail(key, show(s) + " is not one of trace, debug, info, warn, error, critical, off");
          c.log_level = s;
        };
      });
  add("log-format", Kind::value, "text", "text, or json for one object per line", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          if (s != "text" && s != "json") fail(key, show(s) + " is not text or json");
          c.log_format = s;
        };
      });

  // database
  add("database-url", Kind::value, "", "libpq URI or key=value string (required unless --dev)", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          bool uri = s.rfind("postgres://", 0) == 0 || s.rfind("postgresql://", 0) == 0;
          bool kv = s.find('=') != std::string::npos;
          if (!uri && !kv) fail(key, "must be a postgresql:// URI or a key=value connection string");
          if (s.find_first_of("\r\n") != std::string::npos) fail(key, "must be one line");
          c.database_url = s;
        };
      },
      true);
  add("db-pool-size", Kind::value, "8", "database connections", false,
      [](B b) { return b.integer(&Config::db_pool_size, 1, 256); });
  add("db-statement-timeout", Kind::value, "5s", "server-side statement_timeout of every query", false,
      [](B b) { return b.duration(&Config::db_statement_timeout, false); });
  add("db-connect-timeout", Kind::value, "3s", "time allowed to open a database connection", false,
      [](B b) { return b.duration(&Config::db_connect_timeout, false); });

  // storage
  add("data-dir", Kind::value, "/data/users", "per-user folders <data-dir>/<user id>/", false,
      [](B b) { return b.path(&Config::data_dir); });
  add("snapshot-dir", Kind::value, "/data/snapshots", "checkpoint archives", false,
      [](B b) { return b.path(&Config::snapshot_dir); });
  add("workspace-uid", Kind::value, "1000", "owner uid of new workspace files (the images' user)", false,
      [](B b) { return b.id(&Config::workspace_uid); });
  add("workspace-gid", Kind::value, "1000", "owner gid of new workspace files", false,
      [](B b) { return b.id(&Config::workspace_gid); });

  // compute
  add("compute-host", Kind::list, "name=local,url=unix:///run/podman/podman.sock",
      "Podman host name=,url=unix:///PATH[,memory=SIZE] (repeatable; first = editors' host)", false,
      [](B) -> Apply { return apply_compute_hosts; });
  add("egress-address", Kind::value, "198.18.0.1",
      "IPv4 address tenants' outbound connections are made from; feuilled puts it on lo and installs nftables "
      "rules keyed on it (off = unfiltered)",
      false, [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          if (s == "off") {
            c.egress_address.clear();
            return;
          }
          auto ip = units::parse_ip(s);
          if (!ip || s.find(':') != std::string::npos) fail(key, show(s) + " is not an IPv4 address (or off)");
          if (s.rfind("127.", 0) == 0 || s == "0.0.0.0") fail(key, show(s) + " cannot be a loopback or any address");
          c.egress_address = s;
        };
      });
  add("egress-allow", Kind::list, "",
      "IPv4 ranges tenants may reach although private or link-local (a proxy, a package mirror)", false,
      [](B b) { return b.cidrs(&Config::egress_allow); });
  add("oci-runtime", Kind::value, "runc", "OCI runtime asked of Podman", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          if (!valid_name(s)) fail(key, show(s) + " is not a runtime name");
          c.oci_runtime = s;
        };
      });
  add("editor-image", Kind::value, "mrmd-editor:latest", "editor image", false,
      [](B b) { return b.image(&Config::editor_image); });
  add("runtime-image", Kind::value, "mrmd-runtime:latest", "runtime image", false,
      [](B b) { return b.image(&Config::runtime_image); });
  add("editor-command", Kind::value, kEditorCommand, "editor command template ({port} {token} {user_id} {base_path})",
      false, [](B b) { return b.command(&Config::editor_command); });
  add("runtime-command", Kind::value, kRuntimeCommand, "runtime command template", false,
      [](B b) { return b.command(&Config::runtime_command); });
  add("runtime-user", Kind::value, "",
      "uid[:gid] the runtime's process runs as (empty: the image's user; CRIU without CAP_SYS_RESOURCE dumps only uid 0)",
      false, [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          static const std::regex form("([0-9]{1,10})(:[0-9]{1,10})?");
          if (!s.empty() && !std::regex_match(s, form)) fail(key, show(s) + " is not uid or uid:gid (numbers)");
          c.runtime_user = s;
        };
      });
  add("criu", Kind::value, "auto",
      "auto: checkpoints (sleep, snapshots, forks) are used when a probe at start shows they work; off: never", false,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          if (s != "auto" && s != "off") fail(key, show(s) + " is not auto or off");
          c.criu = s == "auto";
        };
      });
  add("editor-health-path", Kind::value, "/health", "editor readiness probe", false,
      [](B b) { return b.health_path(&Config::editor_health_path); });
  add("runtime-health-path", Kind::value, "/mrp/v1/capabilities", "runtime readiness probe", false,
      [](B b) { return b.health_path(&Config::runtime_health_path); });
  add("start-timeout", Kind::value, "60s", "workspace start deadline", false,
      [](B b) { return b.duration(&Config::start_timeout, false); });
  add("start-concurrency", Kind::value, "8", "workspace starts in flight across users", true,
      [](B b) { return b.integer(&Config::start_concurrency, 1, 1024); });
  add("proxy-max-per-user", Kind::value, "200",
      "proxied requests and WebSockets open at once per workspace and caller (429 past it)", true,
      [](B b) { return b.integer(&Config::proxy_max_per_user, 1, 1'000'000); });
  add("proxy-max-per-client", Kind::value, "1000",
      "proxied requests and WebSockets open at once per client address (after trusted-proxies; 429 past it)", true,
      [](B b) { return b.integer(&Config::proxy_max_per_client, 1, 1'000'000); });
  add("proxy-websocket-ping", Kind::value, "60s",
      "a proxied WebSocket quiet this long gets a ping; unanswered as long again, it is closed (0 = never)", true,
      [](B b) { return b.duration(&Config::proxy_websocket_ping); });

  add("background-routes", Kind::list, "/api/machines, /api/machines/active",
      "editor paths its pages poll by themselves: proxied, not counted as activity (idle sleep)", true,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          c.background_routes.clear();
          for (const auto& item : v)
            for (const auto& path : units::split_list(item)) {
              if (path.empty() || path.front() != '/' || path.find_first_of("?# \t") != std::string::npos)
                fail(key, show(path) + " is not a path (/api/machines)");
              c.background_routes.push_back(path);
            }
        };
      });
  add("gateway-max-per-workspace", Kind::value, "256",
      "connections to a workspace's runtime (its sandboxes' included) open at once through the gateway (503 past it)",
      false, [](B b) { return b.integer(&Config::gateway_max_per_workspace, 1, 100'000); });
  add("gateway-idle-timeout", Kind::value, "30m",
      "a runtime gateway connection with no byte either way this long is closed (0 = never)", false,
      [](B b) { return b.duration(&Config::gateway_idle_timeout); });

  // publish
  add("publish-cache-size", Kind::value, "64M", "memory for rendered published pages (0 = render every request)",
      false, [](B b) { return b.size(&Config::publish_cache_bytes); });
  add("publish-render-memory", Kind::value, "128M",
      "memory one page render may use (past it the page shows a could-not-render notice)", true,
      [](B b) { return b.size(&Config::publish_render_memory); });
  add("publish-render-timeout", Kind::value, "2s", "time one page render may take (past it, the same notice)", true,
      [](B b) { return b.duration(&Config::publish_render_timeout, false); });

  // auth
  add("github-client-id", Kind::value, "", "GitHub OAuth app client id (absent = GitHub sign-in off)", false,
      [](B b) { return b.text(&Config::github_client_id); });
  add("github-client-secret", Kind::value, "", "GitHub OAuth app client secret", false,
      [](B b) { return b.text(&Config::github_client_secret, true); }, true);
  add("github-authorize-url", Kind::value, "https://github.com/login/oauth/authorize", "GitHub authorize endpoint",
      false, [](B b) { return b.url(&Config::github_authorize_url); });
  add("github-token-url", Kind::value, "https://github.com/login/oauth/access_token", "GitHub token endpoint", false,
      [](B b) { return b.url(&Config::github_token_url); });
  add("github-api-url", Kind::value, "https://api.github.com", "GitHub API base", false,
      [](B b) { return b.url(&Config::github_api_url); });
  add("google-client-id", Kind::value, "", "Google OAuth client id (absent = Google sign-in off)", false,
      [](B b) { return b.text(&Config::google_client_id); });
  add("google-client-secret", Kind::value, "", "Google OAuth client secret", false,
      [](B b) { return b.text(&Config::google_client_secret, true); }, true);
  add("google-authorize-url", Kind::value, "https://accounts.google.com/o/oauth2/v2/auth", "Google authorize endpoint",
      false, [](B b) { return b.url(&Config::google_authorize_url); });
  add("google-token-url", Kind::value, "https://oauth2.googleapis.com/token", "Google token endpoint", false,
      [](B b) { return b.url(&Config::google_token_url); });
  add("google-userinfo-url", Kind::value, "https://openidconnect.googleapis.com/v1/userinfo",
      "Google userinfo endpoint", false, [](B b) { return b.url(&Config::google_userinfo_url); });
  add("google-hosted-domain", Kind::value, "", "only accept Google accounts of this Workspace domain (hd claim)",
      false, [](B b) { return b.text(&Config::google_hosted_domain); });
  add("signup", Kind::value, "open", "open, or closed: only existing users and invitees get an account", true,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          const auto& s = single(key, v);
          if (s == "open") c.signup = Signup::open;
          else if (s == "closed") c.signup = Signup::closed;
          else fail(key, show(s) + " is not open or closed");
        };
      });
  add("admins", Kind::list, "", "handles of operators (comma-separated or repeated)", true,
      [](B b) -> Apply {
        return [key = b.key](Config& c, const Values& v) {
          static const std::regex re("^[A-Za-z0-9-]{1,39}$");
          c.admins.clear();
          for (const auto& item : v)
            for (const auto& h : units::split_list(item)) {
              if (!std::regex_match(h, re)) fail(key, show(h) + " is not a handle");
              c.admins.push_back(h);
            }
        };
      });
  add("dev-login", Kind::flag, "false", "enable POST /auth/dev (loopback listen addresses only)", false,
      flag(&Config::dev_login));
  add("session-ttl", Kind::value, "30d", "session lifetime", false,
      [](B b) { return b.duration(&Config::session_ttl, false); });
  add("oauth-timeout", Kind::value, "10s", "deadline of each call to an OAuth provider (token, user info)", false,
      [](B b) { return b.duration(&Config::oauth_timeout, false); });

  // monitor and policies
  add("monitor-interval", Kind::value, "5s", "stats poll period", true,
      [](B b) { return b.duration(&Config::monitor_interval, false); });
  add("idle-timeout", Kind::value, "15m", "sleep a workspace idle this long (0 = never; a plan's own wins)", true,
      [](B b) { return b.duration(&Config::idle_timeout); });
  add("idle-cpu-percent", Kind::value, "1", "CPU below this counts as idle", true,
      [](B b) { return b.percent(&Config::idle_cpu_percent); });
  add("drain-timeout", Kind::value, "10s",
      "before a sleep, how long open connections from the editor to the runtime may take to end (then cut)", true,
      [](B b) { return b.duration(&Config::drain_timeout); });
  add("preprovision-percent", Kind::value, "50", "memory use (of the limit) that reserves a bigger host", true,
      [](B b) { return b.percent(&Config::preprovision_percent); });
  add("migrate-percent", Kind::value, "75", "memory use (of the limit) that migrates to the bigger host", true,
      [](B b) { return b.percent(&Config::migrate_percent); });
  add("plan", Kind::list, "",
      "plan limits name=,memory=,cpus=,idle-timeout=,snapshots=,snapshot-bytes=,disk= (repeatable; overrides "
      "free/pro/team by name)",
      true, [](B) -> Apply { return apply_plans; });
  return t;
}

const std::vector<Key>& table() {
  static const std::vector<Key> t = build_table();
  return t;
}

// CLI11 messages are reworded to lead with the key.
std::string reword(const CLI::Error& e) {
  std::string msg = e.what();
  const std::string extras = "INI was not able to parse ";
  if (msg.rfind(extras, 0) == 0) {
    std::string key = msg.substr(extras.size());
    return key + ": unknown configuration key";
  }
  const std::string unexpected = "The following argument was not expected: ";
  if (msg.rfind(unexpected, 0) == 0) return msg.substr(unexpected.size()) + ": unknown option or argument";
  const std::string unexpected2 = "The following arguments were not expected: ";
  if (msg.rfind(unexpected2, 0) == 0) return msg.substr(unexpected2.size()) + ": unknown options or arguments";
  for (auto& ch : msg)
    if (ch == '\n') ch = ' ';
  return msg;
}

}  // namespace

std::vector<Plan> default_plans() {
  return {
      Plan{"free", 256ull << 20, 0.5, Duration{15 * 60'000}, 3, 2ull << 30, 1ull << 30},
      Plan{"pro", 512ull << 20, 1.0, Duration{60 * 60'000}, 10, 10ull << 30, 4ull << 30},
      Plan{"team", 1ull << 30, 2.0, Duration{0}, 25, 50ull << 30, 16ull << 30},
  };
}

const std::vector<KeyInfo>& config_keys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> out;
    for (const auto& k : table()) out.push_back(k.info);
    return out;
  }();
  return keys;
}

Invocation parse_invocation(const std::vector<std::string>& argv_in) {
  Invocation inv;
  CLI::App app{"feuilled: the Feuille control plane", "feuilled"};
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.option_defaults()->always_capture_default(false);
  app.get_formatter()->column_width(34);
  std::string config_file;
  auto* config_opt = app.set_config("--config", "", "read keys from FILE (CLI11/TOML format; the command line wins)");
  (void)config_opt;
  app.set_version_flag("--version", std::string("feuilled ") + FEUILLE_VERSION + " (" + FEUILLE_COMMIT + ")");
  bool dev = false;
  auto* dev_opt = app.add_flag("--dev", dev, "run the whole product on this machine with nothing configured");

  std::map<std::string, Values> raw;
  std::map<std::string, CLI::Option*> opts;
  for (const auto& k : table()) {
    std::string help = k.info.help;
    if (!k.info.default_text.empty() && !k.info.secret) help += " [default: " + k.info.default_text + "]";
    if (k.info.reloadable) help += " (reloadable)";
    CLI::Option* o = nullptr;
    if (k.kind == Kind::flag) {
      o = app.add_flag("--" + k.info.name, raw[k.info.name], help)->disable_flag_override(false);
      o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    } else {
      o = app.add_option("--" + k.info.name, raw[k.info.name], help)->type_name("VALUE");
      o->multi_option_policy(k.kind == Kind::list ? CLI::MultiOptionPolicy::TakeAll
                                                  : CLI::MultiOptionPolicy::TakeLast);
      if (k.kind == Kind::value) o->expected(1);
    }
    o->group(k.info.reloadable ? "Keys (reloadable on SIGHUP)" : "Keys");
    opts[k.info.name] = o;
  }

  app.require_subcommand(0, 1);
  auto* migrate = app.add_subcommand("migrate", "apply pending schema migrations and exit");
  auto* check = app.add_subcommand("check", "validate the configuration, reach the database and every host, exit 0 or 1");
  auto* user = app.add_subcommand("user", "operator commands on users");
  user->require_subcommand(1, 1);
  auto* user_list = user->add_subcommand("list", "list users with their plan");
  auto* set_plan = user->add_subcommand("set-plan", "change a user's plan (applies at the next start)");
  std::string handle, plan;
  set_plan->add_option("HANDLE", handle, "the user's handle")->required();
  set_plan->add_option("PLAN", plan, "plan name")->required();
  for (auto* sub : {migrate, check, user, user_list, set_plan}) sub->fallthrough();

  std::vector<std::string> args(argv_in.begin() + (argv_in.empty() ? 0 : 1), argv_in.end());
  std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    inv.exit_code = 0;
    inv.output = app.help();
    return inv;
  } catch (const CLI::CallForAllHelp&) {
    inv.exit_code = 0;
    inv.output = app.help("", CLI::AppFormatMode::All);
    return inv;
  } catch (const CLI::CallForVersion& e) {
    inv.exit_code = 0;
    inv.output = e.what();
    inv.output += "\n";
    return inv;
  } catch (const CLI::FileError& e) {
    throw ConfigError(std::string("config: ") + e.what());
  } catch (const CLI::ParseError& e) {
    throw ConfigError(reword(e));
  }

  if (*migrate) inv.command = Command::migrate;
  else if (*check) inv.command = Command::check;
  else if (*user_list) inv.command = Command::user_list;
  else if (*set_plan) {
    inv.command = Command::user_set_plan;
    inv.args = {handle, plan};
  }

  Config& c = inv.config;
  c.dev = dev && dev_opt->count() > 0;
  if (auto* f = app.get_config_ptr(); f && f->count() > 0) c.config_file = f->as<std::string>();
  c.plans = default_plans();
  auto given = [&](const std::string& k) { return opts[k]->count() > 0 && !raw[k].empty(); };
  for (const auto& k : table()) {
    Values values = given(k.info.name) ? raw[k.info.name] : Values{};
    if (values.empty() && !k.info.default_text.empty() && k.kind != Kind::flag) values = {k.info.default_text};
    if (!values.empty() || k.kind == Kind::flag) k.apply(c, values);
  }
  c.compute_hosts_given = given("compute-host");

  // Dev mode: everything under the state folder, dev login on unless turned off.
  if (c.dev) {
    if (!given("data-dir")) c.data_dir = c.state_dir + "/users";
    if (!given("snapshot-dir")) c.snapshot_dir = c.state_dir + "/snapshots";
    if (!given("dev-login")) c.dev_login = true;
    if (!given("workspace-origin")) c.workspace_origin = "http://{id}.ws.localhost:{port}";
  }

  // Cross-key rules.
  if (c.dev_login) {
    for (const auto& ep : c.listen)
      if (!ep.is_loopback())
        fail("dev-login", "refused because listen address " + ep.text() + " is not loopback");
    // Behind a proxy on the same machine (Caddy), every listen address is
    // loopback while anyone can reach it: the public origin must be too.
    if (!c.public_url.empty() && !loopback_origin(c.public_url))
      fail("dev-login", "refused because public-url " + c.public_url + " is not a loopback origin");
  }
  if (c.preprovision_percent > c.migrate_percent)
    fail("migrate-percent", "must not be below preprovision-percent");
  if (c.github_client_id.empty() != c.github_client_secret.empty())
    fail(c.github_client_id.empty() ? "github-client-id" : "github-client-secret",
         "is required when the other GitHub client key is set");
  if (c.google_client_id.empty() != c.google_client_secret.empty())
    fail(c.google_client_id.empty() ? "google-client-id" : "google-client-secret",
         "is required when the other Google client key is set");
  if (!c.dev && c.database_url.empty()) fail("database-url", "is required (or run with --dev)");
  for (const auto& cidr : c.egress_allow)
    if (cidr.text.find(':') != std::string::npos)
      fail("egress-allow", show(cidr.text) + " is IPv6: tenants have IPv4 egress only");
  if (inv.command == Command::user_set_plan && !c.find_plan(plan))
    fail("plan", show(plan) + " is not a configured plan");

  for (const auto& k : table()) inv.raw[k.info.name] = given(k.info.name) ? raw[k.info.name] : Values{};
  return inv;
}

void apply_reloadable(const Invocation& next, Config& into) {
  for (const auto& k : table()) {
    if (!k.info.reloadable) continue;
    auto it = next.raw.find(k.info.name);
    Values values = it == next.raw.end() ? Values{} : it->second;
    if (values.empty() && !k.info.default_text.empty() && k.kind != Kind::flag) values = {k.info.default_text};
    if (k.info.name == "plan") into.plans = default_plans();  // plan entries override the built-in ones
    if (!values.empty() || k.kind != Kind::value) k.apply(into, values);  // an emptied list empties
  }
}

std::vector<std::string> changed_restart_keys(const Invocation& a, const Invocation& b) {
  std::vector<std::string> out;
  for (const auto& k : table()) {
    if (k.info.reloadable) continue;
    auto ia = a.raw.find(k.info.name), ib = b.raw.find(k.info.name);
    Values va = ia == a.raw.end() ? Values{} : ia->second;
    Values vb = ib == b.raw.end() ? Values{} : ib->second;
    if (va != vb) out.push_back(k.info.name);
  }
  return out;
}

}  // namespace feuille::app
