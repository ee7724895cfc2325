#pragma once
// Secrets handed to browsers (session cookies, invite links, OAuth state):
// 256 random bits from OpenSSL, written as 43 characters of base64url. The
// database only ever sees their SHA-256.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace feuille::auth {

using TokenHash = std::array<std::uint8_t, 32>;

// A fresh token (32 bytes of RAND_bytes, base64url without padding).
std::string random_token();

// True when `s` has the shape random_token() produces.
bool is_token(std::string_view s);

// SHA-256 of the token text.
TokenHash hash_token(std::string_view token);

// Lowercase hex of a hash: how queries pass it (decode($1, 'hex')).
std::string hex(const TokenHash& h);

// The hash of 64 hex digits, or nullopt.
std::optional<TokenHash> from_hex(std::string_view s);

// Constant-time comparison of two hashes.
bool equal_hashes(const TokenHash& a, const TokenHash& b);

struct TokenHashHasher {
  std::size_t operator()(const TokenHash& h) const noexcept {
    std::size_t v = 0;
    for (std::size_t i = 0; i < sizeof v; ++i) v = (v << 8) | h[i];  // already uniform
    return v;
  }
};

}  // namespace feuille::auth
