#include "publish/markdown.hpp"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_set>

namespace feuille::publish {
namespace {

// Not CMARK_OPT_UNSAFE: raw HTML is replaced by a comment and javascript:,
// vbscript:, file: and non-image data: URLs are dropped by cmark itself
// (safe_url() below is the second check).
constexpr int kOptions = CMARK_OPT_VALIDATE_UTF8;
constexpr const char* kExtensions[] = {"table", "strikethrough", "autolink", "tasklist"};

void register_extensions() {
  static std::once_flag once;
  std::call_once(once, [] { cmark_gfm_core_extensions_ensure_registered(); });
}

struct ParserDeleter {
  void operator()(cmark_parser* p) const { cmark_parser_free(p); }
};
struct NodeDeleter {
  void operator()(cmark_node* n) const { cmark_node_free(n); }
};
struct IterDeleter {
  void operator()(cmark_iter* i) const { cmark_iter_free(i); }
};
using ParserPtr = std::unique_ptr<cmark_parser, ParserDeleter>;
using NodePtr = std::unique_ptr<cmark_node, NodeDeleter>;
using IterPtr = std::unique_ptr<cmark_iter, IterDeleter>;

ParserPtr make_parser(bool extensions) {
  register_extensions();
  ParserPtr p(cmark_parser_new(kOptions));
  if (extensions)
    for (const char* name : kExtensions)
      if (cmark_syntax_extension* ext = cmark_find_syntax_extension(name))
        cmark_parser_attach_syntax_extension(p.get(), ext);
  return p;
}

std::string take(char* s) {
  std::string out = s ? s : "";
  std::free(s);
  return out;
}

// Text of a node's inline content (code spans included, raw HTML left out).
std::string plain_text(cmark_node* node) {
  std::string out;
  IterPtr it(cmark_iter_new(node));
  cmark_event_type ev;
  while ((ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE) {
    if (ev != CMARK_EVENT_ENTER) continue;
    cmark_node* n = cmark_iter_get_node(it.get());
    switch (cmark_node_get_type(n)) {
      case CMARK_NODE_TEXT:
      case CMARK_NODE_CODE:
        if (const char* lit = cmark_node_get_literal(n)) out += lit;
        break;
      case CMARK_NODE_SOFTBREAK:
      case CMARK_NODE_LINEBREAK:
        out += ' ';
        break;
      default:
        break;
    }
  }
  return out;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string_view strip_front_matter(std::string_view md) {
  auto first_line_end = md.find('\n');
  if (first_line_end == std::string_view::npos) return md;
  std::string_view first = md.substr(0, first_line_end);
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  if (first != "---") return md;
  std::size_t pos = first_line_end + 1;
  while (pos < md.size() && pos < 64 * 1024) {
    auto nl = md.find('\n', pos);
    std::string_view line = md.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line == "---" || line == "...") return nl == std::string_view::npos ? std::string_view{} : md.substr(nl + 1);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return md;  // no closing line: not front matter
}

bool safe_url(std::string_view url, bool image) {
  // Browsers ignore tabs and newlines anywhere in a URL and blanks/control
  // characters around it: "java\tscript:" is javascript:.
  std::string s;
  s.reserve(url.size());
  for (char c : url)
    if (c != '\t' && c != '\n' && c != '\r') s.push_back(c);
  std::size_t start = 0;
  while (start < s.size() && static_cast<unsigned char>(s[start]) <= 0x20) ++start;
  std::string_view v = std::string_view(s).substr(start);
  auto end = v.find_first_of(":/?#");
  if (end == std::string_view::npos || v[end] != ':' || end == 0) return true;  // relative
  std::string scheme;
  for (char c : v.substr(0, end)) {
    char l = lower(c);
    bool ok = (l >= 'a' && l <= 'z') || (scheme.size() > 0 && ((l >= '0' && l <= '9') || l == '+' || l == '-' || l == '.'));
    if (!ok) return true;  // not a scheme: a relative path with a colon
    scheme.push_back(l);
  }
  if (scheme == "http" || scheme == "https" || scheme == "mailto") return true;
  if (image && scheme == "data") {
    std::string rest;
    for (char c : v.substr(end + 1, 12)) rest.push_back(lower(c));
    for (const char* type : {"image/png", "image/gif", "image/jpeg", "image/webp"})
      if (rest.rfind(type, 0) == 0) return true;
  }
  return false;
}

std::string slugify(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-') out.push_back(c);
    else if (c >= 'A' && c <= 'Z') out.push_back(lower(c));
    else if (c == ' ' || c == '\t') out.push_back('-');
  }
  return out.empty() ? "section" : out;
}

std::string heading_text(std::string_view inline_markdown) {
  std::string line = "# ";
  for (char c : inline_markdown) line.push_back(c == '\n' || c == '\r' ? ' ' : c);
  ParserPtr p = make_parser(false);
  cmark_parser_feed(p.get(), line.data(), line.size());
  NodePtr doc(cmark_parser_finish(p.get()));
  std::string text = plain_text(doc.get());
  auto b = text.find_first_not_of(" \t");
  auto e = text.find_last_not_of(" \t");
  return b == std::string::npos ? "" : text.substr(b, e - b + 1);
}

std::string render_markdown(std::string_view markdown, const LinkRewriter& rewrite) {
  markdown = strip_front_matter(markdown);
  ParserPtr p = make_parser(true);
  cmark_parser_feed(p.get(), markdown.data(), markdown.size());
  NodePtr doc(cmark_parser_finish(p.get()));
  cmark_llist* extensions = cmark_parser_get_syntax_extensions(p.get());

  std::vector<cmark_node*> headings;
  {
    IterPtr it(cmark_iter_new(doc.get()));
    cmark_event_type ev;
    while ((ev = cmark_iter_next(it.get())) != CMARK_EVENT_DONE) {
      if (ev != CMARK_EVENT_ENTER) continue;
      cmark_node* n = cmark_iter_get_node(it.get());
      auto type = cmark_node_get_type(n);
      if (type == CMARK_NODE_HEADING) {
        headings.push_back(n);
      } else if (type == CMARK_NODE_LINK || type == CMARK_NODE_IMAGE) {
        const char* url = cmark_node_get_url(n);
        std::string_view u = url ? url : "";
        bool image = type == CMARK_NODE_IMAGE;
        if (!safe_url(u, image)) cmark_node_set_url(n, "");
        else if (rewrite && !u.empty()) cmark_node_set_url(n, rewrite(u, image).c_str());
      }
    }
  }

  // Each heading becomes its own HTML with an id and a self link, written as
  // a custom block (slugs hold no character that needs escaping).
  std::unordered_set<std::string> used{"content", "pages", "top"};  // ids of the page frame
  for (cmark_node* h : headings) {
    std::string base = slugify(plain_text(h));
    std::string slug = base;
    for (int n = 1; used.count(slug); ++n) slug = base + "-" + std::to_string(n);
    used.insert(slug);
    std::string html = take(cmark_render_html(h, kOptions, extensions));
    std::string level = std::to_string(cmark_node_get_heading_level(h));
    std::string open = "<h" + level + ">", close = "</h" + level + ">";
    auto close_at = html.rfind(close);
    if (html.rfind(open, 0) != 0 || close_at == std::string::npos) continue;  // unexpected shape: leave it
    std::string out = "<h" + level + " id=\"" + slug + "\">";
    out.append(html, open.size(), close_at - open.size());
    out += "<a class=\"anchor\" href=\"#" + slug + "\" aria-hidden=\"true\" tabindex=\"-1\">#</a>";
    out += close;
    cmark_node* block = cmark_node_new(CMARK_NODE_CUSTOM_BLOCK);
    cmark_node_set_on_enter(block, out.c_str());
    cmark_node_set_on_exit(block, "");
    if (cmark_node_replace(h, block)) cmark_node_free(h);
    else cmark_node_free(block);
  }
  return take(cmark_render_html(doc.get(), kOptions, extensions));
}

}  // namespace feuille::publish
