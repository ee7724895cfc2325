#include "db/users.hpp"

#include <nlohmann/json.hpp>

namespace feuille::db {

const char* const kUserColumns =
    "id::text, handle, coalesce(name, ''), coalesce(email, ''), coalesce(avatar_url, ''), plan, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

User user_from_row(const pqxx::row& r) {
  return User{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(),
              r[4].as<std::string>(), r[5].as<std::string>(), r[6].as<std::string>()};
}

nlohmann::json to_json(const User& u) {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  return {{"id", u.id},       {"handle", u.handle},           {"name", or_null(u.name)},
          {"email", or_null(u.email)}, {"avatar_url", or_null(u.avatar_url)}, {"plan", u.plan}};
}

std::vector<User> list_users(pqxx::work& w) {
  std::vector<User> out;
  for (const auto& row : w.exec(std::string("SELECT ") + kUserColumns + " FROM users ORDER BY lower(handle)"))
    out.push_back(user_from_row(row));
  return out;
}

std::optional<User> find_user_by_id(pqxx::work& w, const std::string& id) {
  auto rows = w.exec_params(std::string("SELECT ") + kUserColumns + " FROM users WHERE id::text = $1", id);
  if (rows.empty()) return std::nullopt;
  return user_from_row(rows[0]);
}

std::optional<User> find_user_by_handle(pqxx::work& w, const std::string& handle) {
  auto rows =
      w.exec_params(std::string("SELECT ") + kUserColumns + " FROM users WHERE lower(handle) = lower($1)", handle);
  if (rows.empty()) return std::nullopt;
  return user_from_row(rows[0]);
}

bool set_user_plan(pqxx::work& w, const std::string& handle, const std::string& plan) {
  auto r = w.exec_params("UPDATE users SET plan = $2, updated_at = now() WHERE lower(handle) = lower($1)", handle, plan);
  return r.affected_rows() == 1;
}

}  // namespace feuille::db
