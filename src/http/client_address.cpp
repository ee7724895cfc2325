#include "http/client_address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "util/units.hpp"

namespace feuille::http {

bool is_trusted(const IpBytes& ip, const std::vector<Cidr>& trusted) {
  for (const auto& c : trusted)
    if (c.contains(ip)) return true;
  return false;
}

IpBytes resolve_client(const IpBytes& peer, std::string_view forwarded_for, const std::vector<Cidr>& trusted) {
  if (!is_trusted(peer, trusted)) return peer;
  IpBytes client = peer;
  // Walk from the right: each trusted hop vouches for the one before it.
  while (!forwarded_for.empty()) {
    auto comma = forwarded_for.rfind(',');
    std::string_view item = units::trim(
        comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for = comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
    // "[v6]:port" or "v4:port" forms are tolerated.
    if (!item.empty() && item.front() == '[') {
      auto close = item.find(']');
      item = close == std::string_view::npos ? std::string_view{} : item.substr(1, close - 1);
    } else if (item.find(':') != item.rfind(':')) {
      // bare IPv6
    } else if (auto colon = item.find(':'); colon != std::string_view::npos) {
      item = item.substr(0, colon);
    }
    auto ip = units::parse_ip(item);
    if (!ip) break;  // garbage: stop believing the header here
    client = *ip;
    if (!is_trusted(client, trusted)) break;
  }
  return client;
}

std::string ip_text(const IpBytes& ip) {
  bool mapped = std::all_of(ip.begin(), ip.begin() + 10, [](auto b) { return b == 0; }) && ip[10] == 0xff &&
                ip[11] == 0xff;
  if (mapped) {
    // Dotted quad by hand: inet_ntop goes through sprintf.
    char buf[16];
    char* p = buf;
    for (int i = 12; i < 16; ++i) {
      if (i > 12) *p++ = '.';
      p = std::to_chars(p, buf + sizeof buf, ip[i]).ptr;
    }
    return std::string(buf, p);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, ip.data(), buf, sizeof buf);
  return buf;
}

}  // namespace feuille::http
