#include "core/light_mutex.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace msgsdk::core {
namespace {

TEST(LightMutexTest, ExcludesOtherThreadsUnderContention) {
  LightMutex mutex;
  // Not atomic: only the lock keeps the increments from being lost.
  int64_t counter = 0;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 200000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        std::lock_guard lock(mutex);
        ++counter;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter, int64_t{kThreads} * kIncrements);
}

TEST(LightMutexTest, TryLockFailsWhileHeldAndSucceedsAfter) {
  LightMutex mutex;
  mutex.lock();
  bool taken_elsewhere = true;
  std::thread([&] { taken_elsewhere = mutex.try_lock(); }).join();
  EXPECT_FALSE(taken_elsewhere);
  mutex.unlock();
  std::thread([&] {
    taken_elsewhere = mutex.try_lock();
    if (taken_elsewhere) mutex.unlock();
  }).join();
  EXPECT_TRUE(taken_elsewhere);
}

TEST(LightMutexTest, WakesASleepingWaiterAndWorksWithConditionVariableAny) {
  LightMutex mutex;
  std::condition_variable_any changed;
  bool ready = false;
  bool seen = false;
  mutex.lock();
  std::thread waiter([&] {
    std::unique_lock lock(mutex);  // blocks (sleeps) until the main thread lets go
    changed.wait_for(lock, std::chrono::seconds(30), [&] { return ready; });
    seen = ready;
  });
  // Give the waiter the chance to find the lock taken; correct either way.
  std::this_thread::yield();
  ready = true;
  mutex.unlock();
  changed.notify_all();
  waiter.join();
  EXPECT_TRUE(seen);
}

}  // namespace
}  // namespace msgsdk::core
