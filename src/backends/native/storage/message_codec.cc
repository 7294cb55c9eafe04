#include "backends/native/storage/message_codec.h"

#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"

namespace msgsdk::native {
namespace {

constexpr size_t kBornAtSize = 8;
constexpr size_t kMaxShortString = std::numeric_limits<uint16_t>::max();

Status FieldTooLong(std::string_view field, size_t size) {
  return InvalidArgumentError("message " + std::string(field) + " is " + std::to_string(size) +
                              " bytes, over the limit of " + std::to_string(kMaxShortString));
}

// An empty view may have no data at all (a null pointer), which memcpy must not be given.
inline char* PutShortString(char* p, std::string_view s) {
  EncodeFixed16(p, static_cast<uint16_t>(s.size()));
  if (!s.empty()) std::memcpy(p + 2, s.data(), s.size());
  return p + 2 + s.size();
}

inline char* PutLongString(char* p, std::string_view s) {
  EncodeFixed32(p, static_cast<uint32_t>(s.size()));
  if (!s.empty()) std::memcpy(p + 4, s.data(), s.size());
  return p + 4 + s.size();
}

const Properties& PropertiesOf(const RecordFields& fields) {
  static const Properties kNone;
  return fields.properties != nullptr ? *fields.properties : kNone;
}

// Bounds-checked reading of a record's payload.
class Reader {
 public:
  Reader(const char* p, const char* end) : p_(p), end_(end) {}

  bool Fixed32(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = DecodeFixed32(p_);
    p_ += 4;
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (end_ - p_ < 8) return false;
    *v = DecodeFixed64(p_);
    p_ += 8;
    return true;
  }
  bool ShortString(std::string_view* s) {
    if (end_ - p_ < 2) return false;
    const size_t n = DecodeFixed16(p_);
    if (static_cast<size_t>(end_ - p_ - 2) < n) return false;
    *s = std::string_view(p_ + 2, n);
    p_ += 2 + n;
    return true;
  }
  bool LongString(std::string_view* s) {
    if (end_ - p_ < 4) return false;
    const size_t n = DecodeFixed32(p_);
    if (static_cast<size_t>(end_ - p_ - 4) < n) return false;
    *s = std::string_view(p_ + 4, n);
    p_ += 4 + n;
    return true;
  }
  bool AtEnd() const { return p_ == end_; }
  // The bytes from this reader's position to `later`'s (a copy of it that read on).
  std::string_view Between(const Reader& later) const {
    return {p_, static_cast<size_t>(later.p_ - p_)};
  }

 private:
  const char* p_;
  const char* end_;
};

// Reads the header, the trailer and the strings up to the tag; leaves `reader` at the
// properties.
bool ReadPrefix(std::string_view record, Reader* reader, RecordView* view, uint32_t* flags,
                int64_t* born_ns, std::optional<int64_t>* deliver_ns, std::string_view* message_id,
                std::string_view* key) {
  if (record.size() < kMinRecordSize) return false;
  const char* p = record.data();
  *flags = DecodeFixed32(p + 12);
  const char* trailer = p + record.size() - kRecordTrailerSize;
  view->meta.commit_log_offset = static_cast<int64_t>(DecodeFixed64(trailer));
  view->meta.queue = static_cast<int32_t>(DecodeFixed32(trailer + 8));
  view->meta.queue_offset = static_cast<int64_t>(DecodeFixed64(trailer + 12));
  view->meta.stored_at = FromUnixNanos(static_cast<int64_t>(DecodeFixed64(trailer + 20)));
  Reader r(p + kRecordHeaderSize, trailer);
  uint64_t born;
  if (!r.Fixed64(&born)) return false;
  *born_ns = static_cast<int64_t>(born);
  if ((*flags & kRecordHasDeliverAt) != 0) {
    uint64_t deliver;
    if (!r.Fixed64(&deliver)) return false;
    *deliver_ns = static_cast<int64_t>(deliver);
  } else {
    deliver_ns->reset();
  }
  if (!r.ShortString(&view->topic) || !r.ShortString(message_id) || !r.ShortString(key) ||
      !r.ShortString(&view->tag)) {
    return false;
  }
  *reader = r;
  return true;
}

}  // namespace

int64_t ToUnixNanos(Timestamp ts) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(ts.time_since_epoch()).count();
}

Timestamp FromUnixNanos(int64_t nanos) {
  return Timestamp(
      std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(nanos)));
}

Result<size_t> RecordSize(const RecordFields& fields, uint32_t max_body_bytes) {
  if (fields.body.size() > max_body_bytes) {
    return InvalidArgumentError("message body is " + std::to_string(fields.body.size()) +
                                " bytes, over max_message_bytes (" +
                                std::to_string(max_body_bytes) + ") of topic '" +
                                std::string(fields.topic) + "'");
  }
  if (fields.topic.size() > kMaxShortString) return FieldTooLong("topic", fields.topic.size());
  if (fields.message_id.size() > kMaxShortString) {
    return FieldTooLong("message_id", fields.message_id.size());
  }
  if (fields.key.size() > kMaxShortString) return FieldTooLong("key", fields.key.size());
  if (fields.tag.size() > kMaxShortString) return FieldTooLong("tag", fields.tag.size());
  size_t overhead = kBornAtSize + (fields.deliver_at ? 8 : 0) + 2 + fields.topic.size() + 2 +
                    fields.message_id.size() + 2 + fields.key.size() + 2 + fields.tag.size() + 4;
  for (const auto& [key, value] : PropertiesOf(fields)) {
    if (key.size() > kMaxShortString) {
      return InvalidArgumentError("message property key '" + key.substr(0, 64) + "...' is " +
                                  std::to_string(key.size()) + " bytes, over the limit of " +
                                  std::to_string(kMaxShortString));
    }
    overhead += 2 + key.size() + 4 + value.size();
    if (overhead > kMaxRecordOverhead) break;
  }
  if (overhead > kMaxRecordOverhead) {
    return InvalidArgumentError("message topic, id, key, tag and properties of topic '" +
                                std::string(fields.topic) + "' take more than " +
                                std::to_string(kMaxRecordOverhead) + " bytes");
  }
  return kRecordHeaderSize + overhead + 4 + fields.body.size() + kRecordTrailerSize;
}

void EncodeRecordBody(const RecordFields& fields, size_t record_size, char* out) {
  const uint32_t flags = fields.deliver_at ? kRecordHasDeliverAt : 0u;
  EncodeFixed32(out, static_cast<uint32_t>(record_size));
  EncodeFixed32(out + 8, kRecordMagic);
  EncodeFixed32(out + 12, flags);
  char* p = out + kRecordHeaderSize;
  EncodeFixed64(p, static_cast<uint64_t>(ToUnixNanos(fields.born_at)));
  p += kBornAtSize;
  if (fields.deliver_at) {
    EncodeFixed64(p, static_cast<uint64_t>(ToUnixNanos(*fields.deliver_at)));
    p += 8;
  }
  p = PutShortString(p, fields.topic);
  p = PutShortString(p, fields.message_id);
  p = PutShortString(p, fields.key);
  p = PutShortString(p, fields.tag);
  const Properties& properties = PropertiesOf(fields);
  EncodeFixed32(p, static_cast<uint32_t>(properties.size()));
  p += 4;
  for (const auto& [key, value] : properties) {
    p = PutShortString(p, key);
    p = PutLongString(p, value);
  }
  PutLongString(p, fields.body);
  EncodeFixed32(out + 4, Crc32c(out + 8, record_size - 8 - kRecordTrailerSize));
}

void SealRecord(const RecordMeta& meta, size_t record_size, char* record) {
  char* trailer = record + record_size - kRecordTrailerSize;
  EncodeFixed64(trailer, static_cast<uint64_t>(meta.commit_log_offset));
  EncodeFixed32(trailer + 8, static_cast<uint32_t>(meta.queue));
  EncodeFixed64(trailer + 12, static_cast<uint64_t>(meta.queue_offset));
  EncodeFixed64(trailer + 20, static_cast<uint64_t>(ToUnixNanos(meta.stored_at)));
  EncodeFixed32(record + 4, Crc32cExtend(DecodeFixed32(record + 4), trailer, kRecordTrailerSize));
}

void EncodeRecord(const Message& message, const RecordMeta& meta, size_t record_size, char* out) {
  EncodeRecordBody(message, record_size, out);
  SealRecord(meta, record_size, out);
}

std::string_view RecordTopic(const char* record) {
  const char* p = record + kRecordHeaderSize + kBornAtSize;
  if ((DecodeFixed32(record + 12) & kRecordHasDeliverAt) != 0) p += 8;
  return {p + 2, DecodeFixed16(p)};
}

RecordCheck CheckRecordFraming(const char* data, size_t available, uint32_t* size) {
  if (available < kRecordHeaderSize) return RecordCheck::kTruncated;
  const uint32_t record_size = DecodeFixed32(data);
  *size = record_size;
  if (record_size < kMinRecordSize || record_size > kMaxRecordSize) return RecordCheck::kBadSize;
  if (DecodeFixed32(data + 8) != kRecordMagic) return RecordCheck::kBadMagic;
  if (available < record_size) return RecordCheck::kTruncated;
  return RecordCheck::kOk;
}

RecordCheck CheckRecord(const char* data, size_t available, uint32_t* size) {
  const RecordCheck framing = CheckRecordFraming(data, available, size);
  if (framing != RecordCheck::kOk) return framing;
  if (DecodeFixed32(data + 4) != Crc32c(data + 8, *size - 8)) return RecordCheck::kBadCrc;
  return RecordCheck::kOk;
}

const char* RecordCheckName(RecordCheck check) {
  switch (check) {
    case RecordCheck::kOk:
      return "ok";
    case RecordCheck::kTruncated:
      return "truncated record";
    case RecordCheck::kBadSize:
      return "impossible record size";
    case RecordCheck::kBadMagic:
      return "bad record magic";
    case RecordCheck::kBadCrc:
      return "CRC mismatch";
  }
  return "unknown";
}

bool DecodeRecordView(std::string_view record, RecordView* view) {
  Reader reader(nullptr, nullptr);
  uint32_t flags;
  int64_t born_ns;
  std::optional<int64_t> deliver_ns;
  std::string_view message_id, key;
  return ReadPrefix(record, &reader, view, &flags, &born_ns, &deliver_ns, &message_id, &key);
}

bool DecodeRecordInPlace(std::string_view record, RecordInPlace* out) {
  Reader r(nullptr, nullptr);
  RecordView view;
  uint32_t flags;
  int64_t born_ns;
  std::optional<int64_t> deliver_ns;
  if (!ReadPrefix(record, &r, &view, &flags, &born_ns, &deliver_ns, &out->message_id, &out->key)) {
    return false;
  }
  uint32_t property_count = 0;
  if (!r.Fixed32(&property_count)) return false;
  Reader properties = r;
  for (uint32_t i = 0; i < property_count; ++i) {
    std::string_view k, v;
    if (!r.ShortString(&k) || !r.LongString(&v)) return false;
  }
  out->properties.count = property_count;
  out->properties.encoded = properties.Between(r);
  if (!r.LongString(&out->body) || !r.AtEnd()) return false;
  out->meta = view.meta;
  out->topic = view.topic;
  out->tag = view.tag;
  out->born_at = FromUnixNanos(born_ns);
  if (deliver_ns) {
    out->deliver_at = FromUnixNanos(*deliver_ns);
  } else {
    out->deliver_at.reset();
  }
  return true;
}

void CopyRecord(const RecordInPlace& record, Message* message) {
  message->topic.assign(record.topic);
  message->key.assign(record.key);
  message->tag.assign(record.tag);
  message->properties.clear();
  record.properties.ForEach([&](std::string_view key, std::string_view value) {
    message->properties.emplace_hint(message->properties.end(), key, value);
  });
  message->body.assign(record.body);
  message->deliver_at = record.deliver_at;
  message->message_id.assign(record.message_id);
  message->born_at = record.born_at;
  message->delivery_attempt = 0;
  message->cluster.clear();
  message->partition = record.meta.queue;
  message->offset = record.meta.queue_offset;
  message->stored_at = record.meta.stored_at;
}

Status DecodeRecord(std::string_view record, Message* message, RecordMeta* meta) {
  RecordInPlace decoded;
  if (!DecodeRecordInPlace(record, &decoded)) {
    return DataLossError("malformed record of " + std::to_string(record.size()) + " bytes");
  }
  CopyRecord(decoded, message);
  *meta = decoded.meta;
  return OkStatus();
}

}  // namespace msgsdk::native
