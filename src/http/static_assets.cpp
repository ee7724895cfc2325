#include "http/static_assets.hpp"

#include <stdexcept>

#include "util/digest.hpp"
#include "util/embedded.hpp"

namespace feuille::http {
namespace {

std::string content_type_for(std::string_view name) {
  auto dot = name.rfind('.');
  std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

const StaticAssets& StaticAssets::instance() {
  static const StaticAssets assets;
  return assets;
}

StaticAssets::StaticAssets() {
  for (const auto& f : embedded::static_assets()) {
    if (f.name.empty()) continue;
    std::string hash = util::sha256_hex(f.data, 12);
    std::string name(f.name);
    auto dot = name.rfind('.');
    std::string hashed = dot == std::string::npos || name.find('/', dot) != std::string::npos
                             ? name + "." + hash
                             : name.substr(0, dot) + "." + hash + name.substr(dot);
    std::string type = content_type_for(name);
    by_name_[hashed] = Asset{f.data, type, "\"" + hash + "\"", true};
    by_name_[name] = Asset{f.data, type, "\"" + hash + "\"", false};
    url_of_[name] = "/static/" + hashed;
  }
}

std::string StaticAssets::url(std::string_view name) const {
  auto it = url_of_.find(std::string(name));
  if (it == url_of_.end()) throw std::logic_error("no static asset " + std::string(name));
  return it->second;
}

const Asset* StaticAssets::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &it->second;
}

}  // namespace feuille::http
