#include "auth/dashboard.hpp"

#include <algorithm>

#include "http/responses.hpp"
#include "util/logging.hpp"

namespace feuille::auth {

void DashboardSections::add(std::string id, int order, SectionRenderer render) {
  Section s{std::move(id), order, std::move(render)};
  // Stable: equal orders keep their registration order.
  auto at = std::upper_bound(sections_.begin(), sections_.end(), order,
                             [](int o, const Section& x) { return o < x.order; });
  sections_.insert(at, std::move(s));
}

boost::asio::awaitable<std::string> DashboardSections::render(const Identity& me, const http::Request& request) const {
  std::string out;
  for (const auto& s : sections_) {
    std::string html;
    bool failed = false;
    try {
      html = co_await s.render(me, request);
    } catch (const std::exception& e) {
      logger("auth")->error("dashboard section {} failed for user {}: {}", s.id, me.id, e.what());
      failed = true;
    }
    out += "<div data-section=\"" + http::html_escape(s.id) + "\">";
    if (failed) out += "<section class=\"card\"><p class=\"muted\">This part of the page is unavailable right now.</p></section>";
    else out += html;
    out += "</div>";
  }
  co_return out;
}

}  // namespace feuille::auth
