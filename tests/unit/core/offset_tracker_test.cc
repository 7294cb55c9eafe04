#include "core/offset_tracker.h"

#include <cstdint>
#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace msgsdk::core {
namespace {

TEST(OffsetTrackerTest, CommitsOnlyTheContiguousAckedPrefix) {
  OffsetTracker tracker(10);
  EXPECT_EQ(tracker.CommitPosition(), 10);
  for (int64_t offset = 10; offset < 15; ++offset) tracker.Delivered(offset);
  EXPECT_EQ(tracker.CommitPosition(), 10);
  EXPECT_TRUE(tracker.Acked(11));
  EXPECT_TRUE(tracker.Acked(12));
  EXPECT_EQ(tracker.CommitPosition(), 10);  // 10 is still being handled
  EXPECT_TRUE(tracker.Acked(10));
  EXPECT_EQ(tracker.CommitPosition(), 13);
  EXPECT_TRUE(tracker.Acked(14));
  EXPECT_TRUE(tracker.Acked(13));
  EXPECT_EQ(tracker.CommitPosition(), 15);
  EXPECT_EQ(tracker.outstanding(), 0u);
}

TEST(OffsetTrackerTest, SkippedOffsetsAdvanceTheCommit) {
  OffsetTracker tracker(0);
  tracker.Delivered(3);  // 0..2 filtered out by tag
  tracker.FetchedUpTo(8);
  EXPECT_EQ(tracker.CommitPosition(), 3);
  tracker.Acked(3);
  EXPECT_EQ(tracker.CommitPosition(), 8);
}

TEST(OffsetTrackerTest, DoubleAckIsHarmless) {
  OffsetTracker tracker(0);
  tracker.Delivered(0);
  EXPECT_TRUE(tracker.Acked(0));
  EXPECT_FALSE(tracker.Acked(0));
  EXPECT_FALSE(tracker.Acked(42));
  EXPECT_EQ(tracker.CommitPosition(), 1);
}

TEST(OffsetTrackerTest, OutOfOrderAndRepeatedDeliveriesAreKeptInOrder) {
  OffsetTracker tracker(0);
  tracker.Delivered(5);
  tracker.Delivered(2);
  tracker.Delivered(7);
  tracker.Delivered(2);  // already outstanding: counted once
  EXPECT_EQ(tracker.outstanding(), 3u);
  EXPECT_EQ(tracker.CommitPosition(), 2);
  EXPECT_TRUE(tracker.Acked(5));
  EXPECT_EQ(tracker.CommitPosition(), 2);
  EXPECT_TRUE(tracker.Acked(2));
  EXPECT_EQ(tracker.CommitPosition(), 7);
  EXPECT_FALSE(tracker.Acked(2));
  EXPECT_TRUE(tracker.Acked(7));
  EXPECT_EQ(tracker.CommitPosition(), 8);
  EXPECT_EQ(tracker.outstanding(), 0u);
}

TEST(OffsetTrackerTest, ManyDeliveriesAckedInAnyOrder) {
  OffsetTracker tracker(100);
  for (int64_t offset = 100; offset < 1100; ++offset) tracker.Delivered(offset);
  // Every odd offset first: the commit stays at the first even one.
  for (int64_t offset = 101; offset < 1100; offset += 2) EXPECT_TRUE(tracker.Acked(offset));
  EXPECT_EQ(tracker.CommitPosition(), 100);
  EXPECT_EQ(tracker.outstanding(), 500u);
  for (int64_t offset = 100; offset < 1100; offset += 2) EXPECT_TRUE(tracker.Acked(offset));
  EXPECT_EQ(tracker.CommitPosition(), 1100);
  EXPECT_EQ(tracker.outstanding(), 0u);
}

struct Owned {
  OffsetTracker tracker;
};

struct Acked {
  struct {
    int32_t partition;
    int64_t offset;
  } message;
};

TEST(OffsetTrackerTest, AckOwnedAcknowledgesEachInItsPartitionAndSkipsTheUnowned) {
  std::map<int32_t, Owned> owned;
  owned.emplace(1, Owned{OffsetTracker(0)});
  owned.emplace(3, Owned{OffsetTracker(100)});
  for (int64_t offset = 0; offset < 3; ++offset) owned.at(1).tracker.Delivered(offset);
  for (int64_t offset = 100; offset < 102; ++offset) owned.at(3).tracker.Delivered(offset);
  const Acked a{{1, 0}}, b{{1, 1}}, c{{3, 100}}, gone{{2, 5}}, d{{1, 2}}, e{{3, 101}};
  const std::vector<const Acked*> batch = {&a, &b, &c, &gone, &d, &e};
  AckOwned(owned, batch);
  EXPECT_EQ(owned.at(1).tracker.CommitPosition(), 3);
  EXPECT_EQ(owned.at(3).tracker.CommitPosition(), 102);
  EXPECT_EQ(owned.size(), 2u);
}

}  // namespace
}  // namespace msgsdk::core
