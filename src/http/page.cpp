#include "http/page.hpp"

#include "http/responses.hpp"
#include "http/static_assets.hpp"

namespace feuille::http {

std::string page(std::string_view title, std::string_view body_html, const PageOptions& o) {
  std::string out;
  out.reserve(body_html.size() + 600);
  out += "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>";
  out += html_escape(title);
  out += " · Feuille</title><link rel=\"stylesheet\" href=\"";
  out += StaticAssets::instance().url("feuille.css");
  out += "\">";
  out += o.head_extra;
  out += "</head><body";
  if (!o.body_class.empty()) out += " class=\"" + html_escape(o.body_class) + "\"";
  out += ">";
  out += body_html;
  out += "</body></html>\n";
  return out;
}

}  // namespace feuille::http
