#pragma once

// Fixed-width little-endian encoding of the on-disk formats. The files of a data directory
// are byte-for-byte the same whatever the host's byte order, so a directory can be copied
// between machines.

#include <bit>
#include <cstdint>
#include <cstring>

namespace msgsdk::native {

inline void EncodeFixed16(char* dst, uint16_t value) {
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap16(value);
  std::memcpy(dst, &value, sizeof(value));
}

inline void EncodeFixed32(char* dst, uint32_t value) {
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap32(value);
  std::memcpy(dst, &value, sizeof(value));
}

inline void EncodeFixed64(char* dst, uint64_t value) {
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap64(value);
  std::memcpy(dst, &value, sizeof(value));
}

inline uint16_t DecodeFixed16(const char* src) {
  uint16_t value;
  std::memcpy(&value, src, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap16(value);
  return value;
}

inline uint32_t DecodeFixed32(const char* src) {
  uint32_t value;
  std::memcpy(&value, src, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap32(value);
  return value;
}

inline uint64_t DecodeFixed64(const char* src) {
  uint64_t value;
  std::memcpy(&value, src, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap64(value);
  return value;
}

}  // namespace msgsdk::native

#include <string>
#include <string_view>

namespace msgsdk::native {

// Builds the small binary metadata files (checkpoint, consumer offsets).
inline void AppendFixed16(std::string* out, uint16_t value) {
  char buf[2];
  EncodeFixed16(buf, value);
  out->append(buf, sizeof(buf));
}
inline void AppendFixed32(std::string* out, uint32_t value) {
  char buf[4];
  EncodeFixed32(buf, value);
  out->append(buf, sizeof(buf));
}
inline void AppendFixed64(std::string* out, uint64_t value) {
  char buf[8];
  EncodeFixed64(buf, value);
  out->append(buf, sizeof(buf));
}
// A u16 length and the bytes; callers keep strings under 64 KiB.
inline void AppendString16(std::string* out, std::string_view value) {
  AppendFixed16(out, static_cast<uint16_t>(value.size()));
  out->append(value);
}

// Bounds-checked reading of what the Append* functions wrote; every method returns false
// instead of reading past the end.
class SliceReader {
 public:
  explicit SliceReader(std::string_view data) : data_(data) {}
  bool Fixed16(uint16_t* value) {
    return Take(2, [&](const char* p) { *value = DecodeFixed16(p); });
  }
  bool Fixed32(uint32_t* value) {
    return Take(4, [&](const char* p) { *value = DecodeFixed32(p); });
  }
  bool Fixed64(uint64_t* value) {
    return Take(8, [&](const char* p) { *value = DecodeFixed64(p); });
  }
  bool String16(std::string_view* value) {
    uint16_t size;
    if (!Fixed16(&size) || data_.size() < size) return false;
    *value = data_.substr(0, size);
    data_.remove_prefix(size);
    return true;
  }
  bool empty() const { return data_.empty(); }

 private:
  template <typename F>
  bool Take(size_t n, F&& decode) {
    if (data_.size() < n) return false;
    decode(data_.data());
    data_.remove_prefix(n);
    return true;
  }
  std::string_view data_;
};

}  // namespace msgsdk::native
