#include "core/in_flight_gate.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/asymmetric_fence.h"

namespace msgsdk::core {
namespace {

TEST(InFlightGateTest, CountsEntriesUntilTheyExit) {
  InFlightGate gate;
  ASSERT_TRUE(gate.Enter());
  ASSERT_TRUE(gate.Enter(3));
  gate.Close();
  EXPECT_EQ(gate.InFlight(), 4);
  gate.Exit(3);
  EXPECT_EQ(gate.InFlight(), 1);
  gate.Exit();
  EXPECT_EQ(gate.InFlight(), 0);
}

TEST(InFlightGateTest, RefusesEntriesOnceClosed) {
  InFlightGate gate;
  EXPECT_FALSE(gate.closed());
  gate.Close();
  gate.Close();  // idempotent
  EXPECT_TRUE(gate.closed());
  EXPECT_FALSE(gate.Enter());
  EXPECT_EQ(gate.InFlight(), 0);
  // A caller holding an entry may still add to it.
  gate.EnterHeld(2);
  EXPECT_EQ(gate.InFlight(), 2);
  gate.Exit(2);
  EXPECT_EQ(gate.InFlight(), 0);
}

TEST(InFlightGateTest, ExitsFromOtherThreadsCount) {
  InFlightGate gate;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(gate.Enter());
  std::thread([&gate] { gate.Exit(60); }).join();
  gate.Close();
  EXPECT_EQ(gate.InFlight(), 40);
}

// The gate's promise: once Close returns, every Enter that succeeded shows in InFlight, and
// none succeeds any more. Threads enter without exiting while the gate closes under them.
void ExpectEveryEntryBeforeCloseShowsOnceItReturns() {
  for (int round = 0; round < 50; ++round) {
    InFlightGate gate;
    constexpr int kThreads = 4;
    std::atomic<int> started{0};
    std::vector<int64_t> entered(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&gate, &started, &count = entered[t]] {
        started.fetch_add(1);
        while (gate.Enter()) ++count;
      });
    }
    while (started.load() < kThreads) std::this_thread::yield();
    gate.Close();
    const int64_t seen = gate.InFlight();
    for (auto& thread : threads) thread.join();
    int64_t total = 0;
    for (const int64_t count : entered) total += count;
    // An Enter that fails counts itself in and out again, so it may show for a moment.
    ASSERT_GE(seen, total) << "round " << round;
    ASSERT_EQ(gate.InFlight(), total) << "round " << round;
  }
}

TEST(InFlightGateTest, EveryEntryBeforeCloseShowsOnceItReturns) {
  ExpectEveryEntryBeforeCloseShowsOnceItReturns();
}

// The same where the kernel has no expedited membarrier: both sides then make full fences.
TEST(InFlightGateTest, EveryEntryBeforeCloseShowsWithFullFencesOnly) {
  fence_internal::UseFullFencesOnly(true);
  InFlightGate first;  // decides the fences, as the first user of the pair does
  const bool asymmetric = fence_internal::asymmetric.load();
  ExpectEveryEntryBeforeCloseShowsOnceItReturns();
  fence_internal::UseFullFencesOnly(false);
  InFlightGate restores;
  EXPECT_FALSE(asymmetric);
}

TEST(InFlightGateTest, AThreadKeepsItsSlotAcrossManyGates) {
  // More gates than a thread's cache holds, entered in turn: each gate still counts right.
  std::vector<std::unique_ptr<InFlightGate>> gates;
  for (int i = 0; i < 20; ++i) gates.push_back(std::make_unique<InFlightGate>());
  for (int pass = 0; pass < 3; ++pass) {
    for (auto& gate : gates) ASSERT_TRUE(gate->Enter());
  }
  for (auto& gate : gates) {
    gate->Close();
    EXPECT_EQ(gate->InFlight(), 3);
  }
}

}  // namespace
}  // namespace msgsdk::core
