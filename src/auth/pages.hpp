#pragma once
// The auth module's HTML: the login page, the dashboard's frame, and its
// error pages (feuilled's common error page style).
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.hpp"
#include "http/types.hpp"

namespace feuille::auth {

struct LoginOptions {
  struct Provider {
    std::string name, title;  // "github", "GitHub"
  };
  std::vector<Provider> providers;
  bool dev_login = false;
  bool signup_closed = false;
  std::string next;  // a checked local path; "" = the default (/dashboard)
};

std::string login_page(const LoginOptions& o);

// The dashboard: who you are, sign out, then the sections' HTML.
std::string dashboard_page(const Identity& me, std::string_view sections_html);

// An error page response (always HTML: these routes are browser navigations).
http::Response page_response(unsigned status, std::string_view title, std::string_view message);

}  // namespace feuille::auth
