#include "core/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace msgsdk::core {
namespace {

// Registers the process for expedited membarrier (Linux 4.14 and later); whether it can be
// used.
bool RegisterMembarrier() {
  const long commands = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (commands < 0 || (commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

std::atomic<bool> full_fences_only{false};

}  // namespace

void fence_internal::UseFullFencesOnly(bool on) { full_fences_only.store(on); }

void EnableAsymmetricFences() {
  static const bool registered = RegisterMembarrier();
  fence_internal::asymmetric.store(registered && !full_fences_only.load(),
                                   std::memory_order_relaxed);
}

void HeavyFence() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (fence_internal::asymmetric.load(std::memory_order_relaxed)) {
    // Registered, so it cannot fail but for a kernel bug; the light halves would then be
    // unsafe, and nothing here could repair that.
    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  }
}

}  // namespace msgsdk::core
