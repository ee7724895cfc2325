#pragma once
// Readiness probe of an editor or runtime: GET path on 127.0.0.1:port inside
// the container's own network namespace, bounded. Entering the namespace the
// container was started with is what makes the answer that container's: a
// 200 from anything else listening somewhere cannot pass for it.
#include <cstdint>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "compute/netns.hpp"
#include "feuille/config.hpp"

namespace feuille::compute {

struct ProbeResult {
  unsigned status = 0;  // 0 = no HTTP answer
  std::string error;    // why, when status is 0
  bool healthy() const { return status >= 200 && status < 300; }
};

// `token` (when not empty) is sent as X-Token: the editor's health path may sit
// behind its token.
boost::asio::awaitable<ProbeResult> probe_http(boost::asio::any_io_executor ex, NetnsPtr netns, std::uint16_t port,
                                               std::string path, std::string token, Duration timeout);

}  // namespace feuille::compute
