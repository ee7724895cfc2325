// The publish routes on the real feuilled: /@handle, project pages, assets,
// 304s, edits showing at once, and every way out of a project answering the
// same 404.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <pqxx/pqxx>

#include "support/daemon.hpp"

using namespace feuille::test;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string kAlice = "a11ce000-0000-4000-8000-000000000001";
const std::string kBob = "b0b00000-0000-4000-8000-000000000002";
const std::string kCarol = "ca401000-0000-4000-8000-000000000003";

const std::string kPublic = "```yaml config\nname: Field Notes\ndescription: Notes from the field\npublish:\n  visibility: public\n```\n";

class Publish : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test_env_dir().empty()) return;
    data_ = new TempDir;
    daemon_ = new Daemon({"--data-dir", data_->path()});
    daemon_->db().query("INSERT INTO users (id, handle, name) VALUES ('" + kAlice + "', 'alice', 'Alice Liddell'), ('" +
                        kBob + "', 'bob', NULL), ('" + kCarol + "', 'carol', NULL)");
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete data_;
    daemon_ = nullptr;
    data_ = nullptr;
  }
  void SetUp() override {
    if (!daemon_) GTEST_SKIP() << "no test environment (FEUILLE_TEST_ENV)";
  }

  static std::string path(const std::string& user, const std::string& rel) {
    return data_->path() + "/" + user + "/Projects/" + rel;
  }
  static void write(const std::string& user, const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(path(user, rel)).parent_path());
    std::ofstream out(path(user, rel), std::ios::trunc);
    out << text;
  }
  // Rewrites a file in place (same inode), as an editor's plain write does.
  static void overwrite_in_place(const std::string& file, const std::string& text) {
    std::fstream out(file, std::ios::in | std::ios::out);
    out << text;
  }
  static HttpResponse get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return daemon_->get(target, headers);
  }

  static TempDir* data_;
  static Daemon* daemon_;
};
TempDir* Publish::data_ = nullptr;
Daemon* Publish::daemon_ = nullptr;

}  // namespace

TEST_F(Publish, ListsAUsersPublicProjects) {
  write(kAlice, "notes/mrmd.md", kPublic);
  write(kAlice, "notes/index.md", "# Home\n");
  write(kAlice, "draft/mrmd.md", "```yaml config\nname: Draft\npublish:\n  visibility: unlisted\n```\n");
  write(kAlice, "secret/mrmd.md", "```yaml config\nname: Secret\n```\n");
  write(kAlice, "broken/mrmd.md", "```yaml config\nname: Broken\npublish: [\n```\n");
  auto r = get("/@alice");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.header("content-type"), StartsWith("text/html"));
  EXPECT_THAT(r.header("content-security-policy"), HasSubstr("default-src 'self'"));
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_THAT(r.body, HasSubstr("Alice Liddell"));
  EXPECT_THAT(r.body, HasSubstr("<a href=\"/@alice/notes\">Field Notes</a>"));
  EXPECT_THAT(r.body, HasSubstr("Notes from the field"));
  EXPECT_THAT(r.body, Not(HasSubstr("Draft")));
  EXPECT_THAT(r.body, Not(HasSubstr("Secret")));
  EXPECT_THAT(r.body, Not(HasSubstr("Broken")));
  EXPECT_EQ(get("/@ALICE").status, 200) << "handles are case-insensitive";
  EXPECT_EQ(get("/@bob").status, 200);
  EXPECT_THAT(get("/@bob").body, HasSubstr("No public projects yet"));
  EXPECT_EQ(get("/@nobody").status, 404);
  EXPECT_EQ(get("/@no_such!").status, 404);
  auto again = get("/@alice", {{"If-None-Match", r.header("etag")}});
  EXPECT_EQ(again.status, 304);
}

// Concurrent lookups of a handle not in the cache (a new one, or one whose
// entry just expired under load) share one query: with the users table
// locked, 12 requests for /@dora hold one of the 8 pooled connections
// (without the sharing: all 8, and more waiting).
TEST_F(Publish, ConcurrentLookupsOfAHandleShareOneQuery) {
  daemon_->db().query("INSERT INTO users (handle) VALUES ('dora')");
  pqxx::connection locker(daemon_->db().url());
  pqxx::work lock(locker);
  lock.exec("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
  std::vector<std::thread> clients;
  std::vector<HttpResponse> results(12);
  for (std::size_t i = 0; i < results.size(); ++i) clients.emplace_back([&, i] { results[i] = get("/@dora"); });
  std::this_thread::sleep_for(500ms);  // every request has asked by then
  std::string metrics = get("/metrics").body;
  lock.abort();
  for (auto& t : clients) t.join();
  auto gauge = [&](const std::string& state) {
    std::smatch m;
    std::regex re("feuille_db_pool_connections\\{state=\"" + state + "\"\\} ([0-9.]+)");
    return std::regex_search(metrics, m, re) ? std::stod(m[1]) : -1.0;
  };
  EXPECT_EQ(gauge("in_use"), 1.0) << metrics;
  EXPECT_EQ(gauge("waiting"), 0.0);
  for (const auto& r : results) {
    EXPECT_EQ(r.status, 200);
    EXPECT_THAT(r.body, HasSubstr("No public projects yet"));
  }
}

TEST_F(Publish, ServesPagesWithNavCurrentMarkAndPrevNext) {
  write(kAlice, "site/mrmd.md", kPublic);
  write(kAlice, "site/index.md", "# Welcome\n\nHello *world*.\n");
  write(kAlice, "site/01-setup.md", "# Setting up\n\n```python\nprint('<hi>')\n```\n\n<script>alert(1)</script>\n");
  write(kAlice, "site/02-analysis/index.md", "# Analysis\n");
  write(kAlice, "site/02-analysis/01-model.md", "# The model\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[setup](../01-setup.md)\n");
  write(kAlice, "site/02-analysis/02-plots.md", "no heading\n");

  auto home = get("/@alice/site");
  ASSERT_EQ(home.status, 200) << home.body;
  EXPECT_THAT(home.header("content-type"), StartsWith("text/html"));
  EXPECT_THAT(home.body, HasSubstr("<title>Welcome · Field Notes · Feuille</title>"));
  EXPECT_THAT(home.body, HasSubstr("<meta name=\"description\" content=\"Notes from the field\">"));
  EXPECT_THAT(home.body, HasSubstr("<a href=\"/@alice/site\" aria-current=\"page\">Welcome</a>"));
  EXPECT_THAT(home.body, HasSubstr("rel=\"next\" href=\"/@alice/site/setup\""));
  EXPECT_THAT(home.body, HasSubstr("<em>world</em>"));

  auto setup = get("/@alice/site/setup");
  ASSERT_EQ(setup.status, 200);
  EXPECT_THAT(setup.body, HasSubstr("<pre><code class=\"language-python\">print('&lt;hi&gt;')"));
  EXPECT_THAT(setup.body, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(setup.body, Not(HasSubstr("<button")));
  EXPECT_THAT(setup.body, HasSubstr("<h1 id=\"setting-up\">"));

  auto model = get("/@alice/site/analysis/model");
  ASSERT_EQ(model.status, 200);
  EXPECT_THAT(model.body, HasSubstr("<a href=\"/@alice/site/analysis/model\" aria-current=\"page\">The model</a>"));
  EXPECT_THAT(model.body, HasSubstr("rel=\"prev\" href=\"/@alice/site/analysis\""));
  EXPECT_THAT(model.body, HasSubstr("rel=\"next\" href=\"/@alice/site/analysis/plots\""));
  EXPECT_THAT(model.body, HasSubstr("<td>1</td>"));
  EXPECT_THAT(model.body, HasSubstr("<a href=\"/@alice/site/setup\">setup</a>"));
  EXPECT_THAT(get("/@alice/site/analysis/plots").body, HasSubstr(">Plots</a>"));
  EXPECT_EQ(get("/@alice/site/analysis").status, 200);

  auto slash = get("/@alice/site/analysis/");
  EXPECT_EQ(slash.status, 301);
  EXPECT_EQ(slash.header("location"), "/@alice/site/analysis");
  EXPECT_EQ(get("/@alice/site/").header("location"), "/@alice/site");
}

TEST_F(Publish, UnlistedIsServedButNotListedAndPrivacyAppliesAtOnce) {
  write(kAlice, "toggle/mrmd.md", "```yaml config\npublish:\n  visibility: unlisted\n```\n");
  write(kAlice, "toggle/page.md", "# Page\n");
  EXPECT_EQ(get("/@alice/toggle/page").status, 200);
  EXPECT_THAT(get("/@alice").body, Not(HasSubstr("/@alice/toggle")));
  write(kAlice, "toggle/mrmd.md", "```yaml config\npublish:\n  visibility: private\n```\n");
  EXPECT_EQ(get("/@alice/toggle/page").status, 404);
  write(kAlice, "toggle/mrmd.md", "```yaml config\npublish:\n  visibility: public\n```\n");
  EXPECT_EQ(get("/@alice/toggle/page").status, 200);
  EXPECT_THAT(get("/@alice").body, HasSubstr("/@alice/toggle"));
}

TEST_F(Publish, BadConfigUnpublishesAndTheReasonIsLogged) {
  write(kAlice, "yamlbad/mrmd.md", "```yaml config\npublish:\n  visibility: public\n```\n");
  write(kAlice, "yamlbad/page.md", "# Page\n");
  EXPECT_EQ(get("/@alice/yamlbad/page").status, 200);
  write(kAlice, "yamlbad/mrmd.md", "```yaml config\npublish:\n  visibility: public\n```\n```yaml config\nname: [x\n```\n");
  EXPECT_EQ(get("/@alice/yamlbad/page").status, 404);
  EXPECT_TRUE(daemon_->process().wait_for_stderr("project \"yamlbad\" is not published: mrmd.md: yaml config block 2", 5s))
      << daemon_->process().stderr_text();
}

TEST_F(Publish, EveryMissOrHiddenThingIsTheSamePlain404) {
  write(kAlice, "same/mrmd.md", kPublic);
  write(kAlice, "same/page.md", "# Page\n");
  write(kAlice, "same/_drafts/draft.md", "# Draft\n");
  write(kAlice, "same/_hidden.md", "# Hidden\n");
  write(kAlice, "same/.dot.md", "# Dot\n");
  write(kAlice, "same/_assets/.env", "SECRET=1\n");
  write(kAlice, "same/_assets/_thumb.png", "png");
  write(kAlice, "priv/mrmd.md", "```yaml config\nname: Private\n```\n");
  write(kAlice, "priv/page.md", "# Private page\n");
  write(kAlice, "priv/_assets/a.png", "png");
  write(kAlice, "noconfig/page.md", "# Not a project\n");

  auto reference = get("/@nobody/same/page");
  ASSERT_EQ(reference.status, 404);
  auto reference_page = get("/@nobody/same/page", {{"Accept", "text/html"}});
  for (std::string target : {"/@alice/priv", "/@alice/priv/page", "/@alice/priv/_assets/a.png", "/@alice/none",
                             "/@alice/none/page", "/@alice/same/nope", "/@alice/same/page.md", "/@alice/same/mrmd",
                             "/@alice/same/mrmd.md", "/@alice/same/drafts/draft", "/@alice/same/_drafts/draft",
                             "/@alice/same/_hidden", "/@alice/same/.dot", "/@alice/same/_assets/.env",
                             "/@alice/same/_assets/_thumb.png", "/@alice/same/_assets/missing.png",
                             "/@alice/same/_assets", "/@alice/noconfig", "/@alice/noconfig/page",
                             "/@alice/.Trash", "/@alice/_x"}) {
    auto r = get(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.body, reference.body) << target;
    auto p = get(target, {{"Accept", "text/html"}});
    EXPECT_EQ(p.status, 404) << target;
    EXPECT_EQ(p.body, reference_page.body) << target;
  }
  EXPECT_THAT(reference_page.body, Not(HasSubstr(data_->path())));
}

TEST_F(Publish, NoPathLeavesTheProject) {
  write(kAlice, "safe/mrmd.md", kPublic);
  write(kAlice, "safe/page.md", "# Page\n");
  write(kAlice, "safe/_assets/ok.txt", "fine");
  write(kAlice, "outside.md", "# Projects-level file\n");
  write(kBob, "bobs/mrmd.md", kPublic);
  write(kBob, "bobs/secret.md", "# Bob's secret\n");
  write(kBob, "bobs/_assets/secret.txt", "bob's bytes");
  // Links that leave alice's project, towards her other files and into bob's folder.
  fs::create_symlink(path(kBob, "bobs/secret.md"), path(kAlice, "safe/bob.md"));
  fs::create_symlink("../../outside.md", path(kAlice, "safe/up.md"));
  fs::create_symlink(path(kBob, "bobs/_assets/secret.txt"), path(kAlice, "safe/_assets/bob.txt"));
  fs::create_symlink(path(kBob, "bobs/_assets"), path(kAlice, "safe/_assets/bobdir"));
  fs::create_symlink("/etc/passwd", path(kAlice, "safe/_assets/passwd"));
  fs::create_symlink(path(kBob, "bobs"), path(kAlice, "bobs-link"));  // a whole project
  fs::create_directories(data_->path() + "/" + kCarol);
  fs::create_symlink(data_->path() + "/" + kBob + "/Projects", data_->path() + "/" + kCarol + "/Projects");
  // A link that stays inside the project is fine.
  fs::create_symlink("ok.txt", path(kAlice, "safe/_assets/alias.txt"));

  ASSERT_EQ(get("/@alice/safe/page").status, 200);
  ASSERT_EQ(get("/@alice/safe/_assets/ok.txt").body, "fine");
  EXPECT_EQ(get("/@alice/safe/_assets/alias.txt").body, "fine");
  auto reference = get("/@nobody/x");
  for (const std::string& target : std::vector<std::string>{
           "/@alice/safe/bob", "/@alice/safe/up", "/@alice/safe/_assets/bob.txt", "/@alice/safe/_assets/bobdir/secret.txt",
           "/@alice/safe/_assets/passwd", "/@alice/bobs-link", "/@alice/bobs-link/secret", "/@carol/bobs",
           "/@carol/bobs/secret",
           "/@alice/safe/../../" + kBob + "/Projects/bobs/secret",
           "/@alice/safe/_assets/../../../" + kBob + "/Projects/bobs/_assets/secret.txt",
           "/@alice/safe/_assets/..%2f..%2f..%2f" + kBob + "%2fProjects%2fbobs%2f_assets%2fsecret.txt",
           "/@alice/safe/_assets/%2e%2e/%2e%2e/%2e%2e/" + kBob + "/Projects/bobs/_assets/secret.txt",
           "/@alice/safe/_assets/%2E%2E%2F%2E%2E%2Fmrmd.md",
           "/@alice/safe/_assets/..%5c..%5cmrmd.md",
           "/@alice/safe/_assets/ok.txt%00.png",
           "/@alice/safe/_assets/%c0%ae%c0%ae/mrmd.md",
           "/@alice/safe/_assets/%e0%80%ae%e0%80%ae/mrmd.md",
           "/@alice/safe/_assets//etc/passwd",
           "/@alice/safe/_assets/%2fetc%2fpasswd",
           "/@alice/%2e%2e",
           "/@alice/..%2f" + kBob + "%2fProjects%2fbobs",
           "/@alice/safe%2f..%2f..%2f..%2f" + kBob,
           "/@alice/safe/%2e%2e/outside",
           "/@alice/safe/page%00",
           "/@alice/safe/%ff%fe",
           "/@..%2f..%2fetc",
           "/@%2e%2e/safe/page",
       }) {
    auto r = get(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.body, reference.body) << target;
    EXPECT_THAT(r.body, Not(HasSubstr("bob's"))) << target;
  }
  // Raw bytes an HTTP parser may let through: never a 500, never content.
  for (std::string target : {"/@alice/safe/_assets/..\\..\\mrmd.md", "/@alice/safe/%5c..%5cmrmd.md"}) {
    auto r = get(target);
    EXPECT_TRUE(r.status == 404 || r.status == 400) << target << " " << r.status;
  }
  EXPECT_THAT(get("/@carol").body, Not(HasSubstr("bobs")));
  EXPECT_TRUE(daemon_->process().running());
}

TEST_F(Publish, ConditionalRequestsGet304) {
  write(kAlice, "cond/mrmd.md", kPublic);
  write(kAlice, "cond/page.md", "# Page\n\nText.\n");
  auto first = get("/@alice/cond/page");
  ASSERT_EQ(first.status, 200);
  std::string etag = first.header("etag"), last_modified = first.header("last-modified");
  EXPECT_THAT(etag, StartsWith("\""));
  EXPECT_THAT(last_modified, HasSubstr(" GMT"));
  EXPECT_EQ(first.header("cache-control"), "no-cache");
  EXPECT_EQ(get("/@alice/cond/page").header("etag"), etag) << "a cached page keeps its ETag";

  auto by_etag = get("/@alice/cond/page", {{"If-None-Match", etag}});
  EXPECT_EQ(by_etag.status, 304);
  EXPECT_EQ(by_etag.body, "");
  EXPECT_EQ(by_etag.header("etag"), etag);
  EXPECT_EQ(get("/@alice/cond/page", {{"If-None-Match", "\"other\""}}).status, 200);
  EXPECT_EQ(get("/@alice/cond/page", {{"If-Modified-Since", last_modified}}).status, 304);
  EXPECT_EQ(get("/@alice/cond/page", {{"If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"}}).status, 200);

  auto head = daemon_->request("HEAD", "/@alice/cond/page");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.header("etag"), etag);
  EXPECT_EQ(head.header("content-length"), std::to_string(first.body.size()));
}

TEST_F(Publish, ASaveShowsOnTheNextRequest) {
  write(kAlice, "live/mrmd.md", kPublic);
  write(kAlice, "live/a.md", "# Alpha\n\nversion-1\n");
  write(kAlice, "live/b.md", "# Beta\n");
  auto first = get("/@alice/live/a");
  ASSERT_THAT(first.body, HasSubstr("version-1"));
  // Two in-place saves of the same size, well within one second.
  overwrite_in_place(path(kAlice, "live/a.md"), "# Alpha\n\nversion-2\n");
  auto second = get("/@alice/live/a");
  EXPECT_THAT(second.body, HasSubstr("version-2"));
  EXPECT_NE(second.header("etag"), first.header("etag"));
  EXPECT_EQ(get("/@alice/live/a", {{"If-None-Match", first.header("etag")}}).status, 200);
  overwrite_in_place(path(kAlice, "live/a.md"), "# Alpha\n\nversion-3\n");
  EXPECT_THAT(get("/@alice/live/a").body, HasSubstr("version-3"));

  // A new page is in every page's nav at once; a removed one is gone.
  write(kAlice, "live/c.md", "# Gamma\n");
  EXPECT_THAT(get("/@alice/live/a").body, HasSubstr(">Gamma</a>"));
  EXPECT_EQ(get("/@alice/live/c").status, 200);
  fs::remove(path(kAlice, "live/c.md"));
  EXPECT_EQ(get("/@alice/live/c").status, 404);
  EXPECT_THAT(get("/@alice/live/a").body, Not(HasSubstr(">Gamma</a>")));

  // A new heading, saved in place: that page shows it at once, and once it
  // was shown every other page's nav has it too.
  overwrite_in_place(path(kAlice, "live/b.md"), "# Bêta\n");
  EXPECT_THAT(get("/@alice/live/b").body, HasSubstr("<title>Bêta · Field Notes"));
  EXPECT_THAT(get("/@alice/live/a").body, HasSubstr(">Bêta</a>"));

  // A page that is a link to a file in a hidden folder (no folder that is
  // watched changes when the file does).
  write(kAlice, "live/_src/real.md", "# Linked\n\nlinked-1\n");
  fs::create_symlink("_src/real.md", path(kAlice, "live/linked.md"));
  EXPECT_THAT(get("/@alice/live/linked").body, HasSubstr("linked-1"));
  overwrite_in_place(path(kAlice, "live/_src/real.md"), "# Linked\n\nlinked-2\n");
  EXPECT_THAT(get("/@alice/live/linked").body, HasSubstr("linked-2"));

  // Replaced by rename (a new inode), as many editors save.
  write(kAlice, "live/a.tmp", "# Alpha\n\nversion-4\n");
  fs::rename(path(kAlice, "live/a.tmp"), path(kAlice, "live/a.md"));
  EXPECT_THAT(get("/@alice/live/a").body, HasSubstr("version-4"));
}

TEST_F(Publish, AssetsAreStreamedWithTypesAndRanges) {
  write(kAlice, "files/mrmd.md", kPublic);
  write(kAlice, "files/page.md", "# Page\n\n![chart](_assets/chart.png)\n");
  std::string data;
  for (int i = 0; i < 300'000; ++i) data.push_back(static_cast<char>('a' + i % 26));
  write(kAlice, "files/_assets/data.csv", data);
  write(kAlice, "files/_assets/chart.png", "\x89PNG fake");
  write(kAlice, "files/_assets/nested/dir/pic.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>");
  write(kAlice, "files/_assets/page.html", "<script>alert(1)</script>");
  write(kAlice, "files/_assets/my file.txt", "spaced");

  EXPECT_THAT(get("/@alice/files/page").body, HasSubstr("src=\"/@alice/files/_assets/chart.png\""));
  auto whole = get("/@alice/files/_assets/data.csv");
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, data);
  EXPECT_EQ(whole.header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(whole.header("accept-ranges"), "bytes");
  EXPECT_EQ(whole.header("x-content-type-options"), "nosniff");
  EXPECT_THAT(whole.header("content-security-policy"), HasSubstr("sandbox"));

  auto part = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=100-199"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, data.substr(100, 100));
  EXPECT_EQ(part.header("content-range"), "bytes 100-199/300000");
  auto tail = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=-10"}});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, data.substr(data.size() - 10));
  auto open_end = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=299990-"}});
  EXPECT_EQ(open_end.body, data.substr(299990));
  auto beyond = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=300000-"}});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.header("content-range"), "bytes */300000");
  auto stale_range = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=0-9"}, {"If-Range", "\"old\""}});
  EXPECT_EQ(stale_range.status, 200);
  EXPECT_EQ(stale_range.body.size(), data.size());
  auto fresh_range = get("/@alice/files/_assets/data.csv", {{"Range", "bytes=0-9"}, {"If-Range", whole.header("etag")}});
  EXPECT_EQ(fresh_range.status, 206);

  EXPECT_EQ(get("/@alice/files/_assets/data.csv", {{"If-None-Match", whole.header("etag")}}).status, 304);
  auto head = daemon_->request("HEAD", "/@alice/files/_assets/data.csv");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "300000");

  EXPECT_EQ(get("/@alice/files/_assets/chart.png").header("content-type"), "image/png");
  auto svg = get("/@alice/files/_assets/nested/dir/pic.svg");
  EXPECT_EQ(svg.header("content-type"), "image/svg+xml");
  EXPECT_THAT(svg.header("content-security-policy"), HasSubstr("sandbox"));
  EXPECT_EQ(get("/@alice/files/_assets/page.html").header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(get("/@alice/files/_assets/my%20file.txt").body, "spaced");

  // Keep-alive survives a streamed response: two requests on one connection.
  RawConnection c("127.0.0.1", daemon_->port());
  c.send("GET /@alice/files/_assets/chart.png HTTP/1.1\r\nHost: x\r\n\r\nGET /@alice/files/page HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->body, "\x89PNG fake");
  EXPECT_EQ(r2->status, 200);
}

TEST_F(Publish, BigPagesRenderOffTheLoop) {
  write(kAlice, "big/mrmd.md", kPublic);
  // About 1.5 MiB (the file limit is 8, the render's memory of 128 MiB
  // holds about 2 of such dense markdown): a render of most of a second.
  std::string md = "# Big page\n\n";
  for (int i = 0; md.size() < 1536 * 1024; ++i)
    md += "## Section " + std::to_string(i) + "\n\nSome *text* with `code`, **bold** and a [link](https://example.org/" +
          std::to_string(i) + ").\n\n| a | b |\n|---|---|\n| " + std::to_string(i) + " | ~~x~~ |\n\n```python\nx = " +
          std::to_string(i) + "\n```\n\n";
  md += "THE-END\n";
  write(kAlice, "big/page.md", md);

  // Three readers at once share one render; meanwhile /healthz is asked
  // every 20 ms. Were the render on the event loop, one of those /healthz
  // requests would wait for most of it.
  std::atomic<int> done{0};
  std::vector<std::thread> clients;
  std::vector<HttpResponse> results(3);
  std::vector<double> seconds(3);
  for (int i = 0; i < 3; ++i)
    clients.emplace_back([&, i] {
      auto t0 = std::chrono::steady_clock::now();
      results[i] = get("/@alice/big/page");
      seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++done;
    });
  double worst_health = 0;
  int health_checks = 0;
  while (done < 3) {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(get("/healthz").status, 200);
    worst_health = std::max(worst_health, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ++health_checks;
    std::this_thread::sleep_for(20ms);
  }
  for (auto& t : clients) t.join();
  for (const auto& r : results) {
    EXPECT_EQ(r.status, 200);
    EXPECT_THAT(r.body, HasSubstr("THE-END"));
  }
  double page_seconds = *std::min_element(seconds.begin(), seconds.end());
  EXPECT_GT(health_checks, 1);
  EXPECT_LT(worst_health, page_seconds / 4) << "the loop stalled during the render: /healthz took " << worst_health
                                            << " s while the page took " << page_seconds << " s";
}

double metric(Daemon& d, const std::string& name) {
  auto body = d.get("/metrics").body;
  std::smatch m;
  if (!std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+]+)"))) return -1;
  return std::stod(m[1]);
}

// A 20 KB table whose header has 1,000 columns, then 8,000 one-cell rows:
// cmark-gfm pads every row to the header (about 1 GB and 80 MB of HTML).
// The render stops at its memory limit; meanwhile /healthz and requests
// that need the database answer at once (renders have threads of their
// own), feuilled's memory stays near the limit, and the notice the page
// gets instead is cached until the file changes.
TEST_F(Publish, ARenderBombIsStoppedAndTheDaemonKeepsAnswering) {
  std::string bomb = "# Bomb\n\n|";
  for (int i = 0; i < 1000; ++i) bomb += "a|";
  bomb += "\n|";
  for (int i = 0; i < 1000; ++i) bomb += "-|";
  bomb += "\n";
  for (int i = 0; i < 8000; ++i) bomb += "x\n";
  write(kBob, "bomb/mrmd.md", kPublic);
  write(kBob, "bomb/index.md", bomb);
  const int pid = daemon_->process().pid();
  const long rss_before = status_kib(pid, "VmRSS");
  const double abandoned_before = metric(*daemon_, "feuille_publish_renders_abandoned_total");

  std::atomic<bool> done{false};
  HttpResponse page;
  double page_seconds = 0;
  std::thread reader([&] {
    auto t0 = std::chrono::steady_clock::now();
    page = get("/@bob/bomb");
    page_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done = true;
  });
  long rss_peak = rss_before;
  double worst = 0;
  int checks = 0;
  while (!done || checks < 3) {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(get("/healthz").status, 200);
    // A handle never asked before: a database query each time.
    EXPECT_EQ(get("/@ghost" + std::to_string(checks)).status, 404);
    worst = std::max(worst, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    rss_peak = std::max(rss_peak, status_kib(pid, "VmRSS"));
    ++checks;
    std::this_thread::sleep_for(10ms);
  }
  reader.join();
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("This page could not be published"));
  EXPECT_THAT(page.body, HasSubstr("more memory to render than allowed"));
  EXPECT_LT(page_seconds, 3.0);
  EXPECT_LT(worst, 0.5) << "/healthz and a database request took " << worst << " s during the render";
  EXPECT_LT(rss_peak - rss_before, 300 * 1024) << "RSS went from " << rss_before << " to " << rss_peak << " KiB";
  EXPECT_EQ(metric(*daemon_, "feuille_publish_renders_abandoned_total"), abandoned_before + 1);

  // Cached as such: no second render until the file changes.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THAT(get("/@bob/bomb").body, HasSubstr("could not be published"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_EQ(metric(*daemon_, "feuille_publish_renders_abandoned_total"), abandoned_before + 1);
  write(kBob, "bomb/index.md", "# Bomb\n\n| a | b |\n|---|---|\n| 1 |\n");
  auto fixed = get("/@bob/bomb");
  EXPECT_THAT(fixed.body, HasSubstr("<td>1</td>"));
  EXPECT_THAT(fixed.body, Not(HasSubstr("could not be published")));
}

// The rendered-page cache stays within publish-cache-size: the least
// recently used pages leave it and are rendered again when asked for.
TEST(PublishCacheBound, RenderedPagesStayWithinTheBudget) {
  if (test_env_dir().empty()) GTEST_SKIP() << "no test environment (FEUILLE_TEST_ENV)";
  TempDir data;
  Daemon d({"--data-dir", data.path(), "--publish-cache-size", "256K"});
  d.db().query("INSERT INTO users (id, handle) VALUES ('" + kAlice + "', 'alice')");
  std::string root = data.path() + "/" + kAlice + "/Projects/many/";
  fs::create_directories(root);
  std::ofstream(root + "mrmd.md") << kPublic;
  const int pages = 12;
  for (int p = 0; p < pages; ++p) {
    std::string md = "# Page " + std::to_string(p) + "\n\n";
    while (md.size() < 40 * 1024) md += "A paragraph of *text* for page " + std::to_string(p) + ".\n\n";
    std::ofstream(root + "page-" + std::to_string(p) + ".md") << md;
  }
  auto metric = [&](const std::string& name) {
    std::string body = d.get("/metrics").body;
    auto at = body.find("\n" + name + " ");
    if (at == std::string::npos) return -1.0;
    return std::stod(body.substr(at + name.size() + 2));
  };
  const std::string renders = "feuille_publish_page_lookups_total{result=\"render\"}";
  for (int p = 0; p < pages; ++p) {
    auto r = d.get("/@alice/many/page-" + std::to_string(p));
    ASSERT_EQ(r.status, 200);
    EXPECT_THAT(r.body, HasSubstr("for page " + std::to_string(p) + "."));
    double held = metric("feuille_publish_page_cache_bytes");
    EXPECT_GT(held, 0);
    EXPECT_LE(held, 256 * 1024) << "after page " << p;
  }
  EXPECT_EQ(metric(renders), pages);
  // The last page is still cached; the first one was evicted long ago.
  EXPECT_EQ(d.get("/@alice/many/page-" + std::to_string(pages - 1)).status, 200);
  EXPECT_EQ(metric(renders), pages);
  auto again = d.get("/@alice/many/page-0");
  EXPECT_EQ(again.status, 200);
  EXPECT_THAT(again.body, HasSubstr("for page 0."));
  EXPECT_EQ(metric(renders), pages + 1);
  EXPECT_LE(metric("feuille_publish_page_cache_bytes"), 256 * 1024);
}

TEST_F(Publish, AProjectWithoutPagesSaysSo) {
  write(kAlice, "empty/mrmd.md", kPublic);
  auto r = get("/@alice/empty");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("no pages yet"));
  EXPECT_EQ(get("/@alice/empty/anything").status, 404);
}
