#pragma once
// systemd integration: sd_notify messages and the watchdog period.
#include <optional>
#include <string_view>

#include "feuille/config.hpp"

namespace feuille::app {

void sd_send(std::string_view message);  // no-op when NOTIFY_SOCKET is unset
// Half of WATCHDOG_USEC when systemd asks for keep-alives.
std::optional<Duration> watchdog_period();

}  // namespace feuille::app
