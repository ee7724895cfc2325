// The project model: names, order, titles, the page tree, freshness.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "publish/project.hpp"
#include "support/process.hpp"

using namespace feuille::publish;
using feuille::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPublic = "```yaml config\npublish:\n  visibility: public\n```\n";

struct Tree {
  TempDir tmp;
  std::string root = tmp.path() + "/Projects/p";
  Tree() { fs::create_directories(root); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root + "/" + rel).parent_path());
    std::ofstream(root + "/" + rel) << text;
  }
  Fd dir() const { return Fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY)); }
  Project scan() const {
    Fd d = dir();
    return scan_project(d.get(), "p");
  }
};

std::vector<std::string> urls(const Project& p) {
  std::vector<std::string> out;
  for (const auto& page : p.pages) out.push_back(page.url);
  return out;
}

std::vector<std::string> nav_titles(const std::vector<NavItem>& items) {
  std::vector<std::string> out;
  for (const auto& i : items) out.push_back(i.title);
  return out;
}

}  // namespace

TEST(PublishProject, NamesDropTheNumberAndExtension) {
  auto n = parse_name("02-data-cleaning.md", true);
  EXPECT_EQ(n.number, "02");
  EXPECT_EQ(n.stem, "data-cleaning");
  n = parse_name("10_results.md", true);
  EXPECT_EQ(n.number, "10");
  EXPECT_EQ(n.stem, "results");
  n = parse_name("2024.md", true);
  EXPECT_FALSE(n.number);
  EXPECT_EQ(n.stem, "2024");
  n = parse_name("03-analysis", false);
  EXPECT_EQ(n.stem, "analysis");
  n = parse_name("01-.md", true);
  EXPECT_EQ(n.stem, "01-");
  EXPECT_EQ(parse_name("Notes.MD", true).stem, "Notes");
}

TEST(PublishProject, DefaultOrderIsNumberedFirstThenAlphabetical) {
  std::vector<std::string> names{"zeta.md", "10-ten.md", "2-two", "Alpha.md", "01-one.md", "beta", "002-two-b.md",
                                 "100-hundred.md"};
  std::sort(names.begin(), names.end(), default_order);
  EXPECT_EQ(names, (std::vector<std::string>{"01-one.md", "2-two", "002-two-b.md", "10-ten.md", "100-hundred.md",
                                             "Alpha.md", "beta", "zeta.md"}));
}

TEST(PublishProject, TitlesComeFromTheFirstHeadingElseTheName) {
  EXPECT_EQ(title_case("data-cleaning"), "Data Cleaning");
  EXPECT_EQ(title_case("my_API--notes"), "My API Notes");
  EXPECT_EQ(first_heading("Intro text\n\n# The *real* `title` #\n# Second\n"), "The real title");
  EXPECT_EQ(first_heading("## Not level one\n#hashtag\n"), "");
  EXPECT_EQ(first_heading("```\n# in code\n```\n# After code\n"), "After code");
  EXPECT_EQ(first_heading("---\ntitle: x\n# yaml comment\n---\n# Real\n"), "Real");
  EXPECT_EQ(first_heading("   # Indented three\n"), "Indented three");
  EXPECT_EQ(first_heading("    # Indented code\n"), "");
  EXPECT_EQ(first_heading("# Tom &amp; Jerry <b>x</b>\n"), "Tom & Jerry x");
}

TEST(PublishProject, BuildsTheTreeInOrder) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("index.md", "# Welcome\n");
  t.write("02-data-cleaning.md", "# Cleaning the data\n");
  t.write("01-setup.md", "no heading here\n");
  t.write("appendix.md", "# Appendix\n");
  t.write("03-analysis/index.md", "# Analysis\n");
  t.write("03-analysis/02-plots.md", "# Plots\n");
  t.write("03-analysis/01-model.md", "# Model\n");
  t.write("03-analysis/deeper/notes.md", "# Deep notes\n");
  t.write("04-empty/readme.txt", "not a page");
  t.write("_drafts/secret.md", "# Hidden\n");
  t.write(".git/config.md", "# Hidden\n");
  t.write("_private.md", "# Hidden\n");
  t.write("notes.txt", "not a page");
  auto p = t.scan();
  ASSERT_TRUE(p.served()) << p.problem;
  EXPECT_EQ(urls(p), (std::vector<std::string>{"", "setup", "data-cleaning", "analysis", "analysis/model",
                                               "analysis/plots", "analysis/deeper/notes", "appendix"}));
  EXPECT_EQ(p.pages[1].title, "Setup");
  EXPECT_EQ(p.pages[2].title, "Cleaning the data");
  EXPECT_EQ(p.pages[3].file, "03-analysis/index.md");
  EXPECT_TRUE(p.pages[3].index);
  EXPECT_EQ(p.home(), 0);
  EXPECT_EQ(nav_titles(p.nav), (std::vector<std::string>{"Welcome", "Setup", "Cleaning the data", "Analysis", "Appendix"}));
  ASSERT_EQ(p.nav[3].page, 3);
  EXPECT_EQ(nav_titles(p.nav[3].children), (std::vector<std::string>{"Model", "Plots", "Deeper"}));
  EXPECT_EQ(p.nav[3].children[2].page, -1) << "a folder without index is a group";
  EXPECT_EQ(p.by_file.at("03-analysis"), 3u);
  EXPECT_EQ(p.by_file.at("01-setup.md"), 1u);
}

TEST(PublishProject, RootShowsTheFirstPageWithoutIndex) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("b.md", "# B\n");
  t.write("a.md", "# A\n");
  auto p = t.scan();
  EXPECT_EQ(p.home(), 0);
  EXPECT_EQ(p.pages[0].url, "a");
}

TEST(PublishProject, NumberedIndexStandsForItsFolder) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("01-index.md", "# Scratch\n");
  t.write("index.md", "# Second index\n");
  t.write("02-next.md", "# Next\n");
  auto p = t.scan();
  EXPECT_EQ(urls(p), (std::vector<std::string>{"", "next"}));
  EXPECT_EQ(p.pages[0].file, "01-index.md");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_THAT(p.warnings[0], ::testing::HasSubstr("index.md"));
}

TEST(PublishProject, CollisionsKeepTheFirstAndWarn) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("01-intro.md", "# First intro\n");
  t.write("intro.md", "# Second intro\n");
  auto p = t.scan();
  ASSERT_EQ(p.pages.size(), 1u);
  EXPECT_EQ(p.pages[0].file, "01-intro.md");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_THAT(p.warnings[0], ::testing::HasSubstr("intro.md"));
}

TEST(PublishProject, NavOrderOverrides) {
  Tree t;
  t.write("mrmd.md", std::string(kPublic) +
                         "```yaml config\nnav:\n  order:\n    - appendix.md\n    - analysis/plots\n    - ./01-setup.md\n"
                         "    - missing.md\n```\n");
  t.write("index.md", "# Home\n");
  t.write("01-setup.md", "# Setup\n");
  t.write("02-data.md", "# Data\n");
  t.write("appendix.md", "# Appendix\n");
  t.write("03-analysis/01-model.md", "# Model\n");
  t.write("03-analysis/02-plots.md", "# Plots\n");
  auto p = t.scan();
  EXPECT_EQ(urls(p), (std::vector<std::string>{"", "appendix", "analysis/plots", "analysis/model", "setup", "data"}));
}

TEST(PublishProject, PrivateAndBrokenProjectsAreNotServed) {
  Tree t;
  t.write("mrmd.md", "# no config\n");
  t.write("page.md", "# Page\n");
  auto p = t.scan();
  EXPECT_FALSE(p.served());
  EXPECT_TRUE(p.problem.empty());
  EXPECT_TRUE(p.pages.empty()) << "a private project is not walked";

  t.write("mrmd.md", "```yaml config\npublish: [\n```\n");
  p = t.scan();
  EXPECT_FALSE(p.served());
  EXPECT_THAT(p.problem, ::testing::HasSubstr("yaml config block 1"));

  fs::remove(t.root + "/mrmd.md");
  p = t.scan();
  EXPECT_FALSE(p.served());
  EXPECT_EQ(p.problem, "no readable mrmd.md");

  t.write("mrmd.md", std::string(kPublic) + std::string(70 * 1024, '.'));
  EXPECT_FALSE(t.scan().served());
}

TEST(PublishProject, SymlinksLeavingTheProjectAreLeftOut) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("real.md", "# Real\n");
  t.tmp.file("Projects/secret.md", "# Secret\n");
  fs::create_directories(t.tmp.path() + "/other/sub");
  t.tmp.file("other/sub/theirs.md", "# Theirs\n");
  fs::create_symlink("../secret.md", t.root + "/leak.md");
  fs::create_symlink(t.tmp.path() + "/other/sub", t.root + "/linked-folder");
  fs::create_symlink("real.md", t.root + "/alias.md");
  auto p = t.scan();
  EXPECT_EQ(urls(p), (std::vector<std::string>{"alias", "real"}));
}

TEST(PublishProject, FreshUntilAFolderOrTheConfigChanges) {
  Tree t;
  t.write("mrmd.md", kPublic);
  t.write("a.md", "# A\n");
  t.write("sub/b.md", "# B\n");
  auto p = t.scan();
  Fd d = t.dir();
  EXPECT_TRUE(p.fresh(d.get()));
  t.write("a.md", "# A edited in place\n");
  EXPECT_TRUE(p.fresh(d.get())) << "a page's own stamp is checked per request, not here";
  t.write("sub/c.md", "# C\n");
  EXPECT_FALSE(p.fresh(d.get()));
  p = t.scan();
  EXPECT_TRUE(p.fresh(d.get()));
  t.write("mrmd.md", std::string(kPublic) + "\n");
  EXPECT_FALSE(p.fresh(d.get()));
}

TEST(PublishProject, StampsSeeSameSizeSavesWithinASecond) {
  Tree t;
  t.write("a.md", "version 1");
  Fd d = t.dir();
  Stamp first = stamp_at(d.get(), "a.md", true);
  struct timespec times[2] = {{0, UTIME_OMIT}, {first.mtime_ns / 1'000'000'000, first.mtime_ns % 1'000'000'000 + 1}};
  if (times[1].tv_nsec >= 1'000'000'000) times[1] = {times[1].tv_sec + 1, 0};
  t.write("a.md", "version 2");  // same size
  ASSERT_EQ(::utimensat(d.get(), "a.md", times, 0), 0);  // and only 1 ns later
  Stamp second = stamp_at(d.get(), "a.md", true);
  EXPECT_EQ(first.size, second.size);
  EXPECT_NE(first, second);
  EXPECT_FALSE(stamp_at(d.get(), "missing.md", true).exists());
}

TEST(PublishProject, ListsProjectsWithTheirConfig) {
  TempDir tmp;
  fs::create_directories(tmp.path() + "/Projects/b-public");
  fs::create_directories(tmp.path() + "/Projects/a-private");
  fs::create_directories(tmp.path() + "/Projects/not-a-project");
  fs::create_directories(tmp.path() + "/Projects/.hidden");
  tmp.file("Projects/b-public/mrmd.md", std::string(kPublic) + "```yaml config\nname: B\ndescription: Bee\n```\n");
  tmp.file("Projects/a-private/mrmd.md", "# private\n");
  tmp.file("Projects/.hidden/mrmd.md", kPublic);
  fs::create_directories(tmp.path() + "/elsewhere");
  tmp.file("elsewhere/mrmd.md", kPublic);
  fs::create_symlink(tmp.path() + "/elsewhere", tmp.path() + "/Projects/linked");
  Fd user(::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY));
  auto list = list_projects(user.get());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].folder, "a-private");
  EXPECT_EQ(list[0].config->visibility, Visibility::private_);
  EXPECT_EQ(list[1].folder, "b-public");
  EXPECT_EQ(list[1].config->name, "B");
  EXPECT_EQ(list[1].config->description, "Bee");
  EXPECT_FALSE(open_project_dir(user.get(), "linked")) << "a project folder may not be a symlink";
  EXPECT_FALSE(open_project_dir(user.get(), ".hidden"));
  EXPECT_FALSE(open_project_dir(user.get(), "../Projects/b-public"));
  EXPECT_TRUE(open_project_dir(user.get(), "b-public"));
}
