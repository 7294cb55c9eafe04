#include "core/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace msgsdk::core {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskBeforeShutdownReturns) {
  std::atomic<int> ran{0};
  ThreadPool pool("test", 3);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  pool.Shutdown();
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_FALSE(pool.Submit([] {}));
  pool.Shutdown();  // idempotent
}

TEST(ThreadPoolTest, TasksMaySubmitTasks) {
  ThreadPool pool("test", 1);
  std::promise<void> done;
  ASSERT_TRUE(pool.Submit([&] { pool.Submit([&] { done.set_value(); }); }));
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST(TimerQueueTest, RunsInDeadlineOrder) {
  TimerQueue timers;
  std::mutex mutex;
  std::vector<int> order;
  std::promise<void> done;
  const auto now = TimerQueue::Clock::now();
  timers.Schedule(now + std::chrono::milliseconds(30), [&] {
    std::lock_guard lock(mutex);
    order.push_back(2);
    done.set_value();
  });
  timers.Schedule(now + std::chrono::milliseconds(10), [&] {
    std::lock_guard lock(mutex);
    order.push_back(1);
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  std::lock_guard lock(mutex);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(TimerQueue::Clock::now(), now + std::chrono::milliseconds(30));
}

TEST(TimerQueueTest, ShutdownDropsPendingTimers) {
  std::atomic<bool> ran{false};
  TimerQueue timers;
  timers.Schedule(TimerQueue::Clock::now() + std::chrono::hours(1), [&] { ran = true; });
  timers.Shutdown();
  EXPECT_FALSE(ran);
  EXPECT_FALSE(timers.Schedule(TimerQueue::Clock::now(), [] {}));
}

}  // namespace
}  // namespace msgsdk::core
