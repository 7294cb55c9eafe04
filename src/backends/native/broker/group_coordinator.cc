#include "backends/native/broker/group_coordinator.h"

#include <iterator>

namespace msgsdk::native {

void GroupCoordinator::ExpireLocked(GroupState& state, Clock::time_point now) {
  for (auto it = state.members.begin(); it != state.members.end();) {
    if (now - it->second > session_timeout_) {
      for (auto& owner : state.owners) {
        if (owner == it->first) owner.reset();
      }
      it = state.members.erase(it);
    } else {
      ++it;
    }
  }
}

const std::string& GroupCoordinator::TargetOf(const GroupState& state, int32_t queue) {
  auto it = state.members.begin();
  std::advance(it, queue % static_cast<int32_t>(state.members.size()));
  return it->first;
}

GroupCoordinator::Assignment GroupCoordinator::Heartbeat(const std::string& group,
                                                         const std::string& topic,
                                                         const std::string& member,
                                                         int32_t queues) {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  GroupState& state = groups_[{group, topic}];
  if (static_cast<int32_t>(state.owners.size()) < queues) state.owners.resize(queues);
  ExpireLocked(state, now);
  state.members[member] = now;

  Assignment assignment;
  for (int32_t queue = 0; queue < static_cast<int32_t>(state.owners.size()); ++queue) {
    auto& owner = state.owners[queue];
    const bool targeted = TargetOf(state, queue) == member;
    if (owner == member) {
      assignment.owned.push_back(queue);
      if (!targeted) assignment.to_release.push_back(queue);
    } else if (targeted && !owner.has_value()) {
      owner = member;
      assignment.owned.push_back(queue);
    }
  }
  return assignment;
}

void GroupCoordinator::Release(const std::string& group, const std::string& topic,
                               const std::string& member, int32_t queue) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end() || queue < 0 ||
      queue >= static_cast<int32_t>(it->second.owners.size())) {
    return;
  }
  if (it->second.owners[queue] == member) it->second.owners[queue].reset();
}

void GroupCoordinator::Leave(const std::string& group, const std::string& topic,
                             const std::string& member) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end()) return;
  it->second.members.erase(member);
  for (auto& owner : it->second.owners) {
    if (owner == member) owner.reset();
  }
  if (it->second.members.empty()) groups_.erase(it);
}

bool GroupCoordinator::HasMembers(const std::string& group, const std::string& topic) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end()) return false;
  ExpireLocked(it->second, Clock::now());
  return !it->second.members.empty();
}

}  // namespace msgsdk::native
