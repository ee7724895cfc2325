#pragma once
// Who is calling: the seam between the auth module (which implements it) and
// every module that serves signed-in users (compute's API, the proxy, the
// dashboard). Lookups are served from memory when cached, so the proxy can
// authenticate a request without a database round trip.
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "http/types.hpp"

namespace feuille::auth {

enum class Role { viewer, editor, owner };
const char* to_string(Role r);

// What a role may do on a workspace: owner and editor everything; viewer
// GET and HEAD only (WebSocket upgrades are GETs; the editor is told the
// role to keep viewers read-only inside them).
bool role_allows(Role r, http::bh::verb method);

struct Identity {
  std::string id;  // users.id
  std::string handle;
  std::string name;
  std::string email;
  std::string avatar_url;
  std::string plan;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;

  // The signed-in user of this request (feuille_session cookie or
  // Authorization: Bearer <session token>), or nullopt.
  virtual boost::asio::awaitable<std::optional<Identity>> identify(const http::bh::request_header<>& h) = 0;

  // The same without copying the identity (the proxy's per-request path):
  // null when nobody is signed in. The pointed-to identity never changes.
  virtual boost::asio::awaitable<std::shared_ptr<const Identity>> identify_shared(
      const http::bh::request_header<>& h) = 0;

  // CSRF rule for state-changing requests reached with a cookie: Origin (or,
  // without it, Sec-Fetch-Site) is same-origin with public-url.
  virtual bool same_origin(const http::bh::request_header<>& h) const = 0;

  // The whole CSRF rule for a state-changing request: refused when it
  // carries the session cookie and is not same_origin(), or when it carries
  // a cross-site Origin at all. Requests authenticated by a Bearer token
  // alone (no cookie, no Origin) pass: browsers never add that header.
  bool allows_state_change(const http::bh::request_header<>& h) const;

  // The caller's role on owner's workspace: owner, or through a membership
  // (the strongest when there are several); nullopt = no access. Cached in
  // memory; membership changes made through feuilled apply at once.
  virtual boost::asio::awaitable<std::optional<Role>> workspace_role(const std::string& user_id,
                                                                     const std::string& owner_id) = 0;
};

// For route handlers: the caller, or RequestError 401 ("sign in first").
boost::asio::awaitable<std::shared_ptr<const Identity>> require_identity(Authenticator& auth,
                                                                        const http::bh::request_header<>& h);
// For state-changing handlers: RequestError 403 unless allows_state_change().
void require_state_change(const Authenticator& auth, const http::bh::request_header<>& h);

}  // namespace feuille::auth
