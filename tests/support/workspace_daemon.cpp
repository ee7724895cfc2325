#include "support/workspace_daemon.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <iostream>
#include <thread>

#include "support/podman.hpp"

namespace feuille::test {

using namespace std::chrono_literals;

WorkspaceDaemon::WorkspaceDaemon(std::vector<std::string> extra, std::string podman, std::vector<std::string> prefix)
    : podman_(std::move(podman)) {
  chmod(data_.path().c_str(), 0755);
  auto args = standin_args();
  args.insert(args.end(), {"--dev-login", "--data-dir", data_.path() + "/users", "--workspace-origin",
                           "http://{id}.ws.localhost:{port}"});
  if (!podman_.empty()) args.insert(args.end(), {"--compute-host", compute_host_arg(podman_)});
  args.insert(args.end(), extra.begin(), extra.end());
  args_ = args;
  daemon = std::make_unique<Daemon>(args, std::map<std::string, std::string>{}, std::move(prefix));
  instance = daemon->db().scalar("SELECT id::text FROM compute_instance");
}

WorkspaceDaemon::~WorkspaceDaemon() {
  if (daemon->process().running()) daemon->stop();
  if (::testing::UnitTest::GetInstance()->failed_test_count() > 0 ||
      (::testing::UnitTest::GetInstance()->current_test_info() && ::testing::Test::HasFailure()))
    std::cerr << "feuilled's stderr:\n" << daemon->process().stderr_text() << "\n";
  try {
    TestPodman(podman_).remove_instance(instance);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cleanup: " << e.what();
  }
}

std::unique_ptr<Daemon> WorkspaceDaemon::another() {
  auto args = args_;
  args.insert(args.end(), {"--database-url", daemon->db().url()});
  return std::make_unique<Daemon>(args);
}

std::string WorkspaceDaemon::origin() const { return "http://127.0.0.1:" + std::to_string(daemon->port()); }

std::string WorkspaceDaemon::login(const std::string& handle, Daemon* d) {
  d = d ? d : daemon.get();
  auto r = d->request("POST", "/auth/dev",
                      {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"Origin", "http://127.0.0.1:" + std::to_string(d->port())}},
                      "handle=" + handle);
  EXPECT_EQ(r.status, 302) << r.body;
  for (auto [it, end] = r.headers.equal_range("set-cookie"); it != end; ++it)
    if (it->second.rfind("feuille_session=", 0) == 0) return it->second.substr(16, it->second.find(';') - 16);
  ADD_FAILURE() << "no session cookie";
  return "";
}

std::map<std::string, std::string> WorkspaceDaemon::as(const std::string& token, bool post) const {
  std::map<std::string, std::string> h{{"Cookie", "feuille_session=" + token}};
  if (post) h["Origin"] = origin();
  return h;
}

HttpResponse WorkspaceDaemon::post(const std::string& path, const std::string& token, Daemon* d) {
  d = d ? d : daemon.get();
  return d->request("POST", path,
                    {{"Cookie", "feuille_session=" + token},
                     {"Origin", "http://127.0.0.1:" + std::to_string(d->port())}});
}

std::string WorkspaceDaemon::workspace_host(const std::string& owner_id, Daemon* d) const {
  d = d ? d : daemon.get();
  return owner_id + ".ws.localhost:" + std::to_string(d->port());
}

std::string WorkspaceDaemon::workspace_origin(const std::string& owner_id, Daemon* d) const {
  return "http://" + workspace_host(owner_id, d);
}

std::map<std::string, std::string> WorkspaceDaemon::in(const std::string& token, const std::string& owner_id,
                                                       bool post, Daemon* d, bool fresh) {
  d = d ? d : daemon.get();
  std::string& cookie = entered_[token + owner_id + std::to_string(d->port())];
  if (cookie.empty() || fresh) {
    cookie.clear();
    auto first = d->get("/u/" + owner_id + "/", as(token));
    std::string location = first.header("location");
    const std::string enter = workspace_origin(owner_id, d) + "/_feuille/enter?ticket=";
    EXPECT_EQ(first.status, 302) << first.body;
    EXPECT_EQ(location.rfind(enter, 0), 0u) << location;
    if (location.rfind(enter, 0) == 0) {
      auto second = d->get(location.substr(workspace_origin(owner_id, d).size()), {{"Host", workspace_host(owner_id, d)}});
      EXPECT_EQ(second.status, 302) << second.body;
      EXPECT_EQ(second.header("location"), "/u/" + owner_id + "/");
      for (auto [it, end] = second.headers.equal_range("set-cookie"); it != end; ++it)
        if (it->second.rfind("feuille_ws=", 0) == 0) cookie = it->second.substr(11, it->second.find(';') - 11);
      EXPECT_FALSE(cookie.empty()) << "no workspace cookie";
    }
  }
  std::map<std::string, std::string> h{{"Host", workspace_host(owner_id, d)}, {"Cookie", "feuille_ws=" + cookie}};
  if (post) h["Origin"] = workspace_origin(owner_id, d);
  return h;
}

nlohmann::json WorkspaceDaemon::workspace(const std::string& token, Daemon* d) {
  d = d ? d : daemon.get();
  auto r = d->get("/api/workspace", as(token));
  EXPECT_EQ(r.status, 200) << r.body;
  return nlohmann::json::parse(r.body);
}

bool WorkspaceDaemon::wait_state(const std::string& token, const std::string& state, Daemon* d,
                                 std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (workspace(token, d)["state"] != state) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

std::string read_until(RawConnection& c, const std::string& needle, std::chrono::milliseconds timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{c.fd(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

}  // namespace feuille::test
