#include "app/systemd.hpp"

#include <systemd/sd-daemon.h>

#include <string>

namespace feuille::app {

void sd_send(std::string_view message) { sd_notify(0, std::string(message).c_str()); }

std::optional<Duration> watchdog_period() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return Duration{std::max<long long>(1, static_cast<long long>(usec / 2000))};
}

}  // namespace feuille::app
