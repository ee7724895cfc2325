#include "compute/netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "util/offload.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::system_error sys_error(const char* what) { return std::system_error(errno, std::generic_category(), what); }

std::atomic<std::uint64_t> g_next_serial{1};

}  // namespace

NetnsThread::NetnsThread() {
  host_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (host_fd_ < 0) throw sys_error("opening feuilled's own network namespace");
}

NetnsThread::~NetnsThread() {
  thread_.join();
  ::close(host_fd_);
}

asio::awaitable<int> NetnsThread::make_socket(int ns_fd, std::uint16_t listen_port) {
  const int host_fd = host_fd_;
  auto job = [ns_fd, host_fd, listen_port]() -> int {
    // Every job enters its own target first, so whatever the thread was left
    // in, a socket is only ever made in the namespace asked for.
    if (::setns(ns_fd, CLONE_NEWNET) != 0) throw sys_error("setns into the container's network namespace");
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int socket_errno = errno;
    // Back home at once: the thread holds no tenant's namespace between jobs.
    if (::setns(host_fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) ::close(fd);
      throw sys_error("setns back into feuilled's network namespace");
    }
    if (fd < 0) {
      errno = socket_errno;
      throw sys_error("socket");
    }
    if (listen_port) {
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(listen_port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        auto e = sys_error(("listening on 127.0.0.1:" + std::to_string(listen_port)).c_str());
        ::close(fd);
        throw e;
      }
    }
    return fd;
  };
  co_return co_await offload(thread_, std::move(job));
}

Netns::Netns(NetnsThread& thread, int fd, std::string path, std::uint64_t inode)
    : thread_(thread), fd_(fd), path_(std::move(path)), inode_(inode), serial_(g_next_serial++) {}

Netns::~Netns() { ::close(fd_); }

std::shared_ptr<Netns> Netns::open(NetnsThread& thread, const std::string& sandbox_key) {
  if (sandbox_key.empty() || sandbox_key[0] != '/')
    throw std::runtime_error("no network namespace path (SandboxKey " + sandbox_key + ")");
  int fd = ::open(sandbox_key.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw std::runtime_error("cannot open " + sandbox_key + ": " + std::strerror(errno));
  auto fail = [&](const std::string& why) {
    ::close(fd);
    throw std::runtime_error(sandbox_key + ": " + why);
  };
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0 || sfs.f_type != NSFS_MAGIC) fail("not a namespace file");
  if (::ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) fail("not a network namespace");
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(std::strerror(errno));
  return std::shared_ptr<Netns>(new Netns(thread, fd, sandbox_key, st.st_ino));
}

asio::awaitable<tcp::socket> Netns::socket(asio::any_io_executor ex) const {
  int fd = co_await thread_.make_socket(fd_, 0);
  tcp::socket s(ex);
  boost::system::error_code ec;
  s.assign(tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    throw boost::system::system_error(ec, "socket in " + path_);
  }
  co_return s;
}

asio::awaitable<tcp::acceptor> Netns::listen(asio::any_io_executor ex, std::uint16_t port) const {
  int fd = co_await thread_.make_socket(fd_, port);
  tcp::acceptor a(ex);
  boost::system::error_code ec;
  a.assign(tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    throw boost::system::system_error(ec, "listener in " + path_);
  }
  co_return a;
}

}  // namespace feuille::compute
