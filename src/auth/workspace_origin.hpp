#pragma once
// The origin each workspace is served on (`workspace-origin`, SPEC.md
// section 3): a template such as "https://{id}.ws.example.com" whose host
// holds the owner's user id. Pure: parses the template once, builds a
// workspace's origin, tells which workspace a Host header names, and checks
// an Origin header against it. Unit-tested.
#include <optional>
#include <string>
#include <string_view>

namespace feuille::auth {

class WorkspaceOrigin {
 public:
  // Throws std::invalid_argument with a one-line reason when the template is
  // not "http(s)://<prefix>{id}<suffix>[:port]" with {id} once, in the host.
  explicit WorkspaceOrigin(std::string_view tmpl);

  // "https://<id>.ws.example.com" (no trailing slash).
  std::string origin(std::string_view id) const;
  // The user id a Host header names ("<id>.ws.example.com[:port]", any case),
  // lowercase and a canonical UUID; "" for a name under the workspace domain
  // that is no workspace ("x.ws.example.com"); nullopt for any other host.
  std::optional<std::string> id_of_host(std::string_view host) const;
  // True when `origin_header` is exactly this workspace's origin.
  bool origin_matches(std::string_view origin_header, std::string_view id) const;
  bool secure() const { return scheme_ == "https"; }

 private:
  std::string scheme_;  // http or https
  std::string prefix_, suffix_;  // lowercase, around {id} in the host
  std::string port_;             // "" = the scheme's default
};

}  // namespace feuille::auth
