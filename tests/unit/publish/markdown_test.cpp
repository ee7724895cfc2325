// Rendering: GFM, no raw HTML, no dangerous links, plain code blocks,
// heading anchors, the page document and its links.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <regex>

#include "publish/markdown.hpp"
#include "publish/page_html.hpp"

using namespace feuille::publish;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

TEST(PublishMarkdown, RendersGithubFlavour) {
  auto html = render_markdown(
      "| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~gone~~ and https://example.org/x\n");
  EXPECT_THAT(html, HasSubstr("<table>"));
  EXPECT_THAT(html, HasSubstr("<td>1</td>"));
  EXPECT_THAT(html, HasSubstr("<input type=\"checkbox\" checked=\"\" disabled=\"\" />"));
  EXPECT_THAT(html, HasSubstr("<del>gone</del>"));
  EXPECT_THAT(html, HasSubstr("<a href=\"https://example.org/x\">https://example.org/x</a>"));
}

TEST(PublishMarkdown, RawHtmlIsNeverPassedThrough) {
  auto html = render_markdown(
      "<script>alert(1)</script>\n\nText <img src=x onerror=alert(1)> and <b>bold</b>.\n\n"
      "<div onclick=\"x()\">\nblock\n</div>\n\n<iframe src=\"https://evil\"></iframe>\n");
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, Not(HasSubstr("<div")));
  EXPECT_THAT(html, Not(HasSubstr("<iframe")));
  EXPECT_THAT(html, Not(HasSubstr("onerror")));
  EXPECT_THAT(html, HasSubstr("raw HTML omitted"));
}

TEST(PublishMarkdown, TextIsEscaped) {
  auto html = render_markdown("5 < 6 & \"quotes\" 'x' `<code>`\n");
  EXPECT_THAT(html, HasSubstr("5 &lt; 6 &amp; &quot;quotes&quot;"));
  EXPECT_THAT(html, HasSubstr("<code>&lt;code&gt;</code>"));
}

TEST(PublishMarkdown, DangerousLinksAreEmptied) {
  const char* links[] = {
      "[a](javascript:alert(1))",      "[a](JavaScript:alert(1))",  "[a](<java\tscript:alert(1)>)",
      "[a](&#106;avascript:alert(1))", "[a](vbscript:msgbox(1))",   "[a](data:text/html;base64,PHNjcmlwdD4=)",
      "[a](file:///etc/passwd)",       "<javascript:alert(1)>",     "[a]( javascript:alert(1))",
      "![i](javascript:alert(1))",     "![i](data:image/svg+xml;base64,PHN2Zz4=)",
  };
  std::regex attr(R"re((href|src)="([^"]*)")re");
  for (const char* md : links) {
    auto html = render_markdown(md);
    int seen = 0;
    for (std::sregex_iterator it(html.begin(), html.end(), attr), end; it != end; ++it, ++seen)
      EXPECT_EQ((*it)[2].str(), "") << md << " -> " << html;
    EXPECT_EQ(seen, 1) << md << " -> " << html;
  }
  EXPECT_TRUE(safe_url("https://x.org", false));
  EXPECT_TRUE(safe_url("mailto:a@b.c", false));
  EXPECT_TRUE(safe_url("notes/a:b.md", false));
  EXPECT_TRUE(safe_url("data:image/png;base64,AAAA", true));
  EXPECT_FALSE(safe_url("data:image/png;base64,AAAA", false));
  EXPECT_FALSE(safe_url("\x01javascript:x", false));
  EXPECT_FALSE(safe_url("jav\nascript:x", false));
  EXPECT_FALSE(safe_url("ftp://x", false));
  EXPECT_THAT(render_markdown("![p](data:image/png;base64,iVBORw0KGgo=)"), HasSubstr("src=\"data:image/png;base64,"));
}

TEST(PublishMarkdown, CodeBlocksArePlainWithALanguageClass) {
  auto html = render_markdown("```python\nprint('<hi>')\n```\n\n```\nplain\n```\n\n```js {cmd=true}\nx\n```\n");
  EXPECT_THAT(html, HasSubstr("<pre><code class=\"language-python\">print('&lt;hi&gt;')\n</code></pre>"));
  EXPECT_THAT(html, HasSubstr("<pre><code>plain\n</code></pre>"));
  EXPECT_THAT(html, HasSubstr("<pre><code class=\"language-js\">x\n</code></pre>"));
  EXPECT_THAT(html, Not(HasSubstr("<button")));
}

TEST(PublishMarkdown, HeadingsGetUniqueAnchors) {
  auto html = render_markdown("# Hello, World!\n\n## Hello, World!\n\n### `code` & *em*\n\n## Content\n\n## été 2024\n");
  EXPECT_THAT(html, HasSubstr("<h1 id=\"hello-world\">Hello, World!<a class=\"anchor\" href=\"#hello-world\""));
  EXPECT_THAT(html, HasSubstr("<h2 id=\"hello-world-1\">"));
  EXPECT_THAT(html, HasSubstr("<h3 id=\"code--em\"><code>code</code> &amp; <em>em</em>"));
  EXPECT_THAT(html, HasSubstr("<h2 id=\"content-1\">")) << "ids of the page frame are not reused";
  EXPECT_THAT(html, HasSubstr("<h2 id=\"été-2024\">"));
  EXPECT_EQ(slugify("!!!"), "section");
}

TEST(PublishMarkdown, FrontMatterIsLeftOut) {
  auto html = render_markdown("---\ntitle: x\n---\n# Body\n");
  EXPECT_THAT(html, Not(HasSubstr("title: x")));
  EXPECT_THAT(html, HasSubstr("Body"));
  EXPECT_EQ(strip_front_matter("---\nnot closed\n"), "---\nnot closed\n");
}

namespace {

Project sample_project() {
  Project p;
  p.folder = "my project";
  ProjectConfig c;
  c.name = "Data <Notes>";
  c.description = "About \"data\"";
  c.visibility = Visibility::public_;
  p.config = c;
  p.pages = {Page{"", "index.md", "Home", "Home", true},
             Page{"setup", "01-setup.md", "Set up & go", "Set up & go", false},
             Page{"analysis", "02-analysis/index.md", "Analysis", "Analysis", true},
             Page{"analysis/model", "02-analysis/01-model.md", "Model", "Model", false}};
  for (std::size_t i = 0; i < p.pages.size(); ++i) {
    p.by_url[p.pages[i].url] = i;
    p.by_file[p.pages[i].file] = i;
  }
  p.by_file["02-analysis"] = 2;
  p.nav = {NavItem{"Home", 0, {}}, NavItem{"Set up & go", 1, {}},
           NavItem{"Analysis", 2, {NavItem{"Model", 3, {}}}}};
  return p;
}

}  // namespace

TEST(PublishPage, MarksTheCurrentPageAndLinksPrevNext) {
  auto p = sample_project();
  auto html = project_page("alice", p, 1, "<p>body</p>");
  EXPECT_THAT(html, HasSubstr("<title>Set up &amp; go · Data &lt;Notes&gt; · Feuille</title>"));
  EXPECT_THAT(html, HasSubstr("<meta name=\"description\" content=\"About &quot;data&quot;\">"));
  EXPECT_THAT(html, HasSubstr("<a href=\"/@alice/my%20project/setup\" aria-current=\"page\">Set up &amp; go</a>"));
  EXPECT_EQ(html.find("aria-current"), html.rfind("aria-current")) << "exactly one current page";
  EXPECT_THAT(html, HasSubstr("rel=\"prev\" href=\"/@alice/my%20project\""));
  EXPECT_THAT(html, HasSubstr("rel=\"next\" href=\"/@alice/my%20project/analysis\""));
  EXPECT_THAT(html, HasSubstr("<a class=\"project-title\" href=\"/@alice/my%20project\">Data &lt;Notes&gt;</a>"));
  EXPECT_THAT(html, HasSubstr("publish."));  // its stylesheet

  auto first = project_page("alice", p, 0, "");
  EXPECT_THAT(first, Not(HasSubstr("rel=\"prev\"")));
  auto last = project_page("alice", p, 3, "");
  EXPECT_THAT(last, Not(HasSubstr("rel=\"next\"")));
  Project none;
  none.folder = "x";
  none.config = p.config;
  auto empty = project_page("alice", none, -1, "");
  EXPECT_THAT(empty, HasSubstr("no pages yet"));
}

TEST(PublishPage, RelativeLinksBecomeProjectUrls) {
  auto p = sample_project();
  auto in_folder = link_rewriter(p, "/@alice/my%20project", p.pages[3]);  // 02-analysis/01-model.md
  EXPECT_EQ(in_folder("../01-setup.md", false), "/@alice/my%20project/setup");
  EXPECT_EQ(in_folder("../01-setup.md#step-2", false), "/@alice/my%20project/setup#step-2");
  EXPECT_EQ(in_folder("index.md", false), "/@alice/my%20project/analysis");
  EXPECT_EQ(in_folder("../02-analysis/", false), "/@alice/my%20project/analysis");
  EXPECT_EQ(in_folder("../_assets/fig%201.png", true), "/@alice/my%20project/_assets/fig%201.png");
  EXPECT_EQ(in_folder("other", false), "/@alice/my%20project/analysis/other");
  EXPECT_EQ(in_folder("../../../etc", false), "../../../etc");
  auto home = link_rewriter(p, "/@alice/my%20project", p.pages[0]);
  EXPECT_EQ(home("_assets/a.png", true), "/@alice/my%20project/_assets/a.png");
  EXPECT_EQ(home("setup", false), "/@alice/my%20project/setup");
  EXPECT_EQ(home("#top", false), "#top");
  EXPECT_EQ(home("/elsewhere", false), "/elsewhere");
  auto html = render_markdown("[s](01-setup.md) ![f](_assets/f.png)", home);
  EXPECT_THAT(html, HasSubstr("href=\"/@alice/my%20project/setup\""));
  EXPECT_THAT(html, HasSubstr("src=\"/@alice/my%20project/_assets/f.png\""));
}

TEST(PublishPage, ListingShowsPublicProjectsOnly) {
  ProjectConfig pub;
  pub.visibility = Visibility::public_;
  pub.name = "Public <one>";
  pub.description = "Desc & more";
  ProjectConfig unlisted;
  unlisted.visibility = Visibility::unlisted;
  std::vector<ProjectSummary> list{{"pub", pub, ""}, {"hidden", unlisted, ""}, {"broken", std::nullopt, "bad"}};
  auto html = listing_page("alice", "Alice A.", list);
  EXPECT_THAT(html, HasSubstr("<a href=\"/@alice/pub\">Public &lt;one&gt;</a>"));
  EXPECT_THAT(html, HasSubstr("Desc &amp; more"));
  EXPECT_THAT(html, Not(HasSubstr("hidden")));
  EXPECT_THAT(html, Not(HasSubstr("broken")));
  EXPECT_THAT(listing_page("bob", "", {}), HasSubstr("No public projects yet"));
}

namespace {

// A GFM table whose header has `columns` cells, then `rows` one-cell rows:
// cmark-gfm pads every row to the header's width (20 KB of input asked for
// about 1 GB and wrote 40 MB of HTML before renders were bounded).
std::string table_bomb(int columns, int rows) {
  std::string md = "|";
  for (int i = 0; i < columns; ++i) md += "a|";
  md += "\n|";
  for (int i = 0; i < columns; ++i) md += "-|";
  md += "\n";
  for (int i = 0; i < rows; ++i) md += "x\n";
  return md;
}

template <class F>
std::chrono::milliseconds timed(F f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace

TEST(PublishMarkdownLimits, TheTableBombStopsAtTheMemoryLimit) {
  RenderLimits limits;
  limits.memory_bytes = 32 << 20;
  std::optional<RenderTooCostly::Limit> stopped;
  auto took = timed([&] {
    try {
      render_markdown(table_bomb(1000, 4000), {}, limits);
    } catch (const RenderTooCostly& e) {
      stopped = e.limit;
    }
  });
  ASSERT_TRUE(stopped);
  EXPECT_EQ(*stopped, RenderTooCostly::Limit::memory);
  EXPECT_LT(took, 2s);
  // The same table, small enough, renders (every row padded to the header).
  auto html = render_markdown(table_bomb(10, 5), {}, limits);
  EXPECT_THAT(html, HasSubstr("<td>x</td>\n<td></td>"));
}

TEST(PublishMarkdownLimits, QuadraticInputsStopAtTheTimeBudget) {
  // 480 KB of "![[]()" took cmark-gfm 0.29.0.gfm.6 22.6 s.
  std::string brackets;
  while (brackets.size() < 480'000) brackets += "![[]()";
  RenderLimits limits;
  limits.time = 300ms;
  std::optional<RenderTooCostly::Limit> stopped;
  auto took = timed([&] {
    try {
      render_markdown(brackets, {}, limits);
    } catch (const RenderTooCostly& e) {
      stopped = e.limit;
    }
  });
  ASSERT_TRUE(stopped);
  EXPECT_EQ(*stopped, RenderTooCostly::Limit::time);
  EXPECT_LT(took, 1500ms);
}

TEST(PublishMarkdownLimits, OutputIsCappedByRatioAndSize) {
  // 100 KB of empty headings: each "#\n" becomes about 90 bytes of HTML.
  std::string headings;
  for (int i = 0; i < 50'000; ++i) headings += "#\n";
  RenderLimits ratio;
  ratio.output_ratio = 16;
  EXPECT_THROW(render_markdown(headings, {}, ratio), RenderTooCostly);
  RenderLimits size;
  size.output_bytes = 1 << 20;
  try {
    render_markdown(headings, {}, size);
    ADD_FAILURE() << "no limit";
  } catch (const RenderTooCostly& e) {
    EXPECT_EQ(e.limit, RenderTooCostly::Limit::output);
  }
  EXPECT_GT(render_markdown(headings).size(), 4u << 20);  // within the defaults
}

TEST(PublishMarkdownLimits, ManyHeadingsOfOneNameRenderInLinearTime) {
  // Their ids were found by trying "-1", "-2"... from 1 each time: O(n^2).
  std::string md;
  for (int i = 0; i < 20'000; ++i) md += "## Notes\n\ntext\n\n";
  std::string html;
  auto took = timed([&] { html = render_markdown(md); });
  EXPECT_LT(took, 1500ms);
  EXPECT_THAT(html, HasSubstr("id=\"notes-19999\""));
}

TEST(PublishMarkdownLimits, AStoppedRenderLeavesTheNextOneWhole) {
  RenderLimits tight;
  tight.memory_bytes = 1 << 20;
  EXPECT_THROW(render_markdown(table_bomb(200, 200), {}, tight), RenderTooCostly);
  auto html = render_markdown("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ [x](y.md)\n");
  EXPECT_THAT(html, HasSubstr("<h1 id=\"title\">"));
  EXPECT_THAT(html, HasSubstr("<td>2</td>"));
  EXPECT_THAT(html, HasSubstr("<del>gone</del>"));
}

// Inputs known to take cmark-gfm 0.29.0.gfm.6 superlinear time (its 2023
// advisories and the hardening issue's cases): each renders or is stopped
// within its time budget.
TEST(PublishMarkdownLimits, PathologicalInputsAnswerWithinTheBudget) {
  auto repeat = [](std::string_view s, std::size_t times) {
    std::string out;
    out.reserve(s.size() * times);
    for (std::size_t i = 0; i < times; ++i) out += s;
    return out;
  };
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"image brackets", repeat("![[]()", 80'000)},
      {"unclosed links", repeat("[a](", 100'000)},
      {"nested brackets", repeat("[", 100'000) + repeat("]", 100'000)},
      {"emphasis runs", repeat("*a_ ", 100'000)},
      {"underscores", repeat("_a", 100'000) + repeat("a_", 100'000)},
      {"strikethrough", repeat("~a", 100'000)},
      {"block quotes", repeat(">", 100'000) + "a\n"},
      {"nested lists", repeat("- ", 20'000) + "a\n"},
      {"html comments", repeat("<!--", 50'000)},
      {"autolinks", repeat("www.a.", 50'000)},
      {"wide table", "|" + repeat("a|", 20'000) + "\n|" + repeat("-|", 20'000) + "\n" + repeat("x\n", 2'000)},
      {"table rows", "|a|\n|-|\n" + repeat("|" + std::string(30, 'b') + "\n", 50'000)},
  };
  RenderLimits limits;
  limits.time = 500ms;
  for (const auto& [name, md] : inputs) {
    std::string outcome = "rendered";
    auto took = timed([&] {
      try {
        render_markdown(md, {}, limits);
      } catch (const RenderTooCostly& e) {
        outcome = e.what();
      }
    });
    EXPECT_LT(took, 1500ms) << name << ": " << outcome;
  }
}
