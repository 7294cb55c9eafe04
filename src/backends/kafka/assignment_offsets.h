#pragma once

// The commit positions of the partitions a consumer owns: per partition the contiguous
// acknowledged prefix (a slow message holds the commit position at itself), plus what a
// Kafka assignment needs: an epoch per ownership (an acknowledgement from before a partition
// was revoked and assigned again is ignored), the last committed position, and a lock,
// because acknowledgements arrive from any thread while the poll thread delivers and commits.
//
// Offsets are handed out in increasing order per partition, so the outstanding ones of a
// partition are kept in a deque in that order (an acknowledgement finds its entry by binary
// search): no allocation per record, unlike a node-based set.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

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
  // Track for a run of records of one partition in partition order, under one lock:
  // tracked[i] tells whether offsets[i] may be delivered. Returns how many may.
  size_t Track(int32_t partition, uint64_t epoch, const std::vector<int64_t>& offsets,
               std::vector<char>& tracked);
  // The record at `offset` was handled. False if unknown (stale epoch, acknowledged twice).
  bool Ack(int32_t partition, uint64_t epoch, int64_t offset);
  // Ack of several records under one lock; unknown ones are ignored.
  struct Acked {
    int32_t partition = -1;
    uint64_t epoch = 0;
    int64_t offset = -1;
  };
  void AckAll(std::span<const Acked> acked);

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
  struct HandedOut {
    int64_t offset;
    bool acked;
  };
  struct PartitionState {
    uint64_t epoch = 0;
    // Whether a record was handed out yet (the first tells where fetching started).
    bool started = false;
    // Handed out and not yet acknowledged, oldest first; the front is never acknowledged.
    std::deque<HandedOut> outstanding;
    size_t unacked = 0;
    // One past the last offset handed out.
    int64_t fetched_up_to = 0;
    int64_t last_tracked = -1;
    int64_t committed = -1;

    bool TrackLocked(int64_t offset);
    bool AckLocked(int64_t offset);
    int64_t CommitPosition() const {
      return outstanding.empty() ? fetched_up_to : outstanding.front().offset;
    }
  };

  mutable std::mutex mu_;
  std::map<int32_t, PartitionState> partitions_;
  uint64_t next_epoch_ = 1;
};

}  // namespace msgsdk::kafka
