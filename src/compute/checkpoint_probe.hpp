#pragma once
// Whether a checkpoint works on a host: a real one, of a throwaway container
// made like a runtime (the runtime's image, command, user, namespace and
// AppArmor profile; no user folder), exported and discarded. CRIU's version
// says little (Debian 12's 3.17 passes `criu check` on kernels it cannot dump
// on; without CAP_SYS_RESOURCE only uid 0 can be dumped), so feuilled tries.
#include <cstdint>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "compute/container_spec.hpp"
#include "feuille/config.hpp"

namespace feuille::compute {

class PodmanClient;

struct CheckpointProbe {
  bool works = false;
  std::string detail;  // what failed (Podman's message), or what was measured
  double ms = 0;       // the checkpoint's own time
  std::uint64_t archive_bytes = 0;
};

// What a runtime is made of (the compute keys).
struct ProbeRuntime {
  std::string instance;  // names the probe: deployments sharing a Podman service do not collide
  std::string oci_runtime, image, command, user;
  Isolation isolation;
};
// The probe's container: the runtime's spec (runtime_spec) named
// feuille-criu-probe-<instance>, without the user's folder, environment or
// io.feuille.instance label (reconcile, which lists by it, never sees it).
nlohmann::json checkpoint_probe_spec(const ProbeRuntime& runtime);

// Removes a leftover probe container, creates and starts the probe, exports
// its checkpoint (read and dropped) and removes it. Never throws for
// Podman's answers: a failure is the result.
boost::asio::awaitable<CheckpointProbe> probe_checkpoint(PodmanClient& client, nlohmann::json spec, Duration timeout);

nlohmann::json to_json(const CheckpointProbe& p);

}  // namespace feuille::compute
