#pragma once
// Versioned SQL migrations compiled into the binary (src/db/migrations/
// NNNN_name.sql), applied in order, each in its own transaction, under a
// PostgreSQL advisory lock so that two daemons starting at once migrate once.
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "db/database.hpp"

namespace feuille::db {

struct Migration {
  int version;
  std::string name;
  std::string_view sql;
};

// The embedded migrations, sorted by version. Throws on a malformed name.
const std::vector<Migration>& migrations();
int latest_schema_version();

struct MigrationResult {
  int from_version = 0;
  int to_version = 0;
  std::vector<std::string> applied;  // names
};

// Applies pending migrations. Throws std::runtime_error when the database is
// newer than this binary.
boost::asio::awaitable<MigrationResult> migrate(Database& db);
// The version recorded in schema_migrations (0 for an empty database).
boost::asio::awaitable<int> schema_version(Database& db);

}  // namespace feuille::db
