#include "auth/tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace feuille::auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kTokenBytes = 32;
constexpr std::size_t kTokenChars = 43;  // ceil(32 * 8 / 6)

std::string base64url(const std::uint8_t* data, std::size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    std::uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (n - i == 1) {
    std::uint32_t v = data[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    std::uint32_t v = (data[i] << 16) | (data[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

}  // namespace

std::string random_token() {
  std::uint8_t bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  auto out = base64url(bytes, sizeof bytes);
  OPENSSL_cleanse(bytes, sizeof bytes);
  return out;
}

bool is_token(std::string_view s) {
  if (s.size() != kTokenChars) return false;
  for (char c : s) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  // 43 characters carry 258 bits: the last one holds 2 padding bits, always 0.
  const char* pos = std::char_traits<char>::find(kAlphabet, 64, s.back());
  return ((pos - kAlphabet) & 3) == 0;
}

TokenHash hash_token(std::string_view token) {
  // OpenSSL 3's SHA256() looks the algorithm up on every call (~2 us); the
  // fetched one is kept (thread-safe to share), which makes this ~5x cheaper.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  TokenHash h;
  unsigned int len = 0;
  if (!sha256 || EVP_Digest(token.data(), token.size(), h.data(), &len, sha256, nullptr) != 1 || len != h.size())
    throw std::runtime_error("SHA-256 failed");
  return h;
}

std::string hex(const TokenHash& h) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(64, '0');
  for (std::size_t i = 0; i < h.size(); ++i) {
    out[2 * i] = digits[h[i] >> 4];
    out[2 * i + 1] = digits[h[i] & 15];
  }
  return out;
}

std::optional<TokenHash> from_hex(std::string_view s) {
  if (s.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  TokenHash h{};
  for (std::size_t i = 0; i < h.size(); ++i) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return h;
}

bool equal_hashes(const TokenHash& a, const TokenHash& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

}  // namespace feuille::auth
