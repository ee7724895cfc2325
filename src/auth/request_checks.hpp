#pragma once
// Pure checks on what a browser sends: cookies, the `next` redirect target,
// and whether an Origin is feuilled's own. No I/O; unit-tested.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/fields.hpp>

namespace feuille::auth {

inline constexpr std::string_view kSessionCookie = "feuille_session";
inline constexpr std::string_view kOAuthCookie = "feuille_oauth";

// The value of the first cookie named `name` across every Cookie header, or "".
std::string_view find_cookie(const boost::beast::http::fields& h, std::string_view name);

// A Set-Cookie value: HttpOnly, SameSite=Lax, Secure when `secure`.
// max_age_seconds 0 clears the cookie.
std::string set_cookie(std::string_view name, std::string_view value, std::string_view path, long long max_age_seconds,
                       bool secure);

// The token of "Authorization: Bearer <token>", or "".
std::string_view bearer_token(const boost::beast::http::fields& h);

// `next` (already decoded once from the query or form) if it is a path on
// this site, else nullopt. Refused: anything not starting with one '/'
// ("//host", "/\host", "https:..."), backslashes, control characters,
// spaces and non-ASCII bytes, and the same in any percent-decoded form
// ("/%2F%2Fhost", "/%5Chost", double encodings).
std::optional<std::string> safe_next(std::string_view next);

// "scheme://host[:port]" of a URL, lowercased, without a default port; "" if
// it is not an http(s) origin.
std::string normalize_origin(std::string_view url);

// True when `origin` (an Origin header) is the same origin as `public_url`.
bool origin_matches(std::string_view origin, std::string_view public_url);

}  // namespace feuille::auth

namespace feuille::auth {

// A UUID in its canonical text form (8-4-4-4-12 hex digits) as 16 bytes.
std::optional<std::array<std::uint8_t, 16>> parse_uuid(std::string_view s);

}  // namespace feuille::auth
