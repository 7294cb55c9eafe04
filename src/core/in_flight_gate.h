#pragma once

// Counts operations in flight through a gate that closes once (a producer route's sends, a
// backend's pending sends), so that whoever closes it can wait until none is left.
//
// Threads enter on every send, so entering makes no atomic read-modify-write: on x86 each
// drains the store buffer and costs a sending thread about as much as a hundred ordinary
// instructions. A thread counts its entries in a slot of its own (one per thread and gate),
// written with plain stores. Exits come from other threads (a callback thread, a delivery
// thread) a batch at a time, and add to one atomic.
//
// An entering thread publishes its count, then reads whether the gate is closed; Close sets
// closed, then reads the counts: Dekker's pattern, with the fence pair of
// asymmetric_fence.h, whose light half costs the entering thread nothing.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/asymmetric_fence.h"

namespace msgsdk::core {

class InFlightGate {
 public:
  InFlightGate();
  ~InFlightGate();
  InFlightGate(const InFlightGate&) = delete;
  InFlightGate& operator=(const InFlightGate&) = delete;

  // On the entering thread: counts `count` in, or returns false if the gate is closed. A
  // refused Enter counts in and out again, so it may show in InFlight for a moment: the
  // caller then wakes whoever waits for the count.
  bool Enter(int64_t count = 1) {
    Slot& slot = ThisThreadsSlot();
    slot.entered.store(slot.entered.load(std::memory_order_relaxed) + count,
                       std::memory_order_relaxed);
    LightFence();
    if (!closed_.load(std::memory_order_relaxed)) return true;
    Exit(count);
    return false;
  }
  // Counts `count` in whether or not the gate closed meanwhile, for a caller that holds an
  // entry already (which keeps InFlight above zero until the caller exits).
  void EnterHeld(int64_t count = 1) {
    Slot& slot = ThisThreadsSlot();
    slot.entered.store(slot.entered.load(std::memory_order_relaxed) + count,
                       std::memory_order_release);
  }
  // Any thread: `count` entries are done.
  void Exit(int64_t count = 1) { exited_.fetch_add(count); }

  // Enter fails from now on. When Close returns, every Enter that succeeded is counted in
  // InFlight. Idempotent.
  void Close();
  bool closed() const { return closed_.load(); }
  // Entries not yet exited. Exact after Close; before it, a thread's latest entries may not
  // show yet. An exit that wants to know whether it was the last after Close makes its Exit,
  // then reads closed(), then (if closed) InFlight: sequentially consistent, so either it
  // sees the gate closed or Close's reader sees its exit.
  int64_t InFlight() const;

 private:
  // One thread's entries; written by that thread only. A line of its own, so threads entering
  // the same gate do not write to each other's cache lines.
  struct alignas(64) Slot {
    std::atomic<int64_t> entered{0};
  };
  Slot& ThisThreadsSlot() {
    CacheEntry& entry = SlotCache()[id_ % kCacheEntries];
    if (entry.gate_id != id_) [[unlikely]] {
      entry.slot = &FindSlot();
      entry.gate_id = id_;
    }
    return *entry.slot;
  }
  // This thread's slot, made on its first entry.
  Slot& FindSlot();
  // The slots of the last gates a thread entered, by gate id: a thread entering the same few
  // gates over and over finds its slot without a lock or a lookup.
  struct CacheEntry {
    uint64_t gate_id = 0;
    Slot* slot = nullptr;
  };
  static constexpr uint64_t kCacheEntries = 8;
  static CacheEntry* SlotCache() {
    thread_local CacheEntry cache[kCacheEntries];
    return cache;
  }

  // Never reused within the process, so a thread's cache never mistakes a new gate for one
  // that was destroyed.
  const uint64_t id_;
  std::atomic<bool> closed_{false};
  std::atomic<int64_t> exited_{0};
  mutable std::mutex slots_mu_;
  // By thread (the address of a thread_local, unique among live threads): a thread that left
  // the cache and comes back finds its slot again. A slot outlives its thread; a later thread
  // given the same address continues it.
  std::unordered_map<const void*, std::unique_ptr<Slot>> slots_;
};

}  // namespace msgsdk::core
