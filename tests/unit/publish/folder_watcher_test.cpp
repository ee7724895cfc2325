// inotify watches: a change under a watched folder moves its epoch; nothing
// else does; watches are counted and given back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "publish/folder_watcher.hpp"
#include "publish/path.hpp"
#include "support/process.hpp"

using namespace feuille::publish;
using feuille::test::TempDir;
namespace fs = std::filesystem;

TEST(PublishWatcher, ChangesUnderAWatchedFolderAreSeen) {
  auto watcher = std::make_shared<FolderWatcher>();
  if (!watcher->enabled()) GTEST_SKIP() << "no inotify here";
  TempDir t;
  fs::create_directories(t.path() + "/p/sub");
  fs::create_directories(t.path() + "/p/_hidden");
  t.file("p/page.md", "one");
  Fd root(::open((t.path() + "/p").c_str(), O_RDONLY | O_DIRECTORY));
  Fd sub(::open((t.path() + "/p/sub").c_str(), O_RDONLY | O_DIRECTORY));
  auto set = std::make_shared<WatchSet>(watcher);
  ASSERT_TRUE(set->add(root.get()));
  ASSERT_TRUE(set->add(sub.get()));

  std::uint64_t checked = watcher->drain();
  EXPECT_LE(watcher->last_change(set->ids()), checked);
  t.file("p/_hidden/x.md", "not watched");  // inside an unwatched folder
  watcher->drain();                         // reads its event, if any came
  EXPECT_LE(watcher->last_change(set->ids()), checked) << "a change in an unwatched folder";

  { std::ofstream(t.path() + "/p/page.md", std::ios::in | std::ios::out) << "two"; }  // in place
  std::uint64_t now = watcher->drain();
  EXPECT_GT(watcher->last_change(set->ids()), checked);
  checked = now;
  t.file("p/sub/new.md", "new");
  watcher->drain();
  EXPECT_GT(watcher->last_change(set->ids()), checked);
  checked = watcher->drain();
  ASSERT_EQ(::utimensat(root.get(), "page.md", nullptr, 0), 0);  // touch
  watcher->drain();
  EXPECT_GT(watcher->last_change(set->ids()), checked);
  checked = watcher->drain();
  fs::rename(t.path() + "/p/sub", t.path() + "/moved");  // a watched folder moved away
  watcher->drain();
  EXPECT_GT(watcher->last_change(set->ids()), checked);
}

TEST(PublishWatcher, WatchesAreCountedAndGivenBack) {
  auto watcher = std::make_shared<FolderWatcher>();
  if (!watcher->enabled()) GTEST_SKIP() << "no inotify here";
  TempDir t;
  Fd dir(::open(t.path().c_str(), O_RDONLY | O_DIRECTORY));
  auto a = std::make_unique<WatchSet>(watcher);
  auto b = std::make_unique<WatchSet>(watcher);
  ASSERT_TRUE(a->add(dir.get()));
  ASSERT_TRUE(b->add(dir.get()));
  EXPECT_EQ(a->ids(), b->ids()) << "one inode, one kernel watch";
  a.reset();  // b still holds it
  std::uint64_t checked = watcher->drain();
  t.file("x", "x");
  watcher->drain();
  EXPECT_GT(watcher->last_change(b->ids()), checked);
  b.reset();
  std::vector<int> gone{0};
  EXPECT_GE(watcher->last_change(gone), watcher->drain()) << "an unknown watch is never quiet";
}
