#include "compute/standin_image.hpp"

#include <unistd.h>

#include <boost/asio/buffer.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "compute/podman_client.hpp"
#include "util/digest.hpp"
#include "util/offload.hpp"

namespace feuille::compute {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr const char* kInside = "feuille-standin";

// A zero-padded octal number filling width - 1 characters, then NUL.
void octal(char* field, std::size_t width, unsigned long long value) {
  for (std::size_t i = width - 1; i-- > 0; value >>= 3) field[i] = static_cast<char>('0' + (value & 7));
  field[width - 1] = '\0';
}

// One ustar member: a file (type '0') or a folder (type '5').
void tar_member(std::string& out, const std::string& name, char type, unsigned mode, unsigned uid, unsigned gid,
                const std::string& data) {
  char h[512] = {};
  std::strncpy(h, name.c_str(), 99);
  octal(h + 100, 8, mode);
  octal(h + 108, 8, uid);
  octal(h + 116, 8, gid);
  octal(h + 124, 12, data.size());
  octal(h + 136, 12, 0);
  std::memset(h + 148, ' ', 8);
  h[156] = type;
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  octal(h + 148, 7, sum);  // six digits, NUL, then the space already there

  out.append(h, sizeof h);
  out += data;
  out.append((512 - data.size() % 512) % 512, '\0');
}

}  // namespace

asio::awaitable<StandinImage> ensure_standin_image(PodmanClient& client, asio::thread_pool& pool,
                                                   std::string binary_path, unsigned uid, unsigned gid) {
  auto binary = co_await offload(pool, [&]() {
    std::ifstream in(binary_path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the stand-in binary " + binary_path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  });
  StandinImage out;
  out.reference = "localhost/feuille-standin:" + util::sha256_hex(binary, 12);
  if (co_await client.image_exists(out.reference)) co_return out;

  auto tar = std::make_shared<std::string>();
  tar_member(*tar, "home/", '5', 0755, 0, 0, "");
  tar_member(*tar, "home/user/", '5', 0755, uid, gid, "");
  tar_member(*tar, "tmp/", '5', 01777, 0, 0, "");
  tar_member(*tar, kInside, '0', 0755, 0, 0, binary);
  tar->append(1024, '\0');
  auto offset = std::make_shared<std::size_t>(0);
  PodmanClient::BodySource source = [tar, offset](asio::mutable_buffer buf) -> asio::awaitable<std::size_t> {
    std::size_t n = std::min(buf.size(), tar->size() - *offset);
    std::memcpy(buf.data(), tar->data() + *offset, n);
    *offset += n;
    co_return n;
  };
  std::vector<std::string> changes{"USER=" + std::to_string(uid) + ":" + std::to_string(gid), "WORKDIR=/home/user",
                                   "LABEL=io.feuille.standin=1"};
  co_await client.import_image(out.reference, changes, std::move(source));
  out.imported = true;
  co_return out;
}

std::optional<std::string> find_standin_binary() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  auto candidate = self.parent_path() / kInside;
  if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  return std::nullopt;
}

std::string standin_editor_command(const std::string& health_path) {
  return std::string("/") + kInside + " editor --port {port} --host 127.0.0.1 --token {token} --health-path '" +
         health_path + "'";
}

std::string standin_runtime_command(const std::string& health_path) {
  return std::string("/") + kInside + " runtime --port 8888 --host 0.0.0.0 --health-path '" + health_path + "'";
}

}  // namespace feuille::compute
