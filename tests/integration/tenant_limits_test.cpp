// No tenant can exhaust or confuse the shared daemon (docs/security.md,
// "Limits"): a flood of gateway connections under a small descriptor limit,
// a flood of workspace tickets from one session, tossed workspace cookies,
// and long-lived event streams ended by a logout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <thread>

#include "support/daemon.hpp"
#include "support/http_client.hpp"
#include "support/netns.hpp"
#include "support/workspace_daemon.hpp"

using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using json = nlohmann::json;

namespace {

std::string user_id(WorkspaceDaemon& w, const std::string& token) {
  return json::parse(w.daemon->get("/api/me", w.as(token)).body)["id"];
}

double metric(Daemon& d, const std::string& series) {
  auto body = d.get("/metrics").body;
  auto at = body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + series.size() + 2));
}

// Opens `count` connections to 127.0.0.1:port inside a namespace; the
// descriptors stay open (and in that namespace) until closed.
std::vector<int> connect_many(const std::string& ns, int port, int count) {
  std::vector<int> fds;
  in_netns(ns, [&] {
    for (int i = 0; i < count; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        continue;
      }
      fds.push_back(fd);
    }
  });
  return fds;
}

}  // namespace

// feuilled under a descriptor limit of 1024 (tenants get a share, the rest
// is its own): one tenant opens 900 connections to its runtime's gateway
// from inside its editor's namespace. Those past the budget are refused
// with a 503; another tenant's proxied requests and the health probes go on.
TEST(TenantLimits, AGatewayFloodLeavesOtherTenantsAndProbesServed) {
  WorkspaceDaemon w({}, "", {"/usr/bin/prlimit", "--nofile=1024"});
  auto alice = w.login("alice"), bob = w.login("bob");
  w.post("/api/workspace/start", alice);
  w.post("/api/workspace/start", bob);
  ASSERT_TRUE(w.wait_state(alice, "running"));
  ASSERT_TRUE(w.wait_state(bob, "running"));
  const std::string a_id = user_id(w, alice), b_id = user_id(w, bob);
  const int a_runtime = w.workspace(alice)["runtime"]["port"];
  // (1024 - 256 kept for feuilled's own work) / 4.
  EXPECT_EQ(metric(*w.daemon, "feuille_gateway_connections_limit{scope=\"total\"}"), 192);

  auto flood = connect_many(sandbox_key("feuille-ed-" + a_id), a_runtime, 900);
  EXPECT_GT(flood.size(), 800u);
  std::this_thread::sleep_for(500ms);
  EXPECT_GT(metric(*w.daemon, "feuille_gateway_connections_total{outcome=\"total_limit\"}"), 600);
  EXPECT_LE(metric(*w.daemon, "feuille_gateway_connections_open"), 192);

  EXPECT_EQ(w.daemon->get("/healthz").status, 200);
  EXPECT_EQ(w.daemon->get("/readyz").status, 200);
  for (int i = 0; i < 5; ++i) {
    auto r = w.daemon->get("/u/" + b_id + "/", w.in(bob, b_id));
    EXPECT_EQ(r.status, 200) << r.body;
  }
  for (int fd : flood) ::close(fd);
  EXPECT_EQ(w.daemon->get("/u/" + a_id + "/", w.in(alice, a_id)).status, 200);
}

// One session asking for ticket after ticket is held to a rate and a few
// outstanding; another person's way in is not affected, and a target too
// long to keep lands on the workspace's root.
TEST(TenantLimits, ATicketFloodFromOneSessionLeavesOthersEntering) {
  WorkspaceDaemon w;
  auto mallory = w.login("mallory"), bob = w.login("bob");
  const std::string m_id = user_id(w, mallory), b_id = user_id(w, bob);
  int issued = 0, limited = 0;
  for (int i = 0; i < 200; ++i) {
    auto r = w.daemon->get("/u/" + m_id + "/page" + std::to_string(i), w.as(mallory));
    if (r.status == 302) ++issued;
    if (r.status == 429) {
      ++limited;
      EXPECT_FALSE(r.header("retry-after").empty());
    }
  }
  EXPECT_LE(issued, 25);
  EXPECT_GE(limited, 170);
  auto in = w.in(bob, b_id);  // expects the 302, the ticket and the cookie
  EXPECT_EQ(in.count("Cookie"), 1u);

  auto carol = w.login("carol");
  const std::string c_id = user_id(w, carol);
  auto first = w.daemon->get("/u/" + c_id + "/" + std::string(4000, 'a'), w.as(carol));
  ASSERT_EQ(first.status, 302);
  const std::string location = first.header("location");
  auto entered = w.daemon->get(location.substr(w.workspace_origin(c_id).size()), {{"Host", w.workspace_host(c_id)}});
  EXPECT_EQ(entered.status, 302);
  EXPECT_EQ(entered.header("location"), "/u/" + c_id + "/");
}

// A script on workspace A sets feuille_ws with Domain= and a longer Path:
// browsers then send two feuille_ws cookies to every workspace. Neither is
// believed; the answer clears them wherever they could be, and the way in
// through a fresh ticket works again.
TEST(TenantLimits, ATossedWorkspaceCookieIsNotBelievedAndIsCleared) {
  WorkspaceDaemon w;
  auto bob = w.login("bob");
  const std::string b_id = user_id(w, bob);
  auto h = w.in(bob, b_id);
  const std::string own = h["Cookie"];
  h["Cookie"] = "feuille_ws=tossed-by-someone-else; " + own;
  h["Accept"] = "text/html";
  auto r = w.daemon->get("/u/" + b_id + "/notes", h);
  EXPECT_EQ(r.status, 302);  // not signed in here: back through public-url for a fresh ticket
  EXPECT_EQ(r.header("location"), w.origin() + "/u/" + b_id + "/notes");
  std::vector<std::string> cleared;
  for (auto [it, end] = r.headers.equal_range("set-cookie"); it != end; ++it) cleared.push_back(it->second);
  EXPECT_THAT(cleared, ::testing::Contains(HasSubstr("feuille_ws=; Path=/u/; Max-Age=0")));
  EXPECT_THAT(cleared, ::testing::Contains(AllOf(HasSubstr("Path=/u/"), HasSubstr("Domain=ws.localhost"))));
  // Its own cookie alone is believed (the owner's request starts the
  // workspace: 503 while it starts, not 401).
  auto alone = w.daemon->get("/u/" + b_id + "/", {{"Host", h["Host"]}, {"Cookie", own}});
  EXPECT_NE(alone.status, 401) << alone.body;
  EXPECT_NE(alone.status, 302) << alone.body;
}

// Every long-lived response is registered for revocation: an event stream
// ends at the logout of the session that opened it.
TEST(TenantLimits, ALogoutEndsTheSessionsEventStreams) {
  WorkspaceDaemon w;
  auto alice = w.login("alice");
  const std::string a_id = user_id(w, alice);
  RawConnection stream("127.0.0.1", w.daemon->port());
  stream.send("GET /api/workspace/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + w.as(alice)["Cookie"] + "\r\n\r\n");
  EXPECT_THAT(read_until(stream, "event: state", 10s), HasSubstr("event: state"));
  auto ws_headers = w.in(alice, a_id);
  RawConnection ws_stream("127.0.0.1", w.daemon->port());
  ws_stream.send("GET /_feuille/events HTTP/1.1\r\nHost: " + ws_headers["Host"] + "\r\nCookie: " + ws_headers["Cookie"] +
                 "\r\n\r\n");
  EXPECT_THAT(read_until(ws_stream, "event: state", 10s), HasSubstr("event: state"));
  EXPECT_EQ(w.post("/auth/logout", alice).status, 302);
  EXPECT_TRUE(stream.closed_by_peer(5s));
  EXPECT_TRUE(ws_stream.closed_by_peer(5s));
}

// A ticket outlives nothing: redeemed after the member was removed, it is
// refused (the membership is checked again when the cookie is stored).
TEST(TenantLimits, ATicketIssuedBeforeARemovalIsRefused) {
  WorkspaceDaemon w;
  auto alice = w.login("alice"), mia = w.login("mia");
  const std::string a_id = user_id(w, alice), m_id = user_id(w, mia);
  ASSERT_EQ(w.post("/api/workspace/start", alice).status, 202);  // makes the Scratch project
  ASSERT_TRUE(w.wait_state(alice, "running"));
  auto headers = w.as(alice, true);
  headers["Content-Type"] = "application/json";
  auto inv = w.daemon->request("POST", "/api/invites", headers, R"({"project":"Scratch","role":"editor"})");
  ASSERT_EQ(inv.status, 201) << inv.body;
  ASSERT_EQ(w.post("/join/" + json::parse(inv.body)["token"].get<std::string>(), mia).status, 303);

  auto first = w.daemon->get("/u/" + a_id + "/", w.as(mia));
  ASSERT_EQ(first.status, 302);
  const std::string enter = first.header("location").substr(w.workspace_origin(a_id).size());
  ASSERT_EQ(w.daemon->request("DELETE", "/api/members/" + m_id, w.as(alice, true)).status, 204);
  auto redeemed = w.daemon->get(enter, {{"Host", w.workspace_host(a_id)}});
  EXPECT_EQ(redeemed.status, 400);
  EXPECT_TRUE(redeemed.header("set-cookie").empty());
  EXPECT_EQ(w.daemon->db().scalar("SELECT count(*) FROM workspace_sessions"), "0");
}
