#include "compute/container_spec.hpp"

#include <cmath>
#include <stdexcept>

#include "util/units.hpp"

namespace feuille::compute {

std::string editor_name(const std::string& user_id) { return std::string(kEditorPrefix) + user_id; }
std::string runtime_name(const std::string& user_id) { return std::string(kRuntimePrefix) + user_id; }
std::string base_path(const std::string& user_id) { return "/u/" + user_id + "/"; }

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

nlohmann::json common(const SpecBase& b, const std::string& name, const std::string& user_id, const char* role,
                      std::uint16_t port, const std::vector<std::string>& command) {
  return {
      {"name", name},
      {"image", b.image},
      {"command", command},
      {"labels",
       {{kLabelUser, user_id}, {kLabelRole, role}, {kLabelPort, std::to_string(port)}, {kLabelInstance, b.instance}}},
      {"mounts", nlohmann::json::array({{{"destination", kHome}, {"source", b.user_folder}, {"type", "bind"},
                                         {"options", {"rbind"}}}})},
      {"work_dir", kHome},
      {"apparmor_profile", "unconfined"},
      {"oci_runtime", b.oci_runtime},
      // feuilled restarts what dies (once) and records why; Podman must not.
      {"restart_policy", "no"},
      {"stop_timeout", 5},
  };
}

}  // namespace

nlohmann::json runtime_spec(const RuntimeParams& p) {
  const auto& id = p.owner.id;
  auto command = expand_command(p.base.command_template, {{"port", std::to_string(kRuntimeContainerPort)},
                                                          {"token", p.base.token},
                                                          {"user_id", id},
                                                          {"base_path", base_path(id)}});
  auto spec = common(p.base, runtime_name(id), id, "runtime", p.host_port, command);
  spec["env"] = {{"HOME", kHome}, {"CLOUD_MODE", "1"}, {"CLOUD_USER_ID", id}};
  spec["portmappings"] = nlohmann::json::array({{{"host_ip", p.publish_address},
                                                 {"host_port", p.host_port},
                                                 {"container_port", kRuntimeContainerPort},
                                                 {"protocol", "tcp"}}});
  nlohmann::json limits = {{"memory", {{"limit", p.memory_bytes}}}};
  if (p.cpus > 0) {
    constexpr std::int64_t period = 100000;
    limits["cpu"] = {{"period", period}, {"quota", static_cast<std::int64_t>(std::llround(p.cpus * period))}};
  }
  spec["resource_limits"] = limits;
  return spec;
}

nlohmann::json editor_spec(const EditorParams& p) {
  const auto& id = p.owner.id;
  auto command = expand_command(p.base.command_template, {{"port", std::to_string(p.port)},
                                                          {"token", p.base.token},
                                                          {"user_id", id},
                                                          {"base_path", base_path(id)}});
  auto spec = common(p.base, editor_name(id), id, "editor", p.port, command);
  spec["netns"] = {{"nsmode", "host"}};
  spec["env"] = {
      {"CLOUD_MODE", "1"},
      {"PORT", std::to_string(p.port)},
      {"RUNTIME_PORT", std::to_string(p.runtime_port)},
      {"RUNTIME_HOST", p.runtime_host},
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

}  // namespace feuille::compute
