#include "compute/workspace_folder.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace feuille::compute {
namespace {

constexpr std::string_view kProjectConfig =
    "# Scratch\n"
    "\n"
    "A place to try things out. Every folder under Projects/ with an mrmd.md is a project.\n"
    "\n"
    "```yaml config\n"
    "name: Scratch\n"
    "publish:\n"
    "  visibility: private\n"
    "```\n";

constexpr std::string_view kIndex =
    "# Scratch\n"
    "\n"
    "Welcome to Feuille. Write markdown here, and run Python in code blocks:\n"
    "\n"
    "```python\n"
    "print(\"hello from your runtime\")\n"
    "```\n";

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

// mkdir; chown only what this call created. True when it created it.
bool make_dir(const std::string& path, uid_t uid, gid_t gid) {
  if (mkdir(path.c_str(), 0755) == 0) {
    if (chown(path.c_str(), uid, gid) != 0) fail("cannot give", path);
    return true;
  }
  if (errno != EEXIST) fail("cannot create", path);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    fail("not a folder:", path);
  }
  return false;
}

// O_EXCL: an existing file (even one the user emptied) is left alone.
void make_file(const std::string& path, std::string_view content, uid_t uid, gid_t gid) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return;
    fail("cannot create", path);
  }
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = fchown(fd, uid, gid) == 0 && ok;
  close(fd);
  if (!ok) fail("cannot write", path);
}

}  // namespace

std::string ensure_workspace_folder(const std::string& data_dir, const std::string& user_id, uid_t uid, gid_t gid) {
  if (mkdir(data_dir.c_str(), 0755) != 0 && errno != EEXIST) fail("cannot create", data_dir);
  const std::string home = data_dir + "/" + user_id;
  make_dir(home, uid, gid);
  // The first start is the one that makes Projects/: a Scratch project the
  // user deleted later is not brought back.
  if (make_dir(home + "/Projects", uid, gid)) {
    const std::string scratch = home + "/Projects/Scratch";
    make_dir(scratch, uid, gid);
    make_file(scratch + "/mrmd.md", kProjectConfig, uid, gid);
    make_file(scratch + "/01-index.md", kIndex, uid, gid);
  }
  return home;
}

}  // namespace feuille::compute
