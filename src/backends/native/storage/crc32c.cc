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

// The crc32 instruction has a latency of three cycles and a throughput of one, so one chain
// of it runs at a third of the speed the CPU allows. Long inputs are therefore cut into three
// blocks of equal length whose CRCs are computed side by side (from zero for the second and
// third) and then joined: by linearity, the CRC of A followed by B is the CRC of A shifted
// over |B| zero bytes, XOR the CRC of B from zero. A shift over a fixed length is a linear map
// of the 32-bit register, kept as four 256-entry tables (one per byte of the register).

using Matrix = std::array<uint32_t, 32>;  // a linear map of the CRC register, column by column

constexpr uint32_t Times(const Matrix& matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (size_t i = 0; vector != 0; ++i, vector >>= 1) {
    if ((vector & 1u) != 0) sum ^= matrix[i];
  }
  return sum;
}

constexpr Matrix Square(const Matrix& matrix) {
  Matrix square{};
  for (size_t i = 0; i < square.size(); ++i) square[i] = Times(matrix, matrix[i]);
  return square;
}

// The map that feeds `bytes` zero bytes (a power of two) through the register.
constexpr Matrix ZeroBytesOperator(size_t bytes) {
  Matrix op{};  // one zero bit
  op[0] = kPolynomial;
  for (size_t i = 1; i < op.size(); ++i) op[i] = 1u << (i - 1);
  for (size_t bits = 1; bits < 8 * bytes; bits *= 2) op = Square(op);
  return op;
}

using ShiftTable = std::array<std::array<uint32_t, 256>, 4>;

constexpr ShiftTable MakeShiftTable(size_t bytes) {
  const Matrix op = ZeroBytesOperator(bytes);
  ShiftTable table{};
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t b = 0; b < table.size(); ++b) table[b][i] = Times(op, i << (8 * b));
  }
  return table;
}

inline uint32_t Shift(const ShiftTable& table, uint32_t crc) {
  return table[0][crc & 0xFFu] ^ table[1][(crc >> 8) & 0xFFu] ^ table[2][(crc >> 16) & 0xFFu] ^
         table[3][crc >> 24];
}

// Block lengths, largest first; what is left after the smallest goes through one chain. A
// 100-byte message's record (about 230 bytes) takes a round of 64-byte blocks and one of
// 32-byte blocks; a 1 KiB message's, a round of 256-, 64- and 32-byte blocks each.
constexpr size_t kLongBlock = 2048;
constexpr size_t kMediumBlock = 256;
constexpr size_t kShortBlock = 64;
constexpr size_t kTinyBlock = 32;
constexpr ShiftTable kShiftLong = MakeShiftTable(kLongBlock);
constexpr ShiftTable kShiftMedium = MakeShiftTable(kMediumBlock);
constexpr ShiftTable kShiftShort = MakeShiftTable(kShortBlock);
constexpr ShiftTable kShiftTiny = MakeShiftTable(kTinyBlock);

#ifdef MSGSDK_CRC32C_X86
__attribute__((target("sse4.2"))) inline uint64_t Load64(const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return word;
}

// Consumes rounds of three `block`-byte blocks while at least one remains.
template <size_t kBlock>
__attribute__((target("sse4.2"))) inline uint32_t ExtendInterleaved(uint32_t crc,
                                                                    const ShiftTable& shift,
                                                                    const unsigned char*& p,
                                                                    size_t& size) {
#if defined(__x86_64__)
  while (size >= 3 * kBlock) {
    uint64_t crc0 = crc;
    uint64_t crc1 = 0;
    uint64_t crc2 = 0;
    for (size_t i = 0; i < kBlock; i += 8) {
      crc0 = _mm_crc32_u64(crc0, Load64(p + i));
      crc1 = _mm_crc32_u64(crc1, Load64(p + kBlock + i));
      crc2 = _mm_crc32_u64(crc2, Load64(p + 2 * kBlock + i));
    }
    crc = Shift(shift, static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc1);
    crc = Shift(shift, crc) ^ static_cast<uint32_t>(crc2);
    p += 3 * kBlock;
    size -= 3 * kBlock;
  }
#endif
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const void* data,
                                                       size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t l = ~crc;
  l = ExtendInterleaved<kLongBlock>(l, kShiftLong, p, size);
  l = ExtendInterleaved<kMediumBlock>(l, kShiftMedium, p, size);
  l = ExtendInterleaved<kShortBlock>(l, kShiftShort, p, size);
  l = ExtendInterleaved<kTinyBlock>(l, kShiftTiny, p, size);
#if defined(__x86_64__)
  uint64_t l64 = l;
  while (size >= 8) {
    l64 = _mm_crc32_u64(l64, Load64(p));
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
