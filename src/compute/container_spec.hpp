#pragma once
// The containers of a workspace exactly as SPEC.md section 4 describes them:
// names, labels, command templates, environment, network, limits, volume,
// privileges. Pure functions (no I/O): the specs are libpod SpecGenerator
// JSON documents for POST /libpod/containers/create, and the editor's pod
// (whose infra container holds the editor's network namespace) a
// PodSpecGenerator for POST /libpod/pods/create.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace feuille::compute {

// Names: feuille-ed-{user id}, feuille-rt-{user id}, feuille-sb-...; the
// editor's pod feuille-pod-{user id} and its infra container feuille-ns-{user id}.
std::string editor_name(const std::string& user_id);
std::string runtime_name(const std::string& user_id);
std::string editor_pod_name(const std::string& user_id);
std::string editor_netns_name(const std::string& user_id);
inline constexpr std::string_view kEditorPrefix = "feuille-ed-";
inline constexpr std::string_view kRuntimePrefix = "feuille-rt-";
inline constexpr std::string_view kSandboxPrefix = "feuille-sb-";
inline constexpr std::string_view kPodPrefix = "feuille-pod-";
inline constexpr std::string_view kNetnsPrefix = "feuille-ns-";

// Labels. io.feuille.instance scopes every container to one feuilled
// deployment (its database): reconcile never touches another's.
inline constexpr const char* kLabelUser = "io.feuille.user";
inline constexpr const char* kLabelRole = "io.feuille.role";
inline constexpr const char* kLabelPort = "io.feuille.port";
inline constexpr const char* kLabelInstance = "io.feuille.instance";
// io.feuille.net=isolated: made with a network namespace of its own. A
// container without it comes from before tenant isolation (host network, a
// published port) and is removed, never adopted.
inline constexpr const char* kLabelNet = "io.feuille.net";
inline constexpr const char* kNetIsolated = "isolated";
// io.feuille.egress=<address>: its outbound connections are made from that
// egress address (absent: made before this label, or unfiltered).
inline constexpr const char* kLabelEgress = "io.feuille.egress";

// Port ranges (SPEC.md section 4).
inline constexpr std::uint16_t kEditorPortFirst = 20000, kEditorPortLast = 39999;
inline constexpr std::uint16_t kRuntimePortFirst = 40000, kRuntimePortLast = 59999;
inline constexpr std::uint16_t kRuntimeContainerPort = 8888;
inline constexpr std::uint64_t kEditorMemoryBytes = 512ull << 20;
inline constexpr const char* kHome = "/home/user";

// Splits a command template into words as a shell would (quotes respected,
// no expansion), then replaces {port} {token} {user_id} {base_path} in each
// word. Throws std::invalid_argument on a template that cannot be split.
std::vector<std::string> expand_command(const std::string& tmpl, const std::map<std::string, std::string>& values);

// How a container's network is made: a namespace of its own with outbound
// NAT by slirp4netns, no way to the host's loopback, IPv4 only, and (when set)
// its outbound connections made from `egress_address`, the address the egress
// rules (compute/egress.hpp) are keyed on.
struct Isolation {
  std::string egress_address;
};
nlohmann::json slirp4netns_options(const Isolation& iso);

// Who the workspace belongs to, as the editor's environment shows it.
struct Owner {
  std::string id, handle, name, email, plan;
};

// Everything both specs share.
struct SpecBase {
  std::string instance;     // io.feuille.instance
  std::string user_folder;  // <data-dir>/<id>, mounted at /home/user
  std::string oci_runtime;
  std::string image;
  std::string command_template;
  std::string token;  // this start's editor token
  Isolation isolation;
};

struct RuntimeParams {
  SpecBase base;
  Owner owner;
  std::uint16_t gateway_port = 0;  // RUNTIME_PORT, where the editor reaches it (label only)
  std::uint64_t memory_bytes = 0;  // the plan's
  double cpus = 0;                 // the plan's
  std::string user;                // runtime-user: uid[:gid], empty = the image's
};

struct EditorParams {
  SpecBase base;
  Owner owner;
  std::uint16_t port = 0;  // on 127.0.0.1 inside its own namespace
  std::uint16_t runtime_port = 0;  // the gateway's, on 127.0.0.1 there too
};

nlohmann::json runtime_spec(const RuntimeParams& p);
// A plan's memory and CPU as Podman's resource limits (the runtime's spec,
// and the update a restored or forked runtime gets: it comes back with the
// limits it was checkpointed with).
nlohmann::json runtime_limits(std::uint64_t memory_bytes, double cpus);
// The pod to create (and start) before the editor: its infra container holds
// the namespace in which the gateway listens before any tenant process runs.
nlohmann::json editor_pod_spec(const EditorParams& p);
nlohmann::json editor_spec(const EditorParams& p);

std::string base_path(const std::string& user_id);  // /u/{id}/

}  // namespace feuille::compute
