#pragma once
// Turning request paths into names below a project, and opening them without
// ever leaving it. No Boost here: the fuzzer builds this file (with
// http/url.cpp) on its own.
//
// Two layers, both required:
//  - decode_*: a raw (percent-encoded) URL path becomes a list of names, each
//    non-empty, not "." or "..", without '/', '\\', NUL or other control
//    bytes, valid UTF-8 (no overlong forms, no surrogates). Anything else is
//    refused as a whole: the caller answers 404.
//  - open_beneath: opens a relative path below a directory with openat2's
//    RESOLVE_BENEATH, so symlinks (or ".." a decoder missed) that would leave
//    the directory fail in the kernel, atomically.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace feuille::publish {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
bool valid_utf8(std::string_view s);
// The same text with every invalid sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view s);

// One percent-encoded path segment to a safe name (see above); nullopt when
// the segment is not one. Bad percent escapes are refused too.
std::optional<std::string> decode_segment(std::string_view raw);
// A raw path of segments separated by '/' ("" = no segment). Every segment
// must decode (so empty segments, "a//b" or a trailing '/', are refused).
std::optional<std::vector<std::string>> decode_path(std::string_view raw);

// Percent-encodes a name for one URL path segment (unreserved bytes kept).
std::string encode_segment(std::string_view name);
// Percent-encodes each '/'-separated segment of a relative path.
std::string encode_path(std::string_view path);

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();

 private:
  int fd_ = -1;
};

enum class Symlinks {
  beneath,  // followed while they resolve below the directory
  never,    // any symlink on the way fails
};

// Opens `rel` (relative, '/'-separated) below the directory `dir` with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS [| RESOLVE_NO_SYMLINKS]).
// `flags` are open(2) flags; O_CLOEXEC is added. An empty Fd (errno set) when
// it fails, including when the path would leave `dir`.
Fd open_beneath(int dir, const std::string& rel, int flags, Symlinks symlinks = Symlinks::beneath);

}  // namespace feuille::publish
