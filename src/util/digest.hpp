#pragma once
// SHA-256 as lowercase hex (OpenSSL): content-addressed names and
// fingerprints (the stand-in image's tag, static assets, the egress rules'
// fingerprint, dev mode's folders). Not for secrets' comparison.
#include <cstddef>
#include <string>
#include <string_view>

namespace feuille::util {

// The first `chars` hex digits (at most 64) of SHA-256(data).
std::string sha256_hex(std::string_view data, std::size_t chars = 64);

}  // namespace feuille::util
