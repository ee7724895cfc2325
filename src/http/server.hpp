#pragma once
// The HTTP/1.1 front end: listeners, one coroutine per connection on its own
// strand, keep-alive, timeouts, request limits, routing, the access log and
// request metrics. Graceful shutdown: stop accepting, close idle connections,
// let busy ones finish their response, then close what is left.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "feuille/config.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"

namespace feuille::http {

struct ServerOptions {
  Duration header_timeout{10'000};     // first byte to end of header
  Duration keepalive_timeout{75'000};  // idle between requests
  Duration body_timeout{30'000};       // reading a buffered (API) body
  Duration write_timeout{30'000};      // writing a buffered response
  std::size_t header_limit = 16 * 1024;
  std::size_t body_limit = 1024 * 1024;
  std::vector<Cidr> trusted_proxies;
  // Workspace origins: a request whose Host names a workspace (the function
  // gives its owner's id, put in RequestContext::workspace) is routed by
  // `workspace_router` alone, one under the workspace domain that names
  // none ("") gets 404, and everything else goes to the main router.
  std::function<std::optional<std::string>(std::string_view host)> workspace_of_host;
  const Router* workspace_router = nullptr;
};

// The response header as feuilled writes it: status line, the response's
// fields, Content-Length (when the body is known and not chunked),
// X-Request-Id, the security headers for feuilled's own pages, Connection.
void serialize_head(const Response& res, std::string& out, bool keep_alive, std::string_view request_id,
                    bool own_page);

class Server {
 public:
  Server(boost::asio::io_context& ioc, ServerOptions options, const Router& router, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every endpoint (port 0 = a free port) and returns the bound ones.
  // Throws std::runtime_error naming the address on failure.
  std::vector<Endpoint> bind(const std::vector<Endpoint>& endpoints);
  void start();           // begin accepting
  void begin_shutdown();  // stop accepting; idle connections close, busy ones after their response
  void close_all();       // force-close every connection
  std::size_t open_connections() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace feuille::http
