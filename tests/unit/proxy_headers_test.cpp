#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy/headers.hpp"
#include "proxy/ws_frames.hpp"

using namespace feuille;
using namespace feuille::proxy;
using ::testing::HasSubstr;
using ::testing::Not;
namespace bh = boost::beast::http;

namespace {

http::bh::request_header<> request(std::initializer_list<std::pair<std::string, std::string>> fields) {
  http::bh::request_header<> h;
  h.method(bh::verb::post);
  h.target("/u/abc/api/x?q=1");
  h.version(11);
  for (auto& [k, v] : fields) h.insert(k, v);
  return h;
}

ForwardInfo info() {
  return ForwardInfo{"/api/x?q=%41&b", "203.0.113.9", "https", "user-1", "editor", "tok3n", "rid123"};
}

}  // namespace

TEST(ProxyHeaders, UpstreamRequestAddsAndStripsWhatTheSpecSays) {
  auto h = request({{"Host", "feuille.example.org"},
                    {"X-Feuille-User", "someone-else"},
                    {"x-feuille-role", "owner"},
                    {"X-Token", "stolen"},
                    {"X-Forwarded-For", "1.2.3.4"},
                    {"Cookie", "a=1; feuille_session=SECRET; b=2"},
                    {"Connection", "keep-alive, X-Hop"},
                    {"X-Hop", "drop me"},
                    {"Keep-Alive", "timeout=5"},
                    {"TE", "trailers"},
                    {"Expect", "100-continue"},
                    {"Authorization", "Bearer SESSIONTOKEN"},
                    {"Content-Length", "5"},
                    {"Accept", "application/json"}});
  std::string out;
  write_upstream_request(h, info(), {Framing::sized, 5}, false, out);
  EXPECT_THAT(out, ::testing::StartsWith("POST /api/x?q=%41&b HTTP/1.1\r\n"));
  EXPECT_THAT(out, HasSubstr("Host: feuille.example.org\r\n"));
  EXPECT_THAT(out, HasSubstr("Accept: application/json\r\n"));
  EXPECT_THAT(out, HasSubstr("Cookie: a=1; b=2\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Forwarded-For: 203.0.113.9\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Forwarded-Proto: https\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Forwarded-Host: feuille.example.org\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Feuille-User: user-1\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Feuille-Role: editor\r\n"));
  EXPECT_THAT(out, HasSubstr("X-Token: tok3n\r\n"));
  EXPECT_THAT(out, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(out, HasSubstr("Connection: keep-alive\r\n\r\n"));
  for (auto gone : {"someone-else", "owner", "stolen", "1.2.3.4", "SECRET", "X-Hop", "Keep-Alive", "TE:", "Expect",
                    "SESSIONTOKEN"})
    EXPECT_THAT(out, Not(HasSubstr(gone))) << gone;
  // Exactly one of each added header.
  EXPECT_EQ(out.find("X-Feuille-User"), out.rfind("X-Feuille-User"));
}

TEST(ProxyHeaders, UpgradeKeepsUpgradeAndChunkedIsDeclared) {
  auto h = request({{"Host", "h"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"},
                    {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Sec-WebSocket-Version", "13"}});
  EXPECT_FALSE(is_upgrade(h)) << "only a GET can be an upgrade";
  std::string posted;
  write_upstream_request(h, info(), {Framing::sized, 3}, false, posted);  // relayed as plain HTTP, framed
  EXPECT_THAT(posted, Not(HasSubstr("Upgrade")));
  EXPECT_THAT(posted, HasSubstr("Content-Length: 3\r\nConnection: keep-alive\r\n\r\n"));
  h.method(bh::verb::get);
  EXPECT_TRUE(is_upgrade(h));
  std::string out;
  write_upstream_request(h, info(), {}, true, out);
  EXPECT_THAT(out, HasSubstr("Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
  EXPECT_THAT(out, HasSubstr("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
  auto plain = request({{"Host", "h"}, {"Transfer-Encoding", "chunked"}});
  EXPECT_FALSE(is_upgrade(plain));
  write_upstream_request(plain, info(), {Framing::chunked, 0}, false, out);
  EXPECT_THAT(out, HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_EQ(out.find("chunked"), out.rfind("chunked"));
}

TEST(ProxyHeaders, UpgradesCarryTheEditorsTokenInTheQueryAndNoOther) {
  EXPECT_EQ(upgrade_query("", "T"), "token=T");
  EXPECT_EQ(upgrade_query("doc=a%20b&x", "T"), "doc=a%20b&x&token=T");
  // A token the browser sent, under any spelling of the name, never reaches the editor.
  EXPECT_EQ(upgrade_query("token=evil&a=1&%74oken=evil2&t%6Fken&b=2", "T"), "a=1&b=2&token=T");
  EXPECT_EQ(upgrade_query("a=1&&tokens=3", "T"), "a=1&tokens=3&token=T");
}

TEST(ProxyHeaders, OurCookiesAndNamelessOnesAreDropped) {
  EXPECT_FALSE(strip_own_cookies("feuille_session=x"));
  EXPECT_EQ(*strip_own_cookies("feuille_session=x;theme=dark"), "theme=dark");
  EXPECT_EQ(*strip_own_cookies(" a=1 ;b=2"), "a=1; b=2");
  EXPECT_EQ(*strip_own_cookies("Feuille_ws=w; feuille_sessionX=1; c=3"), "c=3");
  EXPECT_EQ(*strip_own_cookies("=feuille_session=x; justavalue; d=4"), "d=4");
  EXPECT_EQ(*strip_own_cookies("__Host-feuille_ws=w; __Secure-feuille_x=1; e=5"), "e=5");
}

TEST(ProxyHeaders, AnEditorsCookiesStayOnItsOrigin) {
  EXPECT_FALSE(editor_set_cookie("feuille_ws=x; Path=/"));
  EXPECT_FALSE(editor_set_cookie(" __Host-feuille_ws=x; Path=/; Secure"));
  EXPECT_FALSE(editor_set_cookie("__secure-FEUILLE_session=x"));
  EXPECT_EQ(*editor_set_cookie("theme=dark; Domain=ws.example.org; Path=/u/a/; HttpOnly"),
            "theme=dark; Path=/u/a/; HttpOnly");
  EXPECT_EQ(*editor_set_cookie("t=1;domain=.example.org;  SameSite=Lax"), "t=1; SameSite=Lax");
  EXPECT_EQ(*editor_set_cookie("t=1; Domainx=y"), "t=1; Domainx=y");
}

TEST(ProxyHeaders, NoAuthorizationReachesTheEditor) {
  // mrmd-server reads its token from ?token=, then Authorization (any
  // value, "Bearer " taken off), then X-Token: a browser's Basic credentials
  // would be taken for a wrong token.
  for (const char* value : {"Bearer SESSIONTOKEN", "Basic dXNlcjpwYXNz", "tok3n"}) {
    auto h = request({{"Host", "h"}, {"Authorization", value}});
    h.method(bh::verb::get);
    std::string out;
    write_upstream_request(h, info(), {}, false, out);
    EXPECT_THAT(out, Not(HasSubstr("Authorization"))) << value;
    EXPECT_THAT(out, HasSubstr("X-Token: tok3n\r\n"));
  }
}

TEST(ProxyHeaders, ForwardedAndMethodOverridesAreDropped) {
  auto h = request({{"Host", "h"},
                    {"Forwarded", "for=1.2.3.4;host=evil"},
                    {"X-HTTP-Method-Override", "DELETE"},
                    {"X-HTTP-Method", "PUT"},
                    {"x-method-override", "PATCH"}});
  h.method(bh::verb::get);
  std::string out;
  write_upstream_request(h, info(), {}, false, out);
  for (auto gone : {"Forwarded:", "evil", "DELETE", "PUT", "PATCH", "verride"}) EXPECT_THAT(out, Not(HasSubstr(gone))) << gone;
}

TEST(ProxyHeaders, ClientResponseDropsHopByHopAndOurCookies) {
  bh::response_header<> r;
  r.result(200);
  r.version(11);
  r.insert("Content-Type", "text/plain");
  r.insert("Connection", "close, X-Private");
  r.insert("X-Private", "x");
  r.insert("Transfer-Encoding", "chunked");
  r.insert("Set-Cookie", "feuille_session=evil; Path=/");
  r.insert("Set-Cookie", "theme=dark; Path=/u/abc/");
  r.insert("Set-Cookie", "everywhere=1; Domain=ws.example.org; Path=/");
  std::string out;
  write_client_response(r, {Framing::chunked, 0}, true, out);
  EXPECT_THAT(out, ::testing::StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(out, HasSubstr("Content-Type: text/plain\r\n"));
  EXPECT_THAT(out, HasSubstr("Set-Cookie: theme=dark; Path=/u/abc/\r\n"));
  EXPECT_THAT(out, HasSubstr("Set-Cookie: everywhere=1; Path=/\r\n"));
  EXPECT_THAT(out, Not(HasSubstr("evil")));
  EXPECT_THAT(out, Not(HasSubstr("X-Private")));
  EXPECT_THAT(out, HasSubstr("Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"));

  bh::response_header<> up;
  up.result(101);
  up.version(11);
  up.insert("Upgrade", "websocket");
  up.insert("Connection", "Upgrade");
  up.insert("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  write_client_response(up, {}, false, out);
  EXPECT_EQ(out,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(ProxyHeaders, Methods) {
  EXPECT_TRUE(is_safe_method(bh::verb::get));
  EXPECT_TRUE(is_safe_method(bh::verb::head));
  EXPECT_FALSE(is_safe_method(bh::verb::post));
  EXPECT_TRUE(is_idempotent(bh::verb::put));
  EXPECT_FALSE(is_idempotent(bh::verb::post));
}

namespace {
std::vector<std::uint8_t> frame(std::uint8_t opcode, std::size_t len, bool masked, bool fin = true) {
  std::vector<std::uint8_t> f;
  f.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0) | opcode));
  std::uint8_t mask = masked ? 0x80 : 0;
  if (len < 126) {
    f.push_back(static_cast<std::uint8_t>(mask | len));
  } else if (len < 65536) {
    f.push_back(mask | 126);
    f.push_back(static_cast<std::uint8_t>(len >> 8));
    f.push_back(static_cast<std::uint8_t>(len));
  } else {
    f.push_back(mask | 127);
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  }
  if (masked) f.insert(f.end(), {1, 2, 3, 4});
  f.insert(f.end(), len, 0x42);
  return f;
}
}  // namespace

TEST(WebSocketFrames, CountsDataFramesOnlyWhateverTheSplit) {
  std::vector<std::uint8_t> stream;
  for (auto part : {frame(1, 5, true), frame(9, 0, true), frame(2, 70000, true), frame(10, 3, true),
                    frame(2, 300, true, false), frame(0, 10, true), frame(8, 2, true)})
    stream.insert(stream.end(), part.begin(), part.end());
  // Whole, then in every chunk size from 1 byte up.
  for (std::size_t chunk : {stream.size(), std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                            std::size_t{13}, std::size_t{4096}}) {
    FrameCounter c;
    std::size_t frames = 0;
    for (std::size_t i = 0; i < stream.size(); i += chunk)
      frames += c.feed(std::span(stream).subspan(i, std::min(chunk, stream.size() - i)));
    EXPECT_EQ(frames, 4u) << chunk;  // text, binary, binary fragment, continuation
    EXPECT_TRUE(c.closed()) << chunk;
  }
}
