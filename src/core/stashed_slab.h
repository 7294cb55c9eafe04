#pragma once

// Records taken on every send (the core's SendAsync records, a backend's pending sends): a
// RecordSlab behind a lock, from which a sending thread takes records through a stash of its
// own, refilled kRefill at a time under the lock. A lock per send would cost the sending
// thread two atomic read-modify-writes, each as much as a hundred ordinary instructions.
// Records come back a batch at a time (Give), from whichever thread completed them.
//
// A thread's stash holds records of one slab at a time (of each record type); it gives them
// back when the thread takes from another slab or ends, if that slab still exists (a slab
// frees its records, stashed or not, when it goes). Stashes name their slab by an id never
// reused within the process.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>

#include "core/light_mutex.h"
#include "core/prefetch.h"
#include "core/record_slab.h"

namespace msgsdk::core {

template <typename T>
class StashedSlab {
 public:
  // Records taken from the slab at once by a thread.
  static constexpr size_t kRefill = 16;

  // As RecordSlab's.
  StashedSlab(std::function<void(void* where)> construct, size_t max_spare)
      : records_(std::move(construct), max_spare), id_(Register(this)) {}
  ~StashedSlab() {
    // First: a stash given back from now on forgets its records, which the slab frees.
    Live& live = Slabs();
    std::lock_guard lock(live.mutex);
    live.by_id.erase(id_);
  }
  StashedSlab(const StashedSlab&) = delete;
  StashedSlab& operator=(const StashedSlab&) = delete;

  T* Take() {
    Stash& stash = ThisThreadsStash();
    if (stash.slab_id == id_ && stash.count > 0) [[likely]] {
      T* record = stash.records[--stash.count];
      // The next Take's record, loaded ahead: the thread that gave it back wrote it last.
      if (stash.count > 0) PrefetchForWrite(stash.records[stash.count - 1], sizeof(T));
      return record;
    }
    if (stash.slab_id != id_) {
      stash.GiveBack();
      stash.slab_id = id_;
    }
    std::lock_guard lock(mutex_);
    // The slab hands out the records given back last first (the likeliest to be in cache);
    // the stash hands them out in the same order.
    T* record = records_.Take();
    stash.count = kRefill - 1;
    for (size_t i = stash.count; i-- > 0;) stash.records[i] = records_.Take();
    return record;
  }

  // Records done with, or that a thread stashed.
  void Give(std::span<T* const> records) {
    std::lock_guard lock(mutex_);
    for (T* record : records) records_.Give(record);
  }

  // Calls `visit(record)` for every record, taken, stashed or spare (see RecordSlab).
  template <typename Visit>
  void ForEach(Visit visit) {
    std::lock_guard lock(mutex_);
    records_.ForEach(std::move(visit));
  }

 private:
  // The slabs alive, by id.
  struct Live {
    std::mutex mutex;
    std::unordered_map<uint64_t, StashedSlab*> by_id;
    uint64_t next_id = 1;
  };
  // Never destroyed: a thread may end (and give its stash back) after static destruction
  // began.
  static Live& Slabs() {
    static auto* live = new Live;
    return *live;
  }
  static uint64_t Register(StashedSlab* slab) {
    Live& live = Slabs();
    std::lock_guard lock(live.mutex);
    const uint64_t id = live.next_id++;
    live.by_id.emplace(id, slab);
    return id;
  }

  // A thread's spare records, all of the slab `slab_id`.
  struct Stash {
    Stash() = default;
    Stash(const Stash&) = delete;
    Stash& operator=(const Stash&) = delete;
    ~Stash() { GiveBack(); }

    // The records go back to their slab if it still exists; else it has freed them already.
    void GiveBack() {
      if (count > 0) {
        Live& live = Slabs();
        std::lock_guard lock(live.mutex);
        if (auto it = live.by_id.find(slab_id); it != live.by_id.end()) {
          it->second->Give(std::span(records.data(), count));
        }
      }
      count = 0;
      slab_id = 0;
    }

    uint64_t slab_id = 0;
    size_t count = 0;
    std::array<T*, kRefill> records{};
  };
  static Stash& ThisThreadsStash() {
    thread_local Stash stash;
    return stash;
  }

  LightMutex mutex_;  // taken once per refill of a thread's stash, and per batch given back
  RecordSlab<T> records_;
  // Never reused within the process: a thread's stash names its slab by it.
  const uint64_t id_;
};

}  // namespace msgsdk::core
