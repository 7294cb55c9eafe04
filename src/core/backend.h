#pragma once

// The backend plug-in interface: how the core talks to one kind of cluster.
// A backend knows nothing of routing, migration, retries or handlers: it stores messages,
// hands them out in partition order, and takes acknowledgements. Everything else is the
// core's. Backends are created by a BackendFactory found by name in a BackendRegistry.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/cluster_config.h"
#include "core/prefetch.h"
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

// How a backend reports one send: stored (where) or failed (why). Called exactly once per
// BackendProducer::Send, on any thread; must not block.
//
// A SendDone is one pointer to the core's record of the send, so a backend copies it into its
// own callbacks (a std::function keeps a pointer-sized capture inline) and a send costs no
// allocation for its completion in any layer. Copies are the same handle: call one of them,
// once. The core's records implement Target; any other callable (a test's lambda) is wrapped
// in a Target of its own, freed when called.
class SendDone {
 public:
  class Target {
   public:
    // Called once; the target may free itself.
    virtual void Complete(Result<StoredPosition> result) = 0;

   protected:
    ~Target() = default;
  };

  SendDone() = default;
  explicit SendDone(Target* target) : target_(target) {}
  template <typename F>
  requires(!std::is_same_v<std::decay_t<F>, SendDone> &&
           std::is_invocable_v<std::decay_t<F>&, Result<StoredPosition>>)
      SendDone(F&& callable)  // NOLINT(google-explicit-constructor): passed like a callback
      : target_(new Callable<std::decay_t<F>>(std::forward<F>(callable))) {}

  void operator()(Result<StoredPosition> result) const { target_->Complete(std::move(result)); }
  explicit operator bool() const { return target_ != nullptr; }

  // Starts loading the record behind this handle into the cache, for a backend completing a
  // batch of sends: it calls this for each of them before it completes the first. A record
  // was last touched when its message was sent, often thousands of sends before, so each
  // would otherwise be a cache miss, one after another.
  void Prefetch() const { PrefetchForWrite(target_, kPrefetchBytes); }
  // The largest record Prefetch loads whole (the core's is checked against it).
  static constexpr size_t kPrefetchBytes = 192;

 private:
  template <typename F>
  struct Callable final : Target {
    explicit Callable(F f) : callable(std::move(f)) {}
    void Complete(Result<StoredPosition> result) override {
      F once = std::move(callable);
      delete this;
      once(std::move(result));
    }
    F callable;
  };

  Target* target_ = nullptr;
};

// While one lives on a thread, the SendAsync completions made there (SendDone calls) are
// handed to the core's callback threads together when the outermost one ends, in order,
// rather than one hand-off (and possibly one wake-up) each. For a backend completing many
// sends at once, such as a batch of delivery reports. Other completions run as usual.
class SendDoneBatch {
 public:
  SendDoneBatch();
  ~SendDoneBatch();
  SendDoneBatch(const SendDoneBatch&) = delete;
  SendDoneBatch& operator=(const SendDoneBatch&) = delete;

 private:
  bool outermost_;
};

// Sends to one topic of one cluster.
class BackendProducer {
 public:
  virtual ~BackendProducer() = default;
  // `message` is complete: topic, message_id and born_at are set, the size is checked. It is
  // read during the call only (encoded or copied into the backend's own buffers), so a send
  // never moves or copies a Message between layers. `done` may run before Send returns (on
  // this thread, for a send refused at once).
  virtual void Send(const Message& message, SendDone done) = 0;
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

// A delivery record that changes hands whole (see DeliverySink::DeliverSwapping): passing the
// pointer costs nothing per field, where moving a Delivery moves a dozen strings.
using DeliveryPtr = std::unique_ptr<Delivery>;

// Whether a spent delivery record is worth keeping to decode or fill again: not if its
// buffers are large, since a big message should not pin its memory for as long as the
// subscription runs.
inline bool WorthReusing(const Delivery& delivery) {
  constexpr size_t kMaxReusedBytes = 16 * 1024;
  return delivery.message.body.capacity() + delivery.message.key.capacity() <= kMaxReusedBytes;
}

// The i-th of a backend consumer's records to decode a message into (i at most records'
// size): made if the pool has none there yet, replaced by an empty one if not worth reusing.
// The caller overwrites every field it hands on.
inline Delivery& RecordToDecodeInto(std::vector<DeliveryPtr>& records, size_t i) {
  if (i == records.size()) records.push_back(std::make_unique<Delivery>());
  Delivery& delivery = *records[i];
  if (!WorthReusing(delivery)) delivery = Delivery{};
  return delivery;
}

// Implemented by the core, called by a backend consumer.
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // Messages of one partition, in partition order. Never blocks for long.
  virtual void Deliver(std::vector<Delivery> batch) = 0;
  // Deliver for a backend that decodes into records it keeps: takes every delivery of `batch`
  // (none null; messages of one or more partitions, each partition's in partition order: one
  // call per poll costs the core one lock) and leaves in its place a spent record (never
  // null), whose strings keep their capacity for the backend to decode its next message into
  // (overwriting every field). The records change hands by pointer, so a steady stream neither
  // allocates nor moves strings per message, and nothing the backend's thread allocated is
  // freed on a handler thread (slow with glibc's malloc).
  // By default: Deliver of each run of one partition, leaving moved-from deliveries.
  virtual void DeliverSwapping(std::span<DeliveryPtr> batch) {
    for (auto run = batch.begin(); run != batch.end();) {
      auto run_end = std::find_if(run, batch.end(), [&](const DeliveryPtr& d) {
        return d->message.partition != (*run)->message.partition;
      });
      std::vector<Delivery> deliveries;
      deliveries.reserve(static_cast<size_t>(run_end - run));
      for (auto it = run; it != run_end; ++it) deliveries.push_back(std::move(**it));
      Deliver(std::move(deliveries));
      run = run_end;
    }
  }
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
  // Ack of several deliveries at once, so a backend can take its lock once for all of them.
  virtual void AckAll(std::span<const Delivery* const> deliveries) {
    for (const Delivery* delivery : deliveries) Ack(*delivery);
  }
  // Stops fetching, calls sink.Revoke for every owned partition, commits, leaves the group.
  // Unacknowledged deliveries go back to the cluster. Bounded by `deadline`. Idempotent.
  virtual Status Close(Deadline deadline) = 0;
};

// Where one partition of a topic stands for one subscriber (Backend::Positions).
struct PartitionPosition {
  int32_t partition = 0;
  // The offset the next message stored in the partition will get.
  int64_t end = 0;
  // The offset the subscriber reads next (its committed position); -1 when it has none.
  int64_t committed = -1;
  // The first offset still stored: retention (or a length limit) deleted those before it.
  // A subscriber below it continues from it, so what it has left to read counts from
  // max(committed, start) (see Remaining).
  int64_t start = 0;

  // Messages the subscriber has yet to read before `until` (the end, or a drain offset).
  int64_t Remaining(int64_t until) const {
    const int64_t from = committed > start ? committed : start;
    return until > from ? until - from : 0;
  }

  friend bool operator==(const PartitionPosition&, const PartitionPosition&) = default;
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
  // Every partition of `spec.topic`: its end, and the committed position of `spec`'s group
  // (its member's, in broadcast mode). What a migration drains by and `lag` reports. A backend
  // that cannot tell returns kUnsupported naming itself.
  virtual Result<std::vector<PartitionPosition>> Positions(const SubscriptionSpec& spec);
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
