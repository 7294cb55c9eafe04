#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "backends/redis/redis_codec.h"
#include "backends/redis/redis_consumer.h"

namespace msgsdk::redis {
namespace {

using ::testing::ElementsAre;

std::vector<EntryId> Held(const HeldEntries& held) {
  std::vector<EntryId> out;
  held.AppendTo(out);
  return out;
}

TEST(HeldEntriesTest, InsertsInAnyOrderAndRefusesDuplicates) {
  HeldEntries held;
  EXPECT_TRUE(held.Insert({5, 0}));
  EXPECT_TRUE(held.Insert({7, 1}));
  EXPECT_TRUE(held.Insert({5, 3}));  // older than the newest: a claimed entry
  EXPECT_FALSE(held.Insert({7, 1}));
  EXPECT_FALSE(held.Insert({5, 3}));
  EXPECT_EQ(held.size(), 3u);
  EXPECT_THAT(Held(held), ElementsAre(EntryId{5, 0}, EntryId{5, 3}, EntryId{7, 1}));
}

TEST(HeldEntriesTest, ErasesOnlyWhatIsHeld) {
  HeldEntries held;
  held.Insert({1, 0});
  held.Insert({2, 0});
  EXPECT_FALSE(held.Erase({3, 0}));
  EXPECT_TRUE(held.Erase({1, 0}));
  EXPECT_FALSE(held.Erase({1, 0}));
  EXPECT_EQ(held.size(), 1u);
  // An erased id may be held again (delivered once more after a hand-back).
  EXPECT_TRUE(held.Insert({1, 0}));
  EXPECT_THAT(Held(held), ElementsAre(EntryId{1, 0}, EntryId{2, 0}));
  held.Clear();
  EXPECT_EQ(held.size(), 0u);
  EXPECT_TRUE(Held(held).empty());
}

TEST(HeldEntriesTest, OneLongHeldEntryDoesNotKeepTheRest) {
  HeldEntries held;
  // Entry 0 stays held (a handler retrying) while 100,000 later ones come and go.
  ASSERT_TRUE(held.Insert({0, 0}));
  for (uint64_t ms = 1; ms <= 100000; ++ms) {
    ASSERT_TRUE(held.Insert({ms, 0}));
    if (ms >= 10) {
      ASSERT_TRUE(held.Erase({ms - 9, 0}));
    }
  }
  EXPECT_EQ(held.size(), 10u);
  EXPECT_EQ(Held(held).front(), (EntryId{0, 0}));
  for (uint64_t ms = 99992; ms <= 100000; ++ms) EXPECT_TRUE(held.Erase({ms, 0}));
  EXPECT_THAT(Held(held), ElementsAre(EntryId{0, 0}));
}

TEST(HeldEntriesTest, AcknowledgedOutOfOrder) {
  HeldEntries held;
  for (uint64_t seq = 0; seq < 1000; ++seq) held.Insert({42, seq});
  for (uint64_t seq = 1; seq < 1000; seq += 2) EXPECT_TRUE(held.Erase({42, seq}));
  for (uint64_t seq = 0; seq < 1000; seq += 2) EXPECT_FALSE(held.Insert({42, seq}));
  for (uint64_t seq = 998;; seq -= 2) {
    EXPECT_TRUE(held.Erase({42, seq}));
    if (seq == 0) break;
  }
  EXPECT_EQ(held.size(), 0u);
}

}  // namespace
}  // namespace msgsdk::redis
