#include "compute/checkpoint_probe.hpp"

#include <chrono>
#include <cstdio>

#include "compute/podman_client.hpp"

namespace asio = boost::asio;

namespace feuille::compute {

nlohmann::json checkpoint_probe_spec(const ProbeRuntime& r) {
  // Reached by nobody (no port, no gateway): the token is not a secret.
  RuntimeParams p{SpecBase{r.instance, "", r.oci_runtime, r.image, r.command, "checkpoint-probe", r.isolation},
                  Owner{"probe", "", "", "", ""}, 0, 256ULL << 20, 0, r.user};
  auto spec = runtime_spec(p);
  spec["name"] = "feuille-criu-probe-" + r.instance;
  spec["labels"] = {{"io.feuille.probe", "checkpoint"}};
  spec.erase("mounts");  // no user's folder
  spec["env"] = {{"HOME", kHome}};
  return spec;
}

asio::awaitable<CheckpointProbe> probe_checkpoint(PodmanClient& client, nlohmann::json spec, Duration timeout) {
  using Clock = std::chrono::steady_clock;
  const std::string name = spec.value("name", "");
  CheckpointProbe out;
  std::string failed;
  try {
    co_await client.remove_container(name, true, 0, timeout);  // an earlier run's, killed midway
    co_await client.create_container(spec, timeout);
    co_await client.start_container(name, timeout);
    auto drop = [](asio::const_buffer) -> asio::awaitable<void> { co_return; };
    const auto began = Clock::now();
    out.archive_bytes = co_await client.checkpoint_export(name, {}, drop, timeout, timeout);
    out.ms = std::chrono::duration<double, std::milli>(Clock::now() - began).count();
    out.works = true;
  } catch (const PodmanError& e) {
    failed = e.what();
  }
  try {
    co_await client.remove_container(name, true, 0, timeout);
  } catch (const PodmanError& e) {
    if (failed.empty()) failed = std::string("the probe container could not be removed: ") + e.what();
  }
  if (!failed.empty()) {
    out = {};
    out.detail = failed;
    co_return out;
  }
  char text[96];
  std::snprintf(text, sizeof text, "a checkpoint of a runtime took %.0f ms (%.1f KiB)", out.ms,
                static_cast<double>(out.archive_bytes) / 1024.0);
  out.detail = text;
  co_return out;
}

nlohmann::json to_json(const CheckpointProbe& p) {
  return {{"works", p.works}, {"detail", p.detail}, {"ms", p.ms}, {"archive_bytes", p.archive_bytes}};
}

}  // namespace feuille::compute
