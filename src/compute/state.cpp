#include "compute/state.hpp"

namespace feuille::compute {

const char* to_string(State s) {
  switch (s) {
    case State::stopped: return "stopped";
    case State::starting: return "starting";
    case State::running: return "running";
    case State::sleeping: return "sleeping";
    case State::waking: return "waking";
    case State::migrating: return "migrating";
    case State::stopping: return "stopping";
    case State::failed: return "failed";
  }
  return "stopped";
}

std::optional<State> parse_state(std::string_view s) {
  for (auto st : kAllStates)
    if (s == to_string(st)) return st;
  return std::nullopt;
}

}  // namespace feuille::compute
