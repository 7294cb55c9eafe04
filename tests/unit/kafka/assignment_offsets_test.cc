#include "backends/kafka/assignment_offsets.h"

#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace msgsdk::kafka {
namespace {

using Offsets = std::vector<std::pair<int32_t, int64_t>>;

TEST(AssignmentOffsetsTest, NothingToCommitBeforeTheFirstAck) {
  AssignmentOffsets offsets;
  const uint64_t epoch = offsets.Assign(0);
  EXPECT_TRUE(offsets.Committable(false).empty());
  ASSERT_TRUE(offsets.Track(0, epoch, 10));
  // Nothing acknowledged yet: the position is the first delivery itself.
  EXPECT_EQ(offsets.Committable(false), (Offsets{{0, 10}}));
}

TEST(AssignmentOffsetsTest, CommitStopsAtTheFirstUnacknowledged) {
  AssignmentOffsets offsets;
  const uint64_t epoch = offsets.Assign(3);
  for (int64_t o = 0; o < 5; ++o) ASSERT_TRUE(offsets.Track(3, epoch, o));
  EXPECT_TRUE(offsets.Ack(3, epoch, 0));
  EXPECT_TRUE(offsets.Ack(3, epoch, 1));
  EXPECT_TRUE(offsets.Ack(3, epoch, 3));
  EXPECT_TRUE(offsets.Ack(3, epoch, 4));
  EXPECT_EQ(offsets.Committable(false), (Offsets{{3, 2}}));
  EXPECT_EQ(offsets.Outstanding(), 1u);
  EXPECT_TRUE(offsets.Ack(3, epoch, 2));
  EXPECT_EQ(offsets.Committable(false), (Offsets{{3, 5}}));
}

TEST(AssignmentOffsetsTest, GapsInOffsetsAreSkipped) {
  AssignmentOffsets offsets;
  const uint64_t epoch = offsets.Assign(0);
  ASSERT_TRUE(offsets.Track(0, epoch, 5));
  ASSERT_TRUE(offsets.Track(0, epoch, 9));  // 6..8: transaction markers, never delivered
  EXPECT_TRUE(offsets.Ack(0, epoch, 5));
  EXPECT_EQ(offsets.Committable(false), (Offsets{{0, 9}}));
  EXPECT_TRUE(offsets.Ack(0, epoch, 9));
  EXPECT_EQ(offsets.Committable(false), (Offsets{{0, 10}}));
}

TEST(AssignmentOffsetsTest, StaleEpochsAndDuplicatesAreIgnored) {
  AssignmentOffsets offsets;
  const uint64_t first = offsets.Assign(1);
  ASSERT_TRUE(offsets.Track(1, first, 0));
  offsets.Revoke(1);
  EXPECT_EQ(offsets.Epoch(1), 0u);
  EXPECT_FALSE(offsets.Ack(1, first, 0));
  const uint64_t second = offsets.Assign(1);
  EXPECT_NE(first, second);
  EXPECT_FALSE(offsets.Track(1, first, 1));
  ASSERT_TRUE(offsets.Track(1, second, 0));
  EXPECT_FALSE(offsets.Track(1, second, 0)) << "an offset already handed out";
  EXPECT_FALSE(offsets.Ack(1, first, 0));
  EXPECT_TRUE(offsets.Ack(1, second, 0));
  EXPECT_FALSE(offsets.Ack(1, second, 0)) << "acknowledged twice";
  EXPECT_EQ(offsets.Committable(false), (Offsets{{1, 1}}));
}

TEST(AssignmentOffsetsTest, OnlyChangedPositionsAreCommittedAgain) {
  AssignmentOffsets offsets;
  const uint64_t a = offsets.Assign(0);
  const uint64_t b = offsets.Assign(1);
  ASSERT_TRUE(offsets.Track(0, a, 0));
  ASSERT_TRUE(offsets.Track(1, b, 0));
  offsets.Ack(0, a, 0);
  offsets.Ack(1, b, 0);
  EXPECT_EQ(offsets.Committable(true), (Offsets{{0, 1}, {1, 1}}));
  offsets.MarkCommitted(0, 1);
  EXPECT_EQ(offsets.Committable(true), (Offsets{{1, 1}}));
  const std::vector<int32_t> only_zero = {0};
  EXPECT_EQ(offsets.Committable(false, &only_zero), (Offsets{{0, 1}}));
  EXPECT_EQ(offsets.Partitions(), (std::vector<int32_t>{0, 1}));
}

TEST(AssignmentOffsetsTest, ConcurrentAcksKeepThePrefix) {
  AssignmentOffsets offsets;
  const uint64_t epoch = offsets.Assign(0);
  constexpr int64_t kCount = 20000;
  for (int64_t o = 0; o < kCount; ++o) ASSERT_TRUE(offsets.Track(0, epoch, o));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&offsets, epoch, t] {
      // Each thread acknowledges every fourth offset, from the end: out of order overall.
      for (int64_t o = kCount - 4 + t; o >= 0; o -= 4) offsets.Ack(0, epoch, o);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(offsets.Committable(false), (Offsets{{0, kCount}}));
  EXPECT_EQ(offsets.Outstanding(), 0u);
}

}  // namespace
}  // namespace msgsdk::kafka
