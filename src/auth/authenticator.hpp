#pragma once
// Who is calling: the seam between the auth module (which implements it) and
// every module that serves signed-in users (compute's API, the proxy, the
// dashboard). Lookups are served from memory when cached, so the proxy can
// authenticate a request without a database round trip.
#include <functional>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "auth/request_checks.hpp"
#include "auth/workspace_tickets.hpp"
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

// Someone's access ending at once (docs/auth.md): the proxy closes the
// matching tunnels and streams.
struct Revocation {
  enum Kind {
    credential,  // a logout: a workspace cookie, or the session itself, ended; `cookie` is its hash
    member,     // `user_id` lost access to `owner_id`'s workspace
    workspace,  // every way into `owner_id`'s workspace ended (it stopped)
  } kind;
  std::array<std::uint8_t, 32> cookie{};
  std::string user_id, owner_id;

  // Whether this ends an access opened by `caller` into `owner`'s workspace
  // (owner "" for one of feuilled's own pages) with `used` (the hash of the
  // session token or workspace cookie it was opened with).
  bool ends(const std::string& owner, const std::string& caller, const std::array<std::uint8_t, 32>& used) const {
    switch (kind) {
      case credential: return used == cookie;
      case member: return caller == user_id && owner == owner_id;
      case workspace: return !owner.empty() && owner == owner_id;
    }
    return false;
  }
};
using RevocationListener = std::function<void(const Revocation&)>;

// The caller on a workspace origin, through its feuille_ws cookie.
struct WorkspaceCaller {
  std::shared_ptr<const Identity> identity;
  std::array<std::uint8_t, 32> cookie{};  // the cookie's hash: tunnels are tagged with it
};

class Authenticator {
 public:
  // https: whether public-url, and the workspace origins, are https (their
  // cookies then carry the __Host- prefix).
  Authenticator(bool https_platform, bool https_workspaces)
      : session_cookie_(cookie_name(kSessionCookie, https_platform)),
        workspace_cookie_(cookie_name(kWorkspaceCookie, https_workspaces)) {}
  virtual ~Authenticator() = default;

  // The names of the session cookie (on public-url) and of the workspace
  // cookie (on a workspace origin).
  const std::string& session_cookie() const { return session_cookie_; }
  const std::string& workspace_cookie() const { return workspace_cookie_; }

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

  // The SHA-256 of the session token this request carries (cookie, else
  // Bearer; all zero without one): what a single origin's tunnels are
  // tagged with, for a logout to close them.
  std::array<std::uint8_t, 32> session_hash(const http::bh::request_header<>& h) const;

  // The caller's role on owner's workspace: owner, or through a membership
  // (the strongest when there are several); nullopt = no access. Cached in
  // memory; membership changes made through feuilled apply at once.
  virtual boost::asio::awaitable<std::optional<Role>> workspace_role(const std::string& user_id,
                                                                     const std::string& owner_id) = 0;

  // Workspace origins (auth/workspace_access.hpp). The caller of a request
  // on owner's workspace origin, by its feuille_ws cookie for that workspace.
  virtual boost::asio::awaitable<std::optional<WorkspaceCaller>> identify_workspace(
      const http::bh::request_header<>& h, const std::string& owner_id) = 0;
  // A single-use ticket into owner's workspace for the session of this
  // request (on public-url), landing on `target`, or why there is none (no
  // session, the session's rate, the workspace's or the table's bound).
  virtual boost::asio::awaitable<WorkspaceTickets::Minted> workspace_ticket(const http::bh::request_header<>& h,
                                                                            const std::string& owner_id,
                                                                            std::string target) = 0;
  // The workspace stopped: every cookie into it ends (listeners are told).
  virtual boost::asio::awaitable<void> end_workspace(std::string owner_id) = 0;  // by value: spawned
  // Called on the loop for every revocation.
  virtual void add_revocation_listener(RevocationListener l) = 0;

 private:
  std::string session_cookie_, workspace_cookie_;
};

// For route handlers: the caller, or RequestError 401 ("sign in first").
boost::asio::awaitable<std::shared_ptr<const Identity>> require_identity(Authenticator& auth,
                                                                        const http::bh::request_header<>& h);
// For state-changing handlers: RequestError 403 unless allows_state_change().
void require_state_change(const Authenticator& auth, const http::bh::request_header<>& h);

}  // namespace feuille::auth
