#include "compute/usage.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace feuille::compute {

void fold_sample(Usage& u, const nlohmann::json& s) {
  const std::string id = s.value("ContainerID", "");
  const auto cpu_nano = s.value("CPUNano", std::uint64_t{0}), system_nano = s.value("SystemNano", std::uint64_t{0});
  u.cpu_percent.reset();
  if (u.sampled && u.container_id == id && system_nano > u.system_nano && cpu_nano >= u.cpu_nano)
    u.cpu_percent = std::round(1000.0 * static_cast<double>(cpu_nano - u.cpu_nano) /
                               static_cast<double>(system_nano - u.system_nano)) / 10;
  u.sampled = true;
  u.container_id = id;
  u.cpu_nano = cpu_nano;
  u.system_nano = system_nano;
  u.memory_bytes = s.value("MemUsage", std::uint64_t{0});
  u.memory_limit_bytes = s.value("MemLimit", std::uint64_t{0});
}

IdleVerdict idle_verdict(const IdleInputs& in) {
  if (in.timeout.count() <= 0) return IdleVerdict::awake;  // never sleeps
  if (in.gateway_moved) return IdleVerdict::active;        // the editor talked to the runtime
  if (!in.runtime_cpu) return IdleVerdict::awake;          // not two samples yet
  if (*in.runtime_cpu >= in.cpu_threshold) return IdleVerdict::active;  // computing is not idle
  return in.now - in.last_activity >= in.timeout ? IdleVerdict::sleep : IdleVerdict::awake;
}

}  // namespace feuille::compute
