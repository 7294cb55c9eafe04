#include "core/executor.h"

#include <pthread.h>

#include <utility>

namespace msgsdk::core {
namespace {

void NameThread(const std::string& name) {
  // Linux limits thread names to 15 characters.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace

// The pool whose task the current thread runs: IsPoolThread without looking at the threads.
thread_local const ThreadPool* current_pool = nullptr;

namespace {
// How many UserCodeMarks live on this thread, and how many of them mark send callbacks.
thread_local int user_code_marks = 0;
thread_local int send_callback_marks = 0;
}  // namespace

UserCodeMark::UserCodeMark(UserCode kind) : kind_(kind) {
  ++user_code_marks;
  if (kind_ == UserCode::kSendCallback) ++send_callback_marks;
}
UserCodeMark::~UserCodeMark() {
  --user_code_marks;
  if (kind_ == UserCode::kSendCallback) --send_callback_marks;
}
bool InUserCode() { return user_code_marks > 0; }
bool InSendCallback() { return send_callback_marks > 0; }

ThreadPool::ThreadPool(std::string name, int threads) : name_(std::move(name)) { Resize(threads); }

ThreadPool::~ThreadPool() { Shutdown(); }

bool ThreadPool::Submit(Task&& task) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  tasks_.push_back(std::move(task));
  // Waking a thread costs a syscall; skip it when every thread is busy anyway. Under the
  // lock: once it is released, a busy thread may run the task, and what the task finishes
  // may let the pool's owner shut the pool down and free it while this thread would still
  // be about to wake one.
  if (idle_ > 0) wake_.notify_one();
  return true;
}

bool ThreadPool::IsPoolThread() const { return current_pool == this; }

void ThreadPool::Resize(int threads) {
  if (threads < 1) threads = 1;
  bool shrink;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    target_ = threads;
    shrink = running_ > target_;
    while (running_ < target_) {
      ++running_;
      threads_.emplace_back([this] { Run(); });
    }
  }
  if (shrink) wake_.notify_all();
}

int ThreadPool::size() const {
  std::lock_guard lock(mutex_);
  return target_;
}

void ThreadPool::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  wake_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

void ThreadPool::Run() {
  NameThread(name_);
  current_pool = this;
  std::unique_lock lock(mutex_);
  while (true) {
    if (!stopping_ && running_ > target_) {
      --running_;  // a shrink: this thread leaves (Shutdown joins it)
      return;
    }
    if (tasks_.empty()) {
      if (stopping_) return;
      ++idle_;
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty() || running_ > target_; });
      --idle_;
      continue;
    }
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    task = nullptr;  // destroy captured state outside the lock
    lock.lock();
  }
}

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() { Shutdown(); }

bool TimerQueue::Schedule(Clock::time_point when, Task task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    const bool earliest = timers_.empty() || when < timers_.begin()->first;
    timers_.emplace(when, std::move(task));
    if (!earliest) return true;
  }
  wake_.notify_one();
  return true;
}

void TimerQueue::Shutdown() {
  std::multimap<Clock::time_point, Task> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(timers_);
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void TimerQueue::Run() {
  NameThread("msgsdk-timer");
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (timers_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto due = timers_.begin()->first;
    if (Clock::now() < due) {
      wake_.wait_until(lock, due);
      continue;
    }
    Task task = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    lock.unlock();
    task();
    task = nullptr;
    lock.lock();
  }
}

}  // namespace msgsdk::core
