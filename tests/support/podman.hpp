#pragma once
// The test fixture's Podman (a podman system service on a private socket,
// FEUILLE_TEST_ENV/podman-url) and the stand-in image it imported.
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "compute/podman_client.hpp"

namespace feuille::test {

std::string podman_url();     // unix:///...
std::string standin_image();  // localhost/feuille-standin:...
// --compute-host value for the fixture's Podman (or `url`).
std::string compute_host_arg(const std::string& url = "");
// The egress address of the tests (the fixture installed its rules; see
// feuille_test_env). Not the default 198.18.0.1, so that a `feuilled --dev`
// on the same machine keeps its own table.
std::string test_egress_address();
// feuilled arguments that run workspaces on the stand-in image.
std::vector<std::string> standin_args();

// Blocking calls to a Podman, for tests to look at and poke containers.
class TestPodman {
 public:
  explicit TestPodman(const std::string& url = "");
  compute::PodmanClient& client() { return client_; }
  nlohmann::json list(const std::vector<std::string>& labels);
  std::optional<nlohmann::json> inspect(const std::string& name);
  std::string create(const nlohmann::json& spec);  // returns the id
  void start(const std::string& name);
  void kill(const std::string& name);
  bool remove(const std::string& name);
  bool remove_pod(const std::string& name);
  // Removes every container (and editor pod) of a feuilled instance (io.feuille.instance).
  int remove_instance(const std::string& instance);

 private:
  template <class F>
  auto run(F make);
  boost::asio::io_context ioc_{1};
  compute::PodmanClient client_;
};

}  // namespace feuille::test
