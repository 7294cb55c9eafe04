#include "backends/native/broker/group_coordinator.h"

#include <gtest/gtest.h>

#include <set>

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

}  // namespace
}  // namespace msgsdk::native
