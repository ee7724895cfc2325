#pragma once
// The stand-in image (tools/standin.cpp packed alone into an image with
// `podman import`): used by the tests and by `feuilled --dev` when the real
// mrmd-editor / mrmd-runtime images are absent.
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

namespace feuille::compute {

class PodmanClient;

struct StandinImage {
  std::string reference;  // localhost/feuille-standin:<12 hex of the binary's SHA-256>
  bool imported = false;  // false: it was already there
};

// Imports the binary as an image unless one of the same content exists. The
// image runs as uid:gid, in /home/user. Blocking file work runs on `pool`.
boost::asio::awaitable<StandinImage> ensure_standin_image(PodmanClient& client, boost::asio::thread_pool& pool,
                                                          std::string binary_path, unsigned uid, unsigned gid);

// feuille-standin next to the running executable (the build folder), if any.
std::optional<std::string> find_standin_binary();

// Commands for the stand-in, with the configured health paths.
std::string standin_editor_command(const std::string& health_path);
std::string standin_runtime_command(const std::string& health_path);

}  // namespace feuille::compute
