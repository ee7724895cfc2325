#include "db/users.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

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

namespace {

// The first of handle, handle-2, handle-3, ... that nobody has (any case).
std::string free_handle(pqxx::work& w, const std::string& base) {
  auto rows = w.exec_params(
      "SELECT lower(handle) FROM users WHERE lower(handle) = lower($1) OR lower(handle) LIKE lower($1) || '-%'", base);
  std::vector<std::string> taken;
  for (const auto& r : rows) taken.push_back(r[0].as<std::string>());
  std::string lower = base;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto is_taken = [&](const std::string& h) { return std::find(taken.begin(), taken.end(), h) != taken.end(); };
  if (!is_taken(lower)) return base;
  for (int n = 2;; ++n) {
    std::string suffix = "-" + std::to_string(n);
    if (!is_taken(lower + suffix)) return base + suffix;
  }
}

const char* id_column(ExternalProfile::Provider p) {
  return p == ExternalProfile::Provider::github ? "github_id" : "google_id";
}

}  // namespace

bool valid_handle(std::string_view h) {
  if (h.empty() || h.size() > 39) return false;
  for (char c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  return true;
}

std::string suggest_handle(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80) out.push_back(c);
    else if (!out.empty() && out.back() != '-') out.push_back('-');
    if (out.size() >= 39) break;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "user" : out;
}

std::optional<User> upsert_external_user(pqxx::work& w, const ExternalProfile& p, bool may_create) {
  const std::string cols = kUserColumns;
  if (p.provider == ExternalProfile::Provider::dev) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto found = w.exec_params("UPDATE users SET last_login_at = now() WHERE lower(handle) = lower($1) RETURNING " + cols,
                                 p.handle);
      if (!found.empty()) return user_from_row(found[0]);
      if (!may_create) return std::nullopt;
      pqxx::subtransaction sub(w, "dev_user");
      try {
        auto r = sub.exec_params("INSERT INTO users (handle, last_login_at) VALUES ($1, now()) RETURNING " + cols, p.handle);
        sub.commit();
        return user_from_row(r[0]);
      } catch (const pqxx::unique_violation&) {
        // Someone took the handle meanwhile: sign in as them on the next round.
      }
    }
    throw std::runtime_error("could not sign in dev user " + p.handle);
  }

  const std::string column = id_column(p.provider);
  const std::string cast = p.provider == ExternalProfile::Provider::github ? "::bigint" : "";
  auto existing = w.exec_params(
      "UPDATE users SET name = nullif($2, ''), email = nullif($3, ''), avatar_url = nullif($4, ''), "
      "updated_at = now(), last_login_at = now() WHERE " + column + " = $1" + cast + " RETURNING " + cols,
      p.external_id, p.name, p.email, p.avatar_url);
  if (!existing.empty()) return user_from_row(existing[0]);
  if (!may_create) return std::nullopt;
  for (int attempt = 0; attempt < 10; ++attempt) {
    std::string handle = free_handle(w, p.handle);
    pqxx::subtransaction sub(w, "external_user");
    try {
      // A concurrent first login of the same person lands in DO UPDATE.
      auto r = sub.exec_params(
          "INSERT INTO users (handle, " + column + ", name, email, avatar_url, last_login_at) "
          "VALUES ($1, $2" + cast + ", nullif($3, ''), nullif($4, ''), nullif($5, ''), now()) "
          "ON CONFLICT (" + column + ") DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, "
          "avatar_url = EXCLUDED.avatar_url, updated_at = now(), last_login_at = now() RETURNING " + cols,
          handle, p.external_id, p.name, p.email, p.avatar_url);
      sub.commit();
      return user_from_row(r[0]);
    } catch (const pqxx::unique_violation&) {
      // The handle was taken meanwhile (or the same person is being created
      // concurrently): look again.
    }
  }
  throw std::runtime_error("could not find a free handle for " + p.handle);
}

}  // namespace feuille::db
