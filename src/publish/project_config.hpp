#pragma once
// A project's configuration: the YAML of the ```yaml config blocks of its
// mrmd.md, deep-merged in order (maps merge recursively, a later block wins,
// lists and scalars replace). No Boost here: the fuzzer builds this file on
// its own.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace feuille::publish {

enum class Visibility { private_, unlisted, public_ };

struct ProjectConfig {
  std::string name;         // "" when not given
  std::string description;  // "" when not given
  Visibility visibility = Visibility::private_;
  std::vector<std::string> nav_order;  // page paths, as written
  nlohmann::json values = nlohmann::json::object();  // the whole merged config (scalars as strings)
};

struct ConfigResult {
  std::optional<ProjectConfig> config;  // nullopt: unusable, the project is not published
  std::string error;                    // why, when config is nullopt
  std::vector<std::string> warnings;    // recoverable oddities (an unknown visibility...)
};

inline constexpr std::size_t kMaxConfigBytes = 64 * 1024;
inline constexpr int kMaxConfigDepth = 32;

// The bodies of the ```yaml config fenced blocks of a markdown text, in order.
std::vector<std::string> config_blocks(std::string_view markdown);

// Parses mrmd.md. Over kMaxConfigBytes, nested deeper than kMaxConfigDepth,
// YAML that does not parse, or a block that is not a mapping: an error.
ConfigResult parse_project_config(std::string_view mrmd_md);

}  // namespace feuille::publish
