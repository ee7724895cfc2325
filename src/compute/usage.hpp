#pragma once
// The resource monitor's arithmetic and the idle policy, apart from Podman,
// the loop and the clock (unit-tested with Podman-shaped samples and given
// times: tests/unit/usage_test.cpp). docs/compute.md, "Resource monitor" and
// "Idle sleep".
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "feuille/config.hpp"

namespace feuille::compute {

// One container's figures from the monitor.
struct Usage {
  bool sampled = false;
  std::uint64_t memory_bytes = 0, memory_limit_bytes = 0;
  std::optional<double> cpu_percent;  // since the sample before (none after a new container id)
  std::string container_id;           // whose counters these are: a restore makes a new one
  std::uint64_t cpu_nano = 0, system_nano = 0;
};

// Folds one entry of Podman's stats answer (`ContainerID`, `CPUNano`,
// `SystemNano`, `MemUsage`, `MemLimit`) into `u`. Podman's own CPU figure is
// a lifetime average: the CPU time used since the last sample of the same
// container over the wall time between them (SystemNano), in % of one CPU,
// to 0.1. None for a first sample, a new container id (a restore, a
// restart) or counters that went backwards.
void fold_sample(Usage& u, const nlohmann::json& entry);

// What the idle policy says after a sample of a running workspace's runtime.
enum class IdleVerdict {
  active,  // something happened: its idle clock starts again now
  awake,   // quiet, not yet for long enough (or not known yet)
  sleep,   // idle for its plan's timeout: put it to sleep
};
struct IdleInputs {
  Duration timeout{0};                    // the plan's idle timeout (0 = never)
  double cpu_threshold = 1;               // idle-cpu-percent
  std::optional<double> runtime_cpu;      // the runtime's last figure (none before two samples)
  bool gateway_moved = false;             // bytes through the runtime gateway since the last check
  std::chrono::system_clock::time_point last_activity{}, now{};
};
IdleVerdict idle_verdict(const IdleInputs& in);

}  // namespace feuille::compute
