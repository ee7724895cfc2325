#pragma once
// HTTP validators and byte ranges for published pages and assets (RFC 9110):
// ETag matching, HTTP dates, single-range Range headers.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace feuille::publish {

// True when an If-None-Match value ("*" or a list of entity tags, weak or
// strong) matches `etag` (quoted), compared weakly as the RFC asks.
bool etag_matches(std::string_view if_none_match, std::string_view etag);

// "Sun, 06 Nov 1994 08:49:37 GMT" for Unix seconds, and back (IMF-fixdate
// only; nullopt for anything else).
std::string http_date(std::int64_t unix_seconds);
std::optional<std::int64_t> parse_http_date(std::string_view text);

// Whether a request with these headers gets a 304 for a representation with
// this ETag and Last-Modified (If-None-Match wins over If-Modified-Since).
bool not_modified(std::string_view if_none_match, std::string_view if_modified_since, std::string_view etag,
                  std::int64_t last_modified);

struct ByteRange {
  std::uint64_t first = 0, last = 0;  // inclusive
};
enum class RangeKind { whole, partial, unsatisfiable };
// A Range header for a representation of `size` bytes. Only one range of
// bytes is honoured; several ranges, other units or bad syntax mean the
// whole representation (as the RFC allows).
RangeKind parse_range(std::string_view header, std::uint64_t size, ByteRange& out);

}  // namespace feuille::publish
