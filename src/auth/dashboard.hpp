#pragma once
// Sections of /dashboard contributed by modules.
//
// The auth module serves /dashboard: the signed-in user's header (who you
// are, sign out) followed by every registered section in `order`. A module
// adds its section once, in its constructor:
//
//   ctx.dashboard->add("workspace", 100,
//       [this](const auth::Identity& me, const http::Request& req) -> asio::awaitable<std::string> {
//         co_return "<section class=\"card\"><h2>Workspace</h2>...</section>";
//       });
//
// A renderer returns trusted HTML built with http::html_escape() around every
// interpolated value, usable without JavaScript (forms that POST to routes
// of its module, which check Authenticator::allows_state_change). It runs on
// the loop for every dashboard view: blocking work goes through db.run() or
// offload(). If it throws, the dashboard still renders, with a short notice in
// that section's place (the error is logged).
//
// Orders in use: 100 workspace (compute), 200 snapshots (compute), 300
// published projects (publish), 400 invites and members (auth).
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "auth/authenticator.hpp"
#include "http/types.hpp"

namespace feuille::auth {

using SectionRenderer =
    std::function<boost::asio::awaitable<std::string>(const Identity& me, const http::Request& request)>;

class DashboardSections {
 public:
  // `id` names the section in logs and in its wrapper's data-section attribute.
  void add(std::string id, int order, SectionRenderer render);

  // Every section's HTML, in order.
  boost::asio::awaitable<std::string> render(const Identity& me, const http::Request& request) const;

 private:
  struct Section {
    std::string id;
    int order;
    SectionRenderer render;
  };
  std::vector<Section> sections_;
};

}  // namespace feuille::auth
