#include "publish/path.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "http/url.hpp"

namespace feuille::publish {
namespace {

constexpr std::size_t kMaxSegment = 255;  // NAME_MAX
constexpr std::size_t kMaxPath = 4096;    // PATH_MAX
constexpr std::size_t kMaxSegments = 64;

// Length of the valid UTF-8 sequence starting at s[i], 0 when invalid.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) n = 3;
  else if (c == 0xED) n = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xEE && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;  // <= U+10FFFF
  else return 0;                         // continuation byte, C0/C1 (overlong), F5..FF
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::optional<std::string> decode_segment(std::string_view raw) {
  auto decoded = http::percent_decode(raw);  // '+' stays '+' in a path
  if (!decoded) return std::nullopt;
  const std::string& out = *decoded;
  if (out.empty() || out.size() > kMaxSegment || out == "." || out == "..") return std::nullopt;
  for (char ch : out) {
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7F || ch == '/' || ch == '\\') return std::nullopt;
  }
  if (!valid_utf8(out)) return std::nullopt;
  return decoded;
}

std::optional<std::vector<std::string>> decode_path(std::string_view raw) {
  std::vector<std::string> out;
  if (raw.empty()) return out;
  if (raw.size() > kMaxPath) return std::nullopt;
  for (;;) {
    auto slash = raw.find('/');
    auto name = decode_segment(raw.substr(0, slash));
    if (!name || out.size() == kMaxSegments) return std::nullopt;
    out.push_back(std::move(*name));
    if (slash == std::string_view::npos) return out;
    raw.remove_prefix(slash + 1);
  }
}

std::string encode_segment(std::string_view name) { return http::url_encode(name); }

std::string encode_path(std::string_view path) {
  std::string out;
  for (;;) {
    auto slash = path.find('/');
    out += encode_segment(path.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    out.push_back('/');
    path.remove_prefix(slash + 1);
  }
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Fd open_beneath(int dir, const std::string& rel, int flags, Symlinks symlinks) {
  if (rel.empty() || rel.front() == '/' || rel.find('\0') != std::string::npos) {
    errno = ENOENT;
    return Fd{};
  }
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  if (symlinks == Symlinks::never) how.resolve |= RESOLVE_NO_SYMLINKS;
  // EAGAIN: a concurrent rename made the kernel unsure that ".." stayed
  // beneath; it may be retried (a few times: a busy attacker gets a failure).
  for (int attempt = 0; attempt < 8; ++attempt) {
    long fd = ::syscall(SYS_openat2, dir, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return Fd(static_cast<int>(fd));
    if (errno != EINTR && errno != EAGAIN) return Fd{};
  }
  return Fd{};
}

}  // namespace feuille::publish
