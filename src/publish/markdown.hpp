#pragma once
// Markdown to HTML with cmark-gfm, for published pages: CommonMark + GitHub
// tables, task lists, strikethrough and autolinks. Raw HTML is never passed
// through (cmark's safe mode leaves a comment in its place); link and image
// URLs with a scheme other than http, https, mailto (and data:image/... for
// images) are emptied; headings get an id and a self link; fenced code is a
// plain <pre><code class="language-x"> (no buttons). Thread-safe.
#include <functional>
#include <string>
#include <string_view>

namespace feuille::publish {

// Called for each link (image = false) or image URL that passed safe_url();
// returns the URL to write (e.g. a relative page link made absolute).
using LinkRewriter = std::function<std::string(std::string_view url, bool image)>;

// The article HTML of a markdown text (front matter left out).
std::string render_markdown(std::string_view markdown, const LinkRewriter& rewrite = {});

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
