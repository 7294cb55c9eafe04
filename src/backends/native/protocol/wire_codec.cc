#include "backends/native/protocol/wire_codec.h"

#include <cstring>
#include <optional>
#include <utility>

#include "backends/native/storage/message_codec.h"

namespace msgsdk::native::protocol {
namespace {

// ---- The protobuf wire format ---------------------------------------------------------------

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint32_t Tag(uint32_t field, WireType type) { return (field << 3) | type; }

// What the generated parser allows: nested messages and groups, 100 levels deep.
constexpr int kMaxDepth = 100;

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

char* PutVarint(char* out, uint64_t value) {
  while (value >= 0x80) {
    *out++ = static_cast<char>(value | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

// int32 fields are sign-extended to 64 bits on the wire.
uint64_t Int32Wire(int32_t value) { return static_cast<uint64_t>(static_cast<int64_t>(value)); }
uint64_t Int64Wire(int64_t value) { return static_cast<uint64_t>(value); }

// A length-delimited field (tag of one byte) holding `size` bytes.
size_t DelimitedSize(size_t size) { return 1 + VarintSize(size) + size; }

char* PutDelimited(char* out, uint32_t tag, std::string_view bytes) {
  *out++ = static_cast<char>(tag);
  out = PutVarint(out, bytes.size());
  std::memcpy(out, bytes.data(), bytes.size());
  return out + bytes.size();
}

char* PutVarintField(char* out, uint32_t tag, uint64_t value) {
  *out++ = static_cast<char>(tag);
  return PutVarint(out, value);
}

// Reads fields as the generated parser does; every method returns false on malformed input.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  bool done() const { return p_ == end_; }

  // A tag of at most 5 bytes (wrapping at 32 bits, as the generated parser reads it). A zero
  // tag or an end-group tag ends a message early, which the parser refuses outside a group.
  bool ReadTag(uint32_t* tag) {
    uint32_t value = 0;
    for (int i = 0; i < 5 && p_ < end_; ++i) {
      const auto byte = static_cast<uint8_t>(*p_++);
      value |= static_cast<uint32_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        *tag = value;
        return true;
      }
    }
    return false;
  }

  // A varint of at most 10 bytes.
  bool ReadVarint(uint64_t* out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70 && p_ < end_; shift += 7) {
      const auto byte = static_cast<uint8_t>(*p_++);
      if (shift < 64) value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) {
        *out = value;
        return true;
      }
    }
    return false;
  }

  bool ReadInt32(int32_t* out) {
    uint64_t value;
    if (!ReadVarint(&value)) return false;
    *out = static_cast<int32_t>(value);
    return true;
  }

  bool ReadInt64(int64_t* out) {
    uint64_t value;
    if (!ReadVarint(&value)) return false;
    *out = static_cast<int64_t>(value);
    return true;
  }

  // The payload of a length-delimited field (its size a varint of at most 5 bytes, read like
  // a tag, as the parser reads sizes).
  bool ReadDelimited(std::string_view* out) {
    uint32_t size;
    if (!ReadTag(&size) || size > static_cast<size_t>(end_ - p_)) return false;
    *out = std::string_view(p_, size);
    p_ += size;
    return true;
  }

  // A string field: its payload, which must be valid UTF-8.
  bool ReadString(std::string* out) {
    std::string_view bytes;
    if (!ReadDelimited(&bytes) || !IsValidUtf8(bytes)) return false;
    out->assign(bytes.data(), bytes.size());
    return true;
  }

  // A string field in place: its payload, which must be valid UTF-8.
  bool ReadStringView(std::string_view* out) { return ReadDelimited(out) && IsValidUtf8(*out); }

  bool ReadBytes(std::string* out) {
    std::string_view bytes;
    if (!ReadDelimited(&bytes)) return false;
    out->assign(bytes.data(), bytes.size());
    return true;
  }

  // Skips the value of a field the caller does not know (`tag` was just read). `depth`: the
  // nesting levels still allowed.
  bool Skip(uint32_t tag, int depth) {
    switch (tag & 7) {
      case kVarint: {
        uint64_t ignored;
        return ReadVarint(&ignored);
      }
      case kFixed64:
        return Advance(8);
      case kLengthDelimited: {
        std::string_view ignored;
        return ReadDelimited(&ignored);
      }
      case kStartGroup: {
        if (--depth < 0) return false;
        const uint32_t end_tag = tag + 1;  // the same field number, wire type 4
        while (true) {
          uint32_t inner;
          if (!ReadTag(&inner)) return false;
          if (inner == end_tag) return true;
          if ((inner >> 3) == 0 || (inner & 7) == kEndGroup) return false;
          if (!Skip(inner, depth)) return false;
        }
      }
      case kFixed32:
        return Advance(4);
      default:  // an end group out of place, or wire types 6 and 7
        return false;
    }
  }

 private:
  bool Advance(size_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
};

// Reads the fields of one message from `data`, handing each (tag, reader) to `field`, which
// returns false on malformed input, or reports a tag it does not know with `unknown = true`
// so that it is skipped. Field number 0 and end-group tags end the parse with a failure, as
// they do for the generated parser inside a length-delimited message.
template <typename Field>
bool ReadFields(std::string_view data, int depth, Field field) {
  WireReader reader(data);
  while (!reader.done()) {
    uint32_t tag;
    if (!reader.ReadTag(&tag) || (tag >> 3) == 0 || (tag & 7) == kEndGroup) return false;
    bool unknown = false;
    if (!field(tag, reader, unknown)) return false;
    if (unknown && !reader.Skip(tag, depth)) return false;
  }
  return true;
}

// ---- Messages -------------------------------------------------------------------------------

// wire::Message field tags.
constexpr uint32_t kMessageKey = Tag(1, kLengthDelimited);
constexpr uint32_t kMessageTag = Tag(2, kLengthDelimited);
constexpr uint32_t kMessageProperty = Tag(3, kLengthDelimited);
constexpr uint32_t kMessageBody = Tag(4, kLengthDelimited);
constexpr uint32_t kMessageDeliverAt = Tag(5, kVarint);
constexpr uint32_t kMessageId = Tag(6, kLengthDelimited);
constexpr uint32_t kMessageBornAt = Tag(7, kVarint);
constexpr uint32_t kMessageQueue = Tag(8, kVarint);
constexpr uint32_t kMessageOffset = Tag(9, kVarint);
constexpr uint32_t kMessageStoredAt = Tag(10, kVarint);
// A map entry's key and value.
constexpr uint32_t kEntryKey = Tag(1, kLengthDelimited);
constexpr uint32_t kEntryValue = Tag(2, kLengthDelimited);
// wire::Status.
constexpr uint32_t kStatusCode = Tag(1, kVarint);
constexpr uint32_t kStatusMessage = Tag(2, kLengthDelimited);

size_t PropertySize(std::string_view name, std::string_view value) {
  return DelimitedSize(name.size()) + DelimitedSize(value.size());
}

// What a wire::Message is encoded from: a Message, or a record read in place from the log.
struct WireMessageFields {
  std::string_view key;
  std::string_view tag;
  const Properties* properties = nullptr;               // a Message's, or
  const RecordProperties* record_properties = nullptr;  // a record's
  std::string_view body;
  std::optional<Timestamp> deliver_at;
  std::string_view message_id;
  Timestamp born_at{};
  int32_t partition = 0;
  int64_t offset = 0;
  Timestamp stored_at{};

  static WireMessageFields Of(const Message& message) {
    return WireMessageFields{.key = message.key,
                             .tag = message.tag,
                             .properties = &message.properties,
                             .body = message.body,
                             .deliver_at = message.deliver_at,
                             .message_id = message.message_id,
                             .born_at = message.born_at,
                             .partition = message.partition,
                             .offset = message.offset,
                             .stored_at = message.stored_at};
  }
  static WireMessageFields Of(const RecordInPlace& record) {
    return WireMessageFields{.key = record.key,
                             .tag = record.tag,
                             .record_properties = &record.properties,
                             .body = record.body,
                             .deliver_at = record.deliver_at,
                             .message_id = record.message_id,
                             .born_at = record.born_at,
                             .partition = record.meta.queue,
                             .offset = record.meta.queue_offset,
                             .stored_at = record.meta.stored_at};
  }

  template <typename Visit>
  void ForEachProperty(Visit visit) const {
    if (properties != nullptr) {
      for (const auto& [name, value] : *properties) visit(name, value);
    }
    if (record_properties != nullptr) record_properties->ForEach(visit);
  }
};

// A wire::Message is written in three parts, so that its body can be appended to a string
// as it is (instead of into bytes the string first zero-fills): the head (key, tag,
// properties, and the body's tag and length), the body, and the tail (the other fields).
// Field order is the generated serialiser's: by field number.

// The head's size.
size_t MessageHeadSize(const WireMessageFields& message) {
  size_t size = 0;
  if (!message.key.empty()) size += DelimitedSize(message.key.size());
  if (!message.tag.empty()) size += DelimitedSize(message.tag.size());
  message.ForEachProperty([&](std::string_view name, std::string_view value) {
    size += DelimitedSize(PropertySize(name, value));
  });
  if (!message.body.empty()) size += 1 + VarintSize(message.body.size());
  return size;
}

// The tail's size.
size_t MessageTailSize(const WireMessageFields& message, bool with_delivery) {
  size_t size = 0;
  if (message.deliver_at) size += 1 + VarintSize(Int64Wire(ToUnixNanos(*message.deliver_at)));
  if (!message.message_id.empty()) size += DelimitedSize(message.message_id.size());
  if (const int64_t born = ToUnixNanos(message.born_at); born != 0) {
    size += 1 + VarintSize(Int64Wire(born));
  }
  if (with_delivery) {
    if (message.partition != 0) size += 1 + VarintSize(Int32Wire(message.partition));
    if (message.offset != 0) size += 1 + VarintSize(Int64Wire(message.offset));
    if (const int64_t stored = ToUnixNanos(message.stored_at); stored != 0) {
      size += 1 + VarintSize(Int64Wire(stored));
    }
  }
  return size;
}

// The encoded size of a wire::Message for `message`, as ToWire would fill it: proto3 leaves
// out empty strings and zero numbers; a map entry holds its key and value always.
size_t MessageSize(const WireMessageFields& message, bool with_delivery) {
  return MessageHeadSize(message) + message.body.size() + MessageTailSize(message, with_delivery);
}

char* PutMessageHead(char* out, const WireMessageFields& message) {
  if (!message.key.empty()) out = PutDelimited(out, kMessageKey, message.key);
  if (!message.tag.empty()) out = PutDelimited(out, kMessageTag, message.tag);
  message.ForEachProperty([&](std::string_view name, std::string_view value) {
    *out++ = static_cast<char>(kMessageProperty);
    out = PutVarint(out, PropertySize(name, value));
    out = PutDelimited(out, kEntryKey, name);
    out = PutDelimited(out, kEntryValue, value);
  });
  if (!message.body.empty()) {
    *out++ = static_cast<char>(kMessageBody);
    out = PutVarint(out, message.body.size());
  }
  return out;
}

char* PutMessageTail(char* out, const WireMessageFields& message, bool with_delivery) {
  if (message.deliver_at) {
    out = PutVarintField(out, kMessageDeliverAt, Int64Wire(ToUnixNanos(*message.deliver_at)));
  }
  if (!message.message_id.empty()) out = PutDelimited(out, kMessageId, message.message_id);
  if (const int64_t born = ToUnixNanos(message.born_at); born != 0) {
    out = PutVarintField(out, kMessageBornAt, Int64Wire(born));
  }
  if (with_delivery) {
    if (message.partition != 0) {
      out = PutVarintField(out, kMessageQueue, Int32Wire(message.partition));
    }
    if (message.offset != 0) out = PutVarintField(out, kMessageOffset, Int64Wire(message.offset));
    if (const int64_t stored = ToUnixNanos(message.stored_at); stored != 0) {
      out = PutVarintField(out, kMessageStoredAt, Int64Wire(stored));
    }
  }
  return out;
}

// Grows `out` by `size` bytes and returns where they start.
char* Extend(std::string* out, size_t size) {
  const size_t old = out->size();
  out->resize(old + size);
  return out->data() + old;
}

// Appends a length-delimited wire::Message field (`tag`) for `message` to `out`, the body
// without zero-filling its bytes first. `out` should have room reserved (this grows it in
// three steps).
void AppendMessageField(std::string* out, uint32_t tag, const WireMessageFields& message,
                        bool with_delivery) {
  const size_t head = MessageHeadSize(message);
  const size_t tail = MessageTailSize(message, with_delivery);
  const size_t size = head + message.body.size() + tail;
  char* p = Extend(out, 1 + VarintSize(size) + head);
  *p++ = static_cast<char>(tag);
  p = PutVarint(p, size);
  PutMessageHead(p, message);
  out->append(message.body);
  PutMessageTail(Extend(out, tail), message, with_delivery);
}

// Resets a (possibly reused) message to what FromWire makes of an empty wire::Message.
void ResetMessage(const std::string& topic, Message* message) {
  message->topic.assign(topic);
  message->key.clear();
  message->tag.clear();
  message->properties.clear();
  message->body.clear();
  message->deliver_at.reset();
  message->message_id.clear();
  message->born_at = FromUnixNanos(0);
  message->delivery_attempt = 0;
  message->cluster.clear();
  message->partition = 0;
  message->offset = 0;
  message->stored_at = FromUnixNanos(0);
}

// Where the fields of a wire::Message go as they are read: into a Message (copied), or, for
// a produce request, as views into the request (MessageFieldsSink below).
class MessageSink {
 public:
  explicit MessageSink(Message* message) : message_(message) {}
  void Key(std::string_view key) { message_->key.assign(key); }
  void Tag(std::string_view tag) { message_->tag.assign(tag); }
  void Property(std::string_view name, std::string_view value) {
    message_->properties.insert_or_assign(std::string(name), std::string(value));
  }
  void Body(std::string_view body) { message_->body.assign(body); }
  void DeliverAt(int64_t nanos) { message_->deliver_at = FromUnixNanos(nanos); }
  void MessageId(std::string_view id) { message_->message_id.assign(id); }
  void BornAt(int64_t nanos) { message_->born_at = FromUnixNanos(nanos); }
  void Queue(int32_t queue) { message_->partition = queue; }
  void Offset(int64_t offset) { message_->offset = offset; }
  void StoredAt(int64_t nanos) { message_->stored_at = FromUnixNanos(nanos); }

 private:
  Message* message_;
};

// Merges the fields of a wire::Message into `sink`, as parsing into a message would.
template <typename Sink>
bool ReadMessage(std::string_view data, int depth, Sink& sink) {
  if (--depth < 0) return false;
  return ReadFields(data, depth, [&](uint32_t tag, WireReader& r, bool& unknown) {
    std::string_view bytes;
    int64_t number;
    switch (tag) {
      case kMessageKey:
        if (!r.ReadStringView(&bytes)) return false;
        sink.Key(bytes);
        return true;
      case kMessageTag:
        if (!r.ReadStringView(&bytes)) return false;
        sink.Tag(bytes);
        return true;
      case kMessageProperty: {
        if (!r.ReadDelimited(&bytes) || depth <= 0) return false;
        std::string_view name;
        std::string_view value;
        const bool ok =
            ReadFields(bytes, depth - 1, [&](uint32_t field, WireReader& pr, bool& skip) {
              if (field == kEntryKey) return pr.ReadStringView(&name);
              if (field == kEntryValue) return pr.ReadStringView(&value);
              skip = true;
              return true;
            });
        if (!ok) return false;
        sink.Property(name, value);
        return true;
      }
      case kMessageBody:
        if (!r.ReadDelimited(&bytes)) return false;
        sink.Body(bytes);
        return true;
      case kMessageDeliverAt:
        if (!r.ReadInt64(&number)) return false;
        sink.DeliverAt(number);
        return true;
      case kMessageId:
        if (!r.ReadStringView(&bytes)) return false;
        sink.MessageId(bytes);
        return true;
      case kMessageBornAt:
        if (!r.ReadInt64(&number)) return false;
        sink.BornAt(number);
        return true;
      case kMessageQueue: {
        int32_t queue;
        if (!r.ReadInt32(&queue)) return false;
        sink.Queue(queue);
        return true;
      }
      case kMessageOffset:
        if (!r.ReadInt64(&number)) return false;
        sink.Offset(number);
        return true;
      case kMessageStoredAt:
        if (!r.ReadInt64(&number)) return false;
        sink.StoredAt(number);
        return true;
      default:
        unknown = true;
        return true;
    }
  });
}

// A wire::Status merged into (code, message); the Status made of them afterwards.
struct WireStatusFields {
  int32_t code = 0;
  std::string message;
  Status ToStatus() const { return StatusFromWire(code, message); }
};

bool ReadStatus(std::string_view data, int depth, WireStatusFields* status) {
  if (--depth < 0) return false;
  return ReadFields(data, depth, [&](uint32_t tag, WireReader& r, bool& unknown) {
    if (tag == kStatusCode) return r.ReadInt32(&status->code);
    if (tag == kStatusMessage) return r.ReadString(&status->message);
    unknown = true;
    return true;
  });
}

size_t StatusSize(const Status& status) {
  size_t size = 0;
  if (status.code() != StatusCode::kOk) {
    size += 1 + VarintSize(Int32Wire(static_cast<int32_t>(status.code())));
  }
  if (!status.message().empty()) size += DelimitedSize(status.message().size());
  return size;
}

char* PutStatus(char* out, uint32_t tag, const Status& status) {
  *out++ = static_cast<char>(tag);
  out = PutVarint(out, StatusSize(status));
  if (status.code() != StatusCode::kOk) {
    out = PutVarintField(out, kStatusCode, Int32Wire(static_cast<int32_t>(status.code())));
  }
  if (!status.message().empty()) out = PutDelimited(out, kStatusMessage, status.message());
  return out;
}

// ---- Produce --------------------------------------------------------------------------------

constexpr uint32_t kRequestTopic = Tag(1, kLengthDelimited);
constexpr uint32_t kRequestEntry = Tag(2, kLengthDelimited);
constexpr uint32_t kEntryQueue = Tag(1, kVarint);
constexpr uint32_t kEntryMessage = Tag(2, kLengthDelimited);
constexpr uint32_t kResponseStatus = Tag(1, kLengthDelimited);
constexpr uint32_t kResponseResult = Tag(2, kLengthDelimited);
constexpr uint32_t kResultStatus = Tag(1, kLengthDelimited);
constexpr uint32_t kResultQueue = Tag(2, kVarint);
constexpr uint32_t kResultOffset = Tag(3, kVarint);
// FetchResponse (its status and queues share the tags of ProduceResponse's fields) and
// QueueData.
constexpr uint32_t kFetchQueue = Tag(2, kLengthDelimited);
constexpr uint32_t kQueueDataQueue = Tag(1, kVarint);
constexpr uint32_t kQueueDataStatus = Tag(2, kLengthDelimited);
constexpr uint32_t kQueueDataMessage = Tag(3, kLengthDelimited);
constexpr uint32_t kQueueDataNextOffset = Tag(4, kVarint);
constexpr uint32_t kQueueDataMaxOffset = Tag(5, kVarint);
constexpr uint32_t kQueueDataMinOffset = Tag(6, kVarint);

}  // namespace

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Eight ASCII bytes at a time: most keys, tags and ids are ASCII.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, sizeof(word));
      if ((word & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char lead = *p;
    if (lead < 0x80) {
      ++p;
      continue;
    }
    // The Unicode standard's table of well-formed sequences: the second byte's range depends
    // on the first, the others are 0x80..0xBF.
    int continuation;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead == 0xE0) {
      continuation = 2;
      low = 0xA0;
    } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
      continuation = 2;
    } else if (lead == 0xED) {
      continuation = 2;
      high = 0x9F;
    } else if (lead == 0xF0) {
      continuation = 3;
      low = 0x90;
    } else if (lead >= 0xF1 && lead <= 0xF3) {
      continuation = 3;
    } else if (lead == 0xF4) {
      continuation = 3;
      high = 0x8F;
    } else {
      return false;
    }
    if (end - p <= continuation || p[1] < low || p[1] > high) return false;
    for (int i = 2; i <= continuation; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += continuation + 1;
  }
  return true;
}

ProduceFrameBuilder::ProduceFrameBuilder(std::string_view topic) {
  topic_field_.resize(DelimitedSize(topic.size()));
  PutDelimited(topic_field_.data(), kRequestTopic, topic);
  Start({});
}

void ProduceFrameBuilder::Start(std::string next) {
  frame_ = std::move(next);
  frame_.clear();
  frame_.reserve(last_size_);
  frame_.resize(kFrameHeaderSize);
  frame_ += topic_field_;
  entries_ = 0;
}

Status ProduceFrameBuilder::Add(int32_t queue, const Message& message) {
  if (!IsValidUtf8(message.key) || !IsValidUtf8(message.tag) || !IsValidUtf8(message.message_id)) {
    return InvalidArgumentError(
        "the message's key, tag and id must be valid UTF-8 to be sent to msgsdk-broker");
  }
  for (const auto& [name, value] : message.properties) {
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) {
      return InvalidArgumentError(
          "the message's property names and values must be valid UTF-8 to be sent to "
          "msgsdk-broker");
    }
  }
  const WireMessageFields fields = WireMessageFields::Of(message);
  const size_t message_size = MessageSize(fields, /*with_delivery=*/false);
  const size_t entry_size =
      (queue != 0 ? 1 + VarintSize(Int32Wire(queue)) : 0) + DelimitedSize(message_size);
  frame_.reserve(frame_.size() + DelimitedSize(entry_size));
  char* out = Extend(&frame_, 1 + VarintSize(entry_size));
  *out++ = static_cast<char>(kRequestEntry);
  PutVarint(out, entry_size);
  if (queue != 0) {
    out = Extend(&frame_, 1 + VarintSize(Int32Wire(queue)));
    PutVarintField(out, kEntryQueue, Int32Wire(queue));
  }
  AppendMessageField(&frame_, kEntryMessage, fields, /*with_delivery=*/false);
  ++entries_;
  return OkStatus();
}

std::string ProduceFrameBuilder::TakeFrame(std::string next) {
  std::string frame = std::move(frame_);
  last_size_ = frame.size();
  Start(std::move(next));
  return frame;
}

// Keeps a produce request's message fields as views into the request.
class ProduceRequestReader::EntrySink {
 public:
  explicit EntrySink(Entry* entry) : entry_(entry) {}
  void Key(std::string_view key) { entry_->fields.key = key; }
  void Tag(std::string_view tag) { entry_->fields.tag = tag; }
  void Property(std::string_view name, std::string_view value) {
    entry_->properties.insert_or_assign(std::string(name), std::string(value));
  }
  void Body(std::string_view body) { entry_->fields.body = body; }
  void DeliverAt(int64_t nanos) { entry_->fields.deliver_at = FromUnixNanos(nanos); }
  void MessageId(std::string_view id) { entry_->fields.message_id = id; }
  void BornAt(int64_t nanos) { entry_->fields.born_at = FromUnixNanos(nanos); }
  void Queue(int32_t queue) { entry_->partition = queue; }
  void Offset(int64_t offset) { entry_->offset = offset; }
  void StoredAt(int64_t nanos) { entry_->stored_at_ns = nanos; }

 private:
  Entry* entry_;
};

Status ProduceRequestReader::Read(const Frame& frame) {
  count_ = 0;
  topic_.clear();
  const bool ok =
      ReadFields(frame.body, kMaxDepth, [&](uint32_t tag, WireReader& r, bool& unknown) {
        if (tag == kRequestTopic) return r.ReadString(&topic_);
        if (tag != kRequestEntry) {
          unknown = true;
          return true;
        }
        std::string_view data;
        if (!r.ReadDelimited(&data)) return false;
        if (count_ == entries_.size()) entries_.emplace_back();
        Entry& entry = entries_[count_++];
        entry.queue = 0;
        entry.fields = RecordFields{};
        entry.fields.born_at = FromUnixNanos(0);
        entry.properties.clear();
        entry.partition = 0;
        entry.offset = 0;
        entry.stored_at_ns = 0;
        EntrySink sink(&entry);
        constexpr int kEntryDepth = kMaxDepth - 1;
        return ReadFields(data, kEntryDepth, [&](uint32_t field, WireReader& er, bool& skip) {
          if (field == kEntryQueue) return er.ReadInt32(&entry.queue);
          if (field == kEntryMessage) {
            std::string_view message;
            return er.ReadDelimited(&message) && ReadMessage(message, kEntryDepth, sink);
          }
          skip = true;
          return true;
        });
      });
  if (!ok) return MalformedBody(frame);
  // The topic may follow the entries, and the entries may have moved while they were read.
  for (size_t i = 0; i < count_; ++i) {
    Entry& entry = entries_[i];
    entry.fields.topic = topic_;
    entry.fields.properties = entry.properties.empty() ? nullptr : &entry.properties;
  }
  return OkStatus();
}

Message ProduceRequestReader::CopyMessage(size_t i) const {
  const Entry& entry = entries_[i];
  Message message;
  ResetMessage(topic_, &message);
  message.key.assign(entry.fields.key);
  message.tag.assign(entry.fields.tag);
  message.properties = entry.properties;
  message.body.assign(entry.fields.body);
  message.deliver_at = entry.fields.deliver_at;
  message.message_id.assign(entry.fields.message_id);
  message.born_at = entry.fields.born_at;
  message.partition = entry.partition;
  message.offset = entry.offset;
  message.stored_at = FromUnixNanos(entry.stored_at_ns);
  return message;
}

void ProduceRequestReader::Trim(size_t max_bytes) {
  if (entries_.capacity() * sizeof(Entry) > max_bytes) {
    entries_.clear();
    entries_.shrink_to_fit();
    count_ = 0;
  }
}

void AppendProduceResponseBody(const std::vector<ProduceOutcome>& results, std::string* out) {
  size_t size = 0;
  for (const ProduceOutcome& result : results) {
    size_t result_size = 0;
    if (!result.status.ok()) result_size += DelimitedSize(StatusSize(result.status));
    if (result.queue != 0) result_size += 1 + VarintSize(Int32Wire(result.queue));
    if (result.offset != 0) result_size += 1 + VarintSize(Int64Wire(result.offset));
    size += DelimitedSize(result_size);
  }
  char* p = Extend(out, size);
  for (const ProduceOutcome& result : results) {
    const size_t status_size = result.status.ok() ? 0 : DelimitedSize(StatusSize(result.status));
    const size_t queue_size = result.queue != 0 ? 1 + VarintSize(Int32Wire(result.queue)) : 0;
    const size_t offset_size = result.offset != 0 ? 1 + VarintSize(Int64Wire(result.offset)) : 0;
    *p++ = static_cast<char>(kResponseResult);
    p = PutVarint(p, status_size + queue_size + offset_size);
    if (!result.status.ok()) p = PutStatus(p, kResultStatus, result.status);
    if (result.queue != 0) p = PutVarintField(p, kResultQueue, Int32Wire(result.queue));
    if (result.offset != 0) p = PutVarintField(p, kResultOffset, Int64Wire(result.offset));
  }
}

// Reads a response body: its own status and repeated `element_tag` elements, each handed to
// `element` as its bytes and the nesting depth left for them.
template <typename Element>
Status DecodeResponse(const Frame& frame, uint32_t element_tag, Status* response_status,
                      Element element) {
  WireStatusFields status;
  const bool ok =
      ReadFields(frame.body, kMaxDepth, [&](uint32_t tag, WireReader& r, bool& unknown) {
        std::string_view data;
        if (tag == kResponseStatus) {
          return r.ReadDelimited(&data) && ReadStatus(data, kMaxDepth, &status);
        }
        if (tag != element_tag) {
          unknown = true;
          return true;
        }
        return r.ReadDelimited(&data) && element(data, kMaxDepth - 1);
      });
  if (!ok) return MalformedBody(frame);
  *response_status = status.ToStatus();
  return OkStatus();
}

Status DecodeProduceResponse(const Frame& frame, Status* response_status,
                             std::vector<ProduceOutcome>* results) {
  results->clear();
  return DecodeResponse(
      frame, kResponseResult, response_status, [&](std::string_view data, int depth) {
        WireStatusFields result_status;
        ProduceOutcome& result = results->emplace_back();
        const bool parsed =
            ReadFields(data, depth, [&](uint32_t field, WireReader& rr, bool& skip) {
              std::string_view nested;
              switch (field) {
                case kResultStatus:
                  return rr.ReadDelimited(&nested) && ReadStatus(nested, depth, &result_status);
                case kResultQueue:
                  return rr.ReadInt32(&result.queue);
                case kResultOffset:
                  return rr.ReadInt64(&result.offset);
                default:
                  skip = true;
                  return true;
              }
            });
        result.status = result_status.ToStatus();
        return parsed;
      });
}

namespace {

template <typename Stored>
void AppendQueueDataOf(int32_t queue, const Status& status, const std::vector<Stored>& messages,
                       int64_t next_offset, int64_t max_offset, int64_t min_offset,
                       std::string* out) {
  size_t size = 0;
  if (queue != 0) size += 1 + VarintSize(Int32Wire(queue));
  if (!status.ok()) size += DelimitedSize(StatusSize(status));
  for (const Stored& message : messages) {
    size += DelimitedSize(MessageSize(WireMessageFields::Of(message), /*with_delivery=*/true));
  }
  size_t tail = 0;
  if (next_offset != 0) tail += 1 + VarintSize(Int64Wire(next_offset));
  if (max_offset != 0) tail += 1 + VarintSize(Int64Wire(max_offset));
  if (min_offset != 0) tail += 1 + VarintSize(Int64Wire(min_offset));
  size += tail;
  out->reserve(out->size() + DelimitedSize(size));
  const size_t head = 1 + VarintSize(size) + (queue != 0 ? 1 + VarintSize(Int32Wire(queue)) : 0) +
                      (status.ok() ? 0 : DelimitedSize(StatusSize(status)));
  char* p = Extend(out, head);
  *p++ = static_cast<char>(kFetchQueue);
  p = PutVarint(p, size);
  if (queue != 0) p = PutVarintField(p, kQueueDataQueue, Int32Wire(queue));
  if (!status.ok()) PutStatus(p, kQueueDataStatus, status);
  for (const Stored& message : messages) {
    AppendMessageField(out, kQueueDataMessage, WireMessageFields::Of(message),
                       /*with_delivery=*/true);
  }
  p = Extend(out, tail);
  if (next_offset != 0) p = PutVarintField(p, kQueueDataNextOffset, Int64Wire(next_offset));
  if (max_offset != 0) p = PutVarintField(p, kQueueDataMaxOffset, Int64Wire(max_offset));
  if (min_offset != 0) PutVarintField(p, kQueueDataMinOffset, Int64Wire(min_offset));
}

}  // namespace

void AppendQueueData(int32_t queue, const Status& status, const std::vector<Message>& messages,
                     int64_t next_offset, int64_t max_offset, int64_t min_offset,
                     std::string* out) {
  AppendQueueDataOf(queue, status, messages, next_offset, max_offset, min_offset, out);
}

void AppendQueueData(int32_t queue, const Status& status, const std::vector<RecordInPlace>& records,
                     int64_t next_offset, int64_t max_offset, int64_t min_offset,
                     std::string* out) {
  AppendQueueDataOf(queue, status, records, next_offset, max_offset, min_offset, out);
}

Status DecodeFetchResponse(const Frame& frame, const std::string& topic, Status* response_status,
                           std::vector<FetchedQueue>* queues, const MessageSlots& slots) {
  queues->clear();
  size_t decoded = 0;
  return DecodeResponse(frame, kFetchQueue, response_status, [&](std::string_view data, int depth) {
    WireStatusFields queue_status;
    FetchedQueue& queue = queues->emplace_back();
    queue.first_message = decoded;
    const bool parsed = ReadFields(data, depth, [&](uint32_t field, WireReader& qr, bool& skip) {
      std::string_view nested;
      switch (field) {
        case kQueueDataQueue:
          return qr.ReadInt32(&queue.queue);
        case kQueueDataStatus:
          return qr.ReadDelimited(&nested) && ReadStatus(nested, depth, &queue_status);
        case kQueueDataMessage: {
          if (!qr.ReadDelimited(&nested)) return false;
          Message& message = slots(decoded++);
          ++queue.message_count;
          ResetMessage(topic, &message);
          MessageSink sink(&message);
          return ReadMessage(nested, depth, sink);
        }
        case kQueueDataNextOffset:
          return qr.ReadInt64(&queue.next_offset);
        case kQueueDataMaxOffset:
          return qr.ReadInt64(&queue.max_offset);
        case kQueueDataMinOffset:
          return qr.ReadInt64(&queue.min_offset);
        default:
          skip = true;
          return true;
      }
    });
    queue.status = queue_status.ToStatus();
    return parsed;
  });
}

}  // namespace msgsdk::native::protocol
