#include "auth/request_checks.hpp"

#include <algorithm>
#include <cctype>

#include "http/url.hpp"

namespace feuille::auth {
namespace {

namespace bh = boost::beast::http;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// Not a network-path reference, no backslash (browsers read it as '/'),
// no control characters (browsers drop tabs and newlines, which could
// join "/\t/" into "//").
bool local_path_form(std::string_view s) {
  if (s.empty() || s.front() != '/') return false;
  if (s.size() > 1 && (s[1] == '/' || s[1] == '\\')) return false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
  }
  return true;
}

// The path as given: that, and only printable ASCII (it goes into a
// Location header and an HTML attribute).
bool plain_local_path(std::string_view s) {
  if (!local_path_form(s)) return false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '`') return false;
  }
  return true;
}

}  // namespace

namespace {

// Calls `f(value)` for each cookie named `name` until it returns false.
template <class F>
void each_cookie(const bh::fields& h, std::string_view name, F f) {
  auto [first, last] = h.equal_range(bh::field::cookie);
  for (auto it = first; it != last; ++it) {
    std::string_view rest = it->value();
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view item = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      auto eq = item.find('=');
      if (eq == std::string_view::npos) continue;
      if (trim(item.substr(0, eq)) != name) continue;
      std::string_view value = trim(item.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      if (!f(value)) return;
    }
  }
}

}  // namespace

std::string_view find_cookie(const bh::fields& h, std::string_view name) {
  std::string_view found;
  int seen = 0;
  each_cookie(h, name, [&](std::string_view v) {
    found = v;
    return ++seen < 2;
  });
  return seen == 1 ? found : std::string_view{};
}

bool cookie_repeated(const bh::fields& h, std::string_view name) {
  int seen = 0;
  each_cookie(h, name, [&](std::string_view) { return ++seen < 2; });
  return seen > 1;
}

std::string cookie_name(std::string_view base, bool https) {
  return https ? "__Host-" + std::string(base) : std::string(base);
}

std::vector<std::string> clear_cookie_everywhere(std::string_view name, std::string_view host, std::string_view path,
                                                 bool secure) {
  if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(']') == std::string_view::npos)
    host = host.substr(0, colon);
  std::vector<std::string> domains{""};  // host-only
  for (std::string_view d = host; std::count(d.begin(), d.end(), '.') >= 1;) {
    domains.emplace_back(d);
    d = d.substr(d.find('.') + 1);
  }
  std::vector<std::string_view> paths{"/"};
  path = path.substr(0, path.find('?'));
  for (std::size_t at = path.find('/', 1); at != std::string_view::npos; at = path.find('/', at + 1)) {
    paths.push_back(path.substr(0, at));
    paths.push_back(path.substr(0, at + 1));
  }
  if (path.size() > 1) paths.push_back(path);
  std::vector<std::string> out;
  for (auto p : paths)  // shortest first: a very deep path stops at 64 answers
    for (const auto& d : domains) {
      if (out.size() >= 64) return out;
      std::string c = set_cookie(name, "", p, 0, secure);
      if (!d.empty()) c.append("; Domain=").append(d);
      out.push_back(std::move(c));
    }
  return out;
}

std::string set_cookie(std::string_view name, std::string_view value, std::string_view path, long long max_age_seconds,
                       bool secure) {
  std::string out;
  out.reserve(name.size() + value.size() + path.size() + 64);
  out.append(name).append("=").append(value).append("; Path=").append(path);
  out.append("; Max-Age=").append(std::to_string(std::max(0LL, max_age_seconds)));
  out.append("; HttpOnly; SameSite=Lax");
  if (secure) out.append("; Secure");
  return out;
}

std::string_view bearer_token(const bh::fields& h) {
  std::string_view v = trim(h[bh::field::authorization]);
  if (!istarts_with(v, "bearer ")) return {};
  return trim(v.substr(7));
}

std::optional<std::string> safe_next(std::string_view next) {
  if (next.empty() || next.size() > 2048) return std::nullopt;
  if (!plain_local_path(next)) return std::nullopt;
  // Whatever a later decoding (a browser, a proxy, ours) could make of it
  // must still be a local path.
  std::string form(next);
  for (int round = 0; round < 4 && form.find('%') != std::string::npos; ++round) {
    auto decoded = http::percent_decode(form);
    if (!decoded || !local_path_form(*decoded)) return std::nullopt;
    form = std::move(*decoded);
  }
  return std::string(next);
}

std::string normalize_origin(std::string_view url) {
  std::string_view scheme;
  if (istarts_with(url, "https://")) scheme = "https";
  else if (istarts_with(url, "http://")) scheme = "http";
  else return "";
  std::string_view rest = url.substr(scheme.size() + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.empty() || rest.find('@') != std::string_view::npos) return "";
  std::string_view host = rest, port;
  if (rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return "";
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "";
      port = after.substr(1);
    }
  } else if (auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || (!port.empty() && !std::all_of(port.begin(), port.end(), ::isdigit))) return "";
  if ((scheme == "https" && port == "443") || (scheme == "http" && port == "80")) port = {};
  std::string out(scheme);
  out += "://";
  for (char c : host) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (!port.empty()) out.append(":").append(port);
  return out;
}

bool origin_matches(std::string_view origin, std::string_view public_url) {
  origin = trim(origin);
  if (origin.empty() || origin == "null") return false;
  auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || origin.find_first_of("/?#", scheme_end + 3) != std::string_view::npos)
    return false;  // an Origin is scheme://host[:port], nothing more
  auto a = normalize_origin(origin);
  return !a.empty() && a == normalize_origin(public_url);
}

}  // namespace feuille::auth

namespace feuille::auth {

std::optional<std::array<std::uint8_t, 16>> parse_uuid(std::string_view s) {
  if (s.size() != 36) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  std::size_t byte = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[byte++] = static_cast<std::uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

}  // namespace feuille::auth
