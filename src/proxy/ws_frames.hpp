#pragma once
// Counts WebSocket data frames in a byte stream relayed verbatim, reading
// frame headers only (RFC 6455 section 5.2): payloads are skipped, never
// buffered, and headers split across reads are handled.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace feuille::proxy {

class FrameCounter {
 public:
  // Feeds the next bytes of the stream; returns how many data frames
  // (continuation, text, binary: not close, ping or pong) started in them.
  std::size_t feed(std::span<const std::uint8_t> bytes);
  bool closed() const { return saw_close_; }
  // Between two frames (or inside a fragmented message, between its
  // frames): where a control frame may be put in.
  bool at_boundary() const { return skip_ == 0 && head_len_ == 0; }

 private:
  std::uint64_t skip_ = 0;               // payload bytes of the current frame still to pass
  std::array<std::uint8_t, 14> head_{};  // a frame header being gathered
  std::size_t head_len_ = 0;
  bool saw_close_ = false;
};

}  // namespace feuille::proxy
