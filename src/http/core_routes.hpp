#pragma once
// Routes every feuilled serves whatever modules are on: /healthz, /readyz,
// /metrics and /static/.
#include <vector>

#include "feuille/config.hpp"
#include "http/health.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"

namespace feuille::http {

void add_core_routes(Router& router, const Health& health, const Metrics& metrics,
                     std::vector<Cidr> metrics_allow);

}  // namespace feuille::http
