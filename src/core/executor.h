#pragma once

// The SDK's own threads: a fixed pool that runs user code (send callbacks, handlers), so user
// code never runs on a backend's I/O thread, and a timer thread for delayed work (retries).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace msgsdk::core {

using Task = std::function<void()>;

// Runs tasks on `threads` threads in submission order (FIFO, several at a time).
// Thread-safety: Submit may be called from any thread, also from a task.
class ThreadPool {
 public:
  ThreadPool(std::string name, int threads);
  ~ThreadPool();  // Shutdown()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Returns false after Shutdown, and the task is then left with the caller untouched (what
  // it holds is released where the caller decides).
  bool Submit(Task&& task);
  // Runs every queued task, then joins the threads. Idempotent. Must not be called from a
  // pool thread.
  void Shutdown();
  bool IsPoolThread() const;
  // Changes the number of threads (at least 1) while tasks run: new threads start at once;
  // surplus threads leave after the task they are running. Ignored after Shutdown.
  void Resize(int threads);
  int size() const;

 private:
  void Run();

  const std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  int idle_ = 0;
  int target_ = 0;   // threads wanted
  int running_ = 0;  // threads started and not yet leaving
  bool stopping_ = false;
  // Every thread ever started (those that left after a shrink too), joined by Shutdown.
  std::vector<std::thread> threads_;
};

// Deletes `owner`, an object that owns `pool` and shuts it down as it goes. When the last
// reference is let go in one of the pool's own tasks (a send callback dropping its client,
// say), the pool cannot be joined from there, and the task is still using the owner: the
// delete then moves to a thread of its own, whose join waits for that task to end.
template <typename Owner>
void DeleteOwnerOfPool(Owner* owner, const ThreadPool& pool) {
  if (!pool.IsPoolThread()) {
    delete owner;
    return;
  }
  std::thread([owner] { delete owner; }).detach();
}

// Marks this thread, while it lives, as running user code that closes wait for: message
// handlers (of a subscription of either transport) and send callbacks. Closing a
// subscription waits for its handlers to return, and closing a producer for its callbacks,
// so a close of a subscription or a client called from such code must not wait: two
// handlers closing each other's subscriptions, or a handler closing the producer whose
// callback closes the handler's subscription, would otherwise wait for each other for good
// (a subscription's close ends by joining its handler threads). Such a close finishes in
// the background (see SubscriptionCore::Close). Likewise a producer's close called from a
// send callback does not wait for send callbacks: two callbacks closing each other's
// producers would wait for each other.
enum class UserCode { kHandler, kSendCallback };
class UserCodeMark {
 public:
  explicit UserCodeMark(UserCode kind);
  ~UserCodeMark();
  UserCodeMark(const UserCodeMark&) = delete;
  UserCodeMark& operator=(const UserCodeMark&) = delete;

 private:
  const UserCode kind_;
};
// A handler or a send callback runs on this thread.
bool InUserCode();
// A send callback (of any client) runs on this thread.
bool InSendCallback();

// Hands items to a ThreadPool in batches: one pool task drains every item posted meanwhile, so
// a stream of completions costs one wakeup per batch instead of one per item. Items are
// handled one batch at a time, in posting order.
template <typename Item>
class BatchingQueue {
 public:
  // Called with each batch, on a pool thread; the items are cleared afterwards.
  using Handler = std::function<void(std::span<Item>)>;
  BatchingQueue(ThreadPool& pool, Handler handler) : pool_(pool), handler_(std::move(handler)) {}

  // Posts one item, with one pool task at most.
  void Post(Item item) {
    std::unique_lock lock(mutex_);
    pending_.push_back(std::move(item));
    StartDrain(lock);
  }
  // Posts every item of `items`, in order, under one lock, with one pool task at most, and
  // leaves `items` empty. While nothing is pending, `items` and the queue's vector trade
  // places instead of the items moving one by one (each keeps a buffer, so a steady stream
  // allocates nothing).
  void PostAll(std::vector<Item>& items) {
    if (items.empty()) return;
    std::unique_lock lock(mutex_);
    if (pending_.empty()) {
      pending_.swap(items);
    } else {
      for (Item& item : items) pending_.push_back(std::move(item));
    }
    items.clear();
    StartDrain(lock);
  }

 private:
  // Starts a pool task that drains the queue, unless one is draining it. Releases `lock`.
  void StartDrain(std::unique_lock<std::mutex>& lock) {
    if (draining_) return;
    draining_ = true;
    lock.unlock();
    // After the pool shut down (the client closed) the caller still hears back, inline.
    if (!pool_.Submit([this] { Drain(); })) Drain();
  }

  void Drain() {
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (pending_.empty()) {
          draining_ = false;
          return;
        }
        // The two vectors trade places, so both keep their capacity: a steady stream
        // allocates nothing here.
        batch_.swap(pending_);
      }
      handler_(batch_);
      batch_.clear();
    }
  }

  ThreadPool& pool_;
  const Handler handler_;
  std::mutex mutex_;
  std::vector<Item> pending_;
  bool draining_ = false;
  // The batch being handled: only the one Drain running (draining_) touches it.
  std::vector<Item> batch_;
};

// Runs tasks at (or shortly after) a given time on its own thread. Tasks must be short:
// anything longer is handed to a ThreadPool by the task itself.
class TimerQueue {
 public:
  using Clock = std::chrono::steady_clock;
  TimerQueue();
  ~TimerQueue();  // Shutdown()
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Returns false (and drops the task) after Shutdown.
  bool Schedule(Clock::time_point when, Task task);
  // Drops pending timers without running them, joins the thread. Idempotent.
  void Shutdown();

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::multimap<Clock::time_point, Task> timers_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace msgsdk::core
