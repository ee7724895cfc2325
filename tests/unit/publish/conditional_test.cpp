// Validators, dates, byte ranges and the bounded cache of the publish routes.
#include <gtest/gtest.h>

#include "publish/conditional.hpp"
#include "publish/lru.hpp"

using namespace feuille::publish;

TEST(PublishConditional, EtagsMatchWeaklyInLists) {
  EXPECT_TRUE(etag_matches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("\"x\", \"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("*", "\"abc\""));
  EXPECT_FALSE(etag_matches("\"abcd\"", "\"abc\""));
  EXPECT_FALSE(etag_matches("abc", "\"abc\""));
}

TEST(PublishConditional, HttpDatesRoundTrip) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_FALSE(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"));
  EXPECT_FALSE(parse_http_date("garbage"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
}

TEST(PublishConditional, NotModifiedPrefersTheEtag) {
  std::string lm = http_date(1000);
  EXPECT_TRUE(not_modified("\"e\"", "", "\"e\"", 1000));
  EXPECT_FALSE(not_modified("\"old\"", lm, "\"e\"", 1000)) << "If-None-Match wins over If-Modified-Since";
  EXPECT_TRUE(not_modified("", lm, "\"e\"", 1000));
  EXPECT_TRUE(not_modified("", lm, "\"e\"", 999));
  EXPECT_FALSE(not_modified("", lm, "\"e\"", 1001));
  EXPECT_FALSE(not_modified("", "", "\"e\"", 1000));
}

TEST(PublishConditional, RangesOfBytes) {
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=0-99", 1000, r), RangeKind::partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(parse_range("bytes=900-", 1000, r), RangeKind::partial);
  EXPECT_EQ(r.last, 999u);
  EXPECT_EQ(parse_range("bytes=-100", 1000, r), RangeKind::partial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(parse_range("bytes=-5000", 1000, r), RangeKind::partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(parse_range("bytes=990-5000", 1000, r), RangeKind::partial);
  EXPECT_EQ(r.last, 999u);
  EXPECT_EQ(parse_range("Bytes=1-1", 1000, r), RangeKind::partial);
  EXPECT_EQ(parse_range("bytes=1000-", 1000, r), RangeKind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 1000, r), RangeKind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0, r), RangeKind::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=5-1", 1000, r), RangeKind::whole);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 1000, r), RangeKind::whole);
  EXPECT_EQ(parse_range("items=0-1", 1000, r), RangeKind::whole);
  EXPECT_EQ(parse_range("bytes=x-1", 1000, r), RangeKind::whole);
  EXPECT_EQ(parse_range("bytes=99999999999999999999-", 1000, r), RangeKind::whole);
}

TEST(PublishCache, EvictsLeastRecentlyUsedWithinTheBudget) {
  Lru<int> lru(100);
  lru.put("a", 1, 40);
  lru.put("b", 2, 40);
  ASSERT_NE(lru.find("a"), nullptr);  // a is now the most recent
  lru.put("c", 3, 40);                // evicts b
  EXPECT_EQ(lru.find("b"), nullptr);
  EXPECT_EQ(*lru.find("a"), 1);
  EXPECT_EQ(*lru.find("c"), 3);
  EXPECT_EQ(lru.used(), 80u);
  lru.put("huge", 4, 101);  // larger than the whole budget: not kept
  EXPECT_EQ(lru.find("huge"), nullptr);
  lru.put("a", 5, 10);  // replacing updates the cost
  EXPECT_EQ(lru.used(), 50u);
  lru.erase("a");
  EXPECT_EQ(lru.size(), 1u);
}
