#pragma once
// A real feuilled for a test: a fresh database, port 0, bounded waits.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/test_db.hpp"

namespace feuille::test {

class Daemon {
 public:
  // Adds --database-url (a fresh database) and --listen 127.0.0.1:0 unless
  // the arguments give them. Fails the test (ADD_FAILURE) if it does not come up.
  // `prefix` runs it under another program (setpriv, say): prefix..., feuilled, args...
  explicit Daemon(std::vector<std::string> args = {}, std::map<std::string, std::string> env = {},
                  std::vector<std::string> prefix = {});
  ~Daemon();

  int port() const { return port_; }
  Process& process() { return *process_; }
  TestDatabase& db() { return *db_; }
  HttpResponse get(const std::string& target, const std::map<std::string, std::string>& headers = {});
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::map<std::string, std::string>& headers = {}, const std::string& body = "");
  // SIGTERM and the exit status (nullopt if it did not exit within timeout).
  std::optional<int> stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));

 private:
  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

}  // namespace feuille::test
