#pragma once

// How a msgsdk Message maps onto a Kafka record (docs/backends/kafka.md is the reference):
//   key         -> record key (absent when empty)
//   body        -> record value
//   born_at     -> record timestamp (ms) and header msgsdk-born-at (µs since the epoch)
//   message_id  -> header msgsdk-id
//   tag         -> header msgsdk-tag (absent when empty)
//   deliver_at  -> header msgsdk-deliver-at (µs; read only: this backend refuses timer messages)
//   properties  -> one header per property, named as the property; a property whose name
//                  starts with "msgsdk-" is written as "msgsdk-prop-<name>" so it can never
//                  collide with the SDK's own headers.
// A record without these headers (written by any other client) is still a valid message.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "msgsdk/message.h"

namespace msgsdk::kafka {

inline constexpr std::string_view kReservedHeaderPrefix = "msgsdk-";
inline constexpr std::string_view kIdHeader = "msgsdk-id";
inline constexpr std::string_view kTagHeader = "msgsdk-tag";
inline constexpr std::string_view kBornAtHeader = "msgsdk-born-at";
inline constexpr std::string_view kDeliverAtHeader = "msgsdk-deliver-at";
inline constexpr std::string_view kEscapedPropertyPrefix = "msgsdk-prop-";

// A decimal integer as the timestamp headers carry it: an optional '-' and digits, nothing
// else (what std::from_chars accepts). Nothing if the text is not one or overflows.
std::optional<int64_t> ParseDecimalInt64(std::string_view text);

// Writes `value` in decimal as std::to_chars does (an optional '-', no leading zeros) into
// `out`, which has room for 20 characters; returns the end. Timestamps in microseconds (16
// digits) are written eight digits at a time: this runs for every record produced.
char* WriteDecimalInt64(int64_t value, char* out);
inline constexpr size_t kMaxDecimalInt64Length = 20;

// The header name that carries user property `key`.
std::string PropertyHeaderName(const std::string& key);

// Microseconds since the Unix epoch, as written in the timestamp headers.
int64_t ToEpochMicros(Timestamp t);
Timestamp FromEpochMicros(int64_t micros);
int64_t ToEpochMillis(Timestamp t);

// The headers of `message` (id, tag, born_at, deliver_at, properties). Caller owns the result
// (rd_kafka_produceva takes it on success).
rd_kafka_headers_t* EncodeHeaders(const Message& message);

// A message_id for a record that carries none: 32 hex characters, the record timestamp's
// milliseconds first (so ids still sort by time), then a hash of topic, partition and offset.
// The same record always gets the same id, so redeliveries are recognised as duplicates.
std::string SynthesizeMessageId(std::string_view topic, int32_t partition, int64_t offset,
                                int64_t timestamp_ms);

// The message a consumed record stands for: every field of Delivery::message but `cluster`
// and `delivery_attempt`. `rkmessage` must hold a record (err == 0).
Message DecodeRecord(const rd_kafka_message_t* rkmessage);
// The same into `message`, overwriting every field but `cluster`: a message decoded before
// may be passed again, and its strings' buffers are reused (decoding in place also saves
// moving a Message into its Delivery).
void DecodeRecordInto(const rd_kafka_message_t* rkmessage, Message* message);

}  // namespace msgsdk::kafka
