#include "publish/page_html.hpp"

#include <algorithm>

#include "http/page.hpp"
#include "http/responses.hpp"
#include "http/static_assets.hpp"
#include "http/url.hpp"

namespace feuille::publish {
namespace {

using http::html_escape;

// Joins `rel` to `dir` ('/'-separated), resolving "." and ".."; nullopt
// when ".." climbs above the root.
std::optional<std::string> join_normalized(std::string_view dir, std::string_view rel) {
  std::vector<std::string_view> parts;
  auto push = [&](std::string_view path) {
    while (!path.empty()) {
      auto slash = path.find('/');
      std::string_view seg = path.substr(0, slash);
      path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
      if (seg.empty() || seg == ".") continue;
      if (seg == "..") {
        if (parts.empty()) return false;
        parts.pop_back();
      } else {
        parts.push_back(seg);
      }
    }
    return true;
  };
  if (!push(dir) || !push(rel)) return std::nullopt;
  std::string out;
  for (auto seg : parts) {
    if (!out.empty()) out.push_back('/');
    out.append(seg);
  }
  return out;
}

std::string_view parent(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

void nav_list(std::string& out, const std::vector<NavItem>& items, const Project& p, std::string_view base,
              int current) {
  out += "<ul>";
  for (const auto& item : items) {
    out += "<li>";
    if (item.page >= 0) {
      out += "<a href=\"" + html_escape(page_url(base, p.pages[item.page])) + "\"";
      if (item.page == current) out += " aria-current=\"page\"";
      out += ">" + html_escape(item.title) + "</a>";
    } else {
      out += "<span class=\"group\">" + html_escape(item.title) + "</span>";
    }
    if (!item.children.empty()) nav_list(out, item.children, p, base, current);
    out += "</li>";
  }
  out += "</ul>";
}

std::string head_extra(std::string_view description, std::string_view canonical) {
  std::string out = "<meta name=\"description\" content=\"" + html_escape(description) + "\">";
  if (!canonical.empty()) out += "<link rel=\"canonical\" href=\"" + html_escape(canonical) + "\">";
  out += "<link rel=\"stylesheet\" href=\"" + http::StaticAssets::instance().url("publish.css") + "\">";
  return out;
}

}  // namespace

std::string project_url(std::string_view handle, std::string_view folder) {
  return "/@" + encode_segment(handle) + "/" + encode_segment(folder);
}

std::string page_url(std::string_view project_url, const Page& page) {
  std::string out(project_url);
  if (!page.url.empty()) out += "/" + encode_path(page.url);
  return out;
}

LinkRewriter link_rewriter(const Project& project, std::string_view project_url, const Page& page) {
  std::string base(project_url);
  std::string file_dir(parent(page.file));
  std::string url_dir = page.index ? page.url : std::string(parent(page.url));
  return [&project, base, file_dir, url_dir](std::string_view url, bool) -> std::string {
    if (url.empty() || url.front() == '/' || url.front() == '#' || url.front() == '?') return std::string(url);
    auto end = url.find_first_of("?#");
    std::string_view path = url.substr(0, end);
    if (path.find(':') != std::string_view::npos) return std::string(url);  // has a scheme (checked before)
    std::string suffix(end == std::string_view::npos ? std::string_view{} : url.substr(end));
    auto decoded = http::percent_decode(path);
    if (!decoded) return std::string(url);
    if (auto target = join_normalized(file_dir, *decoded)) {
      if (auto it = project.by_file.find(*target); it != project.by_file.end())
        return page_url(base, project.pages[it->second]) + suffix;
      if (target->rfind("_assets/", 0) == 0) return base + "/" + encode_path(*target) + suffix;
    }
    auto target = join_normalized(url_dir, *decoded);
    if (!target) return std::string(url);
    return base + (target->empty() ? "" : "/" + encode_path(*target)) + suffix;
  };
}

std::string project_page(std::string_view handle, const Project& p, int current, std::string_view article_html) {
  const std::string base = project_url(handle, p.folder);
  const std::string project_title = p.title();
  const Page* page = current >= 0 ? &p.pages[current] : nullptr;

  std::string body;
  body.reserve(article_html.size() + 4096);
  body += "<header class=\"site-header\"><a class=\"project-title\" href=\"" + html_escape(base) + "\">" +
          html_escape(project_title) + "</a> <span class=\"owner\">by <a href=\"/@" + html_escape(encode_segment(handle)) +
          "\">@" + html_escape(handle) + "</a></span>";
  if (!p.pages.empty()) body += " <a class=\"to-pages\" href=\"#pages\">Pages</a>";
  body += "</header><div class=\"layout\"><main id=\"content\"><article class=\"markdown\">";
  if (page) body.append(article_html);
  else body += "<h1>" + html_escape(project_title) + "</h1><p>This project has no pages yet.</p>";
  body += "</article>";
  if (page && p.pages.size() > 1) {
    body += "<nav class=\"pager\" aria-label=\"Previous and next page\">";
    if (current > 0) {
      const Page& prev = p.pages[current - 1];
      body += "<a class=\"prev\" rel=\"prev\" href=\"" + html_escape(page_url(base, prev)) +
              "\"><span>Previous</span>" + html_escape(prev.title) + "</a>";
    }
    if (static_cast<std::size_t>(current) + 1 < p.pages.size()) {
      const Page& next = p.pages[current + 1];
      body += "<a class=\"next\" rel=\"next\" href=\"" + html_escape(page_url(base, next)) +
              "\"><span>Next</span>" + html_escape(next.title) + "</a>";
    }
    body += "</nav>";
  }
  body += "</main>";
  if (!p.pages.empty()) {
    body += "<nav id=\"pages\" class=\"pages\" aria-label=\"Pages\">";
    nav_list(body, p.nav, p, base, current);
    body += "</nav>";
  }
  body += "</div><footer class=\"site-footer\">Published with <a href=\"/\">Feuille</a></footer>";

  std::string title = !page || page->title == project_title ? project_title : page->title + " · " + project_title;
  std::string description = p.config && !p.config->description.empty() ? p.config->description : title;
  std::string canonical = page ? page_url(base, *page) : base;
  return http::page(title, body, {"publish", head_extra(description, canonical)});
}

std::string listing_page(std::string_view handle, std::string_view name, const std::vector<ProjectSummary>& projects) {
  std::vector<const ProjectSummary*> shown;
  for (const auto& s : projects)
    if (s.config && s.config->visibility == Visibility::public_) shown.push_back(&s);
  auto title_of = [](const ProjectSummary& s) { return s.config->name.empty() ? s.folder : s.config->name; };
  std::sort(shown.begin(), shown.end(), [&](auto* a, auto* b) { return title_of(*a) < title_of(*b); });

  std::string display = name.empty() ? "@" + std::string(handle) : std::string(name);
  std::string body = "<main class=\"listing\"><h1>" + html_escape(display) + "</h1><p class=\"muted\">@" +
                     html_escape(handle) + "</p>";
  if (shown.empty()) {
    body += "<p>No public projects yet.</p>";
  } else {
    body += "<ul class=\"projects\">";
    for (auto* s : shown) {
      body += "<li><a href=\"" + html_escape(project_url(handle, s->folder)) + "\">" + html_escape(title_of(*s)) + "</a>";
      if (!s->config->description.empty()) body += "<p>" + html_escape(s->config->description) + "</p>";
      body += "</li>";
    }
    body += "</ul>";
  }
  body += "</main>";
  return http::page(display, body, {"publish listing", head_extra("Projects published by @" + std::string(handle), "")});
}

}  // namespace feuille::publish
