// Request paths below a project: decoding refuses every way out, and
// open_beneath refuses what decoding cannot see (symlinks).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "publish/path.hpp"
#include "support/process.hpp"

using namespace feuille::publish;
using feuille::test::TempDir;

TEST(PublishPath, DecodesOrdinaryPaths) {
  EXPECT_EQ(decode_path(""), std::vector<std::string>{});
  EXPECT_EQ(decode_path("data-cleaning"), std::vector<std::string>{"data-cleaning"});
  EXPECT_EQ(decode_path("analysis/results"), (std::vector<std::string>{"analysis", "results"}));
  EXPECT_EQ(decode_path("my%20notes"), std::vector<std::string>{"my notes"});
  EXPECT_EQ(decode_path("caf%C3%A9"), std::vector<std::string>{"caf\xC3\xA9"});
  EXPECT_EQ(decode_path("a+b"), std::vector<std::string>{"a+b"});
  EXPECT_EQ(decode_path("..."), std::vector<std::string>{"..."});
  EXPECT_EQ(decode_path("v1.2"), std::vector<std::string>{"v1.2"});
}

TEST(PublishPath, RefusesEveryHostilePath) {
  const char* hostile[] = {
      "..",
      "../etc/passwd",
      "a/../../b",
      "a/..",
      ".",
      "./a",
      "%2e%2e",
      "%2E%2E/secret",
      ".%2e",
      "%2e.",
      "a%2f..%2f..%2fetc",
      "..%2fetc",
      "%2f",
      "a%2Fb",
      "..%5c..%5cetc",
      "a\\b",
      "%5c",
      "a%00b",
      "%00",
      "a%0ab",
      "a%0d%0aSet-Cookie:x",
      "%7f",
      "%c0%ae%c0%ae",       // overlong "."
      "%c0%af",             // overlong "/"
      "%e0%80%ae",          // 3-byte overlong "."
      "%f0%80%80%ae",       // 4-byte overlong "."
      "%c1%9c",             // overlong "\\"
      "%ed%a0%80",          // a surrogate
      "%f4%90%80%80",       // above U+10FFFF
      "%ff",
      "%80",
      "%c3",                // truncated sequence
      "%",
      "%2",
      "%zz",
      "%%32%65",
      "a//b",
      "a/",
      "/a",
      "//",
  };
  for (const char* p : hostile) EXPECT_FALSE(decode_path(p).has_value()) << p;
  EXPECT_FALSE(decode_path(std::string(300, 'a')).has_value()) << "segment over NAME_MAX";
  std::string deep;
  for (int i = 0; i < 70; ++i) deep += "a/";
  deep += "a";
  EXPECT_FALSE(decode_path(deep).has_value()) << "too many segments";
}

TEST(PublishPath, Utf8IsStrict) {
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xC0\xAE"));
  EXPECT_FALSE(valid_utf8("\xE0\x80\xAE"));
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xE2\x82"));
  EXPECT_EQ(to_valid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(PublishPath, EncodingRoundTrips) {
  EXPECT_EQ(encode_segment("my notes/ä?#%"), "my%20notes%2F%C3%A4%3F%23%25");
  EXPECT_EQ(encode_path("a b/c"), "a%20b/c");
  for (std::string name : {"x", "my notes", "caf\xC3\xA9", "a?b#c", "100%"})
    EXPECT_EQ(decode_segment(encode_segment(name)), name);
}

TEST(PublishPath, OpenBeneathStaysInside) {
  TempDir t;
  namespace fs = std::filesystem;
  fs::create_directories(t.path() + "/project/_assets");
  fs::create_directories(t.path() + "/other-user");
  t.file("secret.txt", "secret");
  t.file("other-user/notes.md", "theirs");
  t.file("project/page.md", "mine");
  t.file("project/_assets/img.png", "png");
  fs::create_symlink("../page.md", t.path() + "/project/_assets/inside.md");
  fs::create_symlink("../secret.txt", t.path() + "/project/out.txt");
  fs::create_symlink(t.path() + "/secret.txt", t.path() + "/project/abs.txt");
  fs::create_symlink("../other-user", t.path() + "/project/theirs");
  fs::create_symlink("/etc", t.path() + "/project/etc");

  Fd dir(::open((t.path() + "/project").c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(dir);
  EXPECT_TRUE(open_beneath(dir.get(), "page.md", O_RDONLY));
  EXPECT_TRUE(open_beneath(dir.get(), "_assets/img.png", O_RDONLY));
  EXPECT_TRUE(open_beneath(dir.get(), "_assets/inside.md", O_RDONLY)) << "a link that stays inside is followed";
  EXPECT_FALSE(open_beneath(dir.get(), "_assets/inside.md", O_RDONLY, Symlinks::never));
  for (const char* out : {"out.txt", "abs.txt", "theirs/notes.md", "etc/passwd", "../secret.txt",
                          "_assets/../../secret.txt", "/etc/passwd", ""})
    EXPECT_FALSE(open_beneath(dir.get(), out, O_RDONLY)) << out;
}
