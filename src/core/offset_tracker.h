#pragma once

// Which offset of a partition may be committed: the contiguous prefix the handlers have
// acknowledged. A slow message holds the commit position at itself, so a crash redelivers
// it (and what follows) instead of skipping it. Offsets need not be dense.
// Thread-safety: not thread-safe; the owner locks.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace msgsdk::core {

class OffsetTracker {
 public:
  // `start` is the first offset that will be fetched.
  explicit OffsetTracker(int64_t start = 0) : fetched_up_to_(start) {}

  // A delivery was handed out. Offsets normally come in increasing order (appended at the
  // back, no allocation per delivery, unlike a node-based set); any other order is kept
  // sorted too, and an offset already outstanding is counted once.
  void Delivered(int64_t offset) {
    if (outstanding_.empty() || offset > outstanding_.back().offset) {
      outstanding_.push_back({offset, false});
      ++unacked_;
    } else {
      auto it = Find(offset);
      if (it == outstanding_.end() || it->offset != offset) {
        outstanding_.insert(it, {offset, false});
        ++unacked_;
      }
    }
    if (offset + 1 > fetched_up_to_) fetched_up_to_ = offset + 1;
  }
  // Offsets below `next` were fetched (some may have been skipped by a filter).
  void FetchedUpTo(int64_t next) {
    if (next > fetched_up_to_) fetched_up_to_ = next;
  }
  // Returns false if the offset was not outstanding (acked twice, or never delivered).
  bool Acked(int64_t offset) {
    auto it = Find(offset);
    if (it == outstanding_.end() || it->offset != offset || it->acked) return false;
    it->acked = true;
    --unacked_;
    while (!outstanding_.empty() && outstanding_.front().acked) outstanding_.pop_front();
    return true;
  }

  // The next offset the group should start from after a restart.
  int64_t CommitPosition() const {
    return outstanding_.empty() ? fetched_up_to_ : outstanding_.front().offset;
  }
  size_t outstanding() const { return unacked_; }

 private:
  struct HandedOut {
    int64_t offset;
    bool acked;
  };

  std::deque<HandedOut>::iterator Find(int64_t offset) {
    return std::lower_bound(
        outstanding_.begin(), outstanding_.end(), offset,
        [](const HandedOut& entry, int64_t value) { return entry.offset < value; });
  }

  // Handed out, in offset order; the front is never acknowledged (acknowledged entries at
  // the front are dropped at once).
  std::deque<HandedOut> outstanding_;
  size_t unacked_ = 0;
  int64_t fetched_up_to_;
};

// Acknowledges each delivery of `deliveries` (pointers to objects with message.partition and
// message.offset) in the tracker of its partition's entry in `owned` (a map from partition
// to a state with a `tracker`); those of partitions no longer owned are ignored. For a
// backend's AckAll, under the backend's lock: one lock and, for a run of one partition, one
// lookup for the whole batch.
template <typename OwnedMap, typename Deliveries>
void AckOwned(OwnedMap& owned, const Deliveries& deliveries) {
  auto it = owned.end();
  for (const auto* delivery : deliveries) {
    if (it == owned.end() || it->first != delivery->message.partition) {
      it = owned.find(delivery->message.partition);
    }
    if (it != owned.end()) it->second.tracker.Acked(delivery->message.offset);
  }
}

}  // namespace msgsdk::core
