#pragma once
// The client's address: the peer, or, when the peer is a trusted proxy, the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "feuille/config.hpp"

namespace feuille::http {

using IpBytes = std::array<std::uint8_t, 16>;

bool is_trusted(const IpBytes& ip, const std::vector<Cidr>& trusted);

// `forwarded_for` is every X-Forwarded-For value joined with ','.
IpBytes resolve_client(const IpBytes& peer, std::string_view forwarded_for, const std::vector<Cidr>& trusted);

// Dotted quad for IPv4-mapped addresses, RFC 5952 text otherwise.
std::string ip_text(const IpBytes& ip);

}  // namespace feuille::http
