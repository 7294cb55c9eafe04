#pragma once

// Hand-written encoders and decoders of the frame bodies that carry messages in bulk —
// ProduceRequest, ProduceResponse and FetchResponse — in exactly the wire format of
// broker.proto, so that a peer using the generated code reads what these write and the other
// way round. They go straight between msgsdk::Message and bytes: the generated objects in
// between cost an allocation per string field and per entry, a copy of every body, and about
// as much again to destroy, which was most of the CPU per message on both sides of the
// connection. The other frames are rare and keep the generated code.
//
// The decoders accept exactly what the generated parser accepts, with the same meaning:
// fields in any order, unknown fields (groups included) skipped, a known field number with
// another wire type treated as unknown, the last value of a scalar field wins, repeated
// occurrences of a message field merge, string fields must be valid UTF-8, nesting deeper
// than 100 levels is refused. A refusal is the same kInvalidArgument as ParseFrameBody's.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/native/protocol/frame.h"
#include "backends/native/storage/message_codec.h"
#include "msgsdk/message.h"
#include "msgsdk/status.h"

namespace msgsdk::native::protocol {

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF), as protobuf requires of string fields.
bool IsValidUtf8(std::string_view text);

// ---- Produce --------------------------------------------------------------------------------

// A Produce frame being built: room for its header, the topic, then one entry per Add.
// Thread-safety: not thread-safe.
class ProduceFrameBuilder {
 public:
  explicit ProduceFrameBuilder(std::string_view topic);

  // Appends an entry for `queue`: the fields a producer sets plus message_id and born_at.
  // kInvalidArgument, and nothing appended, if the key, the tag, a property or the message
  // id is not valid UTF-8: a broker refuses a frame holding such a string field (as the
  // generated parser does), so it fails alone here instead.
  Status Add(int32_t queue, const Message& message);

  size_t entries() const { return entries_; }
  // Bytes of the frame so far, its header included.
  size_t size() const { return frame_.size(); }

  // The frame, with its header still to be written (SealFrame with FrameType::kProduce).
  // The builder starts the next frame for the same topic, in `next`'s memory if it has some
  // (a frame already sent: see BrokerClient::TakeSpareFrame).
  std::string TakeFrame(std::string next = {});

 private:
  void Start(std::string next);

  std::string topic_field_;  // the encoded topic field every frame starts with
  std::string frame_;
  size_t entries_ = 0;
  // The size of the last frame taken: the next one reserves as much, instead of growing
  // (and copying) step by step.
  size_t last_size_ = 0;
};

// A ProduceRequest decoded in place: each message's fields are views into the frame's body,
// which the store encodes its record from, so a body is copied once on its way from the
// socket to the log. The per-entry storage is reused from one request to the next, so that
// decoding allocates nothing once it has grown (unless messages carry properties).
// Thread-safety: not thread-safe.
class ProduceRequestReader {
 public:
  // Decodes the body of `frame` (a Produce request). kInvalidArgument if it is not a valid
  // ProduceRequest; the reader's contents are unspecified then. The fields read point into
  // `frame`, which must outlive their use.
  Status Read(const Frame& frame);

  const std::string& topic() const { return topic_; }
  size_t size() const { return count_; }
  int32_t queue(size_t i) const { return entries_[i].queue; }
  // The fields of the i-th message a record keeps, with topic set.
  const RecordFields& fields(size_t i) const { return entries_[i].fields; }
  // The i-th message as FromWire would make it (topic set): a copy, for tests and tools.
  Message CopyMessage(size_t i) const;

  // Frees the kept storage if it takes more than `max_bytes` (a large request should not pin
  // its memory for the rest of the connection's life).
  void Trim(size_t max_bytes);

 private:
  struct Entry {
    int32_t queue = 0;
    RecordFields fields;
    Properties properties;  // fields.properties points here
    // Delivery fields a producer has no reason to send; kept only for CopyMessage.
    int32_t partition = 0;
    int64_t offset = 0;
    int64_t stored_at_ns = 0;
  };
  class EntrySink;

  std::string topic_;
  std::vector<Entry> entries_;
  size_t count_ = 0;
};

// One entry's result in a ProduceResponse.
struct ProduceOutcome {
  int32_t queue = 0;
  int64_t offset = 0;
  Status status;
};

// Appends the body of a ProduceResponse with an OK status and one result per outcome.
void AppendProduceResponseBody(const std::vector<ProduceOutcome>& results, std::string* out);

// Decodes a Produce response frame: the response's own status into `status`, its results
// into `results` (cleared first). kInvalidArgument if the body is malformed.
Status DecodeProduceResponse(const Frame& frame, Status* status,
                             std::vector<ProduceOutcome>* results);

// ---- Fetch ----------------------------------------------------------------------------------

// Appends one QueueData of a FetchResponse body (an OK FetchResponse is only these): the
// queue, its status, the messages with their delivery fields (queue = partition, offset,
// stored_at), the next offset to read, the queue's end and its start (its first retained
// offset).
void AppendQueueData(int32_t queue, const Status& status, const std::vector<Message>& messages,
                     int64_t next_offset, int64_t max_offset, int64_t min_offset, std::string* out);
// The same from records read in place from the store (no Message in between).
void AppendQueueData(int32_t queue, const Status& status, const std::vector<RecordInPlace>& records,
                     int64_t next_offset, int64_t max_offset, int64_t min_offset, std::string* out);

struct FetchedQueue {
  int32_t queue = 0;
  Status status;
  // Its messages: the response's messages first_message to first_message + message_count - 1
  // (see MessageSlots).
  size_t first_message = 0;
  size_t message_count = 0;
  int64_t next_offset = 0;
  int64_t max_offset = 0;
  int64_t min_offset = 0;
};

// Where DecodeFetchResponse puts the response's messages: slot(i) for the i-th (counted over
// all its queues, from 0, asked for in that order). Every field of the slot's Message is
// overwritten, as FromWire leaves it with `topic` filled in, and its strings keep their
// capacity: a caller that hands the same messages out again decodes a steady stream without
// allocating per message.
using MessageSlots = std::function<Message&(size_t index)>;

// Decodes a Fetch response frame: the response's own status into `status`, its queues into
// `queues` (cleared first), their messages into `slots`. kInvalidArgument if the body is
// malformed (some slots may have been written then).
Status DecodeFetchResponse(const Frame& frame, const std::string& topic, Status* status,
                           std::vector<FetchedQueue>* queues, const MessageSlots& slots);

}  // namespace msgsdk::native::protocol
