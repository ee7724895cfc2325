#pragma once
// What the reverse proxy needs from the compute module: where a user's
// editor is, starting or waking it on demand, and activity. Lookups are from
// memory; nothing here touches the database per request.
#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "feuille/config.hpp"

namespace feuille::proxy {

struct EditorTarget {
  std::string address;  // where the editor listens (its host's address; 127.0.0.1 on the first host)
  std::uint16_t port = 0;
  std::string token;    // the editor's secret, sent as X-Token
  std::string key() const { return address + ":" + std::to_string(port); }
};

enum class WorkspacePhase { running, on_its_way, stopped, failed };

class WorkspaceGateway {
 public:
  virtual ~WorkspaceGateway() = default;
  // The owner's editor when the workspace is running.
  virtual std::optional<EditorTarget> editor(const std::string& owner_id) = 0;
  virtual WorkspacePhase phase(const std::string& owner_id) = 0;
  // Starts (or wakes) the workspace unless it is running or on its way.
  // Throws RequestError (429 past the start concurrency limit).
  virtual boost::asio::awaitable<void> start(const std::string& owner_id) = 0;
  // Waits (at most `limit`) until the workspace is running; nullopt if it did
  // not get there.
  virtual boost::asio::awaitable<std::optional<EditorTarget>> wait_running(const std::string& owner_id,
                                                                           Duration limit) = 0;
  // A proxied request or WebSocket data frame: the user is active.
  virtual void activity(const std::string& owner_id) = 0;
  // The editor refused or dropped a connection: the compute module checks it.
  virtual void editor_unreachable(const std::string& owner_id) = 0;
};

}  // namespace feuille::proxy
