#include "util/units.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace feuille::units {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

namespace {

// A non-negative decimal ("12", "1.5"); returns the number and the rest.
std::optional<std::pair<double, std::string_view>> leading_number(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  std::string_view num = s.substr(0, i);
  if (num.front() == '.' || num.back() == '.' || num.find('.') != num.rfind('.'))
    return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
  if (ec != std::errc{} || ptr != num.data() + num.size() || !std::isfinite(value))
    return std::nullopt;
  return std::pair{value, s.substr(i)};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  text = trim(text);
  if (text == "0") return Duration{0};
  auto parsed = leading_number(text);
  if (!parsed) return std::nullopt;
  auto [value, unit] = *parsed;
  double ms_per_unit = 0;
  if (unit == "ms") ms_per_unit = 1;
  else if (unit == "s") ms_per_unit = 1000;
  else if (unit == "m") ms_per_unit = 60'000;
  else if (unit == "h") ms_per_unit = 3'600'000;
  else if (unit == "d") ms_per_unit = 86'400'000;
  else return std::nullopt;
  double ms = value * ms_per_unit;
  if (ms > 3650.0 * 86'400'000) return std::nullopt;  // ten years is plenty
  return Duration{static_cast<Duration::rep>(std::llround(ms))};
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0";
  struct U { long long n; const char* s; };
  for (U u : {U{86'400'000, "d"}, U{3'600'000, "h"}, U{60'000, "m"}, U{1000, "s"}})
    if (ms % u.n == 0) return std::to_string(ms / u.n) + u.s;
  return std::to_string(ms) + "ms";
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  text = trim(text);
  auto parsed = leading_number(text);
  if (!parsed) return std::nullopt;
  auto [value, unit] = *parsed;
  unit = trim(unit);
  double mult = 0;
  if (unit.empty() || iequals(unit, "b")) mult = 1;
  else {
    static constexpr std::pair<char, double> prefixes[] = {
        {'k', 1024.0}, {'m', 1048576.0}, {'g', 1073741824.0}, {'t', 1099511627776.0}};
    char p = static_cast<char>(std::tolower(static_cast<unsigned char>(unit.front())));
    std::string_view suffix = unit.substr(1);
    if (!(suffix.empty() || iequals(suffix, "b") || iequals(suffix, "i") || iequals(suffix, "ib")))
      return std::nullopt;
    for (auto [c, m] : prefixes)
      if (c == p) mult = m;
    if (mult == 0) return std::nullopt;
  }
  double bytes = value * mult;
  if (bytes >= 1.8e19) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text) {
  std::string s(text);
  std::array<std::uint8_t, 16> out{};
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  text = trim(text);
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  if (host == "localhost") host = "127.0.0.1";
  if (!parse_ip(host)) return std::nullopt;
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc{} || ptr != port.data() + port.size() || p > 65535)
    return std::nullopt;
  return Endpoint{std::string(host), static_cast<std::uint16_t>(p)};
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  text = trim(text);
  Cidr c;
  c.text = std::string(text);
  auto slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  c.bytes = *ip;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  int max = v4 ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc{} || ptr != p.data() + p.size() || prefix < 0 || prefix > max)
      return std::nullopt;
  }
  c.prefix = v4 ? prefix + 96 : prefix;
  return c;
}

std::optional<double> parse_percent(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  auto parsed = leading_number(text);
  if (!parsed || !parsed->second.empty() || parsed->first > 100) return std::nullopt;
  return parsed->first;
}

std::vector<std::string> shell_split(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(cur)), cur.clear(), in_word = false;
    } else if (c == '\'') {
      auto end = text.find('\'', i + 1);
      if (end == std::string_view::npos) throw std::invalid_argument("unterminated single quote");
      cur.append(text.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      in_word = true;
      for (++i;; ++i) {
        if (i >= text.size()) throw std::invalid_argument("unterminated double quote");
        char d = text[i];
        if (d == '"') break;
        if (d == '\\' && i + 1 < text.size() && std::strchr("\"\\$`\n", text[i + 1])) {
          if (text[i + 1] != '\n') cur.push_back(text[i + 1]);
          ++i;
        } else {
          cur.push_back(d);
        }
      }
    } else if (c == '\\') {
      if (i + 1 >= text.size()) throw std::invalid_argument("trailing backslash");
      if (text[i + 1] != '\n') cur.push_back(text[i + 1]), in_word = true;
      ++i;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace feuille::units

namespace feuille {

bool Endpoint::is_loopback() const {
  auto ip = units::parse_ip(host);
  if (!ip) return false;
  static const std::array<std::uint8_t, 16> v6_loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  bool mapped_v4 = std::all_of(ip->begin(), ip->begin() + 10, [](auto b) { return b == 0; }) &&
                   (*ip)[10] == 0xff && (*ip)[11] == 0xff;
  return *ip == v6_loopback || (mapped_v4 && (*ip)[12] == 127);
}

std::string Endpoint::text() const {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                             : host + ":" + std::to_string(port);
}

bool Cidr::contains(const std::array<std::uint8_t, 16>& addr) const {
  int bits = prefix;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((addr[i] & mask) != (bytes[i] & mask)) return false;
  }
  return true;
}

const Plan* Config::find_plan(const std::string& name) const {
  for (const auto& p : plans)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace feuille
