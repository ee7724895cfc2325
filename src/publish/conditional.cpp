#include "publish/conditional.hpp"

#include <cstdint>
#include <cstdio>
#include <ctime>

#include "util/units.hpp"

namespace feuille::publish {
namespace {

using units::trim;

std::string_view opaque(std::string_view tag) {
  tag = trim(tag);
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  return tag;
}

bool parse_uint(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

bool etag_matches(std::string_view header, std::string_view etag) {
  if (trim(header) == "*") return true;
  std::string_view want = opaque(etag);
  while (!header.empty()) {
    auto comma = header.find(',');
    if (opaque(header.substr(0, comma)) == want) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

std::string http_date(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7], tm.tm_mday,
                kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<std::int64_t> parse_http_date(std::string_view text) {
  // "Sun, 06 Nov 1994 08:49:37 GMT": exactly 29 characters.
  text = trim(text);
  if (text.size() != 29 || text.substr(3, 2) != ", " || text.substr(25) != " GMT") return std::nullopt;
  auto num = [&](std::size_t at, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  std::tm tm{};
  int month = -1;
  for (int m = 0; m < 12; ++m)
    if (text.substr(8, 3) == kMonths[m]) month = m;
  if (month < 0 || text[7] != ' ' || text[11] != ' ' || text[16] != ' ' || text[19] != ':' || text[22] != ':')
    return std::nullopt;
  int day, year, hour, minute, second;
  if (!num(5, 2, day) || !num(12, 4, year) || !num(17, 2, hour) || !num(20, 2, minute) || !num(23, 2, second))
    return std::nullopt;
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  tm.tm_mday = day;
  tm.tm_mon = month;
  tm.tm_year = year - 1900;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm));
}

bool not_modified(std::string_view if_none_match, std::string_view if_modified_since, std::string_view etag,
                  std::int64_t last_modified) {
  if (!trim(if_none_match).empty()) return etag_matches(if_none_match, etag);
  if (trim(if_modified_since).empty()) return false;
  auto since = parse_http_date(if_modified_since);
  return since && last_modified <= *since;
}

RangeKind parse_range(std::string_view header, std::uint64_t size, ByteRange& out) {
  header = trim(header);
  if (header.size() < 6) return RangeKind::whole;
  for (std::size_t i = 0; i < 5; ++i)
    if ((header[i] | 0x20) != "bytes"[i]) return RangeKind::whole;
  if (header[5] != '=') return RangeKind::whole;
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return RangeKind::whole;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeKind::whole;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last N bytes
    if (!parse_uint(b, last)) return RangeKind::whole;
    if (last == 0 || size == 0) return RangeKind::unsatisfiable;
    out = {size > last ? size - last : 0, size - 1};
    return RangeKind::partial;
  }
  if (!parse_uint(a, first)) return RangeKind::whole;
  if (b.empty()) last = UINT64_MAX;
  else if (!parse_uint(b, last) || last < first) return RangeKind::whole;
  if (first >= size) return RangeKind::unsatisfiable;
  out = {first, last >= size ? size - 1 : last};
  return RangeKind::partial;
}

}  // namespace feuille::publish
