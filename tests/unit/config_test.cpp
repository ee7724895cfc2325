#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "app/cli.hpp"
#include "support/process.hpp"

using namespace feuille;
using namespace feuille::app;
using feuille::test::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

const std::string kDb = "postgresql://feuille@localhost/feuille";

Invocation parse(std::vector<std::string> args) {
  args.insert(args.begin(), "feuilled");
  return parse_invocation(args);
}

// The one-line error for these arguments.
std::string error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no error";
  return "";
}

}  // namespace

TEST(Config, DefaultsMatchTheSpec) {
  auto inv = parse({"--database-url", kDb});
  const Config& c = inv.config;
  EXPECT_EQ(inv.command, Command::run);
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].text(), "127.0.0.1:8080");
  ASSERT_EQ(c.trusted_proxies.size(), 2u);
  EXPECT_EQ(c.trusted_proxies[1].text, "::1/128");
  EXPECT_EQ(c.public_url, "");
  EXPECT_EQ(c.db_pool_size, 8);
  EXPECT_EQ(c.data_dir, "/data/users");
  EXPECT_EQ(c.snapshot_dir, "/data/snapshots");
  ASSERT_EQ(c.compute_hosts.size(), 1u);
  EXPECT_EQ(c.compute_hosts[0].name, "local");
  EXPECT_EQ(c.compute_hosts[0].url, "unix:///run/podman/podman.sock");
  EXPECT_EQ(c.egress_address, "198.18.0.1");
  EXPECT_TRUE(c.egress_allow.empty());
  EXPECT_FALSE(c.compute_hosts_given);
  // Accepted from before isolation, without effect; off turns egress filtering off.
  auto old = parse({"--database-url", kDb, "--compute-host", "name=a,url=unix:///s,address=127.0.0.1",
                    "--egress-address", "off", "--egress-allow", "10.1.2.3, 192.168.7.0/24"});
  EXPECT_EQ(old.config.compute_hosts[0].url, "unix:///s");
  EXPECT_EQ(old.config.egress_address, "");
  ASSERT_EQ(old.config.egress_allow.size(), 2u);
  EXPECT_EQ(old.config.egress_allow[1].text, "192.168.7.0/24");
  EXPECT_EQ(c.oci_runtime, "runc");
  EXPECT_EQ(c.editor_image, "mrmd-editor:latest");
  EXPECT_EQ(c.runtime_image, "mrmd-runtime:latest");
  EXPECT_EQ(c.editor_command,
            "node /app/mrmd-server/bin/cli.js --port {port} --host 127.0.0.1 --token {token} /home/user");
  EXPECT_THAT(c.runtime_command, HasSubstr("exec mrmd-python --foreground --port 8888"));
  EXPECT_EQ(c.editor_health_path, "/health");
  EXPECT_EQ(c.runtime_health_path, "/mrp/v1/capabilities");
  EXPECT_EQ(c.runtime_user, "");
  EXPECT_TRUE(c.criu);
  EXPECT_EQ(c.start_timeout.count(), 60'000);
  EXPECT_EQ(c.start_concurrency, 8);
  EXPECT_EQ(c.proxy_max_per_user, 200);
  EXPECT_EQ(c.publish_cache_bytes, 64ull << 20);
  EXPECT_EQ(c.publish_render_memory, 128ull << 20);
  EXPECT_EQ(c.publish_render_timeout.count(), 2000);
  EXPECT_EQ(c.gateway_max_per_workspace, 256);
  EXPECT_EQ(c.background_routes, (std::vector<std::string>{"/api/machines", "/api/machines/active"}));
  EXPECT_EQ(c.gateway_idle_timeout.count(), 1'800'000);
  EXPECT_EQ(c.github_authorize_url, "https://github.com/login/oauth/authorize");
  EXPECT_EQ(c.github_token_url, "https://github.com/login/oauth/access_token");
  EXPECT_EQ(c.github_api_url, "https://api.github.com");
  EXPECT_EQ(c.google_authorize_url, "https://accounts.google.com/o/oauth2/v2/auth");
  EXPECT_EQ(c.signup, Signup::open);
  EXPECT_FALSE(c.dev_login);
  EXPECT_EQ(c.session_ttl.count(), 30LL * 86'400'000);
  EXPECT_EQ(c.oauth_timeout.count(), 10'000);
  EXPECT_EQ(c.monitor_interval.count(), 5000);
  EXPECT_EQ(c.idle_timeout.count(), 900'000);
  EXPECT_EQ(c.idle_cpu_percent, 1);
  EXPECT_EQ(c.drain_timeout, Duration{10'000});
  EXPECT_EQ(c.preprovision_percent, 50);
  EXPECT_EQ(c.migrate_percent, 75);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.shutdown_grace.count(), 10'000);
  EXPECT_EQ(c.header_timeout.count(), 10'000);
  EXPECT_EQ(c.workspace_uid, 1000u);
  ASSERT_EQ(c.plans.size(), 3u);
  const Plan* free = c.find_plan("free");
  ASSERT_TRUE(free);
  EXPECT_EQ(free->memory_bytes, 256ull << 20);
  EXPECT_EQ(free->cpus, 0.5);
  EXPECT_EQ(free->idle_timeout->count(), 900'000);
  EXPECT_EQ(c.find_plan("pro")->memory_bytes, 512ull << 20);
  EXPECT_EQ(c.find_plan("team")->idle_timeout->count(), 0);
  EXPECT_EQ(c.find_plan("team")->cpus, 2);
}

TEST(Config, APlanWithoutItsOwnIdleTimeoutUsesTheKey) {
  auto c = parse({"--database-url", kDb, "--idle-timeout", "5m", "--plan", "name=lab,memory=1G,cpus=1"}).config;
  EXPECT_FALSE(c.find_plan("lab")->idle_timeout);
  EXPECT_EQ(c.idle_timeout_of(*c.find_plan("lab")).count(), 300'000);
  EXPECT_EQ(c.idle_timeout_of(*c.find_plan("free")).count(), 900'000);  // its own wins
  EXPECT_EQ(c.idle_timeout_of(*c.find_plan("team")).count(), 0);        // never
}

TEST(Config, EveryKeyIsAcceptedFromAFile) {
  TempDir dir;
  auto file = dir.file("feuilled.conf", R"(
listen = ["127.0.0.1:0", "[::1]:0"]
trusted-proxies = "10.0.0.0/8, ::1/128"
metrics-allow = ["10.1.2.3"]
public-url = "https://feuille.example.org/"
workspace-origin = "https://{id}.ws.example.net"
workspace-ticket-lifetime = "30s"
proxy-max-per-client = 77
proxy-websocket-ping = "0"
shutdown-grace = "3s"
http-header-timeout = "2s"
http-keepalive-timeout = "30s"
worker-threads = 6
log-level = "debug"
log-format = "json"
database-url = "postgresql://u:secret@db.internal/feuille"
db-pool-size = 12
db-statement-timeout = "2s"
db-connect-timeout = "1s"
data-dir = "/srv/feuille/users"
snapshot-dir = "/srv/feuille/snapshots"
workspace-uid = 1001
workspace-gid = 1002
compute-host = ["name=a,url=unix:///run/podman/podman.sock,address=127.0.0.1", "name=big,url=unix:///run/big.sock,memory=64G"]
egress-address = "198.18.5.5"
egress-allow = ["10.9.0.0/16"]
oci-runtime = "crun"
editor-image = "registry.example.org/mrmd-editor:1.2"
runtime-image = "mrmd-runtime@sha256:abc"
editor-command = "node cli.js --port {port} --token {token}"
runtime-command = "mrmd-python --port 8888"
editor-health-path = "/healthz"
runtime-health-path = "/ok"
runtime-user = "0:0"
criu = "off"
start-timeout = "90s"
start-concurrency = 3
proxy-max-per-user = 50
publish-cache-size = "16M"
publish-render-memory = "32M"
publish-render-timeout = "500ms"
gateway-max-per-workspace = 40
background-routes = "/api/poll, /api/status"
gateway-idle-timeout = "5m"
github-client-id = "gh-id"
github-client-secret = "gh-secret"
github-authorize-url = "http://127.0.0.1:9000/login/oauth/authorize"
github-token-url = "http://127.0.0.1:9000/login/oauth/access_token"
github-api-url = "http://127.0.0.1:9000"
google-client-id = "go-id"
google-client-secret = "go-secret"
google-authorize-url = "http://127.0.0.1:9001/auth"
google-token-url = "http://127.0.0.1:9001/token"
google-userinfo-url = "http://127.0.0.1:9001/userinfo"
google-hosted-domain = "example.org"
signup = "closed"
admins = "alice, bob"
dev-login = false
session-ttl = "7d"
oauth-timeout = "3s"
monitor-interval = "10s"
idle-timeout = "0"
idle-cpu-percent = "2.5"
drain-timeout = "3s"
preprovision-percent = "60%"
migrate-percent = 80
plan = ["name=free,memory=128M,cpus=0.25", "name=huge,memory=8G,cpus=4,idle-timeout=2h,snapshots=7,snapshot-bytes=3G,disk=2G"]
state-dir = "/tmp/feuille-state"
)");
  auto inv = parse({"--config", file});
  const Config& c = inv.config;
  EXPECT_EQ(c.config_file, file);
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[1].host, "::1");
  EXPECT_EQ(c.trusted_proxies.size(), 2u);
  EXPECT_EQ(c.metrics_allow.size(), 1u);
  EXPECT_EQ(c.public_url, "https://feuille.example.org");
  EXPECT_EQ(c.shutdown_grace.count(), 3000);
  EXPECT_EQ(c.header_timeout.count(), 2000);
  EXPECT_EQ(c.keepalive_timeout.count(), 30'000);
  EXPECT_EQ(c.worker_threads, 6);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.db_pool_size, 12);
  EXPECT_EQ(c.db_statement_timeout.count(), 2000);
  EXPECT_EQ(c.db_connect_timeout.count(), 1000);
  EXPECT_EQ(c.data_dir, "/srv/feuille/users");
  EXPECT_EQ(c.workspace_uid, 1001u);
  EXPECT_EQ(c.workspace_gid, 1002u);
  ASSERT_EQ(c.compute_hosts.size(), 2u);
  EXPECT_TRUE(c.compute_hosts_given);
  EXPECT_EQ(c.compute_hosts[1].url, "unix:///run/big.sock");
  EXPECT_EQ(c.compute_hosts[1].memory_bytes, 64ull << 30);
  EXPECT_EQ(c.egress_address, "198.18.5.5");
  ASSERT_EQ(c.egress_allow.size(), 1u);
  EXPECT_EQ(c.egress_allow[0].text, "10.9.0.0/16");
  EXPECT_EQ(c.oci_runtime, "crun");
  EXPECT_EQ(c.runtime_image, "mrmd-runtime@sha256:abc");
  EXPECT_EQ(c.editor_health_path, "/healthz");
  EXPECT_EQ(c.runtime_user, "0:0");
  EXPECT_FALSE(c.criu);
  EXPECT_EQ(c.start_timeout.count(), 90'000);
  EXPECT_EQ(c.start_concurrency, 3);
  EXPECT_EQ(c.proxy_max_per_user, 50);
  EXPECT_EQ(c.publish_cache_bytes, 16ull << 20);
  EXPECT_EQ(c.publish_render_memory, 32ull << 20);
  EXPECT_EQ(c.publish_render_timeout.count(), 500);
  EXPECT_EQ(c.gateway_max_per_workspace, 40);
  EXPECT_EQ(c.background_routes, (std::vector<std::string>{"/api/poll", "/api/status"}));
  EXPECT_EQ(c.gateway_idle_timeout.count(), 300'000);
  EXPECT_EQ(c.github_client_secret, "gh-secret");
  EXPECT_EQ(c.github_api_url, "http://127.0.0.1:9000");
  EXPECT_EQ(c.google_userinfo_url, "http://127.0.0.1:9001/userinfo");
  EXPECT_EQ(c.google_hosted_domain, "example.org");
  EXPECT_EQ(c.signup, Signup::closed);
  EXPECT_EQ(c.admins, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_FALSE(c.dev_login);
  EXPECT_EQ(c.session_ttl.count(), 7LL * 86'400'000);
  EXPECT_EQ(c.oauth_timeout.count(), 3000);
  EXPECT_EQ(c.monitor_interval.count(), 10'000);
  EXPECT_EQ(c.idle_timeout.count(), 0);
  EXPECT_EQ(c.idle_cpu_percent, 2.5);
  EXPECT_EQ(c.drain_timeout, Duration{3'000});
  EXPECT_EQ(c.preprovision_percent, 60);
  EXPECT_EQ(c.migrate_percent, 80);
  ASSERT_EQ(c.plans.size(), 4u);
  EXPECT_EQ(c.find_plan("free")->memory_bytes, 128ull << 20);
  EXPECT_EQ(c.find_plan("free")->idle_timeout->count(), 900'000);  // unchanged fields keep the built-in value
  EXPECT_EQ(c.find_plan("huge")->cpus, 4);
  EXPECT_EQ(c.find_plan("huge")->snapshots, 7);
  EXPECT_EQ(c.find_plan("huge")->snapshot_bytes, 3ull << 30);
  EXPECT_EQ(c.find_plan("huge")->disk_bytes, 2ull << 30);
  EXPECT_EQ(c.find_plan("free")->disk_bytes, 1ull << 30);  // the built-in's
  EXPECT_EQ(c.find_plan("free")->snapshots, 3);  // the built-in's
  EXPECT_EQ(c.state_dir, "/tmp/feuille-state");
  EXPECT_EQ(c.workspace_origin, "https://{id}.ws.example.net");
  EXPECT_EQ(c.workspace_ticket_lifetime.count(), 30'000);
  EXPECT_EQ(c.proxy_max_per_client, 77);
  EXPECT_EQ(c.proxy_websocket_ping.count(), 0);

  // Every key of the table appears in this test's file.
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& k : config_keys()) EXPECT_THAT(text.str(), HasSubstr("\n" + k.name + " = ")) << k.name;
}

TEST(Config, CommandLineWinsOverTheFile) {
  TempDir dir;
  auto file = dir.file("c.conf", "log-level = \"debug\"\ndatabase-url = \"" + kDb + "\"\nlisten = \"127.0.0.1:9\"\n");
  auto inv = parse({"--config", file, "--log-level", "warn", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(inv.config.log_level, "warn");
  ASSERT_EQ(inv.config.listen.size(), 1u);
  EXPECT_EQ(inv.config.listen[0].port, 0);
}

TEST(Config, BooleansOnTheCommandLineAndInFiles) {
  EXPECT_TRUE(parse({"--database-url", kDb, "--dev-login"}).config.dev_login);
  TempDir dir;
  auto on = dir.file("on.conf", "dev-login = true\ndatabase-url = \"" + kDb + "\"\n");
  EXPECT_TRUE(parse({"--config", on}).config.dev_login);
  auto off = dir.file("off.conf", "dev-login = false\ndev = true\n");
  auto inv = parse({"--config", off});
  EXPECT_TRUE(inv.config.dev);
  EXPECT_FALSE(inv.config.dev_login);  // an explicit false wins over --dev's default
}

TEST(Config, DevModeDefaults) {
  auto inv = parse({"--dev", "--state-dir", "/tmp/st"});
  const Config& c = inv.config;
  EXPECT_TRUE(c.dev);
  EXPECT_TRUE(c.dev_login);
  EXPECT_EQ(c.data_dir, "/tmp/st/users");
  EXPECT_EQ(c.snapshot_dir, "/tmp/st/snapshots");
  EXPECT_EQ(c.listen[0].text(), "127.0.0.1:8080");
  EXPECT_TRUE(c.database_url.empty());
  auto given = parse({"--dev", "--data-dir", "/tmp/elsewhere"});
  EXPECT_EQ(given.config.data_dir, "/tmp/elsewhere");
}

TEST(Config, Subcommands) {
  EXPECT_EQ(parse({"migrate", "--database-url", kDb}).command, Command::migrate);
  EXPECT_EQ(parse({"--database-url", kDb, "check"}).command, Command::check);
  EXPECT_EQ(parse({"--database-url", kDb, "user", "list"}).command, Command::user_list);
  auto sp = parse({"--database-url", kDb, "user", "set-plan", "alice", "pro"});
  EXPECT_EQ(sp.command, Command::user_set_plan);
  EXPECT_EQ(sp.args, (std::vector<std::string>{"alice", "pro"}));
  EXPECT_THAT(error_of({"--database-url", kDb, "user", "set-plan", "alice", "platinum"}), StartsWith("plan: "));
}

TEST(Config, HelpAndVersion) {
  auto h = parse({"--help"});
  ASSERT_TRUE(h.exit_code);
  EXPECT_EQ(*h.exit_code, 0);
  for (const auto& k : config_keys()) EXPECT_THAT(h.output, HasSubstr("--" + k.name)) << k.name;
  auto v = parse({"--version"});
  ASSERT_TRUE(v.exit_code);
  EXPECT_THAT(v.output, StartsWith("feuilled "));
}

struct BadValue {
  std::string key, value, expect;
};

class ConfigErrors : public ::testing::TestWithParam<BadValue> {};

TEST_P(ConfigErrors, NameTheKeyOnOneLine) {
  const auto& p = GetParam();
  auto msg = error_of({"--database-url", kDb, "--" + p.key, p.value});
  EXPECT_THAT(msg, StartsWith(p.key + ": "));
  EXPECT_THAT(msg, HasSubstr(p.expect));
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, ConfigErrors,
    ::testing::Values(
        BadValue{"listen", "8080", "not host:port"}, BadValue{"listen", "example.org:80", "not host:port"},
        BadValue{"trusted-proxies", "10.0.0.0/99", "not an address"},
        BadValue{"metrics-allow", "everyone", "not an address"},
        BadValue{"public-url", "feuille.example.org", "origin"},
        BadValue{"workspace-ticket-lifetime", "2m", "1s to 60s"}, BadValue{"workspace-ticket-lifetime", "0", "1s to 60s"},
        BadValue{"public-url", "https://x.org/path", "origin"},
        BadValue{"shutdown-grace", "10", "not a duration"}, BadValue{"http-header-timeout", "0", "greater than 0"},
        BadValue{"http-keepalive-timeout", "1y", "not a duration"},
        BadValue{"worker-threads", "0", "whole number"}, BadValue{"log-level", "loud", "not one of"},
        BadValue{"log-format", "xml", "not text or json"}, BadValue{"database-url", "mysql:x", "postgresql://"},
        BadValue{"db-pool-size", "many", "whole number"}, BadValue{"db-pool-size", "0", "whole number"},
        BadValue{"db-statement-timeout", "5", "not a duration"}, BadValue{"db-connect-timeout", "x", "duration"},
        BadValue{"data-dir", "", "must not be empty"}, BadValue{"snapshot-dir", "", "must not be empty"},
        BadValue{"workspace-uid", "root", "numeric"}, BadValue{"workspace-gid", "-1", "numeric"},
        BadValue{"compute-host", "name=a,url=http://x,address=127.0.0.1", "url"},
        BadValue{"compute-host", "name=a,url=unix:///s,address=host", "address"},
        BadValue{"compute-host", "name=a,url=unix:///s,address=0.0.0.0", "refused"},
        BadValue{"compute-host", "name=a,url=tcp://10.0.0.9:8888", "refused: a Podman API over plain TCP"},
        BadValue{"egress-address", "10.0.0.300", "not an IPv4 address"},
        BadValue{"egress-address", "fd00::1", "not an IPv4 address"},
        BadValue{"egress-address", "127.0.0.9", "loopback"},
        BadValue{"egress-allow", "10.0.0.0/40", "not an address"},
        BadValue{"egress-allow", "fd00::/8", "IPv6"},
        BadValue{"compute-host", "name=A,url=unix:///s,address=127.0.0.1", "name"},
        BadValue{"compute-host", "name=a,url=unix:///s,address=127.0.0.1,memory=lots", "memory"},
        BadValue{"compute-host", "name=a,url=unix:///s,address=127.0.0.1,cpu=2", "unknown field"},
        BadValue{"compute-host", "name=a,url", "not name=value"},
        BadValue{"oci-runtime", "run c", "not a runtime name"}, BadValue{"editor-image", "bad image", "image"},
        BadValue{"runtime-image", "-x", "image"}, BadValue{"editor-command", "node 'x", "unterminated single"},
        BadValue{"runtime-command", "   ", "must not be empty"},
        BadValue{"editor-health-path", "health", "starting with /"},
        BadValue{"runtime-health-path", "/a b", "starting with /"},
        BadValue{"runtime-user", "root", "not uid or uid:gid"}, BadValue{"runtime-user", "0:", "not uid or uid:gid"},
        BadValue{"criu", "on", "not auto or off"}, BadValue{"start-timeout", "0", "greater than 0"},
        BadValue{"start-concurrency", "-2", "whole number"},
        BadValue{"proxy-max-per-user", "0", "whole number from 1"},
        BadValue{"publish-cache-size", "lots", "not a size"}, BadValue{"publish-cache-size", "-1M", "not a size"},
        BadValue{"github-authorize-url", "ftp://x", "http"}, BadValue{"github-token-url", "x", "http"},
        BadValue{"github-api-url", "api.github.com", "http"}, BadValue{"google-authorize-url", "x", "http"},
        BadValue{"google-token-url", "x", "http"}, BadValue{"google-userinfo-url", "x", "http"},
        BadValue{"signup", "invite-only", "not open or closed"}, BadValue{"admins", "not a handle!", "not a handle"},
        BadValue{"session-ttl", "forever", "not a duration"}, BadValue{"oauth-timeout", "0", "greater than 0"}, BadValue{"monitor-interval", "0", "greater than 0"},
        BadValue{"idle-timeout", "15", "not a duration"}, BadValue{"idle-cpu-percent", "200", "percentage"},
        BadValue{"drain-timeout", "soon", "not a duration"},
        BadValue{"preprovision-percent", "x", "percentage"}, BadValue{"migrate-percent", "-5", "percentage"},
        BadValue{"plan", "name=free,memory=1K", "at least 6M"}, BadValue{"plan", "name=gold,memory=1G", "needs memory= and cpus="},
        BadValue{"plan", "name=free,cpus=0", "positive"}, BadValue{"plan", "name=free,idle-timeout=soon", "duration"},
        BadValue{"plan", "name=free,gpus=1", "unknown field"}, BadValue{"plan", "name=free,snapshots=-1", "whole number"},
        BadValue{"plan", "name=free,snapshot-bytes=lots", "not a size"}, BadValue{"state-dir", "", "must not be empty"}),
    [](const ::testing::TestParamInfo<BadValue>& info) {
      std::string name = info.param.key + "_" + std::to_string(info.index);
      for (auto& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

TEST(Config, CrossKeyRules) {
  EXPECT_THAT(error_of({"--database-url", kDb, "--dev-login", "--listen", "0.0.0.0:8080"}), StartsWith("dev-login: "));
  EXPECT_THAT(error_of({"--dev", "--listen", "127.0.0.1:0", "--listen", "[::]:0"}), StartsWith("dev-login: "));
  EXPECT_NO_THROW(parse({"--dev", "--dev-login=false", "--listen", "0.0.0.0:0"}));
  // Behind Caddy on the same machine: loopback listen, public origin.
  EXPECT_THAT(error_of({"--database-url", kDb, "--dev-login", "--public-url", "https://feuille.example.org"}),
              StartsWith("dev-login: refused because public-url"));
  for (const char* ok : {"http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080", "https://feuille.localhost"})
    EXPECT_NO_THROW(parse({"--database-url", kDb, "--dev-login", "--public-url", ok})) << ok;
  EXPECT_THAT(error_of({"--database-url", kDb, "--dev-login", "--public-url", "http://localhost.example.org"}),
              StartsWith("dev-login: "));
  EXPECT_THAT(error_of({}), StartsWith("database-url: "));
  EXPECT_THAT(error_of({"migrate"}), StartsWith("database-url: "));
  EXPECT_THAT(error_of({"--database-url", kDb, "--github-client-id", "x"}), StartsWith("github-client-secret: "));
  EXPECT_THAT(error_of({"--database-url", kDb, "--google-client-secret", "x"}), StartsWith("google-client-id: "));
  EXPECT_THAT(error_of({"--database-url", kDb, "--preprovision-percent", "80", "--migrate-percent", "70"}),
              StartsWith("migrate-percent: "));
  EXPECT_THAT(error_of({"--database-url", kDb, "--compute-host", "name=a,url=unix:///a,address=127.0.0.1",
                        "--compute-host", "name=a,url=unix:///b,address=127.0.0.1"}),
              HasSubstr("given twice"));
}

TEST(Config, UnknownKeysAndOptionsAreRefused) {
  TempDir dir;
  auto file = dir.file("c.conf", "database-url = \"" + kDb + "\"\nidle-timout = \"5m\"\n");
  EXPECT_EQ(error_of({"--config", file}), "idle-timout: unknown configuration key");
  EXPECT_THAT(error_of({"--database-url", kDb, "--no-such-flag"}), HasSubstr("--no-such-flag"));
  EXPECT_THAT(error_of({"--config", dir.path() + "/missing.conf"}), StartsWith("config: "));
}

TEST(Config, SecretsNeverAppearInErrors) {
  auto msg = error_of({"--database-url", "mysql://u:hunter2@db/x"});
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
  msg = error_of({"--database-url", kDb, "--github-client-id", "id", "--github-client-secret", "line1\nhunter2"});
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

TEST(Config, ReloadSeesWhichKeysNeedARestart) {
  auto a = parse({"--database-url", kDb, "--log-level", "info"});
  auto b = parse({"--database-url", kDb, "--log-level", "debug", "--db-pool-size", "3"});
  EXPECT_EQ(changed_restart_keys(a, b), std::vector<std::string>{"db-pool-size"});
  EXPECT_TRUE(changed_restart_keys(a, a).empty());
}

// Every key the table marks reloadable is applied by a reload, from the
// table itself: a sample value per key (a new reloadable key without one
// fails here), and the configuration after the reload equals a fresh parse.
TEST(Config, ReloadAppliesEveryReloadableKey) {
  const std::map<std::string, std::vector<std::string>> samples{
      {"log-level", {"debug"}},         {"start-concurrency", {"3"}},   {"proxy-max-per-user", {"7"}},
      {"proxy-max-per-client", {"9"}},  {"proxy-websocket-ping", {"5s"}},
      {"signup", {"closed"}},           {"admins", {"alice"}},          {"monitor-interval", {"9s"}},
      {"idle-timeout", {"3m"}},         {"idle-cpu-percent", {"4"}},    {"preprovision-percent", {"40"}},
      {"migrate-percent", {"60"}},      {"plan", {"name=free,memory=128M"}}, {"drain-timeout", {"2s"}},
      {"publish-render-memory", {"64M"}}, {"publish-render-timeout", {"1s"}}, {"background-routes", {"/api/x"}},
  };
  const std::vector<std::string> base{"--database-url", kDb};
  const Invocation before = parse(base);
  for (const auto& k : config_keys()) {
    if (!k.reloadable) continue;
    auto sample = samples.find(k.name);
    ASSERT_NE(sample, samples.end()) << "no sample value for reloadable key " << k.name;
    std::vector<std::string> args = base;
    for (const auto& v : sample->second) args.insert(args.end(), {"--" + k.name, v});
    const Invocation after = parse(args);
    ASSERT_FALSE(after.config == before.config) << k.name << ": the sample changes nothing";
    Config running = before.config;
    apply_reloadable(after, running);
    EXPECT_TRUE(running == after.config) << k.name << " was not applied by a reload";
    apply_reloadable(before, running);  // and taken back out of the file
    EXPECT_TRUE(running == before.config) << k.name << " kept its reloaded value after it was removed";
  }
}

TEST(Config, WorkspaceOrigin) {
  EXPECT_TRUE(parse({"--database-url", kDb}).config.workspace_origin.empty());
  EXPECT_EQ(parse({"--dev"}).config.workspace_origin, "http://{id}.ws.localhost:{port}");
  EXPECT_EQ(parse({"--database-url", kDb, "--workspace-origin", "https://{id}.ws.example.com"}).config.workspace_origin,
            "https://{id}.ws.example.com");
  for (std::string bad : {"{id}.ws.example.com", "https://ws.example.com", "https://{id}.ws.example.com/path",
                          "https://x{id}.example.com", "https://{id}", "https://{id}.{id}.example.com",
                          "https://{id}.ws.example.com:99999"})
    EXPECT_THAT(error_of({"--database-url", kDb, "--workspace-origin", bad}), StartsWith("workspace-origin: ")) << bad;
}

TEST(Config, FreshParserPerCall) {
  // CLI11 keeps values between parses of one App: each call must start clean.
  auto a = parse({"--database-url", kDb, "--admins", "alice"});
  auto b = parse({"--database-url", kDb});
  EXPECT_EQ(a.config.admins.size(), 1u);
  EXPECT_TRUE(b.config.admins.empty());
}

TEST(Config, DocsAndExampleListEveryKey) {
  for (auto doc : {"/docs/configuration.md", "/deploy/feuilled.conf.example"}) {
    std::ifstream in(std::string(FEUILLE_SOURCE_DIR) + doc);
    ASSERT_TRUE(in) << doc;
    std::stringstream text;
    text << in.rdbuf();
    for (const auto& k : config_keys()) EXPECT_THAT(text.str(), HasSubstr(k.name)) << k.name << " in " << doc;
  }
}

TEST(Config, TheExampleFileIsValid) {
  auto inv = parse({"--config", std::string(FEUILLE_SOURCE_DIR) + "/deploy/feuilled.conf.example"});
  EXPECT_EQ(inv.config.database_url, "postgresql://feuille@localhost/feuille");
  EXPECT_EQ(inv.config.listen[0].text(), "127.0.0.1:8080");
}
