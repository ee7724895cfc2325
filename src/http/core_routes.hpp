#pragma once
// Routes every feuilled serves whatever modules are on: /healthz, /readyz,
// /metrics and /static/.
#include <vector>

#include "feuille/config.hpp"
#include "http/health.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"

namespace feuille::http {

// /readyz answers from a result at most a second old (one run of the checks
// shared by every caller meanwhile), and shows each check's ok and timing
// only; the failure details go to the log (on each change) and, for the
// addresses in metrics_allow, to /readyz and to /metrics
// (feuille_ready_check{check} 1/0).
void add_core_routes(Router& router, Health& health, Metrics& metrics, std::vector<Cidr> metrics_allow);

// /static/...: also served on workspace origins (the starting and error
// pages there use them; they hold nothing of anyone's).
void add_static_routes(Router& router);

}  // namespace feuille::http
