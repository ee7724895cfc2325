// The hostile probe (docs/security.md): two users' workspaces running on the
// real binary, Podman and PostgreSQL; from inside each of user A's containers
// (their network namespaces, entered as a tenant process sits in them) every
// address anyone could try for user B's editor and runtime, feuilled's
// listener, a host service on every interface, Podman's bridge range, and a
// namespace the test makes to stand for the LAN and for cloud metadata
// (169.254.169.254): nothing answers. What must still work does: A's editor
// reaches A's runtime at RUNTIME_HOST:RUNTIME_PORT, the internet (a
// documentation address routed into the test's namespace) is reachable, and
// the proxy serves A and refuses B. Then a runtime killed from outside: the
// gateway holds the editor's connection and the same port answers once it is
// back; and an operator's egress-allow entry opens one LAN address only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <sstream>
#include <thread>

#include "support/daemon.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/podman.hpp"
#include "support/workspace_daemon.hpp"
#include "util/child_process.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using json = nlohmann::json;

namespace {

std::string sh(const std::vector<std::string>& argv) {
  auto r = run_command(argv, {}, 10s);
  if (r.status != 0) throw std::runtime_error(argv[0] + " " + argv[1] + ": " + r.output);
  return r.output;
}

// A listening socket made inside a namespace (kept there), on any address.
struct Listener {
  Listener(const std::string& ns, int port) {
    auto make = [&] {
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0)
        throw std::runtime_error("cannot listen on port " + std::to_string(port));
    };
    if (ns.empty()) make();
    else in_netns(ns, make);
  }
  ~Listener() { ::close(fd); }
  int fd = -1;
};

// A namespace standing for the LAN beyond the host, for cloud metadata and
// for one internet address (TEST-NET-3, never routed outside): a veth pair,
// routes to it from the host, a listener on port 80 of all its addresses.
// The routes are host-wide, so one Lan exists at a time on the machine (a
// file lock, held for its life, across ctest's parallel processes); whatever
// a killed run left behind is removed first.
struct Lan {
  Lan() : lock(::open("/run/feuille-test-lan.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (lock < 0) throw std::runtime_error("cannot open /run/feuille-test-lan.lock");
    if (::flock(lock, LOCK_EX) != 0) {
      ::close(lock);
      throw std::runtime_error("cannot lock /run/feuille-test-lan.lock");
    }
    remove(kName, kHostIf);
    try {
      sh({"ip", "netns", "add", kName});
      sh({"ip", "link", "add", kHostIf, "type", "veth", "peer", "name", "feuille-lan0", "netns", kName});
      sh({"ip", "addr", "add", std::string(kHostSide) + "/30", "dev", kHostIf});
      sh({"ip", "link", "set", kHostIf, "up"});
      for (const auto& a : {std::string(kAddress) + "/30", std::string(kMetadata) + "/32", std::string(kInternet) + "/32"})
        sh({"ip", "-n", kName, "addr", "add", a, "dev", "feuille-lan0"});
      sh({"ip", "-n", kName, "link", "set", "feuille-lan0", "up"});
      sh({"ip", "-n", kName, "link", "set", "lo", "up"});
      sh({"ip", "-n", kName, "route", "add", "default", "via", kHostSide});
      for (const char* a : {kMetadata, kInternet}) {
        // A machine may route the metadata address already (a cloud VM's
        // DHCP does): ours replaces it for the test's life, then it is back.
        std::istringstream had(sh({"ip", "route", "show", "exact", std::string(a) + "/32"}));
        for (std::string line; std::getline(had, line);)
          if (!line.empty()) saved_routes.push_back(line);
        sh({"ip", "route", "replace", std::string(a) + "/32", "via", kAddress});
      }
      listener = std::make_unique<Listener>(std::string("/run/netns/") + kName, 80);
    } catch (...) {
      remove(kName, kHostIf);
      restore_routes();
      ::close(lock);
      throw;
    }
  }
  ~Lan() {
    listener.reset();
    remove(kName, kHostIf);
    restore_routes();
    ::close(lock);  // releases the lock
  }
  void restore_routes() {
    for (const auto& line : saved_routes) {
      std::vector<std::string> argv{"ip", "route", "add"};
      std::istringstream words(line);
      for (std::string w; words >> w;) argv.push_back(w);
      run_command(argv, {}, 10s);
    }
  }
  static void remove(const char* ns, const char* host_if) {
    run_command({"ip", "link", "delete", host_if}, {}, 10s);  // its routes go with it
    run_command({"ip", "netns", "delete", ns}, {}, 10s);
  }
  static constexpr const char* kName = "feuille-test-lan";
  static constexpr const char* kHostIf = "feuille-lanh";
  static constexpr const char* kHostSide = "10.251.0.1";
  static constexpr const char* kAddress = "10.251.0.2";
  static constexpr const char* kMetadata = "169.254.169.254";
  static constexpr const char* kInternet = "203.0.113.77";
  int lock;
  std::unique_ptr<Listener> listener;
  std::vector<std::string> saved_routes;  // the machine's own routes for our /32s
};

// This machine's own IPv4 addresses beyond loopback.
std::vector<std::string> host_addresses() {
  std::vector<std::string> out;
  std::istringstream lines(sh({"ip", "-4", "-o", "addr", "show", "scope", "global"}));
  std::string line;
  while (std::getline(lines, line)) {
    auto at = line.find(" inet ");
    if (at == std::string::npos) continue;
    auto addr = line.substr(at + 6, line.find('/', at) - at - 6);
    if (addr.rfind("198.18.", 0) != 0) out.push_back(addr);  // the egress addresses themselves: on lo
  }
  return out;
}

std::string user_id(WorkspaceDaemon& w, const std::string& token) {
  return json::parse(w.daemon->get("/api/me", w.as(token)).body)["id"];
}

}  // namespace

TEST(Isolation, FromInsideATenantsContainersNothingAnswersButItsOwnGatewayAndTheInternet) {
  Lan lan;
  Listener host_service("", 0);  // a service on every host interface, as PostgreSQL could be
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(host_service.fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int service_port = ntohs(bound.sin_port);

  WorkspaceDaemon w;
  auto alice = w.login("alice"), bob = w.login("bob");
  w.post("/api/workspace/start", alice);
  w.post("/api/workspace/start", bob);
  ASSERT_TRUE(w.wait_state(alice, "running"));
  ASSERT_TRUE(w.wait_state(bob, "running"));
  const auto a = w.workspace(alice), b = w.workspace(bob);
  const int a_runtime = a["runtime"]["port"], b_editor = b["editor"]["port"], b_runtime = b["runtime"]["port"];
  const std::string a_id = user_id(w, alice), b_id = user_id(w, bob);
  const std::string a_editor_ns = sandbox_key("feuille-ed-" + a_id), a_runtime_ns = sandbox_key("feuille-rt-" + a_id);

  // The controls: what the tenant must not reach is there, from the host.
  for (const auto& addr : {std::string(Lan::kAddress), std::string(Lan::kMetadata)})
    EXPECT_EQ(connect_from("/proc/self/ns/net", addr, 80), "connected") << addr;
  EXPECT_EQ(connect_from("/proc/self/ns/net", "127.0.0.1", service_port), "connected");

  std::vector<std::string> hosts = host_addresses();
  hosts.push_back(std::string(Lan::kHostSide));
  hosts.push_back("10.0.2.2");  // slirp4netns's way to the host's loopback (disabled)
  std::vector<std::pair<std::string, int>> forbidden;
  for (int port : {b_editor, b_runtime, w.daemon->port(), service_port}) {
    forbidden.push_back({"127.0.0.1", port});
    for (const auto& h : hosts) forbidden.push_back({h, port});
  }
  // Podman's default bridge, where runtimes sat before isolation.
  for (const char* bridge : {"10.88.0.1", "10.88.0.2", "10.88.0.3"})
    for (int port : {8888, b_runtime}) forbidden.push_back({bridge, port});
  forbidden.push_back({Lan::kMetadata, 80});
  forbidden.push_back({std::string(Lan::kAddress), 80});
  forbidden.push_back({"::1", b_editor});

  for (const auto& ns : {a_editor_ns, a_runtime_ns}) {
    for (const auto& [addr, port] : forbidden) {
      auto got = connect_from(ns, addr, port, 1000);
      EXPECT_NE(got, "connected") << "from " << ns << " to " << addr << ":" << port;
    }
    // The internet is there.
    EXPECT_EQ(connect_from(ns, Lan::kInternet, 80), "connected") << ns;
  }
  // A's editor reaches A's runtime where the editor looks for it, through the gateway.
  in_netns(a_editor_ns, [&] {
    auto caps = http_request(a_runtime, "GET", "/mrp/v1/capabilities");
    EXPECT_EQ(caps.status, 200) << caps.body;
  });
  // A's runtime namespace has no gateway: the port is not there.
  EXPECT_EQ(connect_from(a_runtime_ns, "127.0.0.1", a_runtime), "refused");

  // No tenant can take someone else's traffic: A binding B's editor port in
  // its own namespace, and a host process binding it on the host, get nothing.
  {
    Listener in_a(a_editor_ns, b_editor), on_host("", b_editor);
    auto r = w.daemon->get("/u/" + b_id + "/whoami", w.in(bob, b_id));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body)["role"], "editor");  // B's own editor answered
    for (int fd : {in_a.fd, on_host.fd}) {
      pollfd p{fd, POLLIN, 0};
      EXPECT_EQ(::poll(&p, 1, 0), 0) << "a squatter received a connection";
    }
  }
  // The proxy serves A and refuses B.
  EXPECT_EQ(w.daemon->get("/u/" + a_id + "/whoami", w.in(alice, a_id)).status, 200);
  EXPECT_EQ(w.daemon->get("/u/" + b_id + "/whoami", w.as(alice)).status, 403);
}

TEST(Isolation, ARuntimeKilledFromOutsideIsWaitedForByTheGatewayAndAnswersOnTheSamePort) {
  WorkspaceDaemon w;
  auto alice = w.login("alice");
  w.post("/api/workspace/start", alice);
  ASSERT_TRUE(w.wait_state(alice, "running"));
  const int port = w.workspace(alice)["runtime"]["port"];
  const std::string id = user_id(w, alice);
  const std::string editor_ns = sandbox_key("feuille-ed-" + id);
  std::string before;
  in_netns(editor_ns, [&] { before = json::parse(http_request(port, "GET", "/_standin/state").body)["instance"].dump(); });

  TestPodman().kill("feuille-rt-" + id);
  // Straight away, while feuilled restarts it: the editor's request is held
  // and answered by the runtime once it is back, on the same port.
  in_netns(editor_ns, [&] {
    auto r = http_request(port, "GET", "/_standin/state");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(json::parse(r.body)["instance"].dump(), before);  // a new process
  });
  EXPECT_TRUE(w.wait_state(alice, "running"));
  auto metrics = w.daemon->get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("feuille_gateway_bytes_total{direction=\"to_runtime\"}"));
  EXPECT_THAT(metrics, HasSubstr("feuille_gateway_connections_open"));
}

TEST(Isolation, AnOperatorsEgressAllowEntryOpensThatAddressOnly) {
  Lan lan;
  WorkspaceDaemon w({"--egress-address", "198.18.0.3", "--egress-allow", std::string(Lan::kAddress) + "/32"});
  auto alice = w.login("alice");
  w.post("/api/workspace/start", alice);
  ASSERT_TRUE(w.wait_state(alice, "running"));
  const std::string ns = sandbox_key("feuille-rt-" + user_id(w, alice));
  EXPECT_EQ(connect_from(ns, std::string(Lan::kAddress), 80), "connected");
  EXPECT_NE(connect_from(ns, Lan::kMetadata, 80), "connected");
  EXPECT_NE(connect_from(ns, std::string(Lan::kHostSide), w.daemon->port()), "connected");
  w.daemon->stop();
  run_command({"nft", "delete", "table", "ip", "feuille_egress_198_18_0_3"}, {}, 10s);
  run_command({"ip", "addr", "del", "198.18.0.3/32", "dev", "lo"}, {}, 10s);
}
