#pragma once

// CRC32C (Castagnoli), the checksum of commit-log records, index entries and metadata files.
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run time) and a
// slicing-by-8 table otherwise; both give the same values.

#include <cstddef>
#include <cstdint>

namespace msgsdk::native {

// The CRC32C of `data` appended to data whose CRC32C is `crc` (0 for none), so
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(const void* data, size_t size) { return Crc32cExtend(0, data, size); }

namespace crc32c_internal {
// The two implementations, exposed so tests can check one against the other.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t size);
// Only valid when HardwareAvailable().
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size);
bool HardwareAvailable();
}  // namespace crc32c_internal

}  // namespace msgsdk::native
