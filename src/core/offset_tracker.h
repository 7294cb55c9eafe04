#pragma once

// Which offset of a partition may be committed: the contiguous prefix the handlers have
// acknowledged. A slow message holds the commit position at itself, so a crash redelivers
// it (and what follows) instead of skipping it. Offsets need not be dense.
// Thread-safety: not thread-safe; the owner locks.

#include <cstddef>
#include <cstdint>
#include <set>

namespace msgsdk::core {

class OffsetTracker {
 public:
  // `start` is the first offset that will be fetched.
  explicit OffsetTracker(int64_t start = 0) : fetched_up_to_(start) {}

  // A delivery was handed out.
  void Delivered(int64_t offset) {
    unacked_.insert(offset);
    if (offset + 1 > fetched_up_to_) fetched_up_to_ = offset + 1;
  }
  // Offsets below `next` were fetched (some may have been skipped by a filter).
  void FetchedUpTo(int64_t next) {
    if (next > fetched_up_to_) fetched_up_to_ = next;
  }
  // Returns false if the offset was not outstanding (acked twice, or never delivered).
  bool Acked(int64_t offset) { return unacked_.erase(offset) > 0; }

  // The next offset the group should start from after a restart.
  int64_t CommitPosition() const {
    return unacked_.empty() ? fetched_up_to_ : *unacked_.begin();
  }
  size_t outstanding() const { return unacked_.size(); }

 private:
  std::set<int64_t> unacked_;
  int64_t fetched_up_to_;
};

}  // namespace msgsdk::core
