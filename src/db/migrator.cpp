#include "db/migrator.hpp"

#include <algorithm>
#include <regex>
#include <stdexcept>

#include "util/embedded.hpp"
#include "util/logging.hpp"

namespace feuille::db {

namespace {
// Arbitrary constant: the advisory lock key of feuilled's migrations.
constexpr long long kLockKey = 0x66657569'6c6c6531LL;

const char* kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";
}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> all = [] {
    std::vector<Migration> out;
    static const std::regex name_re(R"(^(\d{4})_([a-z0-9_]+)\.sql$)");
    for (const auto& f : embedded::sql_migrations()) {
      if (f.name.empty()) continue;
      std::string name(f.name);
      std::smatch m;
      if (!std::regex_match(name, m, name_re)) throw std::logic_error("bad migration file name " + name);
      out.push_back(Migration{std::stoi(m[1]), name, f.data});
    }
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.version < b.version; });
    for (std::size_t i = 0; i < out.size(); ++i)
      if (out[i].version != static_cast<int>(i) + 1) throw std::logic_error("migration versions must be 1, 2, 3...");
    return out;
  }();
  return all;
}

int latest_schema_version() { return migrations().empty() ? 0 : migrations().back().version; }

boost::asio::awaitable<int> schema_version(Database& db) {
  co_return co_await db.run([](pqxx::work& w) {
    auto exists = w.exec1("SELECT to_regclass('public.schema_migrations') IS NOT NULL")[0].as<bool>();
    if (!exists) return 0;
    return w.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
  });
}

boost::asio::awaitable<MigrationResult> migrate(Database& db) {
  auto log = logger("db");
  MigrationResult result = co_await db.with_connection([](pqxx::connection& c) {
    MigrationResult r;
    std::string timeout;
    {
      pqxx::nontransaction n(c);
      timeout = n.exec1("SHOW statement_timeout")[0].as<std::string>();
      n.exec("SET statement_timeout = 0");  // migrations may take longer than a request
      n.exec("SELECT pg_advisory_lock(" + std::to_string(kLockKey) + ")");
    }
    auto restore = [&] {
      pqxx::nontransaction n(c);
      n.exec("SELECT pg_advisory_unlock(" + std::to_string(kLockKey) + ")");
      n.exec("SET statement_timeout = " + n.quote(timeout));
    };
    try {
      {
        pqxx::work w(c);
        w.exec(kCreateTable);
        w.commit();
      }
      pqxx::work read(c);
      auto rows = read.exec("SELECT version FROM schema_migrations ORDER BY version");
      read.commit();
      std::vector<int> applied;
      for (const auto& row : rows) applied.push_back(row[0].as<int>());
      r.from_version = applied.empty() ? 0 : applied.back();
      if (r.from_version > latest_schema_version())
        throw std::runtime_error("database schema version " + std::to_string(r.from_version) +
                                 " is newer than this feuilled knows (" + std::to_string(latest_schema_version()) +
                                 "): upgrade feuilled");
      for (const auto& m : migrations()) {
        if (std::find(applied.begin(), applied.end(), m.version) != applied.end()) continue;
        pqxx::work w(c);
        w.exec(std::string(m.sql));
        w.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
        w.commit();
        r.applied.push_back(m.name);
      }
      r.to_version = latest_schema_version();
    } catch (...) {
      try {
        restore();
      } catch (...) {
      }
      throw;
    }
    restore();
    return r;
  });
  for (const auto& name : result.applied) log->info("applied migration {}", name);
  if (result.applied.empty()) log->info("schema is current (version {})", result.to_version);
  co_return result;
}

}  // namespace feuille::db
