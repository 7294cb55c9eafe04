#include "core/message_id.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <thread>

namespace msgsdk::core {
namespace {

TEST(MessageIdTest, FixedWidthHex) {
  const std::string id = NewMessageId(std::chrono::system_clock::now());
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(MessageIdTest, StartsWithTheMillisecondAndSequenceInHex) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  const std::string first = NewMessageId(now);
  const std::string second = NewMessageId(now);
  const uint64_t first_value = std::stoull(first.substr(0, 16), nullptr, 16);
  EXPECT_GE(first_value >> 16, ms);
  EXPECT_LT(first_value >> 16, ms + 1000);
  EXPECT_EQ(std::stoull(second.substr(0, 16), nullptr, 16), first_value + 1);
  // The second half is the thread's and the same for both.
  EXPECT_EQ(first.substr(16), second.substr(16));
  char expected[17];
  std::snprintf(expected, sizeof(expected), "%016llx",
                static_cast<unsigned long long>(first_value));  // NOLINT(google-runtime-int)
  EXPECT_EQ(first.substr(0, 16), expected);
}

TEST(MessageIdTest, StrictlyIncreasingEvenWithinOneMillisecond) {
  const auto now = std::chrono::system_clock::now();
  std::vector<std::string> ids;
  for (int i = 0; i < 200000; ++i) ids.push_back(NewMessageId(now));  // > 65536 per ms
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST(MessageIdTest, ThreadsDifferInTheSecondHalf) {
  const auto now = std::chrono::system_clock::now();
  const std::string here = NewMessageId(now);
  std::string there;
  std::thread([&there, now] { there = NewMessageId(now); }).join();
  EXPECT_NE(here.substr(16), there.substr(16));
  // The process's random part is shared.
  EXPECT_EQ(here.substr(16, 10), there.substr(16, 10));
}

TEST(MessageIdTest, FollowOneAnotherAcrossThreadsInOrder) {
  // Each id made on a new thread after the previous one: the sidecar's threads serve one
  // client's consecutive sends like this.
  std::vector<std::string> ids;
  const auto now = std::chrono::system_clock::now();
  for (int i = 0; i < 50; ++i) {
    std::thread([&ids, now] { ids.push_back(NewMessageId(now)); }).join();
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST(MessageIdTest, UniqueAcrossThreads) {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& ids : per_thread) {
    threads.emplace_back([&ids] {
      for (int i = 0; i < 20000; ++i) ids.push_back(NewMessageId(std::chrono::system_clock::now()));
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& ids : per_thread) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), 80000u);
}

TEST(MessageIdTest, FollowsTheClockAndNeverGoesBackwards) {
  const auto now = std::chrono::system_clock::now();
  const std::string current = NewMessageId(now);
  const std::string later = NewMessageId(now + std::chrono::hours(1));
  EXPECT_LT(current.substr(0, 12), later.substr(0, 12));  // the millisecond prefix moved on
  // A clock stepping back does not make ids go backwards.
  EXPECT_GT(NewMessageId(now - std::chrono::hours(2)), later);
}

}  // namespace
}  // namespace msgsdk::core
