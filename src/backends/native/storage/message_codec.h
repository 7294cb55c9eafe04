#pragma once

// The commit-log record: a fixed header then the encoded message.
//
//   offset  size  field
//   0       4     total size of the record in bytes, header included
//   4       4     CRC32C of bytes [8, total size)
//   8       4     magic, which also names the format version ("MSG1")
//   12      4     flags (kRecordHasDeliverAt)
//   16      8     born_at, nanoseconds since the Unix epoch
//   24      8     deliver_at, nanoseconds since the Unix epoch (only with kRecordHasDeliverAt)
//   then    topic, message_id, key, tag: each a u16 length and the bytes
//   then    properties: a u32 count, each a u16 key length, key, u32 value length, value
//   then    body: a u32 length and the bytes
//   then the trailer, what the store assigns (the last 28 bytes):
//           8     commit-log offset of the record (lets a reader check it found the right one)
//           4     queue
//           8     queue offset
//           8     stored_at, nanoseconds since the Unix epoch (whole milliseconds)
// Integers are little-endian. The store's fields come last so that the thread that sends a
// message can checksum all the rest, and the writer only extends the CRC over the trailer.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "backends/native/storage/coding.h"
#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr size_t kRecordTrailerSize = 28;
inline constexpr uint32_t kRecordMagic = 0x3147534Du;  // "MSG1" in file byte order
inline constexpr uint32_t kRecordHasDeliverAt = 1u << 0;
// Smallest possible record: header, born_at, four empty strings, no properties, no body,
// trailer.
inline constexpr size_t kMinRecordSize = kRecordHeaderSize + 8 + 8 + 4 + 4 + kRecordTrailerSize;
// Bounds the part of a record that is not the body (topic, id, key, tag, properties).
inline constexpr size_t kMaxRecordOverhead = 1u << 20;
// Largest body any configuration accepts (StoreOptions::max_message_bytes is at most this).
inline constexpr uint32_t kMaxBodyLimit = 256u << 20;
// Records larger than this are never written: a header claiming more is corrupt.
inline constexpr uint32_t kMaxRecordSize = kMaxBodyLimit + kMaxRecordOverhead;

// What the store adds to a message when it writes it.
struct RecordMeta {
  int64_t commit_log_offset = 0;
  int32_t queue = 0;
  int64_t queue_offset = 0;
  Timestamp stored_at{};
};

// The fields of a message that its record keeps, as views: of a Message, or of a request
// still in its network buffer, so that the broker encodes a produced message's record
// straight from the bytes that carried it (no copy into a Message in between).
struct RecordFields {
  std::string_view topic;
  std::string_view message_id;
  std::string_view key;
  std::string_view tag;
  const Properties* properties = nullptr;  // none if null
  std::string_view body;
  Timestamp born_at{};
  std::optional<Timestamp> deliver_at;

  static RecordFields Of(const Message& message) {
    return RecordFields{message.topic,   message.message_id,  message.key,
                        message.tag,     &message.properties, message.body,
                        message.born_at, message.deliver_at};
  }
};

// The size of the record `fields` encode to, or kInvalidArgument naming the field that
// does not fit (body over `max_body_bytes`, a string over 65535 bytes, ...).
Result<size_t> RecordSize(const RecordFields& fields, uint32_t max_body_bytes);
inline Result<size_t> RecordSize(const Message& message, uint32_t max_body_bytes) {
  return RecordSize(RecordFields::Of(message), max_body_bytes);
}

// Writes the record (exactly `record_size` bytes, from RecordSize) to `out`.
void EncodeRecord(const Message& message, const RecordMeta& meta, size_t record_size, char* out);

// EncodeRecord in two steps, so the message can be encoded (and most of it checksummed) by
// the thread that sends it and the store's fields filled in by the writer: EncodeRecordBody
// writes everything but the trailer, and the CRC of what it wrote where the CRC goes;
// SealRecord writes the trailer and extends that CRC over it.
void EncodeRecordBody(const RecordFields& fields, size_t record_size, char* out);
inline void EncodeRecordBody(const Message& message, size_t record_size, char* out) {
  EncodeRecordBody(RecordFields::Of(message), record_size, out);
}
void SealRecord(const RecordMeta& meta, size_t record_size, char* record);
// The topic of a record written by EncodeRecordBody (record_size bytes at `record`).
std::string_view RecordTopic(const char* record);

enum class RecordCheck {
  kOk,
  kTruncated,  // fewer bytes available than the header or the size it claims
  kBadSize,    // the size field cannot be right
  kBadMagic,
  kBadCrc,
};

// Checks the record that starts at `data` (`available` bytes readable from there): its size
// (set in *size when the header could be read), magic and CRC.
RecordCheck CheckRecord(const char* data, size_t available, uint32_t* size);
// CheckRecord without the CRC: the size and magic only (never kBadCrc).
RecordCheck CheckRecordFraming(const char* data, size_t available, uint32_t* size);
const char* RecordCheckName(RecordCheck check);

// The fields recovery needs, without copying: views into the record.
struct RecordView {
  RecordMeta meta;
  std::string_view topic;
  std::string_view tag;
};

// Decodes the record's metadata; false if the record is malformed.
bool DecodeRecordView(std::string_view record, RecordView* view);

// A record's properties, read in place: `count` of (u16 key length, key, u32 value length,
// value) in `encoded`.
struct RecordProperties {
  std::string_view encoded;
  uint32_t count = 0;

  // Calls visit(key, value) for each, in order. Only for properties DecodeRecordInPlace
  // accepted (it checked their lengths against the record).
  template <typename Visit>
  void ForEach(Visit visit) const {
    const char* p = encoded.data();
    for (uint32_t i = 0; i < count; ++i) {
      const size_t key_size = DecodeFixed16(p);
      const std::string_view key(p + 2, key_size);
      p += 2 + key_size;
      const size_t value_size = DecodeFixed32(p);
      visit(key, std::string_view(p + 4, value_size));
      p += 4 + value_size;
    }
  }
};

// A whole record decoded in place: views into its bytes, valid as long as they are.
struct RecordInPlace {
  RecordMeta meta;
  std::string_view topic;
  std::string_view message_id;
  std::string_view key;
  std::string_view tag;
  RecordProperties properties;
  std::string_view body;
  Timestamp born_at{};
  std::optional<Timestamp> deliver_at;
};

// Decodes a whole record (already checked with CheckRecord or CheckRecordFraming) in place;
// false if it is malformed (a field runs past its end, or bytes follow the body).
bool DecodeRecordInPlace(std::string_view record, RecordInPlace* out);

// Copies a record read in place into `message`: topic, key, tag, properties, body,
// deliver_at, message_id, born_at, stored_at, partition = queue and offset = queue offset;
// delivery_attempt 0 and cluster empty. Every field is overwritten and the strings keep their
// capacity, so a message decoded into again and again allocates only when it grows.
void CopyRecord(const RecordInPlace& record, Message* message);

// Decodes a whole record (already checked with CheckRecord) into `message` (topic, key, tag,
// properties, body, deliver_at, message_id, born_at, stored_at, partition = queue,
// offset = queue offset) and `meta`. kDataLoss if the record is malformed.
Status DecodeRecord(std::string_view record, Message* message, RecordMeta* meta);

// Nanoseconds since the Unix epoch, as records store times.
int64_t ToUnixNanos(Timestamp ts);
Timestamp FromUnixNanos(int64_t nanos);

}  // namespace msgsdk::native
