#pragma once
// Building feuilled's own responses: JSON, text, HTML pages, redirects, and
// the security headers every one of them carries.
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "http/types.hpp"

namespace feuille::http {

// Content-Security-Policy and friends (SPEC.md section 2). The server adds
// them to every buffered response; streaming handlers call it for their own
// pages (never for proxied responses).
void add_security_headers(bh::fields& h);

Response json_response(unsigned status, const nlohmann::json& body);
Response json_error(unsigned status, std::string_view message);
Response text_response(unsigned status, std::string body, std::string_view content_type = "text/plain; charset=utf-8");
Response html_response(unsigned status, std::string body);
Response redirect(unsigned status, std::string_view location);

// HTML escaping for every interpolated value.
std::string html_escape(std::string_view s);

// A plain error page in feuilled's style (no paths, no details).
std::string error_page(unsigned status, std::string_view title, std::string_view message,
                       std::string_view home = "/");  // home: where "Feuille home" goes

// True when the request is a browser page load: GET/HEAD with Accept:
// text/html or Sec-Fetch-Mode: navigate.
bool is_browser_page(const bh::request_header<>& h);

// An error answered as a page for browsers, as JSON otherwise.
Response error_for(const bh::request_header<>& h, unsigned status, std::string_view message);

}  // namespace feuille::http
