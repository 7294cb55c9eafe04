#include "core/message_id.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>

namespace msgsdk::core {
namespace {

// Two hex digits per byte from a table: ids are made on every send.
void AppendHex(uint64_t value, char* out) {
  static constexpr auto kPairs = [] {
    constexpr char kDigits[] = "0123456789abcdef";
    std::array<char, 512> pairs{};
    for (int byte = 0; byte < 256; ++byte) {
      pairs[2 * byte] = kDigits[byte >> 4];
      pairs[2 * byte + 1] = kDigits[byte & 0xF];
    }
    return pairs;
  }();
  for (int i = 7; i >= 0; --i) {
    const auto byte = static_cast<size_t>(value & 0xFF);
    out[2 * i] = kPairs[2 * byte];
    out[2 * i + 1] = kPairs[2 * byte + 1];
    value >>= 8;
  }
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

std::string NewMessageId(Timestamp now) {
  static std::atomic<uint64_t> last{0};
  const auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  const uint64_t floor = (ms & ((1ULL << 48) - 1)) << 16;
  uint64_t previous = last.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = previous + 1 > floor ? previous + 1 : floor;
  } while (!last.compare_exchange_weak(previous, next, std::memory_order_relaxed));

  std::array<char, kMessageIdLength> id;
  AppendHex(next, id.data());
  const std::array<char, 16>& nonce = ProcessNonceHex();
  std::copy(nonce.begin(), nonce.end(), id.begin() + 16);
  return std::string(id.data(), id.size());
}

}  // namespace msgsdk::core
