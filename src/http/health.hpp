#pragma once
// Readiness checks registered by modules (database, hosts, ...) and run by
// GET /readyz.
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "feuille/config.hpp"

namespace feuille::http {

struct CheckResult {
  bool ok = false;
  std::string detail;     // shown in /readyz (no secrets)
  nlohmann::json extra;   // optional fields merged into the check's object
};

class Health {
 public:
  using Check = std::function<boost::asio::awaitable<CheckResult>()>;
  void add(std::string name, Check check);

  // Runs every check concurrently, each bounded by `timeout`. Returns
  // {"status": "ok"|"failing", "checks": {name: {"ok":..,"ms":..,...}}}.
  boost::asio::awaitable<nlohmann::json> run(Duration timeout) const;

 private:
  std::vector<std::pair<std::string, Check>> checks_;
};

}  // namespace feuille::http
