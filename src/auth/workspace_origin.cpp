#include "auth/workspace_origin.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "auth/request_checks.hpp"

namespace feuille::auth {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool host_chars(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

}  // namespace

WorkspaceOrigin::WorkspaceOrigin(std::string_view tmpl) {
  std::string t = lower(tmpl);
  while (!t.empty() && t.back() == '/') t.pop_back();
  if (t.rfind("https://", 0) == 0) scheme_ = "https";
  else if (t.rfind("http://", 0) == 0) scheme_ = "http";
  else throw std::invalid_argument("must start with http:// or https://");
  std::string_view rest = std::string_view(t).substr(scheme_.size() + 3);
  if (rest.find_first_of("/?#@") != std::string_view::npos) throw std::invalid_argument("must be an origin (no path)");
  auto colon = rest.rfind(':');
  std::string_view host = rest.substr(0, colon);
  if (colon != std::string_view::npos) {
    port_ = std::string(rest.substr(colon + 1));
    if (port_.empty() || port_.size() > 5 || !std::all_of(port_.begin(), port_.end(), ::isdigit) ||
        std::stoi(port_) == 0 || std::stoi(port_) > 65535)
      throw std::invalid_argument("has a bad port");
    if ((scheme_ == "https" && port_ == "443") || (scheme_ == "http" && port_ == "80")) port_.clear();
  }
  auto at = host.find("{id}");
  if (at == std::string_view::npos || host.find("{id}", at + 1) != std::string_view::npos)
    throw std::invalid_argument("must hold {id} once, in the host");
  prefix_ = std::string(host.substr(0, at));
  suffix_ = std::string(host.substr(at + 4));
  if (!host_chars(prefix_) || !host_chars(suffix_)) throw std::invalid_argument("has characters a host name cannot");
  // {id} must be a whole DNS label: a wildcard certificate covers one label.
  if ((!prefix_.empty() && prefix_.back() != '.') || suffix_.empty() || suffix_.front() != '.' ||
      suffix_.size() < 2)
    throw std::invalid_argument("must have {id} as a whole label under a domain ({id}.ws.example.com)");
}

std::string WorkspaceOrigin::origin(std::string_view id) const {
  std::string out = scheme_ + "://" + prefix_;
  out.append(id).append(suffix_);
  if (!port_.empty()) out.append(":").append(port_);
  return out;
}

std::optional<std::string> WorkspaceOrigin::id_of_host(std::string_view host) const {
  // The port: the template's, or none/the default one.
  std::string_view name = host;
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    name = host.substr(0, colon);
    bool default_port = (scheme_ == "https" && port == "443") || (scheme_ == "http" && port == "80");
    if (port_.empty() ? !default_port : port != port_) return std::nullopt;
  } else if (!port_.empty()) {
    return std::nullopt;
  }
  std::string h = lower(name);
  if (h.size() <= prefix_.size() + suffix_.size() || h.compare(0, prefix_.size(), prefix_) != 0 ||
      h.compare(h.size() - suffix_.size(), suffix_.size(), suffix_) != 0)
    return std::nullopt;
  std::string id = h.substr(prefix_.size(), h.size() - prefix_.size() - suffix_.size());
  if (id.size() != 36 || !parse_uuid(id)) return std::string();
  return id;
}

bool WorkspaceOrigin::origin_matches(std::string_view origin_header, std::string_view id) const {
  return auth::origin_matches(origin_header, origin(id));
}

}  // namespace feuille::auth
