#include "util/spawn.hpp"

#include <atomic>

namespace feuille {
namespace {
std::atomic<long> g_live_tasks{0};
}
long live_tasks() { return g_live_tasks.load(); }
void task_started() { ++g_live_tasks; }
void task_finished() { --g_live_tasks; }
}  // namespace feuille
