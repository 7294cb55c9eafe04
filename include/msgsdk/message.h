#pragma once

/// @file
/// The message, as a producer sends it and as a handler receives it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace msgsdk {

/// Wall-clock timestamps (Unix epoch), as stored with every message.
using Timestamp = std::chrono::system_clock::time_point;

/// User headers: string keys to string values, carried unchanged end to end.
using Properties = std::map<std::string, std::string>;

/// One message. Producers fill the first block (any field may be left empty); the SDK
/// assigns `message_id` and `born_at` at send time; handlers also see the delivery fields.
/// Field order allows designated initialisers: `{.key = "order-42", .tag = "created", .body = b}`.
/// Thread-safety: a plain value type.
struct Message {
  /// Filled from the producer's topic on send; the topic the message was delivered from.
  std::string topic;
  /// Sharding and ordering key: messages with one key keep their send order for ordered
  /// subscriptions. Empty: no ordering, spread over the topic's queues.
  std::string key;
  /// One word for filtering (`"created"`); matched by subscription tag filters. Empty: no tag.
  std::string tag;
  /// User headers.
  Properties properties;
  /// Payload bytes (may hold any byte values).
  std::string body;
  /// When set, a timer message: delivered no earlier than this time (backends that cannot
  /// hold timer messages refuse it with kUnsupported).
  std::optional<Timestamp> deliver_at;

  // ---- Set by the SDK --------------------------------------------------------------------
  /// Globally unique and time-ordered (32 hex characters; sorts by send time). Assigned at send.
  std::string message_id;
  /// When the producer sent it.
  Timestamp born_at{};

  // ---- Delivery fields, set only on messages handed to a handler ---------------------------
  /// 1 on the first delivery to this group, 2 on the first retry, ...
  int delivery_attempt = 0;
  /// The cluster (routing-table name) the message was read from.
  std::string cluster;
  /// The queue (native), partition (kafka) or stream (redis) within the topic.
  int32_t partition = -1;
  /// Position within that partition, as the backend numbers it (-1 if it has none).
  int64_t offset = -1;
  /// When the cluster stored it.
  Timestamp stored_at{};
};

/// What a handler tells the SDK about one message.
enum class ConsumeResult {
  /// Processed: acknowledge it; it will not be delivered to this group again.
  kSuccess,
  /// Not processed now: deliver it again after a backoff, up to max_attempts, then dead-letter it.
  kRetryLater,
};

/// A subscription's handler. It runs on the SDK's consumer threads, never on an I/O thread.
/// A handler that throws is treated as kRetryLater.
using MessageHandler = std::function<ConsumeResult(const Message&)>;

/// The dead-letter topic of a consumer group: where a message goes after max_attempts.
/// Subscribe to it like any topic to inspect or replay dead letters.
std::string DeadLetterTopic(const std::string& group);

}  // namespace msgsdk
