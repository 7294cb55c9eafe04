#pragma once

// The commit positions of the partitions a consumer owns. Per partition a core::OffsetTracker
// keeps the contiguous acknowledged prefix; this class adds what a Kafka assignment needs:
// an epoch per ownership (an acknowledgement from before a partition was revoked and
// assigned again is ignored), the last committed position, and a lock, because
// acknowledgements arrive from any thread while the poll thread delivers and commits.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/offset_tracker.h"

namespace msgsdk::kafka {

class AssignmentOffsets {
 public:
  // A partition is now owned. Returns its epoch, which deliveries carry (never 0).
  uint64_t Assign(int32_t partition);
  // The partition is no longer owned; what was pending for it is forgotten.
  void Revoke(int32_t partition);
  // The partition's current epoch, or 0 if it is not owned.
  uint64_t Epoch(int32_t partition) const;

  // A record at `offset` is being handed out. False if the partition is not owned under
  // `epoch` any more, or the offset is not past those already handed out: then it must not
  // be delivered.
  bool Track(int32_t partition, uint64_t epoch, int64_t offset);
  // The record at `offset` was handled. False if unknown (stale epoch, acknowledged twice).
  bool Ack(int32_t partition, uint64_t epoch, int64_t offset);

  // (partition, position to commit) for owned partitions that had a delivery and, if
  // `only_changed`, whose position differs from the last one passed to MarkCommitted.
  // `partitions` restricts the answer (nullptr: every owned partition).
  std::vector<std::pair<int32_t, int64_t>> Committable(
      bool only_changed, const std::vector<int32_t>* partitions = nullptr) const;
  void MarkCommitted(int32_t partition, int64_t position);

  // Owned partitions, ascending.
  std::vector<int32_t> Partitions() const;
  // Deliveries handed out and not yet acknowledged, over all partitions.
  size_t Outstanding() const;

 private:
  struct PartitionState {
    uint64_t epoch = 0;
    // Created at the first delivery, which tells where the partition's fetching started.
    std::optional<core::OffsetTracker> offsets;
    int64_t last_tracked = -1;
    int64_t committed = -1;
  };

  mutable std::mutex mu_;
  std::map<int32_t, PartitionState> partitions_;
  uint64_t next_epoch_ = 1;
};

}  // namespace msgsdk::kafka
