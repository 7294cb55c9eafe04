#pragma once

// Waiting on conditions with deadlines (tests never sleep to let something happen).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "msgsdk/message.h"

namespace msgsdk::testing {

// Polls `condition` until true or `timeout`; for state that has no notification of its own.
inline bool WaitUntil(const std::function<bool()>& condition,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Collects what handlers receive, and lets a test wait for a count with a deadline.
// Thread-safety: all methods may be called concurrently.
class Collector {
 public:
  void Add(const Message& message) {
    std::lock_guard lock(mutex_);
    messages_.push_back(message);
    ++count_by_id_[message.message_id];
    changed_.notify_all();
  }

  // Waits until at least `n` deliveries (counting repeats) arrived.
  bool WaitForDeliveries(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
  }
  // Waits until at least `n` distinct message ids arrived.
  bool WaitForDistinct(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return count_by_id_.size() >= n; });
  }

  // Waits until every id of `ids` arrived (extra ids do not count: a send that failed after
  // being stored may be delivered too).
  bool WaitForIds(const std::set<std::string>& ids,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const auto& id : ids) {
        if (count_by_id_.count(id) == 0) return false;
      }
      return true;
    });
  }

  std::vector<Message> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  std::map<std::string, int> count_by_id() const {
    std::lock_guard lock(mutex_);
    return count_by_id_;
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }
  size_t distinct() const {
    std::lock_guard lock(mutex_);
    return count_by_id_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> messages_;
  std::map<std::string, int> count_by_id_;
};

}  // namespace msgsdk::testing
