#include "backends/native/broker/group_coordinator.h"

#include <set>

#include <gtest/gtest.h>

namespace msgsdk::native {
namespace {

using namespace std::chrono_literals;

TEST(GroupCoordinatorTest, FirstMemberOwnsEveryQueue) {
  GroupCoordinator groups(30s);
  auto a = groups.Heartbeat("g", "t", "a", 4);
  EXPECT_EQ(a.owned, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_TRUE(a.to_release.empty());
}

TEST(GroupCoordinatorTest, QueuesMoveOnlyAfterRelease) {
  GroupCoordinator groups(30s);
  groups.Heartbeat("g", "t", "a", 4);
  auto b = groups.Heartbeat("g", "t", "b", 4);
  EXPECT_TRUE(b.owned.empty()) << "b must wait until a releases";
  auto a = groups.Heartbeat("g", "t", "a", 4);
  EXPECT_EQ(a.to_release, (std::vector<int32_t>{1, 3}));  // round robin over sorted members
  for (int32_t q : a.to_release) groups.Release("g", "t", "a", q);
  b = groups.Heartbeat("g", "t", "b", 4);
  EXPECT_EQ(b.owned, (std::vector<int32_t>{1, 3}));
  a = groups.Heartbeat("g", "t", "a", 4);
  EXPECT_EQ(a.owned, (std::vector<int32_t>{0, 2}));
  EXPECT_TRUE(a.to_release.empty());
}

TEST(GroupCoordinatorTest, LeaveFreesQueuesForOthers) {
  GroupCoordinator groups(30s);
  groups.Heartbeat("g", "t", "a", 2);
  groups.Heartbeat("g", "t", "b", 2);
  EXPECT_TRUE(groups.HasMembers("g", "t"));
  groups.Leave("g", "t", "a");
  auto b = groups.Heartbeat("g", "t", "b", 2);
  EXPECT_EQ(b.owned, (std::vector<int32_t>{0, 1}));
  groups.Leave("g", "t", "b");
  EXPECT_FALSE(groups.HasMembers("g", "t"));
}

TEST(GroupCoordinatorTest, ExpiredMembersLoseTheirQueues) {
  GroupCoordinator groups(1ms);
  groups.Heartbeat("g", "t", "a", 2);
  const auto until = std::chrono::steady_clock::now() + 5ms;
  while (std::chrono::steady_clock::now() < until) {
  }
  auto b = groups.Heartbeat("g", "t", "b", 2);
  EXPECT_EQ(b.owned, (std::vector<int32_t>{0, 1}));
}

TEST(GroupCoordinatorTest, GroupsAndTopicsAreIndependent) {
  GroupCoordinator groups(30s);
  EXPECT_EQ(groups.Heartbeat("g1", "t", "a", 2).owned.size(), 2u);
  EXPECT_EQ(groups.Heartbeat("g2", "t", "b", 2).owned.size(), 2u);
  EXPECT_EQ(groups.Heartbeat("g1", "u", "b", 2).owned.size(), 2u);
}

TEST(GroupCoordinatorTest, JoinedMembersRefreshAndReleaseThroughHeartbeats) {
  GroupCoordinator groups(30s);
  auto a = groups.Join("g", "t", "a", 4, 10s);
  EXPECT_EQ(a.owned, (std::vector<int32_t>{0, 1, 2, 3}));
  auto b = groups.Join("g", "t", "b", 4, 10s);
  EXPECT_GT(b.generation, a.generation);
  EXPECT_TRUE(b.owned.empty());
  auto refreshed = groups.Refresh("g", "t", "a", 4, {});
  ASSERT_TRUE(refreshed.has_value());
  EXPECT_EQ(refreshed->to_release, (std::vector<int32_t>{1, 3}));
  EXPECT_TRUE(groups.Owns("g", "t", "a", 1));
  // Releasing through the heartbeat hands the queues over in the same call.
  refreshed = groups.Refresh("g", "t", "a", 4, refreshed->to_release);
  ASSERT_TRUE(refreshed.has_value());
  EXPECT_EQ(refreshed->owned, (std::vector<int32_t>{0, 2}));
  EXPECT_TRUE(refreshed->to_release.empty());
  EXPECT_FALSE(groups.Owns("g", "t", "a", 1));
  auto b_refreshed = groups.Refresh("g", "t", "b", 4, {});
  ASSERT_TRUE(b_refreshed.has_value());
  EXPECT_EQ(b_refreshed->owned, (std::vector<int32_t>{1, 3}));
  EXPECT_TRUE(groups.Owns("g", "t", "b", 3));
}

TEST(GroupCoordinatorTest, UnknownOrLeftMembersMustJoinAgain) {
  GroupCoordinator groups(30s);
  EXPECT_FALSE(groups.Refresh("g", "t", "ghost", 4, {}).has_value());
  groups.Join("g", "t", "a", 4, 10s);
  groups.Leave("g", "t", "a");
  EXPECT_FALSE(groups.Refresh("g", "t", "a", 4, {}).has_value());
  EXPECT_FALSE(groups.HasMembers("g", "t"));
}

TEST(GroupCoordinatorTest, MemberPastItsOwnSessionTimeoutIsRemovedAndItsQueuesMove) {
  GroupCoordinator groups(30s);
  groups.Join("g", "t", "a", 2, 1ms);  // a expires almost at once
  auto b = groups.Join("g", "t", "b", 2, 30s);
  // b joined while a may still have been live; wait on a's expiry (a condition, not a sleep
  // of fixed length) by heartbeating b until it owns everything.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (b.owned.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    b = *groups.Refresh("g", "t", "b", 2, {});
  }
  EXPECT_EQ(b.owned, (std::vector<int32_t>{0, 1}));
  EXPECT_FALSE(groups.Refresh("g", "t", "a", 2, {}).has_value()) << "a expired";
  EXPECT_FALSE(groups.Owns("g", "t", "a", 0));
}

}  // namespace
}  // namespace msgsdk::native
