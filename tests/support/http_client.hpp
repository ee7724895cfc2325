#pragma once
// A blocking HTTP/1.1 client for tests: raw bytes in, parsed response out.
#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace feuille::test {

struct HttpResponse {
  int status = 0;
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const;
};

class RawConnection {
 public:
  RawConnection(const std::string& host, int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void send(const std::string& bytes);
  // Reads one response (Content-Length, chunked or until close). nullopt when
  // the connection closed first or the timeout passed.
  std::optional<HttpResponse> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                            bool head = false);
  // True when the peer has closed (read returns 0) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buf_;
};

// One request on a fresh connection.
HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::map<std::string, std::string>& headers = {}, const std::string& body = "",
                          const std::string& host = "127.0.0.1");

}  // namespace feuille::test
