#include "backends/native/broker/group_coordinator.h"

#include <iterator>

namespace msgsdk::native {

void GroupCoordinator::ExpireLocked(GroupState& state, Clock::time_point now) {
  for (auto it = state.members.begin(); it != state.members.end();) {
    if (now - it->second.last_heartbeat > it->second.session_timeout) {
      for (auto& owner : state.owners) {
        if (owner == it->first) owner.reset();
      }
      it = state.members.erase(it);
      ++state.generation;
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

GroupCoordinator::Assignment GroupCoordinator::AssignLocked(
    GroupState& state, const std::string& member, int32_t queues,
    std::chrono::milliseconds session_timeout, Clock::time_point now) {
  if (static_cast<int32_t>(state.owners.size()) < queues) state.owners.resize(queues);
  ExpireLocked(state, now);
  auto [it, added] = state.members.try_emplace(member, MemberState{now, session_timeout});
  if (added) {
    ++state.generation;
  } else {
    it->second = MemberState{now, session_timeout};
  }

  Assignment assignment;
  assignment.generation = state.generation;
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

GroupCoordinator::Assignment GroupCoordinator::Heartbeat(const std::string& group,
                                                         const std::string& topic,
                                                         const std::string& member,
                                                         int32_t queues) {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  return AssignLocked(groups_[{group, topic}], member, queues, session_timeout_, now);
}

GroupCoordinator::Assignment GroupCoordinator::Join(const std::string& group,
                                                    const std::string& topic,
                                                    const std::string& member, int32_t queues,
                                                    std::chrono::milliseconds session_timeout) {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  return AssignLocked(groups_[{group, topic}], member, queues, session_timeout, now);
}

std::optional<GroupCoordinator::Assignment> GroupCoordinator::Refresh(
    const std::string& group, const std::string& topic, const std::string& member, int32_t queues,
    const std::vector<int32_t>& released) {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end()) return std::nullopt;
  GroupState& state = it->second;
  ExpireLocked(state, now);
  auto member_it = state.members.find(member);
  if (member_it == state.members.end()) {
    if (state.members.empty()) groups_.erase(it);
    return std::nullopt;
  }
  for (int32_t queue : released) {
    if (queue >= 0 && queue < static_cast<int32_t>(state.owners.size()) &&
        state.owners[queue] == member) {
      state.owners[queue].reset();
    }
  }
  return AssignLocked(state, member, queues, member_it->second.session_timeout, now);
}

bool GroupCoordinator::Owns(const std::string& group, const std::string& topic,
                            const std::string& member, int32_t queue) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end()) return false;
  ExpireLocked(it->second, Clock::now());
  const auto& owners = it->second.owners;
  return queue >= 0 && queue < static_cast<int32_t>(owners.size()) && owners[queue] == member;
}

void GroupCoordinator::Release(const std::string& group, const std::string& topic,
                               const std::string& member, int32_t queue) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end() || queue < 0 || queue >= static_cast<int32_t>(it->second.owners.size())) {
    return;
  }
  if (it->second.owners[queue] == member) it->second.owners[queue].reset();
}

void GroupCoordinator::Leave(const std::string& group, const std::string& topic,
                             const std::string& member) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find({group, topic});
  if (it == groups_.end()) return;
  if (it->second.members.erase(member) > 0) ++it->second.generation;
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
