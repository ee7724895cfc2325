#pragma once
// One spdlog logger per module ("http", "proxy", "auth", "compute", "publish",
// "monitor", "db", "app") sharing one buffered stderr sink. Lines are flushed
// at warn and above, when the buffer fills, and by flush_logs() (called every
// half second by the loop and at exit), like nginx's buffered access log.
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

namespace feuille {

// Configures the shared sink; format is "text" or "json". Safe to call again
// (SIGHUP) to change the level.
void setup_logging(const std::string& format, const std::string& level);
void set_log_level(const std::string& level);
void flush_logs();

// Writes a message that needs no formatting through the shared sink with a
// cached timestamp (same line format as the logger's). For hot paths.
void log_preformatted(spdlog::logger& l, spdlog::level::level_enum level, std::string_view msg);

// The module's logger (created on first use with the shared sink).
std::shared_ptr<spdlog::logger> logger(std::string_view module);

}  // namespace feuille
