#pragma once
// The users table: records and the queries operators and modules share.
#include <optional>
#include <string>
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

// The columns read by the functions above, in User's order.
extern const char* const kUserColumns;
User user_from_row(const pqxx::row& row);

}  // namespace feuille::db
