#pragma once

// Consumer groups in clustering mode: which member owns which queue of a topic.
// Queues are spread over the live members round-robin (sorted by member id). A queue changes
// hands only after its owner released it (having finished and committed what it delivered),
// so two members never consume one queue at the same time: that is what keeps per-key order
// across rebalances. A member that stops heartbeating for session_timeout is removed and its
// queues are freed.
// Thread-safety: all methods may be called concurrently.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace msgsdk::native {

class GroupCoordinator {
 public:
  using Clock = std::chrono::steady_clock;
  explicit GroupCoordinator(std::chrono::milliseconds session_timeout)
      : session_timeout_(session_timeout) {}

  struct Assignment {
    // Queues this member owns now (including ones granted by this call).
    std::vector<int32_t> owned;
    // Owned queues the member should finish, commit and Release: they belong to another
    // member now.
    std::vector<int32_t> to_release;
    // Bumped whenever a member joins, leaves or expires.
    uint64_t generation = 0;
  };

  // Joins (first call) or refreshes the member and returns its assignment. The member's
  // session timeout is the coordinator's.
  Assignment Heartbeat(const std::string& group, const std::string& topic,
                       const std::string& member, int32_t queues);
  // Joins the member (or refreshes it if already joined) with its own session timeout.
  Assignment Join(const std::string& group, const std::string& topic, const std::string& member,
                  int32_t queues, std::chrono::milliseconds session_timeout);
  // A joined member's heartbeat: hands back `released` queues, refreshes the member and
  // returns its assignment. std::nullopt if the member is not in the group (it never joined,
  // left, or expired, and its queues may belong to others now: it must stop consuming them
  // and join again).
  std::optional<Assignment> Refresh(const std::string& group, const std::string& topic,
                                    const std::string& member, int32_t queues,
                                    const std::vector<int32_t>& released);
  // True if the live member `member` owns `queue`.
  bool Owns(const std::string& group, const std::string& topic, const std::string& member,
            int32_t queue);
  // The member finished with `queue`; another member may take it.
  void Release(const std::string& group, const std::string& topic, const std::string& member,
               int32_t queue);
  // The member leaves: its queues are freed at once.
  void Leave(const std::string& group, const std::string& topic, const std::string& member);
  // True while the group has live members on the topic.
  bool HasMembers(const std::string& group, const std::string& topic);

 private:
  struct MemberState {
    Clock::time_point last_heartbeat;
    std::chrono::milliseconds session_timeout;
  };
  struct GroupState {
    std::map<std::string, MemberState> members;
    std::vector<std::optional<std::string>> owners;  // queue -> owning member
    uint64_t generation = 0;
  };

  // Refreshes (or adds) the member and computes its assignment (lock held).
  Assignment AssignLocked(GroupState& state, const std::string& member, int32_t queues,
                          std::chrono::milliseconds session_timeout, Clock::time_point now);

  // Drops members whose session expired (lock held).
  void ExpireLocked(GroupState& state, Clock::time_point now);
  // The member the queue should belong to.
  static const std::string& TargetOf(const GroupState& state, int32_t queue);

  const std::chrono::milliseconds session_timeout_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, GroupState> groups_;  // (group, topic)
};

}  // namespace msgsdk::native
