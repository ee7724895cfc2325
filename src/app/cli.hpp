#pragma once
// Command line and configuration file: one table of keys (src/app/cli.cpp),
// a fresh CLI11 parser per call, typed validation with one-line errors.
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "feuille/config.hpp"

namespace feuille::app {

// A configuration problem; what() is one line that names the key.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Command { run, migrate, check, user_list, user_set_plan };

struct Invocation {
  Command command = Command::run;
  std::vector<std::string> args;  // positional arguments of the command
  Config config;
  // Set for --help / --version: print `output` and exit with this code.
  std::optional<int> exit_code;
  std::string output;
  // The values given for each key (command line or file), before defaults:
  // a reload compares them to tell which changed.
  std::map<std::string, std::vector<std::string>> raw;
};

// Parses argv (argv[0] included) and the --config file. Throws ConfigError.
Invocation parse_invocation(const std::vector<std::string>& argv);

// Describes one key for docs, tests and `--help`.
struct KeyInfo {
  std::string name;
  std::string default_text;
  std::string help;
  bool reloadable;
  bool repeatable;
  bool secret;
};
const std::vector<KeyInfo>& config_keys();

// Applies every key the table marks reloadable from `next` (a parsed,
// validated invocation) to `into`, as parsing would: a key not given gets its
// default. Other keys are left alone.
void apply_reloadable(const Invocation& next, Config& into);

// Keys whose values differ between two configurations and that a SIGHUP
// cannot apply (a restart is needed).
std::vector<std::string> changed_restart_keys(const Invocation& a, const Invocation& b);

// Default values of the built-in plans (free, pro, team).
std::vector<Plan> default_plans();

}  // namespace feuille::app
