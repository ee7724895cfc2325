#include "support/netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>

#include "support/podman.hpp"

namespace feuille::test {

std::string sandbox_key(const std::string& container, const std::string& podman_url) {
  auto info = TestPodman(podman_url).inspect(container);
  if (!info) throw std::runtime_error(container + ": no such container");
  std::string key = (*info)["NetworkSettings"].value("SandboxKey", "");
  if (key.empty()) throw std::runtime_error(container + " has no network namespace of its own");
  return key;
}

void in_netns(const std::string& ns_path, const std::function<void()>& fn) {
  std::exception_ptr failed;
  std::thread t([&] {
    try {
      int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error("open " + ns_path + ": " + std::strerror(errno));
      int rc = ::setns(fd, CLONE_NEWNET);
      ::close(fd);
      if (rc != 0) throw std::runtime_error("setns " + ns_path + ": " + std::strerror(errno));
      fn();
    } catch (...) {
      failed = std::current_exception();
    }
  });
  t.join();
  if (failed) std::rethrow_exception(failed);
}

std::string connect_from(const std::string& ns_path, const std::string& address, int port, int timeout_ms) {
  std::string outcome;
  in_netns(ns_path, [&] {
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<std::uint16_t>(port));
      len = sizeof *v4;
    } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<std::uint16_t>(port));
      len = sizeof *v6;
    } else {
      throw std::invalid_argument("not an address: " + address);
    }
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      outcome = "unreachable";  // no such family here
      return;
    }
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t l = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
      }
    }
    ::close(fd);
    outcome = err == 0              ? "connected"
              : err == ECONNREFUSED ? "refused"
              : err == ETIMEDOUT    ? "timeout"
                                    : "unreachable";
  });
  return outcome;
}

}  // namespace feuille::test
