#include "support/test_db.hpp"

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace feuille::test {

std::string test_env_dir() {
  const char* dir = std::getenv("FEUILLE_TEST_ENV");
  return dir ? dir : "";
}

std::string admin_database_url() {
  std::ifstream in(test_env_dir() + "/database-url");
  std::string url;
  if (!std::getline(in, url) || url.empty())
    throw std::runtime_error("no test database: run through ctest (the postgres fixture)");
  return url;
}

std::string with_database(const std::string& url, const std::string& database) {
  auto start = url.find(":///");
  if (start == std::string::npos) throw std::runtime_error("unexpected URL form " + url);
  start += 4;
  auto end = url.find('?', start);
  return url.substr(0, start) + database + (end == std::string::npos ? "" : url.substr(end));
}

TestDatabase::TestDatabase() {
  std::random_device rd;
  name_ = "t_" + std::to_string(rd()) + std::to_string(rd() % 1000);
  auto admin = admin_database_url();
  pqxx::connection c(admin);
  pqxx::nontransaction n(c);
  n.exec("CREATE DATABASE " + name_);
  url_ = with_database(admin, name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection c(admin_database_url());
    pqxx::nontransaction n(c);
    n.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (...) {
  }
}

pqxx::result TestDatabase::query(const std::string& sql) {
  pqxx::connection c(url_);
  pqxx::work w(c);
  auto r = w.exec(sql);
  w.commit();
  return r;
}

std::string TestDatabase::scalar(const std::string& sql) {
  auto r = query(sql);
  if (r.size() != 1 || r[0].size() != 1) throw std::runtime_error("not a scalar: " + sql);
  return r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

}  // namespace feuille::test
