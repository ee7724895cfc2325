#include "dev/podman_service.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "util/digest.hpp"

namespace fs = std::filesystem;

namespace feuille::dev {
namespace {

std::string socket_for(const std::string& dir) {
  std::string path = dir + "/podman.sock";
  if (path.size() <= 107) return path;
  return "/tmp/feuille-podman-" + util::sha256_hex(dir, 16) + ".sock";
}

}  // namespace

bool podman_ping(const std::string& socket_path, std::chrono::milliseconds timeout) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const char req[] = "GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
      std::string resp;
      auto deadline = std::chrono::steady_clock::now() + timeout;
      char buf[1024];
      while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.append(buf, static_cast<std::size_t>(n));
      }
      ok = resp.rfind("HTTP/1.", 0) == 0 && resp.find(" 200 ") != std::string::npos &&
           resp.size() >= 2 && resp.substr(resp.size() - 2) == "OK";
    }
  }
  close(fd);
  return ok;
}

PodmanService::PodmanService(std::string dir, std::string oci_runtime, bool tie_to_parent)
    : dir_(fs::absolute(dir).lexically_normal().string()),
      oci_runtime_(std::move(oci_runtime)),
      tie_to_parent_(tie_to_parent),
      socket_(socket_for(dir_)),
      conf_(dir_ + "/containers.conf") {}

PodmanService::~PodmanService() {
  try {
    stop();
  } catch (...) {
  }
}

bool PodmanService::available() { return find_program("podman").has_value(); }

void PodmanService::start(std::chrono::milliseconds timeout) {
  fs::create_directories(dir_);
  ChildOptions o;
  o.stdout_file = dir_ + "/podman.log";
  o.parent_death_signal = tie_to_parent_ ? SIGTERM : 0;
  if (const char* given = std::getenv("CONTAINERS_CONF"); given && *given) {
    conf_ = given;
  } else {
    std::ofstream(conf_) << "# Written by feuilled for its private podman service.\n"
                         << "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"" << oci_runtime_ << "\"\n";
    o.env["CONTAINERS_CONF"] = conf_;
  }
  // Checkpoint exports and restores spool whole archives into TMPDIR
  // (podman-criu-contract.md): into the state folder, not /var/tmp.
  fs::create_directories(dir_ + "/tmp");
  o.env["TMPDIR"] = dir_ + "/tmp";
  // A service of an earlier run that was not stopped.
  stop_running(dir_);
  std::error_code ec;
  fs::remove(socket_, ec);
  service_ = ChildProcess({"podman", "system", "service", "--time=0", "unix://" + socket_}, o);
  started_ = true;
  std::ofstream(dir_ + "/podman.pid") << service_.pid() << "\n";
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!podman_ping(socket_, std::chrono::seconds(2))) {
    if (!service_.running()) {
      started_ = false;
      throw std::runtime_error("podman system service exited at start (see " + dir_ + "/podman.log)");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw std::runtime_error("podman system service did not answer in time (see " + dir_ + "/podman.log)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void PodmanService::stop() {
  if (!started_) return;
  started_ = false;
  service_.stop(SIGTERM, std::chrono::seconds(10));
  std::error_code ec;
  fs::remove(dir_ + "/podman.pid", ec);
}

void PodmanService::stop_running(const std::string& dir) {
  std::ifstream in(dir + "/podman.pid");
  long pid = 0;
  if (in >> pid && process_alive(static_cast<pid_t>(pid), "system service")) {
    kill(static_cast<pid_t>(pid), SIGTERM);
    for (int i = 0; i < 500 && kill(static_cast<pid_t>(pid), 0) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (kill(static_cast<pid_t>(pid), 0) == 0) kill(static_cast<pid_t>(pid), SIGKILL);
  }
  std::error_code ec;
  fs::remove(dir + "/podman.pid", ec);
}

}  // namespace feuille::dev
