#pragma once

// Loading a record into the cache ahead of its use, for records that are touched long after
// they were last used (a send's record when its delivery report comes) or that another core
// wrote last (a record given back by a callback thread).

#include <cstddef>

namespace msgsdk::core {

inline constexpr size_t kCacheLineBytes = 64;

// Starts loading the line of `address` to be written, without waiting for it. On x86 this is
// PREFETCHW, which takes the line exclusive: __builtin_prefetch(address, 1) emits PREFETCHW
// only when the target is built for it, and otherwise a read prefetch, after which the write
// still has to take the line from the core that holds it.
inline void PrefetchLineForWrite(const void* address) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(address)));
#else
  __builtin_prefetch(address, /*rw=*/1);
#endif
}

// Every line of the `bytes` bytes at `address`, wherever they start.
inline void PrefetchForWrite(const void* address, size_t bytes) {
  const auto* first = static_cast<const char*>(address);
  for (size_t offset = 0; offset < bytes; offset += kCacheLineBytes) {
    PrefetchLineForWrite(first + offset);
  }
  PrefetchLineForWrite(first + bytes - 1);
}

}  // namespace msgsdk::core
