#pragma once
// What the reverse proxy (and any other module) needs from compute: where a
// user's editor is, starting it on demand, and telling compute about
// activity and refused connections. Documented in docs/compute.md.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "compute/netns.hpp"
#include "compute/state.hpp"
#include "feuille/config.hpp"

namespace feuille::compute {

struct EditorTarget {
  State state = State::stopped;
  std::string address;     // where the editor listens inside its namespace (127.0.0.1)
  std::uint16_t port = 0;  // 0 unless running
  NetnsPtr netns;          // the editor's network namespace (null unless running): sockets are made there
  std::string token;       // the editor's secret, sent upstream as X-Token ("" unless running)
  std::string reason;      // why it failed, when state is failed
  bool falling_asleep = false;  // stopping for a sleep: a visit waits for it, then wakes it
};

class Workspaces {
 public:
  virtual ~Workspaces() = default;

  // The user's editor as known right now, from memory (no I/O, cheap enough
  // for every proxied request). nullopt = this user has no workspace record yet
  // (never started).
  virtual std::optional<EditorTarget> editor(const std::string& user_id) const = 0;

  // Starts the workspace (or joins the start in flight; a later issue adds
  // waking a sleeping one) and waits up to `max_wait` for it to run. Returns
  // the target, whose state may still be starting when the wait ran out, or
  // failed. Throws feuille::RequestError: 429 + Retry-After when the start
  // concurrency limit is reached, 503 when the host cannot be reached, 404 when
  // the user does not exist.
  virtual boost::asio::awaitable<EditorTarget> start_and_wait(std::string user_id, Duration max_wait) = 0;

  // Waits, up to `max_wait`, while the workspace is on its way (starting,
  // waking, migrating) without starting anything (a member's request), and
  // returns its editor as it is then.
  virtual boost::asio::awaitable<std::optional<EditorTarget>> wait_on_its_way(std::string user_id,
                                                                              Duration max_wait) = 0;

  // A proxied request or WebSocket data frame: memory only, written to the
  // database in batches (workspaces.last_activity_at).
  virtual void record_activity(const std::string& user_id) = 0;

  // The proxy could not connect to the editor: probe the workspace now
  // instead of at the next round (restarts or fails it if it is dead).
  virtual void editor_refused(const std::string& user_id) = 0;

  // Called on the loop when a workspace begins to stop (asked, or idle):
  // the proxy closes what is open into it. `asleep`: it is going to sleep
  // (idle), so the ways in stay valid for its wake.
  virtual void on_stopping(std::function<void(const std::string& user_id, bool asleep)> listener) = 0;
};

}  // namespace feuille::compute
