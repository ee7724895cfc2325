#pragma once
// `podman system service` on a private socket, owned by feuilled in dev mode
// and by the test fixtures. Its containers.conf is written next to the socket
// (the OCI runtime asked for, no raised default ulimits) unless CONTAINERS_CONF
// is already set. Its TMPDIR, where checkpoint archives are spooled, is
// <dir>/tmp.
#include <chrono>
#include <string>

#include "util/child_process.hpp"

namespace feuille::dev {

class PodmanService {
 public:
  PodmanService(std::string dir, std::string oci_runtime, bool tie_to_parent = true);
  ~PodmanService();
  PodmanService(const PodmanService&) = delete;
  PodmanService& operator=(const PodmanService&) = delete;

  static bool available();  // podman is installed
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  void stop();
  static void stop_running(const std::string& dir);

  std::string socket_path() const { return socket_; }
  std::string url() const { return "unix://" + socket_; }
  std::string containers_conf() const { return conf_; }
  pid_t pid() const { return service_.pid(); }

 private:
  std::string dir_;
  std::string oci_runtime_;
  bool tie_to_parent_;
  std::string socket_;
  std::string conf_;
  ChildProcess service_;
  bool started_ = false;
};

// GET /_ping on a unix socket answers "OK" (blocking, bounded by timeout).
bool podman_ping(const std::string& socket_path, std::chrono::milliseconds timeout);

}  // namespace feuille::dev
