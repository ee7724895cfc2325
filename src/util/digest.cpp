#include "util/digest.hpp"

#include <openssl/evp.h>

namespace feuille::util {

std::string sha256_hex(std::string_view data, std::size_t chars) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len && out.size() < chars; ++i) out += {hex[md[i] >> 4], hex[md[i] & 15]};
  out.resize(std::min(out.size(), chars));
  return out;
}

}  // namespace feuille::util
