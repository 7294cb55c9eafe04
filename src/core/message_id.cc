#include "core/message_id.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>

namespace msgsdk::core {
namespace {

// The 8 lowercase hex digits of `value` as the bytes of a word, most significant digit first
// in memory, computed in the word's bytes: ids are made on every send.
uint64_t EightHex(uint32_t value) {
  // Spread the nibbles into bytes, least significant in the lowest byte.
  uint64_t x = value;
  x = ((x & 0xFFFF0000ULL) << 16) | (x & 0x0000FFFFULL);
  x = ((x & 0x0000FF000000FF00ULL) << 8) | (x & 0x000000FF000000FFULL);
  x = ((x & 0x00F000F000F000F0ULL) << 4) | (x & 0x000F000F000F000FULL);
  // '0' + nibble, plus the gap between '9' + 1 and 'a' where the nibble is 10 or more.
  const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '9' - 1);
  if constexpr (std::endian::native == std::endian::little) x = __builtin_bswap64(x);
  return x;
}

// The id's second half, per thread: 40 random bits drawn once per process, then a 24-bit
// number of the thread, as two words of hex digits. Two threads (or processes) that make an
// id in the same sixteen nanoseconds still make different ones.
std::array<uint64_t, 2> ThreadSuffixHex() {
  static const uint64_t process_nonce = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }();
  static std::atomic<uint64_t> next_thread{0};
  const uint64_t thread = next_thread.fetch_add(1, std::memory_order_relaxed) & 0xFFFFFF;
  const uint64_t suffix = (process_nonce << 24) | thread;
  return {EightHex(static_cast<uint32_t>(suffix >> 32)), EightHex(static_cast<uint32_t>(suffix))};
}

}  // namespace

void WriteMessageId(Timestamp now, std::string& out) {
  // The stamp: milliseconds in the high 48 bits, the 16-nanosecond step within the
  // millisecond (0 to 62499) in the low 16. Raised above this thread's last stamp and the
  // latest of the process, so ids keep increasing when the clock reads the same step twice
  // or steps back (past the step's 16 bits, a stamp borrows the next millisecond).
  //
  // `latest` takes a plain load and store, not a compare-and-swap: a read-modify-write would
  // cost every send as much as a hundred ordinary instructions. Two threads racing may both
  // write; then `latest` can end a little behind the highest stamp, which matters only should
  // the wall clock step back just then. Sends that follow one another read the clock later,
  // so their ids sort in send order; a thread's own ids always do.
  static std::atomic<uint64_t> latest{0};
  thread_local uint64_t thread_last = 0;
  const auto ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count());
  const uint64_t ms = ns / 1'000'000;
  const uint64_t clock = ((ms & ((1ULL << 48) - 1)) << 16) | ((ns % 1'000'000) >> 4);
  const uint64_t stamp =
      std::max({clock, thread_last + 1, latest.load(std::memory_order_relaxed) + 1});
  latest.store(stamp, std::memory_order_relaxed);
  thread_last = stamp;

  // The id is written as four words of digits, made in registers: the second half is the
  // thread's, and the stamp's high 32 bits change every 65 seconds, so a send computes only
  // the 8 digits of the low 32. (Digits written into a buffer and read back whole at once
  // would stall the read until the writes retire.)
  thread_local const std::array<uint64_t, 2> suffix = ThreadSuffixHex();
  thread_local uint64_t high_bits = ~uint64_t{0};
  thread_local uint64_t high_digits = 0;
  if (stamp >> 32 != high_bits) {
    high_bits = stamp >> 32;
    high_digits = EightHex(static_cast<uint32_t>(high_bits));
  }
  const uint64_t low_digits = EightHex(static_cast<uint32_t>(stamp));
  // resize is free once `out` holds an id.
  out.resize(kMessageIdLength);
  char* digits = out.data();
  std::memcpy(digits, &high_digits, 8);
  std::memcpy(digits + 8, &low_digits, 8);
  std::memcpy(digits + 16, &suffix[0], 8);
  std::memcpy(digits + 24, &suffix[1], 8);
}

}  // namespace msgsdk::core
