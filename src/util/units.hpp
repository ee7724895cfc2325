#pragma once
// Parsers for the value syntaxes of configuration keys. Each returns nullopt
// (or throws std::invalid_argument for shell_split) on bad input; callers add
// the key name to the message.
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "feuille/config.hpp"

namespace feuille::units {

// "30s", "15m", "2h", "30d", "250ms", "1.5h", "0". A bare number other than 0
// is refused: a unit is required so that "30" is never mistaken for minutes.
std::optional<Duration> parse_duration(std::string_view text);
std::string format_duration(Duration d);

// "512M", "1G", "1GiB", "256MB", "4096", "2T"; K/M/G/T are powers of 1024 (as
// in Podman and the kernel's cgroup limits). A bare number is bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

// "127.0.0.1:8080", "[::1]:0", "localhost:8080" (= 127.0.0.1).
std::optional<Endpoint> parse_endpoint(std::string_view text);

// "10.0.0.0/8", "::1/128", "192.168.1.7".
std::optional<Cidr> parse_cidr(std::string_view text);

// An IP literal as 16 bytes (IPv4 mapped into IPv6); nullopt if not an IP.
std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text);

// "50", "50%", "0.5" in [0, 100].
std::optional<double> parse_percent(std::string_view text);

// Splits a command line into words as a POSIX shell would, without any
// expansion: single quotes are literal, double quotes honour \" \\ \$ \`,
// a backslash outside quotes escapes the next character. Throws
// std::invalid_argument on an unterminated quote or trailing backslash.
std::vector<std::string> shell_split(std::string_view text);

// Splits "a, b ,c" on commas, trimming blanks and dropping empty items.
std::vector<std::string> split_list(std::string_view text);

std::string_view trim(std::string_view s);

}  // namespace feuille::units
