#include "support/daemon.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>

#include "support/podman.hpp"

namespace feuille::test {

Daemon::Daemon(std::vector<std::string> args, std::map<std::string, std::string> env,
               std::vector<std::string> prefix) {
  auto has = [&](const std::string& flag) { return std::find(args.begin(), args.end(), flag) != args.end(); };
  std::vector<std::string> argv = std::move(prefix);
  argv.push_back(feuilled_path());
  if (!has("--database-url") && !has("--dev")) {
    db_ = std::make_unique<TestDatabase>();
    argv.insert(argv.end(), {"--database-url", db_->url()});
  }
  if (!has("--listen")) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  // Workspaces (and /readyz) need a Podman host: the fixture's.
  if (!has("--compute-host") && !has("--dev")) argv.insert(argv.end(), {"--compute-host", compute_host_arg()});
  // Tenant egress from the fixture's address (its rules are the same plan,
  // so each daemon's install at start changes nothing).
  if (!has("--egress-address") && !has("--dev")) argv.insert(argv.end(), {"--egress-address", test_egress_address()});
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Process>(argv, env);
  port_ = wait_for_port(*process_, std::chrono::seconds(60));
  if (port_ == 0) ADD_FAILURE() << "feuilled did not start; stderr:\n" << process_->stderr_text();
}

Daemon::~Daemon() {
  if (process_ && process_->running()) stop(std::chrono::seconds(15));
}

HttpResponse Daemon::get(const std::string& target, const std::map<std::string, std::string>& headers) {
  return http_request(port_, "GET", target, headers);
}

HttpResponse Daemon::request(const std::string& method, const std::string& target,
                             const std::map<std::string, std::string>& headers, const std::string& body) {
  return http_request(port_, method, target, headers, body);
}

std::optional<int> Daemon::stop(std::chrono::milliseconds timeout) {
  process_->signal(SIGTERM);
  return process_->wait(timeout);
}

}  // namespace feuille::test
