#include <gtest/gtest.h>

#include "util/units.hpp"

using namespace feuille;
using namespace feuille::units;

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration("30s")->count(), 30'000);
  EXPECT_EQ(parse_duration("15m")->count(), 900'000);
  EXPECT_EQ(parse_duration("2h")->count(), 7'200'000);
  EXPECT_EQ(parse_duration("30d")->count(), 30LL * 86'400'000);
  EXPECT_EQ(parse_duration("250ms")->count(), 250);
  EXPECT_EQ(parse_duration("1.5h")->count(), 5'400'000);
  EXPECT_EQ(parse_duration("0")->count(), 0);
  EXPECT_EQ(parse_duration(" 10s ")->count(), 10'000);
  for (auto bad : {"", "30", "s", "15x", "-5s", "1.2.3s", ".5s", "5.s", "10 s", "99999d", "1e3s", "5S"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
  EXPECT_EQ(format_duration(Duration{900'000}), "15m");
  EXPECT_EQ(format_duration(Duration{1500}), "1500ms");
  EXPECT_EQ(format_duration(Duration{0}), "0");
}

TEST(Units, Sizes) {
  EXPECT_EQ(*parse_size("512M"), 512ull << 20);
  EXPECT_EQ(*parse_size("1G"), 1ull << 30);
  EXPECT_EQ(*parse_size("1GiB"), 1ull << 30);
  EXPECT_EQ(*parse_size("256MB"), 256ull << 20);
  EXPECT_EQ(*parse_size("2t"), 2ull << 40);
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("10K"), 10240u);
  EXPECT_EQ(*parse_size("1.5G"), 3ull << 29);
  for (auto bad : {"", "M", "12X", "12MX", "-1M", "1..2M", "99999999999T"}) EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(Units, Endpoints) {
  auto a = parse_endpoint("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_TRUE(a->is_loopback());
  auto b = parse_endpoint("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_TRUE(b->is_loopback());
  EXPECT_EQ(b->text(), "[::1]:0");
  EXPECT_EQ(parse_endpoint("localhost:80")->host, "127.0.0.1");
  EXPECT_FALSE(parse_endpoint("0.0.0.0:80")->is_loopback());
  EXPECT_FALSE(parse_endpoint("[::]:80")->is_loopback());
  EXPECT_TRUE(parse_endpoint("127.8.9.10:1")->is_loopback());
  for (auto bad : {"", "8080", ":8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:80", "[::1]80",
                   "example.org:80", "1.2.3.4:-1", "1.2.3.4:8o"})
    EXPECT_FALSE(parse_endpoint(bad)) << bad;
}

TEST(Units, Cidrs) {
  auto c = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(*parse_ip("10.200.3.4")));
  EXPECT_FALSE(c->contains(*parse_ip("11.0.0.1")));
  EXPECT_FALSE(c->contains(*parse_ip("::1")));
  auto one = parse_cidr("192.168.1.7");
  EXPECT_TRUE(one->contains(*parse_ip("192.168.1.7")));
  EXPECT_FALSE(one->contains(*parse_ip("192.168.1.8")));
  auto v6 = parse_cidr("fd00::/8");
  EXPECT_TRUE(v6->contains(*parse_ip("fd12::1")));
  EXPECT_FALSE(v6->contains(*parse_ip("fe80::1")));
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(*parse_ip("8.8.8.8")));
  for (auto bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "nope", "10.0.0.0/8x"}) EXPECT_FALSE(parse_cidr(bad)) << bad;
}

TEST(Units, Percent) {
  EXPECT_EQ(*parse_percent("50"), 50);
  EXPECT_EQ(*parse_percent("12.5%"), 12.5);
  EXPECT_FALSE(parse_percent("101"));
  EXPECT_FALSE(parse_percent("-1"));
  EXPECT_FALSE(parse_percent("x"));
}

TEST(Units, ShellSplit) {
  using V = std::vector<std::string>;
  EXPECT_EQ(shell_split("node cli.js --port {port}"), (V{"node", "cli.js", "--port", "{port}"}));
  EXPECT_EQ(shell_split("bash -lc 'rm -f ~/x && exec y'"), (V{"bash", "-lc", "rm -f ~/x && exec y"}));
  EXPECT_EQ(shell_split(R"(a "b c" d\ e "f\"g" '$HOME' "\$x")"), (V{"a", "b c", "d e", "f\"g", "$HOME", "$x"}));
  EXPECT_EQ(shell_split(R"(a""b '' "")"), (V{"ab", "", ""}));
  EXPECT_EQ(shell_split("  "), V{});
  EXPECT_THROW(shell_split("a 'b"), std::invalid_argument);
  EXPECT_THROW(shell_split("a \"b"), std::invalid_argument);
  EXPECT_THROW(shell_split("a \\"), std::invalid_argument);
}

TEST(Units, SplitList) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_list("127.0.0.1/32, ::1/128"), (V{"127.0.0.1/32", "::1/128"}));
  EXPECT_EQ(split_list(" a,,b , "), (V{"a", "b"}));
}
