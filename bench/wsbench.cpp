// feuille_wsbench: WebSocket measurements for bench/proxy.sh.
//   feuille_wsbench rtt  PORT PATH COUNT [COOKIE [HOST]]   sequential 32-byte echoes: median and p99 round trip
//   feuille_wsbench idle PORT PATH COUNT [COOKIE [HOST]]   opens COUNT WebSockets, prints "open COUNT", holds
//                                                          them until stdin closes, then closes them
// Always to 127.0.0.1; HOST (a workspace origin's host:port) is sent as Host,
// and http://HOST as Origin (default 127.0.0.1:PORT).
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

std::unique_ptr<websocket::stream<tcp::socket>> open(asio::io_context& ioc, unsigned short port, const std::string& path,
                                                     const std::string& cookie, const std::string& host) {
  auto ws = std::make_unique<websocket::stream<tcp::socket>>(ioc);
  ws->next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ws->next_layer().set_option(tcp::no_delay(true));
  ws->set_option(websocket::stream_base::decorator([&](websocket::request_type& req) {
    if (!cookie.empty()) req.set(beast::http::field::cookie, cookie);
    req.set(beast::http::field::origin, "http://" + host);
  }));
  ws->handshake(host, path);
  return ws;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: feuille_wsbench rtt|idle PORT PATH COUNT [COOKIE [HOST]]\n");
    return 2;
  }
  std::string mode = argv[1];
  auto port = static_cast<unsigned short>(std::stoi(argv[2]));
  std::string path = argv[3];
  int count = std::stoi(argv[4]);
  std::string cookie = argc > 5 ? argv[5] : "";
  std::string host = argc > 6 ? argv[6] : "127.0.0.1:" + std::to_string(port);
  asio::io_context ioc;
  try {
    if (mode == "rtt") {
      auto ws = open(ioc, port, path, cookie, host);
      std::string message(32, 'x');
      beast::flat_buffer buffer;
      std::vector<double> us;
      us.reserve(static_cast<std::size_t>(count));
      for (int i = 0; i < count + 50; ++i) {  // the first 50 warm up
        auto start = std::chrono::steady_clock::now();
        ws->write(asio::buffer(message));
        buffer.consume(buffer.size());
        ws->read(buffer);
        auto d = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
        if (i >= 50) us.push_back(d);
      }
      ws->close(websocket::close_code::normal);
      std::sort(us.begin(), us.end());
      std::printf("median_us %.1f p99_us %.1f\n", us[us.size() / 2], us[us.size() * 99 / 100]);
    } else if (mode == "idle") {
      std::vector<std::unique_ptr<websocket::stream<tcp::socket>>> all;
      all.reserve(static_cast<std::size_t>(count));
      for (int i = 0; i < count; ++i) all.push_back(open(ioc, port, path, cookie, host));
      std::printf("open %d\n", count);
      std::fflush(stdout);
      std::string line;
      while (std::getline(std::cin, line)) {
      }
      for (auto& ws : all) {
        beast::error_code ec;
        ws->next_layer().close(ec);
      }
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "feuille_wsbench: %s\n", e.what());
    return 1;
  }
  return 0;
}
