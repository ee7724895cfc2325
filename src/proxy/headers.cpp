#include "proxy/headers.hpp"

#include "http/url.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>

#include "util/units.hpp"

namespace feuille::proxy {
namespace bh = http::bh;
namespace beast = boost::beast;

namespace {

template <std::size_t N>
void lit(std::string& out, const char (&text)[N]) {
  out.append(text, N - 1);
}

void header_line(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  lit(out, ": ");
  out += value;
  lit(out, "\r\n");
}

// Connection's tokens name further hop-by-hop headers.
bool listed_in_connection(std::string_view connection, std::string_view name) {
  while (!connection.empty()) {
    auto comma = connection.find(',');
    auto token = units::trim(connection.substr(0, comma));
    if (!token.empty() && beast::iequals(token, name)) return true;
    if (comma == std::string_view::npos) break;
    connection.remove_prefix(comma + 1);
  }
  return false;
}

bool hop_by_hop(bh::field f) {
  switch (f) {
    case bh::field::connection:
    case bh::field::keep_alive:
    case bh::field::proxy_connection:
    case bh::field::proxy_authenticate:
    case bh::field::proxy_authorization:
    case bh::field::te:
    case bh::field::trailer:
    case bh::field::transfer_encoding:
    case bh::field::upgrade:
      return true;
    default:
      return false;
  }
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && beast::iequals(s.substr(0, prefix.size()), prefix);
}

// Headers some frameworks read as the request's real method: a viewer's GET
// must stay a GET.
bool method_override(std::string_view name) {
  return beast::iequals(name, "x-http-method-override") || beast::iequals(name, "x-http-method") ||
         beast::iequals(name, "x-method-override");
}

void write_framing(std::string& out, Framing body) {
  if (body.kind == Framing::sized) {
    lit(out, "Content-Length: ");
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, body.length);
    out.append(buf, end);
    lit(out, "\r\n");
  } else if (body.kind == Framing::chunked) {
    lit(out, "Transfer-Encoding: chunked\r\n");
  }
}

}  // namespace

Framing request_framing(const http::HeaderParser& parser) {
  if (parser.chunked()) return {Framing::chunked, 0};
  if (auto len = parser.content_length(); len && *len > 0) return {Framing::sized, *len};
  return {};
}

bool is_upgrade(const bh::request_header<>& h) {
  if (h.method() != bh::verb::get || h.find(bh::field::upgrade) == h.end()) return false;
  return listed_in_connection(h[bh::field::connection], "upgrade");
}

bool is_safe_method(bh::verb m) {
  return m == bh::verb::get || m == bh::verb::head || m == bh::verb::options;
}

bool is_idempotent(bh::verb m) {
  switch (m) {
    case bh::verb::get:
    case bh::verb::head:
    case bh::verb::options:
    case bh::verb::put:
    case bh::verb::delete_:
    case bh::verb::trace:
      return true;
    default:
      return false;
  }
}

bool own_cookie_name(std::string_view name) {
  for (std::string_view prefix : {"__Host-", "__Secure-"})
    if (starts_with_ci(name, prefix)) name.remove_prefix(prefix.size());
  return starts_with_ci(name, "feuille_");
}

std::optional<std::string> editor_set_cookie(std::string_view value) {
  std::string_view rest = units::trim(value);
  auto semi = rest.find(';');
  std::string_view pair = units::trim(rest.substr(0, semi));
  if (own_cookie_name(units::trim(pair.substr(0, pair.find('='))))) return std::nullopt;
  std::string out(pair);
  while (semi != std::string_view::npos) {
    rest.remove_prefix(semi + 1);
    semi = rest.find(';');
    std::string_view attr = units::trim(rest.substr(0, semi));
    std::string_view attr_name = units::trim(attr.substr(0, attr.find('=')));
    if (attr.empty() || (attr_name.size() == 6 && starts_with_ci(attr_name, "domain"))) continue;
    out.append("; ").append(attr);
  }
  return out;
}

std::optional<std::string> strip_own_cookies(std::string_view cookie) {
  std::string out;
  while (!cookie.empty()) {
    auto semi = cookie.find(';');
    auto pair = units::trim(cookie.substr(0, semi));
    auto eq = pair.find('=');
    auto name = units::trim(pair.substr(0, eq));
    // feuilled's own cookies never reach an editor, nor nameless ones
    // (a browser sends "=v" and "v" alike as "v", which could spell one).
    if (!pair.empty() && eq != std::string_view::npos && !name.empty() && !own_cookie_name(name)) {
      if (!out.empty()) lit(out, "; ");
      out += pair;
    }
    if (semi == std::string_view::npos) break;
    cookie.remove_prefix(semi + 1);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

void write_upstream_request(const bh::request_header<>& in, const ForwardInfo& info, Framing body, bool upgrade,
                            std::string& out) {
  out.clear();
  out += in.method_string();
  out += ' ';
  out += info.target;
  lit(out, " HTTP/1.1\r\n");
  std::string_view connection = in[bh::field::connection];
  for (const auto& f : in) {
    auto name = f.name_string();
    if (hop_by_hop(f.name()) || listed_in_connection(connection, name)) continue;
    switch (f.name()) {
      case bh::field::content_length:
      case bh::field::expect:
        continue;
      case bh::field::authorization:
        // A feuilled session token, or a browser's own credentials: neither
        // is the editor's business, and mrmd-server takes any Authorization
        // value as its token (before X-Token), so one would get 403.
        continue;
      case bh::field::cookie:
        if (auto kept = strip_own_cookies(f.value())) header_line(out, name, *kept);
        continue;
      default:
        break;
    }
    if (starts_with_ci(name, "x-feuille-") || starts_with_ci(name, "x-forwarded-") || beast::iequals(name, "forwarded") ||
        beast::iequals(name, "x-token") || beast::iequals(name, "x-request-id") || method_override(name))
      continue;
    header_line(out, name, f.value());
  }
  header_line(out, "X-Forwarded-For", info.client);
  header_line(out, "X-Forwarded-Proto", info.proto);
  if (auto host = in[bh::field::host]; !host.empty()) header_line(out, "X-Forwarded-Host", host);
  header_line(out, "X-Feuille-User", info.user_id);
  header_line(out, "X-Feuille-Role", info.role);
  header_line(out, "X-Token", info.token);
  header_line(out, "X-Request-Id", info.request_id);
  if (upgrade) {
    header_line(out, "Upgrade", in[bh::field::upgrade]);
    lit(out, "Connection: Upgrade\r\n");
  } else {
    write_framing(out, body);
    lit(out, "Connection: keep-alive\r\n");
  }
  lit(out, "\r\n");
}

void write_client_response(const bh::response_header<>& in, Framing body, bool keep_alive, std::string& out) {
  out.clear();
  unsigned status = in.result_int();
  lit(out, "HTTP/1.1 ");
  char buf[8];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, status);
  out.append(buf, end);
  out += ' ';
  auto reason = in.reason();
  out += reason.empty() ? bh::obsolete_reason(static_cast<bh::status>(status)) : reason;
  lit(out, "\r\n");
  bool switching = status == 101;
  std::string_view connection = in[bh::field::connection];
  for (const auto& f : in) {
    auto name = f.name_string();
    if (switching && (f.name() == bh::field::upgrade || f.name() == bh::field::connection)) {
      header_line(out, name, f.value());
      continue;
    }
    if (hop_by_hop(f.name()) || listed_in_connection(connection, name)) continue;
    if (f.name() == bh::field::content_length) continue;
    if (f.name() == bh::field::set_cookie) {
      if (auto kept = editor_set_cookie(f.value())) header_line(out, name, *kept);
      continue;
    }
    header_line(out, name, f.value());
  }
  if (!switching) {
    write_framing(out, body);
    if (keep_alive) lit(out, "Connection: keep-alive\r\n");
    else lit(out, "Connection: close\r\n");
  }
  lit(out, "\r\n");
}

std::string upgrade_query(std::string_view query, std::string_view token) {
  std::string out;
  out.reserve(query.size() + token.size() + 7);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto name = http::percent_decode(part.substr(0, part.find('=')), true);
    if (part.empty() || !name || *name == "token") continue;  // an undecodable name is dropped too
    out.append(part).append("&");
  }
  return out.append("token=").append(token);
}

}  // namespace feuille::proxy
