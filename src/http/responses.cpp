#include "http/responses.hpp"

#include <nlohmann/json.hpp>

#include "http/page.hpp"

namespace feuille::http {

void add_security_headers(bh::fields& h) {
  h.set("Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'");
  h.set("X-Content-Type-Options", "nosniff");
  h.set("Referrer-Policy", "same-origin");
}

Response text_response(unsigned status, std::string body, std::string_view content_type) {
  Response r{static_cast<bh::status>(status), 11};
  r.set(bh::field::content_type, content_type);
  r.body() = std::move(body);
  return r;
}

Response json_response(unsigned status, const nlohmann::json& body) {
  auto r = text_response(status, body.dump(), "application/json");
  r.set(bh::field::cache_control, "no-store");
  return r;
}

Response json_error(unsigned status, std::string_view message) {
  return json_response(status, nlohmann::json{{"error", message}});
}

Response html_response(unsigned status, std::string body) {
  auto r = text_response(status, std::move(body), "text/html; charset=utf-8");
  r.set(bh::field::cache_control, "no-store");
  return r;
}

Response redirect(unsigned status, std::string_view location) {
  Response r{static_cast<bh::status>(status), 11};
  r.set(bh::field::location, location);
  r.set(bh::field::cache_control, "no-store");
  return r;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string error_page(unsigned status, std::string_view title, std::string_view message, std::string_view home) {
  std::string body = "<main><p class=\"status\">" + std::to_string(status) + "</p><h1>" + html_escape(title) +
                     "</h1><p>" + html_escape(message) + "</p><p><a href=\"" + html_escape(home) +
                     "\">Feuille home</a></p></main>";
  return page(title, body, {"error-page", ""});
}

bool is_browser_page(const bh::request_header<>& h) {
  if (h.method() != bh::verb::get && h.method() != bh::verb::head) return false;
  auto mode = h["Sec-Fetch-Mode"];
  if (mode == "navigate") return true;
  return h[bh::field::accept].find("text/html") != std::string_view::npos;
}

Response error_for(const bh::request_header<>& h, unsigned status, std::string_view message) {
  if (is_browser_page(h)) {
    auto reason = std::string(bh::obsolete_reason(static_cast<bh::status>(status)));
    return html_response(status, error_page(status, reason, message));
  }
  return json_error(status, message);
}

}  // namespace feuille::http
