#include <cstdint>
#include <cstring>
#include <set>

#include <gtest/gtest.h>

#include "backends/redis/redis_connection.h"

namespace msgsdk::redis {
namespace {

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 8 == 0; }

TEST(ReplyArenaTest, AllocationsAreAlignedAndDistinct) {
  ReplyArena arena;
  std::set<const void*> seen;
  for (size_t size : {1, 7, 8, 9, 100, 3, 40000, 70000, 5}) {
    void* p = arena.Allocate(size);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(Aligned(p)) << size;
    std::memset(p, 0xab, size);  // the whole size is usable (AddressSanitizer checks it)
    EXPECT_TRUE(seen.insert(p).second);
  }
}

TEST(ReplyArenaTest, RewindsWhenTheLastReplyIsReleased) {
  ReplyArena arena;
  arena.Acquire();
  void* first = arena.Allocate(64);
  arena.Acquire();
  void* second = arena.Allocate(64);
  EXPECT_NE(first, second);
  arena.Release();
  // One reply is still out: nothing is reused.
  EXPECT_NE(arena.Allocate(64), first);
  arena.Release();
  // None is out: the arena starts over.
  EXPECT_EQ(arena.Allocate(64), first);
}

TEST(ReplyArenaTest, AHugeReplyIsNotKept) {
  ReplyArena arena;
  arena.Acquire();
  void* huge = arena.Allocate(size_t{8} << 20);
  ASSERT_NE(huge, nullptr);
  std::memset(huge, 0, size_t{8} << 20);
  arena.Release();
  arena.Acquire();
  void* small = arena.Allocate(16);
  ASSERT_NE(small, nullptr);
  std::memset(small, 0, 16);
  arena.Release();
}

}  // namespace
}  // namespace msgsdk::redis
