#pragma once
// Request-time failures that carry their own HTTP status. The server answers
// them in one place: the client sees `public_message`, the log sees what().
#include <stdexcept>
#include <string>

namespace feuille {

struct RequestError : std::runtime_error {
  RequestError(unsigned status, std::string public_message, const std::string& detail = "")
      : std::runtime_error(detail.empty() ? public_message : detail),
        status(status),
        public_message(std::move(public_message)) {}
  unsigned status;
  std::string public_message;
  unsigned retry_after_seconds = 0;  // sent as Retry-After when set
};

}  // namespace feuille
