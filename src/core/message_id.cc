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

// The 16 lowercase hex digits of `value`, most significant first, computed eight at a time in
// the bytes of a 64-bit word: ids are made on every send.
void AppendHex(uint64_t value, char* out) {
  auto eight_digits = [](uint32_t half) {
    // Spread the nibbles into bytes, least significant in the lowest byte.
    uint64_t x = half;
    x = ((x & 0xFFFF0000ULL) << 16) | (x & 0x0000FFFFULL);
    x = ((x & 0x0000FF000000FF00ULL) << 8) | (x & 0x000000FF000000FFULL);
    x = ((x & 0x00F000F000F000F0ULL) << 4) | (x & 0x000F000F000F000FULL);
    // '0' + nibble, plus the gap between '9' + 1 and 'a' where the nibble is 10 or more.
    const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
    x += 0x3030303030303030ULL + letters * ('a' - '9' - 1);
    // The most significant digit first in memory.
    if constexpr (std::endian::native == std::endian::little) x = __builtin_bswap64(x);
    return x;
  };
  const uint64_t high = eight_digits(static_cast<uint32_t>(value >> 32));
  const uint64_t low = eight_digits(static_cast<uint32_t>(value));
  std::memcpy(out, &high, sizeof(high));
  std::memcpy(out + 8, &low, sizeof(low));
}

// The id's second half: 64 random bits drawn once per process, in hex.
const std::array<char, 16>& ProcessNonceHex() {
  static const std::array<char, 16> hex = [] {
    std::random_device device;
    std::array<char, 16> digits{};
    AppendHex((static_cast<uint64_t>(device()) << 32) ^ device(), digits.data());
    return digits;
  }();
  return hex;
}

}  // namespace

void WriteMessageId(Timestamp now, std::string& out) {
  static std::atomic<uint64_t> last{0};
  const auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  const uint64_t floor = (ms & ((1ULL << 48) - 1)) << 16;
  uint64_t previous = last.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = previous + 1 > floor ? previous + 1 : floor;
  } while (!last.compare_exchange_weak(previous, next, std::memory_order_relaxed));

  // This thread's last id. The ids of one millisecond differ only in the sequence's four
  // digits, so a steady stream of sends rewrites just those.
  thread_local std::array<char, kMessageIdLength> id;
  thread_local uint64_t id_millis = 0;
  thread_local bool id_made = false;
  if (!id_made || next >> 16 != id_millis) {
    AppendHex(next, id.data());
    const std::array<char, 16>& nonce = ProcessNonceHex();
    std::copy(nonce.begin(), nonce.end(), id.begin() + 16);
    id_millis = next >> 16;
    id_made = true;
  } else {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (int i = 0; i < 4; ++i) id[15 - i] = kDigits[(next >> (4 * i)) & 0xF];
  }
  // resize is free once `out` holds an id; the copy of a fixed 32 bytes is two moves.
  out.resize(kMessageIdLength);
  std::memcpy(out.data(), id.data(), kMessageIdLength);
}

}  // namespace msgsdk::core
