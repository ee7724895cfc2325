// libFuzzer target: the publish path resolver. Whatever the bytes, a decoded
// path holds only safe names, and nothing opened below the project folder
// (decoded or raw) is outside it, symlinks included.
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "publish/path.hpp"

using namespace feuille::publish;

namespace {

int project_fd = -1;
std::string project_real;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    __builtin_trap();
  }
}

void put(const std::string& path, const char* text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f) {
    std::fputs(text, f);
    std::fclose(f);
  }
}

// Where an open descriptor really points.
std::string real_path_of(int fd) {
  char link[64], target[PATH_MAX + 1];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, target, PATH_MAX);
  return n < 0 ? std::string() : std::string(target, static_cast<std::size_t>(n));
}

void check_inside(int dir, const std::string& rel) {
  if (rel.find('\0') != std::string::npos) return;
  Fd f = open_beneath(dir, rel, O_PATH);
  if (!f) return;
  std::string where = real_path_of(f.get());
  check(where == project_real || where.rfind(project_real + "/", 0) == 0, "opened a file outside the project");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/feuille-fuzz-path-XXXXXX";
  char* root = ::mkdtemp(tmpl);
  if (!root) return 0;
  std::string r = root;
  static std::string tree = r;
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(tree, ignored);
  });
  ::mkdir((r + "/outside").c_str(), 0755);
  ::mkdir((r + "/project").c_str(), 0755);
  ::mkdir((r + "/project/sub").c_str(), 0755);
  ::mkdir((r + "/project/_assets").c_str(), 0755);
  put(r + "/outside/secret", "secret");
  put(r + "/project/a.md", "# A");
  put(r + "/project/sub/b.md", "# B");
  put(r + "/project/_assets/x.png", "png");
  (void)!::symlink("a.md", (r + "/project/link-in").c_str());
  (void)!::symlink("../outside/secret", (r + "/project/link-out").c_str());
  (void)!::symlink((r + "/outside").c_str(), (r + "/project/abs-out").c_str());
  (void)!::symlink("/etc", (r + "/project/etc").c_str());
  (void)!::symlink("loop", (r + "/project/loop").c_str());
  (void)!::symlink("../sub/../../outside", (r + "/project/sub/up").c_str());
  project_fd = ::open((r + "/project").c_str(), O_RDONLY | O_DIRECTORY);
  char real[PATH_MAX + 1];
  if (::realpath((r + "/project").c_str(), real)) project_real = real;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);

  if (auto segments = decode_path(input)) {
    std::string joined;
    for (const auto& s : *segments) {
      check(!s.empty() && s.size() <= 255, "segment size");
      check(s != "." && s != "..", "dot segment");
      for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        check(c != '/' && c != '\\' && u >= 0x20 && u != 0x7F, "forbidden byte in a segment");
      }
      check(valid_utf8(s), "invalid UTF-8 in a segment");
      check(decode_segment(encode_segment(s)) == s, "encode/decode round trip");
      if (!joined.empty()) joined.push_back('/');
      joined += s;
    }
    if (project_fd >= 0 && !joined.empty()) check_inside(project_fd, joined);
  }
  if (auto name = decode_segment(input)) check(name->find('/') == std::string::npos, "slash in a segment");

  // The kernel layer alone holds too, for any raw relative path.
  if (project_fd >= 0 && !input.empty()) check_inside(project_fd, input);

  check(valid_utf8(to_valid_utf8(input)), "to_valid_utf8");
  return 0;
}
