#include "util/descriptor_budget.hpp"

#include <sys/resource.h>

namespace feuille {

DescriptorBudget DescriptorBudget::of_process() {
  rlimit limit{};
  DescriptorBudget b;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    b.limit = static_cast<std::size_t>(limit.rlim_cur);
  else if (limit.rlim_cur == RLIM_INFINITY)
    b.limit = 1 << 20;
  return b;
}

}  // namespace feuille
