#pragma once
// The frame of every feuilled page (login, dashboard, errors, "starting your
// workspace"): doctype, viewport, the stylesheet, a title. Callers pass body
// HTML they built with html_escape() around every interpolated value.
#include <string>
#include <string_view>

namespace feuille::http {

struct PageOptions {
  std::string body_class;
  std::string head_extra;  // trusted markup (e.g. a script tag of ours)
};

std::string page(std::string_view title, std::string_view body_html, const PageOptions& options = {});

}  // namespace feuille::http
