#include "support/podman.hpp"

#include <fstream>
#include <stdexcept>

#include "compute/container_spec.hpp"
#include "compute/standin_image.hpp"
#include "support/run_coro.hpp"
#include "support/test_db.hpp"

namespace feuille::test {

namespace {
std::string read_line(const std::string& file, const char* what) {
  std::ifstream in(test_env_dir() + "/" + file);
  std::string line;
  if (!std::getline(in, line) || line.empty())
    throw std::runtime_error(std::string("no ") + what + ": run through ctest (the podman fixture)");
  return line;
}
}  // namespace

std::string podman_url() { return read_line("podman-url", "podman service"); }
std::string standin_image() { return read_line("standin-image", "stand-in image"); }

std::string test_egress_address() { return "198.18.0.2"; }

std::string compute_host_arg(const std::string& url) {
  return "name=local,url=" + (url.empty() ? podman_url() : url);
}

std::vector<std::string> standin_args() {
  auto image = standin_image();
  return {"--editor-image",   image,
          "--runtime-image",  image,
          "--editor-command", compute::standin_editor_command("/health"),
          "--runtime-command", compute::standin_runtime_command("/mrp/v1/capabilities")};
}

TestPodman::TestPodman(const std::string& url)
    : client_(ioc_.get_executor(), url.empty() ? podman_url() : url, compute::PodmanClient::Options{}) {}

template <class F>
auto TestPodman::run(F make) {
  return run_coro(ioc_, std::move(make), std::chrono::seconds(60));
}

nlohmann::json TestPodman::list(const std::vector<std::string>& labels) {
  return run([&]() { return client_.list_containers(labels); });
}

std::optional<nlohmann::json> TestPodman::inspect(const std::string& name) {
  return run([&]() { return client_.inspect_container(name); });
}

std::string TestPodman::create(const nlohmann::json& spec) {
  return run([&]() { return client_.create_container(spec); });
}

void TestPodman::start(const std::string& name) {
  run([&]() { return client_.start_container(name); });
}

void TestPodman::kill(const std::string& name) {
  run([&]() { return client_.kill_container(name, "KILL"); });
}

bool TestPodman::remove(const std::string& name) {
  return run([&]() { return client_.remove_container(name, true, 0); });
}

bool TestPodman::remove_pod(const std::string& name) {
  return run([&]() { return client_.remove_pod(name); });
}

int TestPodman::remove_instance(const std::string& instance) {
  int n = 0;
  const std::string netns_prefix(compute::kNetnsPrefix);
  auto all = list({std::string(compute::kLabelInstance) + "=" + instance});
  // Pods first (their infra containers can only go with them), then the rest.
  for (const auto& c : all) {
    std::string name = c["Names"][0].get<std::string>();
    if (name.rfind(netns_prefix, 0) == 0)
      n += remove_pod(std::string(compute::kPodPrefix) + name.substr(netns_prefix.size())) ? 1 : 0;
  }
  for (const auto& c : list({std::string(compute::kLabelInstance) + "=" + instance}))
    n += remove(c.value("Id", "")) ? 1 : 0;
  return n;
}

}  // namespace feuille::test
