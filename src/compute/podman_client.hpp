#pragma once
// A client of one Podman host's libpod REST API (/v4.0.0/libpod/...), over a
// unix socket (unix:///run/podman/podman.sock; plain TCP is refused).
// HTTP/1.1 with a small pool of keep-alive connections; every call has a
// deadline; request bodies can be streamed (chunked) and response bodies
// read as they arrive (the event stream, checkpoint archives). Errors carry
// Podman's own message. Everything runs on the executor given (the loop).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include "feuille/config.hpp"

namespace boost::asio {
class thread_pool;
}

namespace feuille::compute {

// A failed call. status 0 = the host could not be reached or broke the
// exchange (connection refused, timeout, malformed answer); otherwise the
// HTTP status Podman answered, with its "cause" and "message".
struct PodmanError : std::runtime_error {
  PodmanError(std::string host, unsigned status, std::string cause, const std::string& message);
  std::string host;
  unsigned status;
  std::string cause;
  std::string message;  // Podman's message (or the transport error)
  bool unreachable() const { return status == 0; }
};

struct PodmanReply {
  unsigned status = 0;
  std::string body;
  nlohmann::json json() const;  // the body parsed (null when empty or not JSON)
};

class PodmanClient {
 public:
  struct Options {
    std::string host_name = "podman";  // for messages
    std::size_t max_idle = 4;          // keep-alive connections kept open
    Duration connect_timeout{2'000};
    Duration timeout{30'000};   // default deadline of one call
    Duration idle_keep{20'000};  // an idle connection older than this is not reused
  };
  // `url` is unix:///path (validated by the config; anything else throws
  // std::invalid_argument).
  PodmanClient(boost::asio::any_io_executor executor, std::string url, Options options);
  ~PodmanClient();
  PodmanClient(const PodmanClient&) = delete;
  PodmanClient& operator=(const PodmanClient&) = delete;

  const std::string& url() const;
  const std::string& host_name() const;
  // Connections opened so far (the pool's effect can be seen).
  std::size_t connections_opened() const;

  // One exchange with a buffered body both ways (the response is capped at
  // 64 MiB). Throws PodmanError(status 0) on transport failure; any HTTP
  // status is returned. A request that fails on a reused connection before
  // any answer is retried once on a fresh one.
  boost::asio::awaitable<PodmanReply> request(boost::beast::http::verb method, std::string target,
                                              std::string body = {}, std::string content_type = {},
                                              std::optional<Duration> timeout = {});

  // Fills the buffer and returns the byte count; 0 = end of the body.
  using BodySource = std::function<boost::asio::awaitable<std::size_t>(boost::asio::mutable_buffer)>;
  // A request whose body is streamed chunked from `source`; `idle_timeout`
  // bounds each chunk and the wait for the answer.
  boost::asio::awaitable<PodmanReply> upload(boost::beast::http::verb method, std::string target,
                                             std::string content_type, BodySource source, Duration idle_timeout);

  // A response read as it arrives, on its own connection (never pooled).
  class ResponseStream {
   public:
    virtual ~ResponseStream() = default;
    virtual unsigned status() const = 0;
    // Up to buffer size bytes of the body; 0 = the body ended. `idle` bounds
    // the wait (nullopt = no bound: the event stream). Throws PodmanError.
    virtual boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer buffer,
                                                          std::optional<Duration> idle) = 0;
    // The rest of the body, buffered (for error answers), capped at 1 MiB.
    virtual boost::asio::awaitable<std::string> read_rest(Duration timeout) = 0;
    // Ends a pending read_some (it throws PodmanError); safe to call any time.
    virtual void close() = 0;
  };
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> open(boost::beast::http::verb method, std::string target,
                                                               Duration header_timeout);

  // ---- libpod calls. Each throws PodmanError on failure. ----
  boost::asio::awaitable<void> ping(std::optional<Duration> timeout = {});
  boost::asio::awaitable<std::string> version();  // "4.3.1"
  boost::asio::awaitable<nlohmann::json> info();
  // Returns the new container's id.
  // `timeout` overrides the client's default deadline for one call.
  boost::asio::awaitable<std::string> create_container(nlohmann::json spec,
                                                       std::optional<Duration> timeout = {});
  // Already running is fine.
  boost::asio::awaitable<void> start_container(std::string name, std::optional<Duration> timeout = {});
  boost::asio::awaitable<void> stop_container(std::string name, int timeout_seconds);  // already stopped is fine
  boost::asio::awaitable<void> kill_container(std::string name, std::string signal = "KILL");
  // False when there was no such container. With force, a running one is
  // stopped first (SIGTERM, then SIGKILL after stop_timeout_seconds).
  boost::asio::awaitable<bool> remove_container(std::string name, bool force, int stop_timeout_seconds = 0,
                                                std::optional<Duration> timeout = {});
  // nullopt when there is no such container.
  boost::asio::awaitable<std::optional<nlohmann::json>> inspect_container(std::string name,
                                                                          std::optional<Duration> timeout = {});
  // The last `lines` lines a container wrote (stdout and stderr, as they
  // came), at most 64 KiB.
  boost::asio::awaitable<std::string> logs_tail(std::string name, int lines, Duration timeout);
  // Changes a running container's resource limits (`limits` as a create
  // spec's resource_limits: memory, cpu).
  boost::asio::awaitable<void> update_resources(std::string name, nlohmann::json limits, Duration timeout);
  // The size of the container's writable layer (its files changed or added
  // outside its volumes: Podman's SizeRw; walking them takes a moment).
  boost::asio::awaitable<std::uint64_t> writable_layer_bytes(std::string name, Duration timeout);
  // Containers (running or not) carrying every label ("key=value").
  boost::asio::awaitable<nlohmann::json> list_containers(std::vector<std::string> labels);
  // Waits for a condition ("stopped", "exited", ...); returns the exit code.
  boost::asio::awaitable<int> wait_container(std::string name, std::string condition, Duration timeout);
  // One stats sample of the named containers (the "Stats" array).
  boost::asio::awaitable<nlohmann::json> container_stats(std::vector<std::string> names,
                                                         std::optional<Duration> timeout = {});
  // Pods (the editor's: its infra container holds the editor's namespace).
  // Returns the pod's id.
  boost::asio::awaitable<std::string> create_pod(nlohmann::json spec, std::optional<Duration> timeout = {});
  boost::asio::awaitable<void> start_pod(std::string name, std::optional<Duration> timeout = {});
  // Removes the pod and every container in it (killed). False when there was none.
  boost::asio::awaitable<bool> remove_pod(std::string name, std::optional<Duration> timeout = {});
  boost::asio::awaitable<bool> image_exists(std::string reference);
  // Imports a root file system tarball (streamed) as `reference`; `changes`
  // are Containerfile instructions ("USER=1000:1000"). Returns the image id.
  boost::asio::awaitable<std::string> import_image(std::string reference,
                                                   std::vector<std::string> changes, BodySource tarball);

  // A checkpoint exported (POST .../checkpoint?export=true): the archive, an
  // uncompressed tar, is passed to `sink` piece by piece as it arrives.
  // Podman answers only once the dump is complete (and spooled under its
  // TMPDIR): `dump_timeout` bounds that wait, `idle` each piece after it.
  // Returns the archive's size. Without leave_running the container is
  // stopped by the dump. tcp_established lets a dump carry established TCP
  // connections (they are not restored: podman-criu-contract.md).
  struct CheckpointOptions {
    bool leave_running = false;
    bool tcp_established = false;
  };
  // The archive reaches `sink` in pieces of up to 1 MiB (gathered from
  // Podman's small chunks, so a file sink writes rarely).
  using Sink = std::function<boost::asio::awaitable<void>(boost::asio::const_buffer)>;
  boost::asio::awaitable<std::uint64_t> checkpoint_export(std::string name, CheckpointOptions options, Sink sink,
                                                          Duration dump_timeout, Duration idle);

  // A body read from a file piece by piece (an archive to restore), each
  // read on `pool`. Throws std::runtime_error when it cannot be opened.
  static BodySource file_source(const std::string& path, boost::asio::thread_pool& pool);

  // A checkpoint archive restored as a new container `name` (POST
  // .../containers/{name}/restore?import=true&name=...), the archive streamed
  // from `tarball`. Podman spools it whole, then restores (started, with the
  // labels and limits of the checkpointed container, a new id: returned).
  // `timeout` bounds each piece and the restore. tcp_established must be
  // set for an archive dumped with it. A failure may leave a `created`
  // container holding the name (podman-criu-contract.md).
  boost::asio::awaitable<std::string> restore_import(std::string name, BodySource tarball, bool tcp_established,
                                                     Duration timeout);

  // Renames a container (running or not).
  boost::asio::awaitable<void> rename_container(std::string name, std::string new_name);

  // Builds the error of a non-2xx reply (Podman's cause and message).
  PodmanError error_of(const PodmanReply& reply, const std::string& what) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace feuille::compute
