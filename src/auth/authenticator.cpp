#include "auth/authenticator.hpp"

#include "auth/request_checks.hpp"
#include "auth/tokens.hpp"
#include "feuille/errors.hpp"

namespace feuille::auth {

const char* to_string(Role r) {
  switch (r) {
    case Role::viewer: return "viewer";
    case Role::editor: return "editor";
    case Role::owner: return "owner";
  }
  return "viewer";
}

bool role_allows(Role r, http::bh::verb method) {
  if (r != Role::viewer) return true;
  return method == http::bh::verb::get || method == http::bh::verb::head;
}

bool Authenticator::allows_state_change(const http::bh::request_header<>& h) const {
  bool has_origin = h.find(http::bh::field::origin) != h.end();
  bool has_cookie = !find_cookie(h, session_cookie_).empty() || cookie_repeated(h, session_cookie_);
  if (has_origin || has_cookie) return same_origin(h);
  return true;
}

std::array<std::uint8_t, 32> Authenticator::session_hash(const http::bh::request_header<>& h) const {
  std::string_view token = find_cookie(h, session_cookie_);
  if (token.empty()) token = bearer_token(h);
  if (token.empty()) return {};
  return hash_token(token);
}

boost::asio::awaitable<std::shared_ptr<const Identity>> require_identity(Authenticator& auth,
                                                                        const http::bh::request_header<>& h) {
  auto me = co_await auth.identify_shared(h);
  if (!me) throw RequestError(401, "Sign in first.");
  co_return me;
}

void require_state_change(const Authenticator& auth, const http::bh::request_header<>& h) {
  if (!auth.allows_state_change(h))
    throw RequestError(403, "Cross-site request refused.", "CSRF check failed (Origin/Sec-Fetch-Site)");
}

}  // namespace feuille::auth
