#pragma once

// A fence pair for Dekker's pattern where one side runs on every send and the other rarely
// (closing a gate, shutting a cluster down): each side stores, fences, then loads what the
// other stored. The frequent side's half (LightFence) is only a compiler fence; the rare
// side's (HeavyFence) makes every running thread of the process execute a full memory
// barrier, with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), as user-space RCU and folly's
// asymmetric barriers do. A full fence on x86 drains the store buffer and costs a sending
// thread about as much as a hundred ordinary instructions.
//
// Where the kernel lacks that command (or a seccomp policy forbids it), both halves are full
// fences. EnableAsymmetricFences() decides, once per process; call it before the first
// LightFence that pairs with a HeavyFence (the constructor of whatever uses the pair).

#include <atomic>

namespace msgsdk::core {

namespace fence_internal {
inline std::atomic<bool> asymmetric{false};
// For tests: with `on`, EnableAsymmetricFences chooses full fences on both sides, as where
// the kernel lacks the command.
void UseFullFencesOnly(bool on);
}  // namespace fence_internal

void EnableAsymmetricFences();

inline void LightFence() {
  if (fence_internal::asymmetric.load(std::memory_order_relaxed)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

void HeavyFence();

}  // namespace msgsdk::core
