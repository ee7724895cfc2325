#pragma once
// Keep-alive connections to editors, pooled per editor: its network
// namespace, port and per-start token, so a connection to a stopped or
// restarted editor is never reused (it expires with the other idle ones).
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "feuille/config.hpp"
#include "compute/workspaces.hpp"
#include "util/deadline.hpp"

namespace feuille::proxy {

struct UpstreamConnection {
  explicit UpstreamConnection(boost::asio::any_io_executor ex);
  ~UpstreamConnection();
  boost::asio::ip::tcp::socket socket;
  boost::beast::flat_buffer buffer;  // bytes read past the last response
  std::shared_ptr<Deadline> deadline;
  std::string key;
  bool reused = false;
  std::chrono::steady_clock::time_point idle_since;
};

class UpstreamPool {
 public:
  UpstreamPool(boost::asio::any_io_executor ex, std::size_t max_idle_per_editor, Duration idle_expiry);

  // An idle connection to the editor (reused = true), else a new one made in
  // the editor's namespace and connected to its 127.0.0.1:port within
  // `connect_timeout`. Throws boost::system::system_error (or
  // std::system_error when the namespace cannot be entered).
  boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> get(const compute::EditorTarget& editor, Duration connect_timeout);
  // Back to the pool after a complete exchange on a keep-alive connection.
  void put(std::unique_ptr<UpstreamConnection> c);
  // Close idle connections past their expiry (called periodically).
  void sweep();
  void close_all();

 private:
  boost::asio::any_io_executor ex_;
  std::size_t max_idle_;
  Duration expiry_;
  std::unordered_map<std::string, std::deque<std::unique_ptr<UpstreamConnection>>> idle_;
  std::string key_;  // the key of the editor asked for, reused
};

}  // namespace feuille::proxy
