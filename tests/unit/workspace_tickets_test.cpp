// The bounds of the outstanding workspace tickets, on given times.
#include <gtest/gtest.h>

#include "auth/workspace_tickets.hpp"

using namespace feuille::auth;
using namespace std::chrono_literals;
using Refusal = WorkspaceTickets::Refusal;

namespace {

TokenHash session(int n) {
  TokenHash h{};
  h[0] = static_cast<std::uint8_t>(n);
  h[1] = static_cast<std::uint8_t>(n >> 8);
  return h;
}

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

TEST(WorkspaceTickets, ATicketIsSingleUseAndExpires) {
  WorkspaceTickets book;
  auto a = book.issue(session(1), "alice", "owner", "/u/owner/", 60s, t0);
  ASSERT_EQ(a.refusal, Refusal::none);
  auto taken = book.take(hash_token(a.ticket), t0 + 1s);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->caller, "alice");
  EXPECT_EQ(taken->target, "/u/owner/");
  EXPECT_FALSE(book.take(hash_token(a.ticket), t0 + 1s));
  auto b = book.issue(session(1), "alice", "owner", "/u/owner/x", 60s, t0);
  EXPECT_FALSE(book.take(hash_token(b.ticket), t0 + 60s));
  EXPECT_EQ(book.size(), 0u);
}

TEST(WorkspaceTickets, TheSameWayInReplacesTheOutstandingTicket) {
  WorkspaceTickets book;
  auto first = book.issue(session(1), "alice", "owner", "/u/owner/a", 60s, t0);
  auto second = book.issue(session(1), "alice", "owner", "/u/owner/a", 60s, t0 + 1s);
  EXPECT_EQ(book.size(), 1u);
  EXPECT_FALSE(book.take(hash_token(first.ticket), t0 + 2s));
  EXPECT_TRUE(book.take(hash_token(second.ticket), t0 + 2s));
}

TEST(WorkspaceTickets, ASessionHoldsAFewAndItsNewestWork) {
  WorkspaceTickets::Limits limits;
  limits.per_session = 4;
  limits.burst = 1000;
  WorkspaceTickets book(limits);
  std::vector<std::string> tickets;
  for (int i = 0; i < 10; ++i)
    tickets.push_back(book.issue(session(1), "alice", "owner", "/u/owner/" + std::to_string(i), 60s, t0).ticket);
  EXPECT_EQ(book.size(), 4u);
  EXPECT_FALSE(book.take(hash_token(tickets[0]), t0));
  EXPECT_TRUE(book.take(hash_token(tickets[9]), t0));
}

TEST(WorkspaceTickets, AFloodFromOneSessionIsRateLimitedAndLeavesOthersAlone) {
  WorkspaceTickets book;  // burst 20, then 60 a minute
  int issued = 0;
  unsigned wait = 0;
  for (int i = 0; i < 1000; ++i) {
    auto m = book.issue(session(1), "mallory", "owner", "/u/owner/" + std::to_string(i), 60s, t0);
    if (m.refusal == Refusal::none) ++issued;
    else wait = m.retry_after_seconds;
  }
  EXPECT_EQ(issued, 20);
  EXPECT_GE(wait, 1u);
  EXPECT_LE(book.size(), 16u);
  // Another session into the same workspace is not affected.
  auto other = book.issue(session(2), "alice", "owner", "/u/owner/", 60s, t0);
  ASSERT_EQ(other.refusal, Refusal::none);
  EXPECT_TRUE(book.take(hash_token(other.ticket), t0 + 1s));
  // And the flooding session gets one again once its bucket refills.
  EXPECT_EQ(book.issue(session(1), "mallory", "owner", "/u/owner/", 60s, t0 + 2s).refusal, Refusal::none);
}

TEST(WorkspaceTickets, WorkspaceAndTableBoundsRefuse) {
  WorkspaceTickets::Limits limits;
  limits.per_workspace = 3;
  limits.total = 5;
  WorkspaceTickets book(limits);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(book.issue(session(i), "u", "a", "/u/a/", 60s, t0).refusal, Refusal::none);
  EXPECT_EQ(book.issue(session(9), "u", "a", "/u/a/", 60s, t0).refusal, Refusal::workspace_full);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(book.issue(session(i), "u", "b", "/u/b/", 60s, t0).refusal, Refusal::none);
  EXPECT_EQ(book.issue(session(9), "u", "c", "/u/c/", 60s, t0).refusal, Refusal::table_full);
  // Expired tickets leave, in order, at the next issue.
  EXPECT_EQ(book.issue(session(9), "u", "c", "/u/c/", 60s, t0 + 60s).refusal, Refusal::none);
  EXPECT_EQ(book.size(), 1u);
}

TEST(WorkspaceTickets, IdleSessionsAreForgotten) {
  WorkspaceTickets book;
  for (int i = 0; i < 5000; ++i) {
    auto m = book.issue(session(i), "u", "a", "/u/a/", 1s, t0);
    book.take(hash_token(m.ticket), t0);
  }
  // Dropped when the map has doubled since the last look (amortised):
  // 3,300 new sessions later the 5,000 idle ones are gone.
  for (int i = 0; i < 3300; ++i) book.issue(session(10'000 + i), "u", "a", "/u/a/", 1s, t0 + 10min);
  EXPECT_LT(book.sessions(), 4000u);
  EXPECT_GE(book.sessions(), 3000u);
}
