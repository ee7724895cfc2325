#include "auth/pages.hpp"

#include "http/page.hpp"
#include "http/responses.hpp"
#include "http/url.hpp"

namespace feuille::auth {

using http::html_escape;

std::string login_page(const LoginOptions& o) {
  std::string query = o.next.empty() ? "" : "?next=" + http::url_encode(o.next);
  std::string body = "<main class=\"login\"><h1>Sign in to Feuille</h1>"
                     "<p class=\"muted\">Markdown notebooks you can run, share and publish.</p><div class=\"card\">";
  for (const auto& p : o.providers)
    body += "<p><a class=\"button provider\" href=\"/auth/" + html_escape(p.name) + html_escape(query) +
            "\">Sign in with " + html_escape(p.title) + "</a></p>";
  if (o.dev_login) {
    body += "<form method=\"post\" action=\"/auth/dev\" class=\"dev-login\"><p><label>Dev login: handle "
            "<input type=\"text\" name=\"handle\" required maxlength=\"39\" pattern=\"[A-Za-z0-9\\-]{1,39}\" "
            "autocomplete=\"username\"></label>";
    if (!o.next.empty()) body += "<input type=\"hidden\" name=\"next\" value=\"" + html_escape(o.next) + "\">";
    body += " <button type=\"submit\">Sign in</button></p><p class=\"muted\">Development only: anyone reaching this "
            "address can sign in as anyone.</p></form>";
  }
  if (o.providers.empty() && !o.dev_login)
    body += "<p>No sign-in method is configured on this server. The operator needs to set up GitHub or Google "
            "sign-in (see docs/auth.md).</p>";
  body += "</div>";
  if (o.signup_closed)
    body += "<p class=\"muted\">New accounts are by invitation only: open the invite link you were sent.</p>";
  body += "</main>";
  return http::page("Sign in", body, {"login-page", ""});
}

std::string dashboard_page(const Identity& me, std::string_view sections_html) {
  std::string shown = me.name.empty() ? me.handle : me.name;
  std::string body = "<main class=\"dashboard\"><header class=\"who\">";
  if (!me.avatar_url.empty())
    body += "<img class=\"avatar\" src=\"" + html_escape(me.avatar_url) + "\" alt=\"\" width=\"56\" height=\"56\">";
  body += "<div class=\"grow\"><h1>" + html_escape(shown) + "</h1><p class=\"muted\">@" + html_escape(me.handle);
  if (!me.email.empty()) body += " · " + html_escape(me.email);
  body += " · " + html_escape(me.plan) + " plan</p></div>";
  body += "<form method=\"post\" action=\"/auth/logout\"><button class=\"secondary\" type=\"submit\">Sign out</button>"
          "</form></header>";
  body += sections_html;
  body += "</main>";
  return http::page("Dashboard", body, {"dashboard-page", ""});
}

http::Response page_response(unsigned status, std::string_view title, std::string_view message) {
  return http::html_response(status, http::error_page(status, title, message));
}

}  // namespace feuille::auth
