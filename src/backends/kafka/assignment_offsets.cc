#include "backends/kafka/assignment_offsets.h"

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

bool AssignmentOffsets::Track(int32_t partition, uint64_t epoch, int64_t offset) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.epoch != epoch) return false;
  PartitionState& state = it->second;
  if (offset <= state.last_tracked) return false;
  state.last_tracked = offset;
  if (!state.offsets.has_value()) state.offsets.emplace(offset);
  state.offsets->Delivered(offset);
  return true;
}

bool AssignmentOffsets::Ack(int32_t partition, uint64_t epoch, int64_t offset) {
  std::lock_guard lock(mu_);
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.epoch != epoch || !it->second.offsets) return false;
  return it->second.offsets->Acked(offset);
}

std::vector<std::pair<int32_t, int64_t>> AssignmentOffsets::Committable(
    bool only_changed, const std::vector<int32_t>* partitions) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<int32_t, int64_t>> out;
  auto consider = [&](int32_t partition, const PartitionState& state) {
    if (!state.offsets.has_value()) return;
    const int64_t position = state.offsets->CommitPosition();
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
    if (state.offsets) n += state.offsets->outstanding();
  }
  return n;
}

}  // namespace msgsdk::kafka
