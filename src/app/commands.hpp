#pragma once
// The one-shot commands: migrate, check, user list, user set-plan.
#include "app/cli.hpp"

namespace feuille::app {

int run_migrate(const Config& config);
int run_check(const Config& config);
int run_user_list(const Config& config);
int run_user_set_plan(const Config& config, const std::string& handle, const std::string& plan);

}  // namespace feuille::app
