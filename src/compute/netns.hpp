#pragma once
// Containers' network namespaces, entered from feuilled (docs/compute.md,
// "Namespaces"). A socket keeps the namespace it was created in, so feuilled
// reaches 127.0.0.1 inside a container by creating the socket there and using
// it on the loop like any other: setns(2) changes the calling thread's
// namespace, so it happens on one dedicated thread (NetnsThread), never on the
// loop and never on the thread pool (a failed switch back would leave the
// database connections made there inside a tenant's namespace).
//
// A namespace is opened once per container from its SandboxKey
// (/run/netns/netns-...: a path that names that namespace and no other, which
// a reused PID cannot confuse) and kept open as a Netns; the descriptor keeps
// the namespace alive, so it is dropped when the container goes.
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

namespace feuille::compute {

class NetnsThread {
 public:
  NetnsThread();  // the host's namespace is the one of the thread that builds it
  ~NetnsThread();
  NetnsThread(const NetnsThread&) = delete;
  NetnsThread& operator=(const NetnsThread&) = delete;

  // A non-blocking IPv4 TCP socket created inside the namespace `ns_fd`; with
  // a port, also bound to 127.0.0.1:port there (SO_REUSEADDR) and listening.
  // Returns the descriptor; throws std::system_error (EADDRINUSE, EPERM...).
  boost::asio::awaitable<int> make_socket(int ns_fd, std::uint16_t listen_port);

 private:
  boost::asio::thread_pool thread_{1};
  int host_fd_ = -1;
};

class Netns {
 public:
  // Opens `sandbox_key` (a network namespace file of nsfs, the container's
  // SandboxKey). No check against the container's /proc/PID/ns/net: reading
  // another user's process's namespace links needs CAP_SYS_PTRACE, which
  // feuilled does not get (deploy/feuilled.service); the path is Podman's
  // own, and stays the container's however its PIDs are reused. Throws
  // std::runtime_error with the reason.
  static std::shared_ptr<Netns> open(NetnsThread& thread, const std::string& sandbox_key);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  // Unique per namespace opened by this process: keys what belongs to it
  // (pooled connections) so that nothing made for one namespace is ever
  // used for another, even under the same port.
  std::uint64_t serial() const { return serial_; }
  const std::string& path() const { return path_; }
  std::uint64_t inode() const { return inode_; }

  // An unconnected TCP socket inside the namespace, on `ex`.
  boost::asio::awaitable<boost::asio::ip::tcp::socket> socket(boost::asio::any_io_executor ex) const;
  // A listener on 127.0.0.1:port inside the namespace, on `ex`.
  boost::asio::awaitable<boost::asio::ip::tcp::acceptor> listen(boost::asio::any_io_executor ex,
                                                                std::uint16_t port) const;

 private:
  Netns(NetnsThread& thread, int fd, std::string path, std::uint64_t inode);
  NetnsThread& thread_;
  int fd_;
  std::string path_;
  std::uint64_t inode_;
  std::uint64_t serial_;
};

using NetnsPtr = std::shared_ptr<const Netns>;

}  // namespace feuille::compute
