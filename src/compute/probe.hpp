#pragma once
// Readiness probe of an editor or runtime: GET path on address:port, bounded.
#include <cstdint>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "feuille/config.hpp"

namespace feuille::compute {

struct ProbeResult {
  unsigned status = 0;  // 0 = no HTTP answer
  std::string error;    // why, when status is 0
  bool healthy() const { return status >= 200 && status < 300; }
};

// `token` (when not empty) is sent as X-Token: the editor's health path may sit
// behind its token.
boost::asio::awaitable<ProbeResult> probe_http(boost::asio::any_io_executor ex, std::string address,
                                               std::uint16_t port, std::string path, std::string token,
                                               Duration timeout);

}  // namespace feuille::compute
