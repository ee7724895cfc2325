#pragma once
// The users table: records and the queries operators and modules share.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <pqxx/pqxx>

namespace feuille::db {

struct User {
  std::string id;  // uuid
  std::string handle;
  std::string name;
  std::string email;
  std::string avatar_url;
  std::string plan;
  std::string created_at;  // ISO 8601
};

// {id, handle, name, email, avatar_url, plan} as the API shows it (nulls for
// empty name/email/avatar).
nlohmann::json to_json(const User& u);

std::vector<User> list_users(pqxx::work& w);
std::optional<User> find_user_by_id(pqxx::work& w, const std::string& id);
std::optional<User> find_user_by_handle(pqxx::work& w, const std::string& handle);
// Returns false when no user has this handle.
bool set_user_plan(pqxx::work& w, const std::string& handle, const std::string& plan);

// Who a provider says someone is (GitHub, Google, or dev login).
struct ExternalProfile {
  enum class Provider { github, google, dev } provider;
  std::string external_id;  // GitHub's numeric id, Google's sub; unused for dev
  std::string handle;       // wished-for handle (GitHub login, derived for Google)
  std::string name, email, avatar_url;  // "" = none
};

// The user of this identity, created when new (handle made unique with -2,
// -3, ...) and with name, email and avatar_url refreshed otherwise. A dev
// login signs in as the user of that handle, whoever they are. Returns
// nullopt for a new person when `may_create` is false (closed signup). Safe
// under concurrent first logins of one person: exactly one user results.
std::optional<User> upsert_external_user(pqxx::work& w, const ExternalProfile& p, bool may_create);

// A valid handle made from free text (an email's local part, a name):
// letters and digits kept, everything else folded into single '-', at most
// 39 characters; "user" when nothing is left.
std::string suggest_handle(std::string_view text);

// True for a GitHub-style login: [A-Za-z0-9-]{1,39}.
bool valid_handle(std::string_view handle);

// The columns read by the functions above, in User's order.
extern const char* const kUserColumns;
User user_from_row(const pqxx::row& row);

}  // namespace feuille::db
