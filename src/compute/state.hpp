#pragma once
// A workspace's states (SPEC.md section 2, /api/workspace). The idle sleep
// drives sleeping and waking; migrating belongs to the migration work and is
// already stored and shown.
#include <optional>
#include <string_view>

namespace feuille::compute {

enum class State { stopped, starting, running, sleeping, waking, migrating, stopping, failed };
inline constexpr State kAllStates[] = {State::stopped,  State::starting,  State::running,  State::sleeping,
                                       State::waking,   State::migrating, State::stopping, State::failed};

const char* to_string(State s);
std::optional<State> parse_state(std::string_view s);

// States in which containers are expected to exist and be served.
inline bool has_containers(State s) { return s == State::running || s == State::migrating; }
// States of an operation in flight (a start, a wake, a migration, a stop).
inline bool in_transition(State s) {
  return s == State::starting || s == State::waking || s == State::migrating || s == State::stopping;
}
// States that end in running unless something fails: requests wait them out.
inline bool on_its_way(State s) { return s == State::starting || s == State::waking || s == State::migrating; }

}  // namespace feuille::compute
