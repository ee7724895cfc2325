#include "compute/port_allocator.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace feuille::compute {

PortAllocator::PortAllocator() : random_(std::random_device{}()) {}

std::optional<std::uint16_t> PortAllocator::allocate(Range range, const std::function<bool(std::uint16_t)>& usable) {
  const std::uint32_t size = static_cast<std::uint32_t>(range.last - range.first) + 1;
  auto [it, fresh] = cursor_.try_emplace(range.first, 0);
  if (fresh) it->second = static_cast<std::uint16_t>(std::uniform_int_distribution<std::uint32_t>(0, size - 1)(random_));
  for (std::uint32_t i = 0; i < size; ++i) {
    auto port = static_cast<std::uint16_t>(range.first + (it->second + i) % size);
    if (taken(port)) continue;
    if (usable && !usable(port)) continue;
    it->second = static_cast<std::uint16_t>((it->second + i + 1) % size);
    taken_.insert(port);
    return port;
  }
  return std::nullopt;
}

bool port_free_on_host(const std::string& address, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return true;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool free = true;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) free = errno != EADDRINUSE && errno != EACCES;
  close(fd);
  return free;
}

}  // namespace feuille::compute
