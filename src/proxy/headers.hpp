#pragma once
// The header rules of the reverse proxy (SPEC.md section 3), as pure
// functions over Beast headers that write wire text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/types.hpp"

namespace feuille::proxy {

// How a message body is delimited on the wire.
struct Framing {
  enum Kind { none, sized, chunked, until_close } kind = none;
  std::uint64_t length = 0;
};

// Request framing from a parsed request header (Beast validated it).
Framing request_framing(const http::HeaderParser& parser);

// True for a WebSocket (or other) upgrade request: a GET with Connection:
// upgrade and an Upgrade header. On any other method the Upgrade header is
// dropped like any hop-by-hop header and the request relayed as plain HTTP,
// its body framed.
bool is_upgrade(const http::bh::request_header<>& h);

// Methods a viewer may use (besides WebSocket upgrades).
bool is_safe_method(http::bh::verb m);
// Methods retried once on a fresh upstream connection when a pooled one
// turns out to be closed.
bool is_idempotent(http::bh::verb m);

struct ForwardInfo {
  std::string_view target;      // upstream target: "/rest?query", byte for byte
  std::string_view client;      // the client's address (after trusted proxies)
  std::string_view proto;       // "http" or "https" (public-url's scheme)
  std::string_view user_id;     // X-Feuille-User: the caller
  std::string_view role;        // X-Feuille-Role: owner, editor or viewer
  std::string_view token;       // X-Token: the editor's secret
  std::string_view request_id;  // X-Request-Id
};

// Serializes the request header sent upstream: hop-by-hop headers and those
// named in Connection removed; incoming X-Feuille-*, X-Token, X-Forwarded-*,
// Forwarded, X-HTTP-Method-Override (and its variants), Expect,
// Authorization: Bearer and body framing removed; feuilled's cookies
// (feuille_*) and nameless ones removed from Cookie (others kept); X-Forwarded-*,
// X-Feuille-User, X-Feuille-Role, X-Token, X-Request-Id added; framing and
// Connection set (keep-alive, or Upgrade for an upgrade).
void write_upstream_request(const http::bh::request_header<>& in, const ForwardInfo& info, Framing body,
                            bool upgrade, std::string& out);

// Serializes the response header sent to the client: hop-by-hop headers and
// those named in Connection removed (kept for a 101: Upgrade, Connection),
// Set-Cookie headers for feuilled's own cookies (feuille_*) dropped, framing
// and Connection set by the proxy.
void write_client_response(const http::bh::response_header<>& in, Framing body, bool keep_alive, std::string& out);

// The query of a forwarded upgrade: mrmd-server reads a WebSocket's token only
// from `?token=`, so the editor's token is added, and any `token` parameter
// the browser sent (under any percent-encoding of the name) is removed first.
// The other parameters keep their bytes and order.
std::string upgrade_query(std::string_view query, std::string_view token);

// The Cookie header value without feuilled's own pairs (feuille_session,
// feuille_ws, ...) and without nameless ones (nullopt when nothing is left).
std::optional<std::string> strip_own_cookies(std::string_view cookie);

// Whether a cookie name is one of feuilled's (feuille_*, with or without a
// __Host- or __Secure- prefix).
bool own_cookie_name(std::string_view name);

// An editor's Set-Cookie as passed to the browser: nullopt (dropped) for
// one of feuilled's names; otherwise without any Domain attribute, so the
// cookie stays host-only on the workspace's origin and never reaches
// another workspace.
std::optional<std::string> editor_set_cookie(std::string_view value);

}  // namespace feuille::proxy
