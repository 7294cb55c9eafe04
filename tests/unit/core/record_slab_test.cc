#include "core/record_slab.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace msgsdk::core {
namespace {

// Counts its constructions and destructions, and remembers a value between uses.
struct Counted {
  explicit Counted(int* alive) : alive(alive) { ++*alive; }
  ~Counted() { --*alive; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  int* alive;
  int64_t kept = 0;
  char payload[100] = {};
};

TEST(RecordSlabTest, HandsOutDistinctRecordsAndReusesTheLastGivenBack) {
  int alive = 0;
  RecordSlab<Counted> slab([&alive](void* where) { new (where) Counted(&alive); }, 1000);
  Counted* first = slab.Take();
  Counted* second = slab.Take();
  EXPECT_NE(first, second);
  EXPECT_EQ(slab.in_use(), 2u);
  first->kept = 42;
  slab.Give(first);
  // The record given back last comes first, still constructed and with what it kept.
  Counted* again = slab.Take();
  EXPECT_EQ(again, first);
  EXPECT_EQ(again->kept, 42);
  slab.Give(again);
  slab.Give(second);
  EXPECT_EQ(slab.in_use(), 0u);
  EXPECT_GT(alive, 0);  // a block's records stay constructed while spare
}

TEST(RecordSlabTest, RecordsOfManyBlocksGoBackInAnyOrder) {
  int alive = 0;
  {
    RecordSlab<Counted> slab([&alive](void* where) { new (where) Counted(&alive); }, 100000);
    std::mt19937 random(7);
    std::vector<Counted*> taken;
    std::set<Counted*> in_use;
    for (int round = 0; round < 20000; ++round) {
      if (taken.empty() || random() % 3 != 0) {
        Counted* record = slab.Take();
        ASSERT_TRUE(in_use.insert(record).second) << "a record handed out twice";
        record->kept = round;
        taken.push_back(record);
      } else {
        std::swap(taken[random() % taken.size()], taken.back());
        in_use.erase(taken.back());
        slab.Give(taken.back());
        taken.pop_back();
      }
      ASSERT_EQ(slab.in_use(), taken.size());
    }
    for (Counted* record : taken) slab.Give(record);
    EXPECT_EQ(slab.in_use(), 0u);
  }
  EXPECT_EQ(alive, 0) << "the slab destroys every record it made";
}

TEST(RecordSlabTest, GivesBlocksBackBeyondItsSpareLimit) {
  int alive = 0;
  RecordSlab<Counted> slab([&alive](void* where) { new (where) Counted(&alive); }, 0);
  std::vector<Counted*> taken;
  // Many blocks' worth (a block holds 16 KiB).
  for (int i = 0; i < 2000; ++i) taken.push_back(slab.Take());
  const int peak = alive;
  EXPECT_GE(peak, 2000);
  for (Counted* record : taken) slab.Give(record);
  // One block stays for the next sends; the rest went back to malloc.
  EXPECT_LT(alive, peak / 4);
  EXPECT_GT(alive, 0);
  // And the slab still works afterwards.
  for (int i = 0; i < 2000; ++i) taken[i] = slab.Take();
  for (Counted* record : taken) slab.Give(record);
}

}  // namespace
}  // namespace msgsdk::core
