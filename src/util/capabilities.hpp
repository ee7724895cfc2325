#pragma once
// Whether this process has a capability (CAP_* of <linux/capability.h>) in
// its effective set, read from /proc/self/status.
namespace feuille {

bool has_capability(int cap);

}  // namespace feuille
