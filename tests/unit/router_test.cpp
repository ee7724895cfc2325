#include <gtest/gtest.h>

#include "http/router.hpp"

using namespace feuille::http;

namespace {
Handler named(std::string) {
  return [](Request&, RequestContext&) -> boost::asio::awaitable<Response> { co_return Response{}; };
}
}  // namespace

TEST(Router, MatchesLiteralsAndParams) {
  Router r;
  r.add({bh::verb::get}, "/healthz", "health", named("healthz"));
  r.add({bh::verb::get}, "/api/snapshots/{id}", "api", named("snap"));
  r.add({bh::verb::post}, "/api/snapshots/{id}/restore", "api", named("restore"));
  r.add({bh::verb::delete_}, "/api/snapshots/{id}", "api", named("del"));

  auto m = r.match(bh::verb::get, "/healthz");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->pattern, "/healthz");

  m = r.match(bh::verb::get, "/api/snapshots/abc");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.get("id"), "abc");
  EXPECT_EQ(m.route->pattern, "/api/snapshots/{id}");

  m = r.match(bh::verb::delete_, "/api/snapshots/abc");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->methods.front(), bh::verb::delete_);

  m = r.match(bh::verb::post, "/api/snapshots/x%20y/restore");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.get("id"), "x%20y");  // raw: handlers decode

  EXPECT_FALSE(r.match(bh::verb::get, "/api/snapshots/").route);
  EXPECT_FALSE(r.match(bh::verb::get, "/api/snapshots").route);
  EXPECT_FALSE(r.match(bh::verb::get, "/healthz/").route);
  EXPECT_FALSE(r.match(bh::verb::get, "/nope").route);
  EXPECT_FALSE(r.match(bh::verb::get, "/nope").method_not_allowed);
}

TEST(Router, HeadFollowsGet) {
  Router r;
  r.add({bh::verb::get}, "/healthz", "health", named("h"));
  EXPECT_TRUE(r.match(bh::verb::head, "/healthz").route);
}

TEST(Router, MethodNotAllowedListsAllow) {
  Router r;
  r.add({bh::verb::get}, "/api/workspace", "api", named("get"));
  r.add({bh::verb::post}, "/api/workspace/start", "api", named("start"));
  auto m = r.match(bh::verb::delete_, "/api/workspace");
  EXPECT_FALSE(m.route);
  EXPECT_TRUE(m.method_not_allowed);
  EXPECT_EQ(m.allow, "GET, HEAD");
}

TEST(Router, RestAndPrefixedSegments) {
  Router r;
  r.add({}, "/u/{id}/{rest*}", "proxy", named("proxy"));
  r.add({bh::verb::get}, "/u/{id}", "proxy", named("redirect"));
  r.add({bh::verb::get}, "/@{handle}", "publish", named("index"));
  r.add({bh::verb::get}, "/@{handle}/{project}/{page*}", "publish", named("page"));

  auto m = r.match(bh::verb::put, "/u/123/");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.get("id"), "123");
  EXPECT_EQ(m.params.get("rest"), "");
  m = r.match(bh::verb::get, "/u/123/a/b/c");
  EXPECT_EQ(m.params.get("rest"), "a/b/c");
  m = r.match(bh::verb::get, "/u/123");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->pattern, "/u/{id}");

  m = r.match(bh::verb::get, "/@alice");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.get("handle"), "alice");
  EXPECT_FALSE(r.match(bh::verb::get, "/@").route);
  m = r.match(bh::verb::get, "/@alice/notes/intro/part-1");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.get("project"), "notes");
  EXPECT_EQ(m.params.get("page"), "intro/part-1");
}

TEST(Router, MostSpecificWinsWhateverTheOrder) {
  Router r;
  r.add({bh::verb::get}, "/auth/{provider}", "auth", named("generic"));
  r.add({bh::verb::get}, "/auth/validate", "auth", named("validate"));
  EXPECT_EQ(r.match(bh::verb::get, "/auth/validate").route->pattern, "/auth/validate");
  EXPECT_EQ(r.match(bh::verb::get, "/auth/github").route->pattern, "/auth/{provider}");
}

TEST(Router, RejectsBadPatterns) {
  Router r;
  EXPECT_THROW(r.add({}, "nope", "x", named("x")), std::invalid_argument);
  EXPECT_THROW(r.add({}, "/a/{rest*}/b", "x", named("x")), std::invalid_argument);
}
