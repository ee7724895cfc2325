#include "compute/container_spec.hpp"

#include <cmath>
#include <stdexcept>

#include "util/units.hpp"

namespace feuille::compute {

std::string editor_name(const std::string& user_id) { return std::string(kEditorPrefix) + user_id; }
std::string runtime_name(const std::string& user_id) { return std::string(kRuntimePrefix) + user_id; }
std::string editor_pod_name(const std::string& user_id) { return std::string(kPodPrefix) + user_id; }
std::string editor_netns_name(const std::string& user_id) { return std::string(kNetnsPrefix) + user_id; }
std::string base_path(const std::string& user_id) { return "/u/" + user_id + "/"; }

nlohmann::json slirp4netns_options(const Isolation& iso) {
  // allow_host_loopback=false is Podman's default; stated so that a changed
  // default cannot open the host's loopback. IPv6 off: the egress rules are
  // IPv4 (docs/security.md).
  nlohmann::json opts = {"allow_host_loopback=false", "enable_ipv6=false"};
  if (!iso.egress_address.empty()) opts.push_back("outbound_addr=" + iso.egress_address);
  return opts;
}

std::vector<std::string> expand_command(const std::string& tmpl, const std::map<std::string, std::string>& values) {
  auto words = units::shell_split(tmpl);
  for (auto& w : words) {
    std::string out;
    for (std::size_t i = 0; i < w.size();) {
      bool replaced = false;
      if (w[i] == '{') {
        auto close = w.find('}', i);
        if (close != std::string::npos) {
          auto it = values.find(w.substr(i + 1, close - i - 1));
          if (it != values.end()) {
            out += it->second;
            i = close + 1;
            replaced = true;
          }
        }
      }
      if (!replaced) out.push_back(w[i++]);
    }
    w = std::move(out);
  }
  return words;
}

namespace {

nlohmann::json labels(const SpecBase& b, const std::string& user_id, const char* role, std::uint16_t port) {
  nlohmann::json l = {{kLabelUser, user_id},
                      {kLabelRole, role},
                      {kLabelPort, std::to_string(port)},
                      {kLabelInstance, b.instance},
                      {kLabelNet, kNetIsolated}};
  if (!b.isolation.egress_address.empty()) l[kLabelEgress] = b.isolation.egress_address;
  return l;
}

nlohmann::json common(const SpecBase& b, const std::string& name, const std::string& user_id, const char* role,
                      std::uint16_t port, const std::vector<std::string>& command) {
  return {
      {"name", name},
      {"image", b.image},
      {"command", command},
      {"labels", labels(b, user_id, role, port)},
      {"mounts", nlohmann::json::array({{{"destination", kHome}, {"source", b.user_folder}, {"type", "bind"},
                                         {"options", {"rbind"}}}})},
      {"work_dir", kHome},
      {"oci_runtime", b.oci_runtime},
      // Neither image needs a capability (both run as the workspace user), and
      // nothing inside may gain one.
      {"cap_drop", {"ALL"}},
      {"no_new_privileges", true},
      // feuilled restarts what dies (once) and records why; Podman must not.
      {"restart_policy", "no"},
      {"stop_timeout", 5},
  };
}

}  // namespace

nlohmann::json runtime_limits(std::uint64_t memory_bytes, double cpus) {
  nlohmann::json limits = {{"memory", {{"limit", memory_bytes}}}};
  if (cpus > 0) {
    constexpr std::int64_t period = 100000;
    limits["cpu"] = {{"period", period}, {"quota", static_cast<std::int64_t>(std::llround(cpus * period))}};
  }
  return limits;
}

nlohmann::json runtime_spec(const RuntimeParams& p) {
  const auto& id = p.owner.id;
  auto command = expand_command(p.base.command_template, {{"port", std::to_string(kRuntimeContainerPort)},
                                                          {"token", p.base.token},
                                                          {"user_id", id},
                                                          {"base_path", base_path(id)}});
  auto spec = common(p.base, runtime_name(id), id, "runtime", p.gateway_port, command);
  spec["env"] = {{"HOME", kHome}, {"CLOUD_MODE", "1"}, {"CLOUD_USER_ID", id}};
  // Its own namespace, no published port: feuilled's gateway is the only way in.
  spec["netns"] = {{"nsmode", "slirp4netns"}};
  spec["network_options"] = {{"slirp4netns", slirp4netns_options(p.base.isolation)}};
  // CRIU needs it; the editor keeps the host's default profile (naming any
  // profile fails at create on a host without AppArmor).
  spec["apparmor_profile"] = "unconfined";
  spec["resource_limits"] = runtime_limits(p.memory_bytes, p.cpus);
  if (!p.user.empty()) spec["user"] = p.user;
  return spec;
}

nlohmann::json editor_spec(const EditorParams& p) {
  const auto& id = p.owner.id;
  auto command = expand_command(p.base.command_template, {{"port", std::to_string(p.port)},
                                                          {"token", p.base.token},
                                                          {"user_id", id},
                                                          {"base_path", base_path(id)}});
  auto spec = common(p.base, editor_name(id), id, "editor", p.port, command);
  // Its network namespace is its pod's (the infra container's).
  spec["pod"] = editor_pod_name(id);
  spec["env"] = {
      {"CLOUD_MODE", "1"},
      {"PORT", std::to_string(p.port)},
      {"RUNTIME_PORT", std::to_string(p.runtime_port)},
      {"RUNTIME_HOST", "127.0.0.1"},
      {"BASE_PATH", base_path(id)},
      {"HOME", kHome},
      {"CLOUD_USER_ID", id},
      {"CLOUD_USER_NAME", p.owner.name},
      {"CLOUD_USER_USERNAME", p.owner.handle},
      {"CLOUD_USER_EMAIL", p.owner.email},
      {"CLOUD_USER_PLAN", p.owner.plan},
  };
  spec["resource_limits"] = {{"memory", {{"limit", kEditorMemoryBytes}}}};
  return spec;
}

nlohmann::json editor_pod_spec(const EditorParams& p) {
  const auto& id = p.owner.id;
  return {
      {"name", editor_pod_name(id)},
      {"infra_name", editor_netns_name(id)},
      // Podman gives the pod's labels to its infra container too.
      {"labels", labels(p.base, id, "netns", p.port)},
      {"netns", {{"nsmode", "slirp4netns"}}},
      {"network_options", {{"slirp4netns", slirp4netns_options(p.base.isolation)}}},
  };
}

}  // namespace feuille::compute
