#pragma once
// A real feuilled whose workspaces run the stand-in image on the fixture's
// Podman, with dev login; its containers are removed when it goes. Shared by
// the workspace and proxy tests.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/daemon.hpp"
#include "support/process.hpp"

namespace feuille::test {

class WorkspaceDaemon {
 public:
  // `prefix`: as Daemon's (the daemon runs under it; another() does not).
  explicit WorkspaceDaemon(std::vector<std::string> extra = {}, std::string podman = "",
                           std::vector<std::string> prefix = {});
  ~WorkspaceDaemon();
  // feuilled again on the same database (after the first one died).
  std::unique_ptr<Daemon> another();

  std::string origin() const;
  // Signs `handle` in with dev login; returns the session token.
  std::string login(const std::string& handle, Daemon* d = nullptr);
  // The session cookie (and, for a state change, the same-origin Origin).
  std::map<std::string, std::string> as(const std::string& token, bool post = false) const;
  HttpResponse post(const std::string& path, const std::string& token, Daemon* d = nullptr);
  // Workspace origins (the daemon runs with workspace-origin
  // http://{id}.ws.localhost:{port}). The Host of owner's workspace origin.
  std::string workspace_host(const std::string& owner_id, Daemon* d = nullptr) const;
  std::string workspace_origin(const std::string& owner_id, Daemon* d = nullptr) const;
  // Enters owner's workspace as token's user the way a browser does (GET
  // /u/{owner}/ on public-url, its 302 through a ticket, the cookie the
  // workspace origin sets) and returns the headers of a request there: Host
  // and the feuille_ws cookie (and the same-origin Origin for a state
  // change). The cookie is kept for the next call (`fresh` asks anew).
  std::map<std::string, std::string> in(const std::string& token, const std::string& owner_id, bool post = false,
                                        Daemon* d = nullptr, bool fresh = false);
  nlohmann::json workspace(const std::string& token, Daemon* d = nullptr);
  bool wait_state(const std::string& token, const std::string& state, Daemon* d = nullptr,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));

  std::unique_ptr<Daemon> daemon;
  std::string instance;

 private:
  std::map<std::string, std::string> entered_;  // token + owner -> feuille_ws cookie
  TempDir data_;
  std::string podman_;
  std::vector<std::string> args_;
};

// Reads from a connection until `needle` appears (or the timeout passes).
std::string read_until(RawConnection& c, const std::string& needle,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace feuille::test
