#include "proxy/ws_frames.hpp"

#include <algorithm>

namespace feuille::proxy {

namespace {
// Size of a frame header from its second byte (length form and mask bit).
std::size_t header_size(std::uint8_t b1) {
  std::size_t n = 2;
  std::uint8_t len = b1 & 0x7f;
  if (len == 126) n += 2;
  else if (len == 127) n += 8;
  if (b1 & 0x80) n += 4;  // mask key
  return n;
}
}  // namespace

std::size_t FrameCounter::feed(std::span<const std::uint8_t> bytes) {
  std::size_t frames = 0;
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (skip_ > 0) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, bytes.size() - i));
      skip_ -= n;
      i += n;
      continue;
    }
    // Headers are at most 14 bytes: gathered a byte at a time.
    head_[head_len_++] = bytes[i++];
    if (head_len_ < 2 || head_len_ < header_size(head_[1])) continue;
    std::uint8_t opcode = head_[0] & 0x0f;
    if (opcode <= 2) ++frames;
    if (opcode == 8) saw_close_ = true;
    std::uint64_t len = head_[1] & 0x7f;
    if (len == 126) {
      len = (std::uint64_t{head_[2]} << 8) | head_[3];
    } else if (len == 127) {
      len = 0;
      for (int k = 2; k < 10; ++k) len = (len << 8) | head_[k];
    }
    skip_ = len;
    head_len_ = 0;
  }
  return frames;
}

}  // namespace feuille::proxy
