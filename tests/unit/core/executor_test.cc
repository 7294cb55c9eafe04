#include "core/executor.h"

#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>

#include <gtest/gtest.h>

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

TEST(ThreadPoolTest, ARefusedTaskIsLeftWithTheCaller) {
  ThreadPool pool("test", 1);
  pool.Shutdown();
  auto held = std::make_shared<int>(7);
  Task task = [held] { ++*held; };
  ASSERT_FALSE(pool.Submit(std::move(task)));
  // Still callable, still holding what it captured: the caller decides where it goes.
  ASSERT_TRUE(task);
  EXPECT_EQ(held.use_count(), 2);
  task();
  EXPECT_EQ(*held, 8);
}

TEST(ThreadPoolTest, TasksMaySubmitTasks) {
  ThreadPool pool("test", 1);
  std::promise<void> done;
  ASSERT_TRUE(pool.Submit([&] { pool.Submit([&] { done.set_value(); }); }));
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

// Runs `n` tasks that each wait until all `n` have started: true proves `n` threads.
bool RunTogether(ThreadPool& pool, int n) {
  std::mutex mutex;
  std::condition_variable changed;
  int started = 0;
  int finished = 0;
  int together = 0;
  for (int i = 0; i < n; ++i) {
    pool.Submit([&] {
      std::unique_lock lock(mutex);
      ++started;
      changed.notify_all();
      if (changed.wait_for(lock, std::chrono::seconds(20), [&] { return started == n; })) {
        ++together;
      }
      ++finished;
      changed.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return finished == n; });
  return together == n;
}

TEST(ThreadPoolTest, ResizeGrowsAndShrinksWhileRunning) {
  ThreadPool pool("test", 1);
  EXPECT_EQ(pool.size(), 1);
  pool.Resize(3);
  EXPECT_EQ(pool.size(), 3);
  EXPECT_TRUE(RunTogether(pool, 3));
  pool.Resize(1);
  std::promise<bool> on_pool;
  pool.Submit([&] { on_pool.set_value(pool.IsPoolThread()); });
  EXPECT_TRUE(on_pool.get_future().get());
  EXPECT_FALSE(pool.IsPoolThread());
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) pool.Submit([&] { ++ran; });
  pool.Shutdown();
  EXPECT_EQ(ran.load(), 100);
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
