#include "backends/kafka/assignment_offsets.h"

#include <algorithm>

namespace msgsdk::kafka {

uint64_t AssignmentOffsets::Assign(int32_t partition) {
  std::lock_guard lock(mu_);
  PartitionState& state = partitions_[partition];
  state = PartitionState{};
  state.epoch = next_epoch_++;
  return state.epoch;
}

void AssignmentOffsets::Revoke(int32_t partition) {
  std::lock_guard lock(mu_);
  partitions_.erase(partition);
}

uint64_t AssignmentOffsets::Epoch(int32_t partition) const {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.epoch;
}

bool AssignmentOffsets::PartitionState::TrackLocked(int64_t offset) {
  if (offset <= last_tracked) return false;
  last_tracked = offset;
  started = true;
  outstanding.push_back(HandedOut{offset, false});
  ++unacked;
  fetched_up_to = offset + 1;
  return true;
}

bool AssignmentOffsets::PartitionState::AckLocked(int64_t offset) {
  if (outstanding.empty() || offset < outstanding.front().offset) return false;
  // A partition's offsets are usually consecutive, so the entry is found by its distance from
  // the front; gaps (compacted or transactional topics) fall back to a binary search.
  auto it = outstanding.end();
  const auto distance = static_cast<uint64_t>(offset - outstanding.front().offset);
  if (distance < outstanding.size() && outstanding[distance].offset == offset) {
    it = outstanding.begin() + static_cast<ptrdiff_t>(distance);
  } else {
    it = std::lower_bound(
        outstanding.begin(), outstanding.end(), offset,
        [](const HandedOut& entry, int64_t value) { return entry.offset < value; });
  }
  if (it == outstanding.end() || it->offset != offset || it->acked) return false;
  it->acked = true;
  --unacked;
  while (!outstanding.empty() && outstanding.front().acked) outstanding.pop_front();
  return true;
}

bool AssignmentOffsets::Track(int32_t partition, uint64_t epoch, int64_t offset) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.epoch != epoch) return false;
  return it->second.TrackLocked(offset);
}

size_t AssignmentOffsets::Track(int32_t partition, uint64_t epoch,
                                const std::vector<int64_t>& offsets, std::vector<char>& tracked) {
  tracked.assign(offsets.size(), 0);
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.epoch != epoch) return 0;
  size_t count = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (it->second.TrackLocked(offsets[i])) {
      tracked[i] = 1;
      ++count;
    }
  }
  return count;
}

bool AssignmentOffsets::Ack(int32_t partition, uint64_t epoch, int64_t offset) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.epoch != epoch) return false;
  return it->second.AckLocked(offset);
}

void AssignmentOffsets::AckAll(std::span<const Acked> acked) {
  std::lock_guard lock(mu_);
  // Consecutive records usually share a partition: looked up once per run.
  auto it = partitions_.end();
  for (const Acked& record : acked) {
    if (it == partitions_.end() || it->first != record.partition) {
      it = partitions_.find(record.partition);
      if (it == partitions_.end()) continue;
    }
    if (it->second.epoch == record.epoch) it->second.AckLocked(record.offset);
  }
}

std::vector<std::pair<int32_t, int64_t>> AssignmentOffsets::Committable(
    bool only_changed, const std::vector<int32_t>* partitions) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<int32_t, int64_t>> out;
  auto consider = [&](int32_t partition, const PartitionState& state) {
    if (!state.started) return;
    const int64_t position = state.CommitPosition();
    if (only_changed && position == state.committed) return;
    out.emplace_back(partition, position);
  };
  if (partitions == nullptr) {
    for (const auto& [partition, state] : partitions_) consider(partition, state);
  } else {
    for (int32_t partition : *partitions) {
      auto it = partitions_.find(partition);
      if (it != partitions_.end()) consider(partition, it->second);
    }
  }
  return out;
}

void AssignmentOffsets::MarkCommitted(int32_t partition, int64_t position) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it != partitions_.end()) it->second.committed = position;
}

std::vector<int32_t> AssignmentOffsets::Partitions() const {
  std::lock_guard lock(mu_);
  std::vector<int32_t> out;
  out.reserve(partitions_.size());
  for (const auto& [partition, state] : partitions_) out.push_back(partition);
  return out;
}

size_t AssignmentOffsets::Outstanding() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [partition, state] : partitions_) {
    n += state.unacked;
  }
  return n;
}

}  // namespace msgsdk::kafka
