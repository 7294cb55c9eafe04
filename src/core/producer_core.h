#pragma once

// A producer of one topic: checks and stamps each message, hands it to the backend of the
// cluster the topic is routed to, and completes the caller (sync, or a callback on the SDK
// pool). When the topic's route changes, the engine rebinds the producer: new sends go to the
// new cluster at once, sends already handed to the old one complete there.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/send_counter.h"
#include "msgsdk/producer.h"

namespace msgsdk::core {

class Engine;

// Shadow copies a producer wrote during a migration, for the migration's progress report.
struct ShadowStats {
  void Record(const Result<StoredPosition>& stored);

  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> failed{0};
  std::mutex mutex;
  std::string last_error;
};

// The other cluster of a migrating topic, which gets a shadow copy of every message.
struct ShadowTarget {
  BackendPtr backend;
  std::unique_ptr<BackendProducer> producer;
  std::string cluster;
};

// Where a producer's sends go: one cluster's backend producer, and the count of sends in
// flight on it (whose `closed` flag also marks a route that was replaced). During a migration's
// dual_write and cutover phases also a shadow target, and the generation both copies carry.
struct ProducerRoute {
  BackendPtr backend;  // keeps the backend alive while this route's producer exists
  std::unique_ptr<BackendProducer> producer;
  Capabilities capabilities;
  std::shared_ptr<SendCounter> counter;
  std::unique_ptr<ShadowTarget> shadow;
  std::string generation;
  std::shared_ptr<ShadowStats> shadow_stats;
};

// What a route writes to: compared by the engine to see whether a producer must move.
struct RouteIdentity {
  const Backend* primary = nullptr;
  const Backend* shadow = nullptr;
  std::string generation;

  friend bool operator==(const RouteIdentity&, const RouteIdentity&) = default;
};

class ProducerCore : public std::enable_shared_from_this<ProducerCore> {
 public:
  // `send_timeout` zero: the routing table's client.send_timeout_ms, also as it changes.
  ProducerCore(std::shared_ptr<Engine> engine, std::string topic, ProducerRoute route,
               std::chrono::milliseconds send_timeout);
  ~ProducerCore();

  Result<SendReceipt> Send(Message&& message);
  void SendAsync(Message&& message, SendCallback&& callback);
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages);
  Status Close();

  const std::string& topic() const { return topic_; }
  // What the current route writes to.
  RouteIdentity identity() const;
  // The backends the current route uses (primary, and the shadow's if any).
  std::vector<const Backend*> backends() const;
  // The current route's shadow copies (null when it writes none).
  std::shared_ptr<ShadowStats> shadow_stats() const;

  // Make-before-break: `route` (already made) takes every new send; sends in flight on the
  // old route complete there (bounded by the send timeout), then the old route is closed.
  // On a closed producer the new route is closed instead. Serialized with Close.
  void Rebind(ProducerRoute route);
  // The client settings of a new routing version (send timeout, message size limit).
  void ApplySettings(std::chrono::milliseconds send_timeout, int64_t max_message_bytes);

 private:
  // Checks the message and fills topic, message_id and born_at.
  Status Prepare(Message& message) const;
  // Counts sends in on the current route and returns it; null (nothing counted) once the
  // producer is closed. A route replaced meanwhile is skipped for its successor.
  ProducerRoute* BeginSends(int64_t count);
  // Counts sends that never reached the backend out again.
  static void AbandonSends(ProducerRoute& route, int64_t count);
  // Refuses a message the route's backend cannot carry (timer messages).
  static Status CheckCapabilities(const Message& message, const ProducerRoute& route);
  // Counted in on `route` (the caller holds a count); stamps `message` primary, or leaves it
  // alone when the route writes no shadow.
  static void PrepareCopies(Message& message, ProducerRoute& route);
  // After the primary copy went out: writes the shadow copy.
  static void SendShadow(Message& message, ProducerRoute& route);
  // Stops new sends on `route`, waits for its sends in flight and closes its backend producer.
  Status Drain(ProducerRoute& route) const;
  Status ClosedError() const;
  std::chrono::milliseconds send_timeout() const {
    return std::chrono::milliseconds(send_timeout_ms_.load(std::memory_order_relaxed));
  }

  const std::shared_ptr<Engine> engine_;
  const std::string topic_;
  // The timeout ProducerOptions fixed; zero when it follows the routing table.
  const std::chrono::milliseconds fixed_send_timeout_;
  std::atomic<int64_t> send_timeout_ms_;
  std::atomic<int64_t> max_message_bytes_;
  std::atomic<bool> closed_{false};
  std::atomic<ProducerRoute*> route_;

  // Serializes Rebind and Close. Replaced routes are kept (closed) until the producer goes:
  // a sender may still hold a pointer to one it is about to find closed.
  std::mutex rebind_mutex_;
  std::vector<std::unique_ptr<ProducerRoute>> routes_;
};

}  // namespace msgsdk::core
