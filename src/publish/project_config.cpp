#include "publish/project_config.hpp"

#include <yaml-cpp/yaml.h>

#include "publish/path.hpp"

namespace feuille::publish {
namespace {

// Bounds the work of one mrmd.md: YAML aliases can make a small text a very
// large tree (each alias is walked again), or a cycle.
constexpr std::size_t kMaxValues = 20'000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_config_info(std::string_view info) {
  // Words separated by blanks: "yaml" first, "config" among the others.
  bool first = true, yaml = false;
  while (!(info = trim(info)).empty()) {
    auto end = info.find_first_of(" \t");
    auto word = info.substr(0, end);
    if (first) yaml = word == "yaml";
    else if (yaml && word == "config") return true;
    first = false;
    if (end == std::string_view::npos) break;
    info.remove_prefix(end);
  }
  return false;
}

std::size_t leading_spaces(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

std::size_t run_of(std::string_view line, std::size_t from, char c) {
  std::size_t n = 0;
  while (from + n < line.size() && line[from + n] == c) ++n;
  return n;
}

struct Converter {
  std::size_t budget = kMaxValues;
  std::string error;

  bool convert(const YAML::Node& node, nlohmann::json& out, int depth) {
    if (budget == 0) {
      error = "more than " + std::to_string(kMaxValues) + " values";
      return false;
    }
    --budget;
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out = nullptr;
        return true;
      case YAML::NodeType::Scalar:
        out = to_valid_utf8(node.Scalar());
        return true;
      case YAML::NodeType::Sequence:
        if (depth > kMaxConfigDepth) return too_deep();
        out = nlohmann::json::array();
        for (const auto& item : node) {
          nlohmann::json value;
          if (!convert(item, value, depth + 1)) return false;
          out.push_back(std::move(value));
        }
        return true;
      case YAML::NodeType::Map:
        if (depth > kMaxConfigDepth) return too_deep();
        out = nlohmann::json::object();
        for (const auto& kv : node) {
          if (!kv.first.IsScalar()) continue;  // complex keys mean nothing here
          nlohmann::json value;
          if (!convert(kv.second, value, depth + 1)) return false;
          out[to_valid_utf8(kv.first.Scalar())] = std::move(value);
        }
        return true;
    }
    return true;
  }

  bool too_deep() {
    error = "nested deeper than " + std::to_string(kMaxConfigDepth) + " levels";
    return false;
  }
};

// Maps merge recursively, the later value wins, lists replace.
void deep_merge(nlohmann::json& into, const nlohmann::json& from) {
  if (!into.is_object() || !from.is_object()) {
    into = from;
    return;
  }
  for (auto it = from.begin(); it != from.end(); ++it) {
    auto existing = into.find(it.key());
    if (existing != into.end() && existing->is_object() && it->is_object()) deep_merge(*existing, *it);
    else into[it.key()] = *it;
  }
}

const nlohmann::json* member(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string string_member(const nlohmann::json& j, const char* key) {
  auto* v = member(j, key);
  return v && v->is_string() ? std::string(trim(v->get_ref<const std::string&>())) : std::string();
}

}  // namespace

std::vector<std::string> config_blocks(std::string_view md) {
  std::vector<std::string> out;
  bool in_fence = false, capture = false;
  char fence_char = 0;
  std::size_t fence_len = 0, fence_indent = 0;
  std::string body;
  std::size_t pos = 0;
  while (pos < md.size()) {
    auto nl = md.find('\n', pos);
    std::string_view line = md.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? md.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t indent = leading_spaces(line);
    if (!in_fence) {
      if (indent > 3 || indent >= line.size() || (line[indent] != '`' && line[indent] != '~')) continue;
      char c = line[indent];
      std::size_t n = run_of(line, indent, c);
      if (n < 3) continue;
      std::string_view info = trim(line.substr(indent + n));
      if (c == '`' && info.find('`') != std::string_view::npos) continue;  // inline code, not a fence
      in_fence = true;
      fence_char = c;
      fence_len = n;
      fence_indent = indent;
      capture = is_config_info(info);
      body.clear();
      continue;
    }
    if (indent <= 3 && indent < line.size() && line[indent] == fence_char) {
      std::size_t n = run_of(line, indent, fence_char);
      if (n >= fence_len && trim(line.substr(indent + n)).empty()) {
        in_fence = false;
        if (capture) out.push_back(std::move(body));
        body.clear();
        continue;
      }
    }
    if (capture) {
      body.append(line.substr(std::min(indent, fence_indent)));
      body.push_back('\n');
    }
  }
  if (in_fence && capture) out.push_back(std::move(body));  // an unclosed fence runs to the end
  return out;
}

ConfigResult parse_project_config(std::string_view mrmd_md) {
  ConfigResult result;
  if (mrmd_md.size() > kMaxConfigBytes) {
    result.error = "mrmd.md is larger than 64 KiB";
    return result;
  }
  nlohmann::json merged = nlohmann::json::object();
  auto blocks = config_blocks(mrmd_md);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const std::string which = "yaml config block " + std::to_string(i + 1);
    YAML::Node node;
    try {
      node = YAML::Load(blocks[i]);
    } catch (const YAML::Exception& e) {
      result.error = which + ": " + e.what();
      return result;
    }
    Converter conv;
    nlohmann::json value;
    bool ok = false;
    try {
      ok = conv.convert(node, value, 1);
    } catch (const YAML::Exception& e) {
      conv.error = e.what();
    }
    if (!ok) {
      result.error = which + ": " + conv.error;
      return result;
    }
    if (value.is_null()) continue;  // an empty block
    if (!value.is_object()) {
      result.error = which + " is not a mapping";
      return result;
    }
    deep_merge(merged, value);
  }

  ProjectConfig c;
  c.name = string_member(merged, "name");
  c.description = string_member(merged, "description");
  if (auto* publish = member(merged, "publish")) {
    if (auto* v = member(*publish, "visibility"); v && !v->is_null()) {
      std::string text = v->is_string() ? std::string(trim(v->get_ref<const std::string&>())) : v->dump();
      std::string lower;
      for (char ch : text) lower.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
      if (lower == "public") c.visibility = Visibility::public_;
      else if (lower == "unlisted") c.visibility = Visibility::unlisted;
      else if (lower != "private")
        result.warnings.push_back("publish.visibility \"" + text.substr(0, 64) +
                                  "\" is not public, unlisted or private; treated as private");
    }
  }
  if (auto* nav = member(merged, "nav")) {
    if (auto* order = member(*nav, "order")) {
      if (order->is_array()) {
        for (const auto& item : *order)
          if (item.is_string()) c.nav_order.push_back(item.get<std::string>());
      } else if (!order->is_null()) {
        result.warnings.push_back("nav.order is not a list; ignored");
      }
    }
  }
  c.values = std::move(merged);
  result.config = std::move(c);
  return result;
}

}  // namespace feuille::publish
