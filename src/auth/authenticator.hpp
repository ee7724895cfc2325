#pragma once
// Who is calling: the seam between the auth module (which implements it) and
// every module that serves signed-in users (compute's API, the proxy, the
// dashboard). Lookups are served from memory when cached, so the proxy can
// authenticate a request without a database round trip.
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "http/types.hpp"

namespace feuille::auth {

enum class Role { viewer, editor, owner };
const char* to_string(Role r);

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

  // CSRF rule for state-changing requests reached with a cookie: Origin (or,
  // without it, Sec-Fetch-Site) is same-origin with public-url.
  virtual bool same_origin(const http::bh::request_header<>& h) const = 0;

  // The caller's role on owner's workspace: owner, or through a membership;
  // nullopt = no access.
  virtual boost::asio::awaitable<std::optional<Role>> workspace_role(const std::string& user_id,
                                                                     const std::string& owner_id) = 0;
};

}  // namespace feuille::auth
