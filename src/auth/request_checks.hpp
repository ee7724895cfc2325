#pragma once
// Pure checks on what a browser sends: cookies, the `next` redirect target,
// and whether an Origin is feuilled's own. No I/O; unit-tested.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>

namespace feuille::auth {

inline constexpr std::string_view kSessionCookie = "feuille_session";
inline constexpr std::string_view kOAuthCookie = "feuille_oauth";
inline constexpr std::string_view kWorkspaceCookie = "feuille_ws";

// The value of the cookie named `name` across every Cookie header; "" when
// there is none, or more than one: a second cookie of one of feuilled's
// names was set by someone else (another workspace's script, with a Domain
// and a longer Path that browsers send first), so neither is believed.
std::string_view find_cookie(const boost::beast::http::fields& h, std::string_view name);

// Whether the request carries more than one cookie named `name`.
bool cookie_repeated(const boost::beast::http::fields& h, std::string_view name);

// feuilled's cookie `base` as named on an origin: with the __Host- prefix on
// https, which browsers accept only host-only, Secure and with Path=/, so
// that no other origin (a workspace's script included) can set it.
std::string cookie_name(std::string_view base, bool https);

// The Set-Cookie values that delete every cookie named `name` this request
// could have carried: each domain from the request's host up to its last
// two labels (and host-only) times each path that is a prefix of `path`.
// Used to clear a tossed cookie, whose Domain and Path are unknown.
std::vector<std::string> clear_cookie_everywhere(std::string_view name, std::string_view host, std::string_view path,
                                                 bool secure);

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
