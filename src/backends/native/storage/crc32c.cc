#include "backends/native/storage/crc32c.h"

#include <array>
#include <atomic>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define MSGSDK_CRC32C_X86 1
#endif

namespace msgsdk::native {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // CRC32C, reflected

using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kPolynomial : 0u);
    tables[0][i] = crc;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t t = 1; t < tables.size(); ++t) {
      const uint32_t prev = tables[t - 1][i];
      tables[t][i] = (prev >> 8) ^ tables[0][prev & 0xFFu];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();

inline uint32_t LoadLe32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

#ifdef MSGSDK_CRC32C_X86
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const void* data,
                                                       size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t l = ~crc;
  while (size > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {
    l = _mm_crc32_u8(l, *p++);
    --size;
  }
#if defined(__x86_64__)
  uint64_t l64 = l;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    l64 = _mm_crc32_u64(l64, word);
    p += 8;
    size -= 8;
  }
  l = static_cast<uint32_t>(l64);
#endif
  while (size >= 4) {
    uint32_t word;
    std::memcpy(&word, p, sizeof(word));
    l = _mm_crc32_u32(l, word);
    p += 4;
    size -= 4;
  }
  while (size > 0) {
    l = _mm_crc32_u8(l, *p++);
    --size;
  }
  return ~l;
}

bool DetectSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

using ExtendFn = uint32_t (*)(uint32_t, const void*, size_t);

uint32_t Resolve(uint32_t crc, const void* data, size_t size);

// Starts as Resolve, which replaces itself by the implementation the CPU supports. Constant
// initialisation makes this safe to call from other translation units' static initialisers,
// and a relaxed atomic load is a plain load, unlike a function-local static's guard.
std::atomic<ExtendFn> extend_fn{&Resolve};

uint32_t Resolve(uint32_t crc, const void* data, size_t size) {
  ExtendFn chosen = &crc32c_internal::ExtendPortable;
#ifdef MSGSDK_CRC32C_X86
  if (DetectSse42()) chosen = &ExtendSse42;
#endif
  extend_fn.store(chosen, std::memory_order_relaxed);
  return chosen(crc, data, size);
}

}  // namespace

namespace crc32c_internal {

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t l = ~crc;
  while (size > 0 && (reinterpret_cast<uintptr_t>(p) & 3u) != 0) {
    l = kTables[0][(l ^ *p++) & 0xFFu] ^ (l >> 8);
    --size;
  }
  while (size >= 8) {
    const uint32_t lo = LoadLe32(p) ^ l;
    const uint32_t hi = LoadLe32(p + 4);
    l = kTables[7][lo & 0xFFu] ^ kTables[6][(lo >> 8) & 0xFFu] ^ kTables[5][(lo >> 16) & 0xFFu] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xFFu] ^ kTables[2][(hi >> 8) & 0xFFu] ^
        kTables[1][(hi >> 16) & 0xFFu] ^ kTables[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    l = kTables[0][(l ^ *p++) & 0xFFu] ^ (l >> 8);
    --size;
  }
  return ~l;
}

uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size) {
#ifdef MSGSDK_CRC32C_X86
  return ExtendSse42(crc, data, size);
#else
  return ExtendPortable(crc, data, size);
#endif
}

bool HardwareAvailable() {
#ifdef MSGSDK_CRC32C_X86
  return DetectSse42();
#else
  return false;
#endif
}

}  // namespace crc32c_internal

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size) {
  return extend_fn.load(std::memory_order_relaxed)(crc, data, size);
}

}  // namespace msgsdk::native
