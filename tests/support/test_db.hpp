#pragma once
// Databases for integration tests, in the cluster the `postgres` CTest
// fixture started (FEUILLE_TEST_ENV/database-url).
#include <string>

#include <pqxx/pqxx>

namespace feuille::test {

// The fixture's folder; the test is skipped (GTEST_SKIP in callers) when unset.
std::string test_env_dir();
// libpq URI of the fixture's admin database ("postgres").
std::string admin_database_url();

// A fresh, empty database, dropped by the destructor.
class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  pqxx::result query(const std::string& sql);
  // The single value of a one-row, one-column query, as text ("" for NULL).
  std::string scalar(const std::string& sql);

 private:
  std::string name_, url_;
};

// Replaces the database name in a libpq URI ("postgresql:///x?host=..").
std::string with_database(const std::string& url, const std::string& database);

}  // namespace feuille::test
