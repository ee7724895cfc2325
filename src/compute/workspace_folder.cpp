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

// A descriptor of a folder, closed when it goes.
struct Dir {
  int fd = -1;
  ~Dir() {
    if (fd >= 0) close(fd);
  }
};

// Creates `name` in the folder `parent` (relative: nothing but that one name is
// looked up, and a symlink there is never followed) and opens it. chowns only
// what this call created. Returns whether it created it.
bool make_dir(const Dir& parent, const std::string& name, const std::string& shown, uid_t uid, gid_t gid, Dir& out) {
  bool created = mkdirat(parent.fd, name.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) fail("cannot create", shown);
  out.fd = openat(parent.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (out.fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) errno = ENOTDIR;
    fail("not a folder:", shown);
  }
  if (created && fchown(out.fd, uid, gid) != 0) fail("cannot give", shown);
  return created;
}

// O_EXCL: an existing file (even one the user emptied) is left alone.
void make_file(const Dir& parent, const char* name, const std::string& shown, std::string_view content, uid_t uid,
               gid_t gid) {
  int fd = openat(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return;
    fail("cannot create", shown);
  }
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = fchown(fd, uid, gid) == 0 && ok;
  close(fd);
  if (!ok) fail("cannot write", shown);
}

}  // namespace

std::string ensure_workspace_folder(const std::string& data_dir, const std::string& user_id, uid_t uid, gid_t gid) {
  if (user_id.empty() || user_id.find('/') != std::string::npos || user_id[0] == '.')
    throw std::invalid_argument("not a user id: " + user_id);
  if (mkdir(data_dir.c_str(), 0755) != 0 && errno != EEXIST) fail("cannot create", data_dir);
  Dir root;
  root.fd = open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root.fd < 0) fail("cannot open", data_dir);
  const std::string home = data_dir + "/" + user_id;
  Dir home_dir, projects;
  make_dir(root, user_id, home, uid, gid, home_dir);
  // The first start is the one that makes Projects/: a Scratch project the
  // user deleted later is not brought back.
  if (make_dir(home_dir, "Projects", home + "/Projects", uid, gid, projects)) {
    const std::string shown = home + "/Projects/Scratch";
    Dir scratch;
    make_dir(projects, "Scratch", shown, uid, gid, scratch);
    make_file(scratch, "mrmd.md", shown + "/mrmd.md", kProjectConfig, uid, gid);
    make_file(scratch, "01-index.md", shown + "/01-index.md", kIndex, uid, gid);
  }
  return home;
}

}  // namespace feuille::compute
