#include "publish/markdown.hpp"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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

void attach_extensions(cmark_parser* p) {
  for (const char* name : kExtensions)
    if (cmark_syntax_extension* ext = cmark_find_syntax_extension(name)) cmark_parser_attach_syntax_extension(p, ext);
}

ParserPtr make_parser(bool extensions) {
  register_extensions();
  ParserPtr p(cmark_parser_new(kOptions));
  if (extensions) attach_extensions(p.get());
  return p;
}

// The memory of one render. cmark's allocator hooks take no context, so the
// budget in force is the calling thread's `current`. Each block carries a
// header linking it into the budget's list: the budget frees whatever is
// left at its end, so a render abandoned half way (an exception thrown from
// the allocator, unwinding through cmark's C frames, which have unwind
// tables and hold nothing to clean up) leaks nothing and cmark's own free
// functions are never called on a half-built tree.
class RenderBudget {
 public:
  explicit RenderBudget(const RenderLimits& limits)
      : cap_(limits.memory_bytes), deadline_(std::chrono::steady_clock::now() + limits.time), outer_(current) {
    current = this;
  }
  ~RenderBudget() {
    current = outer_;
    while (head_) {
      Block* b = head_;
      head_ = b->next;
      std::free(b);
    }
  }
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  static cmark_mem* mem() {
    static cmark_mem m{&RenderBudget::calloc_hook, &RenderBudget::realloc_hook, &RenderBudget::free_hook};
    return &m;
  }
  std::size_t peak() const { return peak_; }

 private:
  struct Block {
    Block* prev;
    Block* next;
    std::size_t size;  // what the caller asked for
    std::size_t pad;   // keeps the payload 16-byte aligned
  };
  static_assert(sizeof(Block) % alignof(std::max_align_t) == 0);
  static constexpr std::size_t kOverhead = sizeof(Block) + 16;  // and malloc's own

  static void* payload(Block* b) { return b + 1; }
  static Block* block_of(void* p) { return static_cast<Block*>(p) - 1; }

  void charge(std::size_t more) {
    if (more > cap_ || used_ > cap_ - more)
      throw RenderTooCostly(RenderTooCostly::Limit::memory, "the page needs more memory to render than allowed");
    used_ += more;
    if (used_ > peak_) peak_ = used_;
    // The clock is read every 64 allocations (cheap; cmark allocates as
    // it goes, so a render that runs long keeps coming back here).
    if ((++allocations_ & 63) == 0 && std::chrono::steady_clock::now() > deadline_)
      throw RenderTooCostly(RenderTooCostly::Limit::time, "the page takes too long to render");
  }
  void link(Block* b) {
    b->prev = nullptr;
    b->next = head_;
    if (head_) head_->prev = b;
    head_ = b;
  }
  void unlink(Block* b) {
    if (b->prev) b->prev->next = b->next;
    else head_ = b->next;
    if (b->next) b->next->prev = b->prev;
  }

  static void* calloc_hook(std::size_t n, std::size_t size) {
    if (size != 0 && n > SIZE_MAX / size - kOverhead) throw std::bad_alloc();
    const std::size_t bytes = n * size;
    current->charge(bytes + kOverhead);
    auto* b = static_cast<Block*>(std::calloc(1, sizeof(Block) + bytes));
    if (!b) throw std::bad_alloc();
    b->size = bytes;
    current->link(b);
    return payload(b);
  }
  static void* realloc_hook(void* p, std::size_t size) {
    if (!p) return calloc_hook(1, size);
    if (size > SIZE_MAX - kOverhead) throw std::bad_alloc();
    RenderBudget& self = *current;
    Block* b = block_of(p);
    const std::size_t old = b->size;
    if (size > old) self.charge(size - old);
    self.unlink(b);
    auto* moved = static_cast<Block*>(std::realloc(b, sizeof(Block) + size));
    if (!moved) {
      self.link(b);
      throw std::bad_alloc();
    }
    moved->size = size;
    self.link(moved);
    if (size < old) self.used_ -= old - size;
    return payload(moved);
  }
  static void free_hook(void* p) {
    if (!p) return;
    RenderBudget& self = *current;
    Block* b = block_of(p);
    self.unlink(b);
    self.used_ -= b->size + kOverhead;
    std::free(b);
  }

  static thread_local RenderBudget* current;

  const std::size_t cap_;
  const std::chrono::steady_clock::time_point deadline_;
  RenderBudget* const outer_;
  Block* head_ = nullptr;
  std::size_t used_ = 0;
  std::size_t peak_ = 0;
  std::uint64_t allocations_ = 0;
};

thread_local RenderBudget* RenderBudget::current = nullptr;

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

std::string render_markdown(std::string_view markdown, const LinkRewriter& rewrite, const RenderLimits& limits) {
  markdown = strip_front_matter(markdown);
  register_extensions();
  const std::size_t output_limit = std::min(
      limits.output_bytes, std::max(RenderLimits::kMinOutputBytes, markdown.size() * limits.output_ratio));
  // Everything cmark allocates below comes from the budget and is freed by
  // it: no cmark_*_free here (see RenderBudget).
  RenderBudget budget(limits);
  cmark_mem* mem = RenderBudget::mem();
  cmark_parser* p = cmark_parser_new_with_mem(kOptions, mem);
  attach_extensions(p);
  cmark_parser_feed(p, markdown.data(), markdown.size());
  cmark_node* doc = cmark_parser_finish(p);
  cmark_llist* extensions = cmark_parser_get_syntax_extensions(p);

  std::vector<cmark_node*> headings;
  cmark_iter* it = cmark_iter_new(doc);
  for (cmark_event_type ev; (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE;) {
    if (ev != CMARK_EVENT_ENTER) continue;
    cmark_node* n = cmark_iter_get_node(it);
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

  // Each heading becomes its own HTML with an id and a self link, written as
  // a custom block (slugs hold no character that needs escaping).
  std::unordered_set<std::string> used{"content", "pages", "top"};  // ids of the page frame
  std::unordered_map<std::string, int> last_suffix;  // so that n headings "Intro" cost O(n), not O(n^2)
  for (cmark_node* h : headings) {
    std::string base = slugify(plain_text(h));
    std::string slug = base;
    if (used.count(slug)) {
      int& n = last_suffix[base];
      do slug = base + "-" + std::to_string(++n);
      while (used.count(slug));
    }
    used.insert(slug);
    std::string html = cmark_render_html_with_mem(h, kOptions, extensions, mem);
    std::string level = std::to_string(cmark_node_get_heading_level(h));
    std::string open = "<h" + level + ">", close = "</h" + level + ">";
    auto close_at = html.rfind(close);
    if (html.rfind(open, 0) != 0 || close_at == std::string::npos) continue;  // unexpected shape: leave it
    std::string out = "<h" + level + " id=\"" + slug + "\">";
    out.append(html, open.size(), close_at - open.size());
    out += "<a class=\"anchor\" href=\"#" + slug + "\" aria-hidden=\"true\" tabindex=\"-1\">#</a>";
    out += close;
    cmark_node* block = cmark_node_new_with_mem(CMARK_NODE_CUSTOM_BLOCK, mem);
    cmark_node_set_on_enter(block, out.c_str());
    cmark_node_set_on_exit(block, "");
    cmark_node_replace(h, block);
  }
  const char* html = cmark_render_html_with_mem(doc, kOptions, extensions, mem);
  std::string_view out = html ? html : "";
  if (out.size() > output_limit)
    throw RenderTooCostly(RenderTooCostly::Limit::output, "the page renders to more HTML than allowed");
  return std::string(out);
}

}  // namespace feuille::publish
