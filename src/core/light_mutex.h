#pragma once

// A mutex for the short critical sections taken on every send (a pool's free list, a
// backend's pending sends). Uncontended, lock and unlock are one atomic operation each and a
// few instructions; std::mutex goes through pthread_mutex_lock's and _unlock's checks of the
// mutex type, about 55 instructions per pair, which a producer pays for every record. A
// contended lock waits with std::atomic::wait, which in libstdc++ first checks again 16 times
// (12 with a pause, 4 after yielding the CPU) and only then sleeps on a futex. With many
// threads on few cores the holder has often let go by then, where a pthread mutex sleeps at
// once and its unlock has to wake the sleeper.
// Meets the Lockable requirements: use it with std::lock_guard, std::unique_lock and
// std::condition_variable_any.

#include <atomic>
#include <cstdint>

namespace msgsdk::core {

class LightMutex {
 public:
  LightMutex() = default;
  LightMutex(const LightMutex&) = delete;
  LightMutex& operator=(const LightMutex&) = delete;

  void lock() {
    uint32_t expected = kUnlocked;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    LockContended();
  }

  bool try_lock() {
    uint32_t expected = kUnlocked;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  void unlock() {
    if (state_.exchange(kUnlocked, std::memory_order_release) == kContended) state_.notify_one();
  }

 private:
  // Ulrich Drepper's third mutex in "Futexes Are Tricky": a thread that finds the lock taken
  // marks it contended, so the holder's unlock knows to wake a sleeper.
  void LockContended() {
    while (state_.exchange(kContended, std::memory_order_acquire) != kUnlocked) {
      state_.wait(kContended, std::memory_order_relaxed);
    }
  }

  static constexpr uint32_t kUnlocked = 0;
  static constexpr uint32_t kLocked = 1;
  static constexpr uint32_t kContended = 2;  // locked, and a thread may be waiting
  std::atomic<uint32_t> state_{kUnlocked};
};

}  // namespace msgsdk::core
