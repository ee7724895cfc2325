#include "auth/invites.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "auth/pages.hpp"
#include "auth/request_checks.hpp"
#include "auth/tokens.hpp"
#include "db/database.hpp"
#include "feuille/errors.hpp"
#include "http/page.hpp"
#include "http/responses.hpp"
#include "http/url.hpp"
#include "util/logging.hpp"
#include "util/offload.hpp"

namespace feuille::auth {
namespace {

namespace asio = boost::asio;
namespace bh = http::bh;
using nlohmann::json;
using http::html_escape;

constexpr const char* kCreatedAt = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

std::string decoded_param(const http::RequestContext& ctx, std::string_view name) {
  auto v = http::percent_decode(ctx.params.get(name));
  return v ? *v : std::string();
}

std::string workspace_url(const std::string& owner_id, const std::string& project) {
  return "/u/" + owner_id + "/?project=" + http::url_encode(project);
}

}  // namespace

std::size_t Invites::KeyHasher::operator()(const Key& k) const noexcept {
  std::size_t h = 1469598103934665603ull;
  for (auto b : k) h = (h ^ b) * 1099511628211ull;
  return h;
}

Invites::Invites(db::Database& db, asio::thread_pool& pool, const Config& config, Authenticator& auth)
    : db_(db), pool_(pool), config_(config), auth_(auth) {}

bool Invites::valid_project_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.') return false;
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
  }
  return true;
}

bool Invites::is_live(pqxx::work& w, std::string_view token) {
  if (!is_token(token)) return false;
  return !w.exec_params("SELECT 1 FROM invites WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL",
                        hex(hash_token(token)))
              .empty();
}

std::string Invites::invite_url(const std::string& token) const { return config_.public_url + "/join/" + token; }

void Invites::forget_role(const std::string& user_id, const std::string& owner_id) {
  ++generation_;
  auto u = parse_uuid(user_id), o = parse_uuid(owner_id);
  if (!u || !o) return;
  Key k;
  std::copy(u->begin(), u->end(), k.begin());
  std::copy(o->begin(), o->end(), k.begin() + 16);
  roles_.erase(k);
}

asio::awaitable<std::optional<Role>> Invites::role(const std::string& user_id, const std::string& owner_id) {
  auto u = parse_uuid(user_id), o = parse_uuid(owner_id);
  if (!u || !o) co_return std::nullopt;
  if (*u == *o) co_return Role::owner;
  Key k;
  std::copy(u->begin(), u->end(), k.begin());
  std::copy(o->begin(), o->end(), k.begin() + 16);
  auto now = std::chrono::steady_clock::now();
  if (auto it = roles_.find(k); it != roles_.end() && now - it->second.cached_at < kRoleCacheMaxAge)
    co_return it->second.role;

  const std::uint64_t generation = generation_;
  auto role = co_await db_.run([&](pqxx::work& w) -> std::optional<Role> {
    auto r = w.exec_params(
        "SELECT bool_or(role = 'editor') FROM memberships WHERE owner_id = $1::uuid AND member_id = $2::uuid "
        "HAVING count(*) > 0",
        owner_id, user_id);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<bool>() ? Role::editor : Role::viewer;
  });
  if (generation == generation_) {
    if (roles_.size() >= 200'000) roles_.clear();
    roles_.insert_or_assign(k, RoleEntry{role, now});
  }
  co_return role;
}

asio::awaitable<Invites::Created> Invites::create(const Identity& owner, const std::string& project,
                                                  const std::string& role) {
  if (config_.workspace_origin.empty())
    throw RequestError(409,
                       "Sharing needs workspace-origin in the server's configuration: a shared workspace served on the "
                       "platform's own origin would run its owner's content with the member's session.");
  if (role != "viewer" && role != "editor") throw RequestError(400, "role must be viewer or editor");
  if (!valid_project_name(project)) throw RequestError(400, "project must be the name of a folder in your Projects");
  const auto dir = std::filesystem::path(config_.data_dir) / owner.id / "Projects" / project;
  bool exists = co_await offload(pool_, [&dir] {
    std::error_code ec;
    return std::filesystem::is_directory(dir, ec);
  });
  if (!exists) throw RequestError(404, "You have no project named \"" + project + "\" in your Projects folder.");
  Created out;
  out.token = random_token();
  out.invite = co_await db_.run([&](pqxx::work& w) -> Invite {
    auto active = w.exec_params("SELECT count(*) FROM invites WHERE owner_id = $1::uuid AND revoked_at IS NULL", owner.id);
    if (active[0][0].as<long>() >= kMaxActiveInvites)
      throw RequestError(409, "You have " + std::to_string(kMaxActiveInvites) + " active invites; revoke some first.");
    auto r = w.exec_params(std::string("INSERT INTO invites (token_hash, owner_id, project, role) "
                                       "VALUES (decode($1, 'hex'), $2::uuid, $3, $4) RETURNING id::text, ") +
                               kCreatedAt,
                           hex(hash_token(out.token)), owner.id, project, role);
    return Invite{r[0][0].as<std::string>(), project, role, r[0][1].as<std::string>()};
  });
  logger("auth")->info("user {} created a {} invite {} for project {}", owner.id, role, out.invite.id, project);
  co_return out;
}

asio::awaitable<std::vector<Invites::Invite>> Invites::list(const std::string& owner_id) {
  co_return co_await db_.run([&](pqxx::work& w) {
    std::vector<Invite> out;
    for (const auto& r : w.exec_params(std::string("SELECT id::text, project, role, ") + kCreatedAt +
                                           " FROM invites WHERE owner_id = $1::uuid AND revoked_at IS NULL "
                                           "ORDER BY created_at DESC, id",
                                       owner_id))
      out.push_back(Invite{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                           r[3].as<std::string>()});
    return out;
  });
}

asio::awaitable<bool> Invites::revoke(const std::string& owner_id, std::string_view token_or_id) {
  std::string by, key;
  if (parse_uuid(token_or_id)) {
    by = "id = $2::uuid";
    key = std::string(token_or_id);
  } else if (is_token(token_or_id)) {
    by = "token_hash = decode($2, 'hex')";
    key = hex(hash_token(token_or_id));
  } else {
    co_return false;
  }
  // The people who joined through it lose what it gave them.
  struct Revoked {
    bool done = false;
    std::vector<std::string> members;
  };
  auto revoked = co_await db_.run([&](pqxx::work& w) {
    Revoked out;
    auto r = w.exec_params("UPDATE invites SET revoked_at = now() WHERE owner_id = $1::uuid AND " + by +
                               " AND revoked_at IS NULL RETURNING id::text",
                           owner_id, key);
    if (r.empty()) return out;
    out.done = true;
    for (const auto& m : w.exec_params("DELETE FROM memberships WHERE invite_id = $1::uuid RETURNING member_id::text",
                                       r[0][0].as<std::string>()))
      out.members.push_back(m[0].as<std::string>());
    return out;
  });
  if (!revoked.done) co_return false;
  logger("auth")->info("user {} revoked an invite ({} membership(s) ended)", owner_id, revoked.members.size());
  for (const auto& m : revoked.members) co_await access_ended(m, owner_id);
  co_return true;
}

asio::awaitable<std::vector<Invites::Member>> Invites::members(const std::string& owner_id) {
  co_return co_await db_.run([&](pqxx::work& w) {
    std::vector<Member> out;
    for (const auto& r : w.exec_params(
             "SELECT m.member_id::text, u.handle, coalesce(u.name, ''), m.project, m.role, "
             "to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
             "FROM memberships m JOIN users u ON u.id = m.member_id WHERE m.owner_id = $1::uuid "
             "ORDER BY lower(u.handle), m.project",
             owner_id))
      out.push_back(Member{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                           r[3].as<std::string>(), r[4].as<std::string>(), r[5].as<std::string>()});
    return out;
  });
}

asio::awaitable<bool> Invites::remove_member(const std::string& owner_id, std::string_view member_id) {
  if (!parse_uuid(member_id)) co_return false;
  std::string member(member_id);
  forget_role(member, owner_id);
  bool removed = co_await db_.run([&](pqxx::work& w) {
    return w.exec_params("DELETE FROM memberships WHERE owner_id = $1::uuid AND member_id = $2::uuid", owner_id, member)
               .affected_rows() > 0;
  });
  if (!removed) co_return false;
  logger("auth")->info("user {} removed member {}", owner_id, member);
  co_await access_ended(member, owner_id);
  co_return true;
}

asio::awaitable<void> Invites::access_ended(const std::string& member, const std::string& owner_id) {
  forget_role(member, owner_id);  // a lookup may have run meanwhile
  if (on_access_ended) co_await on_access_ended(member, owner_id);
  forget_role(member, owner_id);
}

asio::awaitable<std::vector<Invites::Shared>> Invites::shared_with(const std::string& user_id) {
  co_return co_await db_.run([&](pqxx::work& w) {
    std::vector<Shared> out;
    for (const auto& r : w.exec_params("SELECT m.owner_id::text, u.handle, coalesce(u.name, ''), m.project, m.role "
                                       "FROM memberships m JOIN users u ON u.id = m.owner_id "
                                       "WHERE m.member_id = $1::uuid ORDER BY lower(u.handle), m.project",
                                       user_id))
      out.push_back(Shared{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                           r[3].as<std::string>(), r[4].as<std::string>()});
    return out;
  });
}

void Invites::add_routes(http::Router& router) {
  using http::Request;
  using http::RequestContext;
  using http::Response;

  router.add({bh::verb::post}, "/api/invites", "invites",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               require_state_change(auth_, req);
               ctx.user = me->id;
               auto body = json::parse(req.body(), nullptr, false);
               if (!body.is_object() || !body.contains("project") || !body["project"].is_string() ||
                   !body.contains("role") || !body["role"].is_string())
                 throw RequestError(400, "expected a JSON object {\"project\": \"...\", \"role\": \"viewer|editor\"}");
               std::string project = body["project"].get<std::string>(), role = body["role"].get<std::string>();
               auto created = co_await create(*me, project, role);
               co_return http::json_response(201, json{{"id", created.invite.id},
                                                       {"token", created.token},
                                                       {"url", invite_url(created.token)},
                                                       {"project", created.invite.project},
                                                       {"role", created.invite.role},
                                                       {"created_at", created.invite.created_at}});
             });

  router.add({bh::verb::get}, "/api/invites", "invites",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               ctx.user = me->id;
               json items = json::array();
               auto invites = co_await list(me->id);
               for (const auto& i : invites)
                 items.push_back({{"id", i.id}, {"project", i.project}, {"role", i.role}, {"created_at", i.created_at}});
               co_return http::json_response(200, json{{"invites", std::move(items)}});
             });

  router.add(
      {bh::verb::delete_}, "/api/invites/{token}", "invites",
      [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
        auto me = co_await require_identity(auth_, req);
        require_state_change(auth_, req);
        ctx.user = me->id;
        std::string token = decoded_param(ctx, "token");
        bool revoked = co_await revoke(me->id, token);
        if (!revoked) throw RequestError(404, "no such invite");
        co_return Response{bh::status::no_content, 11};
      },
      true);

  router.add({bh::verb::get}, "/api/members", "invites",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               ctx.user = me->id;
               json items = json::array();
               auto people = co_await members(me->id);
               for (const auto& m : people)
                 items.push_back({{"user", {{"id", m.user_id}, {"handle", m.handle}, {"name", m.name}}},
                                  {"project", m.project},
                                  {"role", m.role},
                                  {"created_at", m.created_at}});
               co_return http::json_response(200, json{{"members", std::move(items)}});
             });

  router.add({bh::verb::delete_}, "/api/members/{id}", "invites",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               require_state_change(auth_, req);
               ctx.user = me->id;
               bool removed = co_await remove_member(me->id, ctx.params.get("id"));
               if (!removed) throw RequestError(404, "no such member");
               co_return Response{bh::status::no_content, 11};
             });

  router.add({bh::verb::get}, "/api/memberships", "invites",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               ctx.user = me->id;
               json items = json::array();
               auto shared = co_await shared_with(me->id);
               for (const auto& s : shared)
                 items.push_back({{"owner", {{"id", s.owner_id}, {"handle", s.owner_handle}, {"name", s.owner_name}}},
                                  {"project", s.project},
                                  {"role", s.role},
                                  {"url", workspace_url(s.owner_id, s.project)}});
               co_return http::json_response(200, json{{"memberships", std::move(items)}});
             });

  // GET shows what the link gives and changes nothing; POST (same-origin)
  // records the membership.
  router.add(
      {bh::verb::get}, "/join/{token}", "invites",
      [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
        std::string token = decoded_param(ctx, "token");
        if (!is_token(token)) co_return page_response(404, "Invite not found", "This invite link is unknown or was revoked.");
        auto me = co_await auth_.identify_shared(req);
        if (!me) co_return http::redirect(302, "/login?next=" + http::url_encode("/join/" + token));
        ctx.user = me->id;
        struct Offer {
          std::string owner_id, owner_handle, owner_name, project, role;
        };
        auto offer = co_await db_.run([&](pqxx::work& w) -> std::optional<Offer> {
          auto r = w.exec_params(
              "SELECT i.owner_id::text, u.handle, coalesce(u.name, ''), i.project, i.role FROM invites i "
              "JOIN users u ON u.id = i.owner_id WHERE i.token_hash = decode($1, 'hex') AND i.revoked_at IS NULL",
              hex(hash_token(token)));
          if (r.empty()) return std::nullopt;
          return Offer{r[0][0].as<std::string>(), r[0][1].as<std::string>(), r[0][2].as<std::string>(),
                       r[0][3].as<std::string>(), r[0][4].as<std::string>()};
        });
        if (!offer) co_return page_response(404, "Invite not found", "This invite link is unknown or was revoked.");
        std::string who = "@" + html_escape(offer->owner_handle) +
                          (offer->owner_name.empty() ? "" : " (" + html_escape(offer->owner_name) + ")");
        std::string body = "<main><h1>Join a workspace</h1>";
        if (offer->owner_id == me->id) {
          body += "<p>This is an invite link to your own workspace, starting at <strong>" + html_escape(offer->project) +
                  "</strong>.</p><p><a class=\"button\" href=\"" +
                  html_escape(workspace_url(offer->owner_id, offer->project)) + "\">Open it</a></p></main>";
          co_return http::html_response(200, http::page("Join a workspace", body));
        }
        body += "<p>" + who + " invites you to their workspace as <strong>" + html_escape(offer->role) +
                "</strong>, starting at the project <strong>" + html_escape(offer->project) +
                "</strong>. You will see all of their projects.</p><form method=\"post\" action=\"/join/" +
                html_escape(token) + "\"><button type=\"submit\">Accept and open</button></form>"
                "<p><a href=\"/dashboard\">Not now</a></p></main>";
        co_return http::html_response(200, http::page("Join a workspace", body));
      },
      true);

  router.add(
      {bh::verb::post}, "/join/{token}", "invites",
      [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
        std::string token = decoded_param(ctx, "token");
        if (!is_token(token)) co_return page_response(404, "Invite not found", "This invite link is unknown or was revoked.");
        auto me = co_await require_identity(auth_, req);
        require_state_change(auth_, req);
        ctx.user = me->id;
        struct Joined {
          std::string owner_id, project;
        };
        auto joined = co_await db_.run([&](pqxx::work& w) -> std::optional<Joined> {
          auto r = w.exec_params(
              "SELECT id::text, owner_id::text, project, role FROM invites "
              "WHERE token_hash = decode($1, 'hex') AND revoked_at IS NULL FOR SHARE",
              hex(hash_token(token)));
          if (r.empty()) return std::nullopt;
          Joined j{r[0][1].as<std::string>(), r[0][2].as<std::string>()};
          if (j.owner_id != me->id)  // the owner accepting their own link changes nothing
            w.exec_params(
                "INSERT INTO memberships (owner_id, member_id, project, role, invite_id) "
                "VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid) ON CONFLICT (owner_id, member_id, project) DO UPDATE "
                "SET role = CASE WHEN memberships.role = 'editor' OR EXCLUDED.role = 'editor' THEN 'editor' "
                "ELSE 'viewer' END, invite_id = EXCLUDED.invite_id",
                j.owner_id, me->id, j.project, r[0][3].as<std::string>(), r[0][0].as<std::string>());
          return j;
        });
        if (!joined) co_return page_response(404, "Invite not found", "This invite link is unknown or was revoked.");
        if (joined->owner_id != me->id) {
          forget_role(me->id, joined->owner_id);
          logger("auth")->info("rid={} user {} joined the workspace of {} (project {})", ctx.request_id, me->id,
                               joined->owner_id, joined->project);
        }
        co_return http::redirect(303, workspace_url(joined->owner_id, joined->project));
      },
      true);

  // The dashboard's forms (no JavaScript needed).
  router.add({bh::verb::post}, "/dashboard/invites", "dashboard",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               require_state_change(auth_, req);
               ctx.user = me->id;
               std::string project = http::form_value(req.body(), "project").value_or("");
               std::string role = http::form_value(req.body(), "role").value_or("");
               Created created;
               try {
                 created = co_await create(*me, project, role);
               } catch (const RequestError& e) {
                 if (e.status >= 500) throw;
                 co_return page_response(e.status, "Invite not created", e.public_message);
               }
               std::string url = invite_url(created.token);
               std::string body =
                   "<main><h1>Invite link created</h1><p>Anyone signed in who opens this link gets <strong>" +
                   html_escape(role) + "</strong> access to your workspace, starting at <strong>" +
                   html_escape(project) +
                   "</strong>. Copy it now: it is shown only once.</p>"
                   "<p class=\"card invite-link\"><code>" +
                   html_escape(url) +
                   "</code></p><p>You can revoke it from your dashboard at any time.</p>"
                   "<p><a class=\"button\" href=\"/dashboard\">Back to the dashboard</a></p></main>";
               co_return http::html_response(201, http::page("Invite link created", body));
             });

  router.add({bh::verb::post}, "/dashboard/invites/{id}/revoke", "dashboard",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               require_state_change(auth_, req);
               ctx.user = me->id;
               co_await revoke(me->id, ctx.params.get("id"));
               co_return http::redirect(303, "/dashboard");
             });

  router.add({bh::verb::post}, "/dashboard/members/{id}/remove", "dashboard",
             [this](Request& req, RequestContext& ctx) -> asio::awaitable<Response> {
               auto me = co_await require_identity(auth_, req);
               require_state_change(auth_, req);
               ctx.user = me->id;
               co_await remove_member(me->id, ctx.params.get("id"));
               co_return http::redirect(303, "/dashboard");
             });
}

void Invites::add_dashboard_section(DashboardSections& sections) {
  sections.add("sharing", 400, [this](const Identity& me, const http::Request&) -> asio::awaitable<std::string> {
    auto invites = co_await list(me.id);
    auto people = co_await members(me.id);
    auto shared = co_await shared_with(me.id);
    std::string html = "<section class=\"card\" id=\"sharing\"><h2>Sharing</h2>";
    html += "<p class=\"muted\">An invite link gives anyone signed in who opens it access to your whole workspace, "
            "starting at one project.</p>";
    html += "<form method=\"post\" action=\"/dashboard/invites\" class=\"row\">"
            "<label>Project <input type=\"text\" name=\"project\" required maxlength=\"255\" placeholder=\"Scratch\"></label>"
            "<label>Role <select name=\"role\"><option value=\"viewer\">viewer</option>"
            "<option value=\"editor\">editor</option></select></label>"
            "<button type=\"submit\">Create invite link</button></form>";
    if (!invites.empty()) {
      html += "<h3>Active invite links</h3><table><tr><th>Project</th><th>Role</th><th>Created</th><th></th></tr>";
      for (const auto& i : invites)
        html += "<tr><td>" + html_escape(i.project) + "</td><td>" + html_escape(i.role) + "</td><td>" +
                html_escape(i.created_at) + "</td><td><form method=\"post\" action=\"/dashboard/invites/" +
                html_escape(i.id) + "/revoke\"><button class=\"danger\" type=\"submit\">Revoke</button></form></td></tr>";
      html += "</table>";
    }
    if (!people.empty()) {
      html += "<h3>People with access</h3><table><tr><th>Who</th><th>Project</th><th>Role</th><th></th></tr>";
      for (const auto& m : people)
        html += "<tr><td>@" + html_escape(m.handle) + (m.name.empty() ? "" : " (" + html_escape(m.name) + ")") +
                "</td><td>" + html_escape(m.project) + "</td><td>" + html_escape(m.role) +
                "</td><td><form method=\"post\" action=\"/dashboard/members/" + html_escape(m.user_id) +
                "/remove\"><button class=\"danger\" type=\"submit\">Remove</button></form></td></tr>";
      html += "</table>";
    }
    if (!shared.empty()) {
      html += "<h3>Shared with you</h3><ul>";
      for (const auto& s : shared)
        html += "<li><a href=\"" + html_escape(workspace_url(s.owner_id, s.project)) + "\">@" +
                html_escape(s.owner_handle) + " / " + html_escape(s.project) + "</a> <span class=\"muted\">(" +
                html_escape(s.role) + ")</span></li>";
      html += "</ul>";
    }
    html += "</section>";
    co_return html;
  });
}

}  // namespace feuille::auth
