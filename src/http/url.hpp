#pragma once
// Percent-encoding for URLs, query strings and form bodies
// (application/x-www-form-urlencoded).
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace feuille::http {

// Decodes %XX escapes (and '+' as a space when `plus_as_space`). nullopt on a
// malformed escape. A decoded NUL is refused too: no caller wants one.
std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space = false);

// Encodes everything but unreserved characters (A-Z a-z 0-9 - . _ ~); for
// query values and form fields.
std::string url_encode(std::string_view s);

// name=value pairs of a query string or form body, decoded ('+' = space).
// Malformed pairs are skipped.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view s);

// The first value of `name` in a query string or form body (decoded), or nullopt.
std::optional<std::string> form_value(std::string_view s, std::string_view name);

}  // namespace feuille::http
