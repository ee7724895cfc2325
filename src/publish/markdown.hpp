#pragma once
// Markdown to HTML with cmark-gfm, for published pages: CommonMark + GitHub
// tables, task lists, strikethrough and autolinks. Raw HTML is never passed
// through (cmark's safe mode leaves a comment in its place); link and image
// URLs with a scheme other than http, https, mailto (and data:image/... for
// images) are emptied; headings get an id and a self link; fenced code is a
// plain <pre><code class="language-x"> (no buttons). Thread-safe.
//
// Every render is bounded (a 20 KB table can ask cmark-gfm for a gigabyte):
// all of cmark's memory for one render comes from a budget that counts the
// bytes alive at once and checks the time at its allocations; past either,
// or past the output limit, the render is abandoned (everything it allocated
// freed) and RenderTooCostly is thrown.
#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace feuille::publish {

// Called for each link (image = false) or image URL that passed safe_url();
// returns the URL to write (e.g. a relative page link made absolute).
using LinkRewriter = std::function<std::string(std::string_view url, bool image)>;

struct RenderLimits {
  std::size_t memory_bytes = 128ULL * 1024 * 1024;  // parser, tree and output alive at once
  std::size_t output_bytes = 16ULL * 1024 * 1024;   // and at most output_ratio x the input
  std::size_t output_ratio = 64;                    // (never less than kMinOutputBytes)
  std::chrono::milliseconds time{2000};
  static constexpr std::size_t kMinOutputBytes = 64 * 1024;
};

struct RenderTooCostly : std::runtime_error {
  enum class Limit { memory, time, output };
  RenderTooCostly(Limit limit, const std::string& what) : std::runtime_error(what), limit(limit) {}
  Limit limit;
};

// The article HTML of a markdown text (front matter left out). Throws
// RenderTooCostly past a limit.
std::string render_markdown(std::string_view markdown, const LinkRewriter& rewrite = {},
                            const RenderLimits& limits = {});

// The plain text of one line of inline markdown ("Using `pandas` *fast*" ->
// "Using pandas fast").
std::string heading_text(std::string_view inline_markdown);

// True when a URL may be written into a published page (see above).
bool safe_url(std::string_view url, bool image);

// A heading's id: lower-case letters, digits, '-', '_' and non-ASCII text;
// blanks become '-', other punctuation is dropped ("" -> "section").
std::string slugify(std::string_view text);

// The text after a leading YAML front matter block ("---" ... "---"), if any.
std::string_view strip_front_matter(std::string_view markdown);

}  // namespace feuille::publish
