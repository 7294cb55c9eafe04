#pragma once

// The backend plug-in interface: how the core talks to one kind of cluster.
// A backend knows nothing of routing, migration, retries or handlers: it stores messages,
// hands them out in partition order, and takes acknowledgements. Everything else is the
// core's. Backends are created by a BackendFactory found by name in a BackendRegistry.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "msgsdk/capabilities.h"
#include "msgsdk/client.h"
#include "msgsdk/message.h"
#include "msgsdk/options.h"
#include "msgsdk/result.h"

namespace msgsdk::core {

using Deadline = std::chrono::steady_clock::time_point;

// Where a backend stored a message.
struct StoredPosition {
  int32_t partition = -1;
  int64_t offset = -1;
};

// Called exactly once per BackendProducer::Send, on any thread. Must not block.
using SendDone = std::function<void(Result<StoredPosition>)>;

// Sends to one topic of one cluster.
class BackendProducer {
 public:
  virtual ~BackendProducer() = default;
  // `message` is complete: topic, message_id and born_at are set, the size is checked.
  virtual void Send(Message message, SendDone done) = 0;
  // Completes or fails every pending send by `deadline`, then refuses new ones.
  virtual Status Close(Deadline deadline) = 0;
};

// One message handed out by a backend consumer.
struct Delivery {
  // topic, key, tag, properties, body, deliver_at, message_id, born_at, stored_at, partition
  // and offset set; cluster is filled in by the core. delivery_attempt: how often the backend
  // knows it was delivered before (0 if it does not track it).
  Message message;
  // Backend-private acknowledgement handle (a Redis entry id, for example).
  std::string receipt;
};

// Implemented by the core, called by a backend consumer.
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // Messages of one partition, in partition order. Never blocks for long.
  virtual void Deliver(std::vector<Delivery> batch) = 0;
  // Waits until the core can take more deliveries (it holds fewer than max_inflight).
  // Returns false if still full at the deadline or the subscription is closing.
  virtual bool WaitForCapacity(Deadline deadline) = 0;
  // The backend is about to give up these partitions: the core drops their queued and
  // retrying deliveries and waits (bounded) for running handlers of them, so Ack calls for
  // them are complete when this returns. Call before committing and releasing them.
  virtual void Revoke(const std::vector<int32_t>& partitions) = 0;
};

// What a subscription asks of a backend.
struct SubscriptionSpec {
  std::string topic;
  std::string group;
  SubscriptionMode mode = SubscriptionMode::kClustering;
  StartPosition start_from = StartPosition::kEarliest;
  // Broadcast: the member's stable name (offsets are kept per member).
  std::string member_id;
  // Tags to keep (empty: all). Backends with server_side_tag_filter use them; the core
  // filters again either way.
  std::vector<std::string> tags;
};

// A running consumer of one topic in one group.
class BackendConsumer {
 public:
  virtual ~BackendConsumer() = default;
  // The handler finished with this delivery (success or dead-lettered): it must not be
  // delivered to the group again. Offsets are committed for the contiguous acknowledged prefix.
  virtual void Ack(const Delivery& delivery) = 0;
  // Stops fetching, calls sink.Revoke for every owned partition, commits, leaves the group.
  // Unacknowledged deliveries go back to the cluster. Bounded by `deadline`. Idempotent.
  virtual Status Close(Deadline deadline) = 0;
};

// A connection to one cluster, shared by every producer and subscription of that cluster.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Capabilities& capabilities() const = 0;
  virtual Result<std::unique_ptr<BackendProducer>> CreateProducer(const std::string& topic) = 0;
  virtual Result<std::unique_ptr<BackendConsumer>> Subscribe(const SubscriptionSpec& spec,
                                                             DeliverySink& sink) = 0;
  virtual Status ResetOffsets(const std::string& topic, const std::string& group,
                              const ResetTarget& target) = 0;
  virtual Status Close(Deadline deadline) = 0;
};

using BackendPtr = std::shared_ptr<Backend>;

// Makes backends of one kind. Registered by name in a BackendRegistry.
class BackendFactory {
 public:
  virtual ~BackendFactory() = default;
  // "native", "kafka", "redis".
  virtual std::string name() const = 0;
  // Every cluster property this backend accepts: parsing, validation, defaults and the
  // configuration reference all come from this table.
  virtual const PropertyTable& properties() const = 0;
  // `config` has been validated against properties().
  virtual Result<BackendPtr> Create(const ClusterConfig& config) = 0;
};

}  // namespace msgsdk::core
