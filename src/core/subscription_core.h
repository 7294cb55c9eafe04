#pragma once

// A subscription: takes deliveries from a backend consumer and runs the user's handler on the
// subscription's own threads. It owns the delivery contract that every backend shares:
// tag filtering, per-key order (ordered mode), retries with exponential backoff that hold back
// only the retrying key, dead-lettering after max_attempts, acknowledging only after the
// handler succeeded, and bounded memory (max_inflight).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/executor.h"
#include "core/tag_filter.h"
#include "msgsdk/message.h"

namespace msgsdk::core {

class Engine;
class RoutedSubscription;
class SubscriptionCore;
struct PendingDelivery;

// How a delivery ends.
struct Verdict {
  enum class Kind {
    kAck,         // processed: acknowledge it
    kRetry,       // deliver it again after a delay (dead-lettered after max_attempts)
    kDeadLetter,  // give up on it now: straight to the group's dead-letter topic
    // Hand it back unprocessed: not acknowledged, not retried here and not counted as an
    // attempt; the cluster delivers it again once this subscription closes (or its partition
    // moves). For a subscription about to close, such as a sidecar stream that ended.
    kRelease,
  };
  Kind kind = Kind::kAck;
  // kRetry: how long to wait first; negative means the subscription's exponential backoff.
  std::chrono::milliseconds retry_delay{-1};
  // kRetry / kDeadLetter: why, kept in the dead-letter record.
  std::string reason;
};

// One delivery handed to a handler, to be settled exactly once, from any thread, now or later
// (a sidecar settles when its remote client answers). Until then the delivery counts against
// max_inflight and holds back its key in ordered mode. Dropped unsettled, it is retried.
class Settlement {
 public:
  Settlement(Settlement&&) noexcept;
  Settlement& operator=(Settlement&&) noexcept;
  ~Settlement();

  // The message handed out with this settlement stays valid until Settle is called.
  void Settle(Verdict verdict);
  // Settles each as Settle would, in order. The acknowledgements among them reach their
  // subscription together (one call to the backend and one lock for a run of them): for a
  // thread that settles many at once, such as the sidecar with a client's batch of Settles.
  static void SettleAll(std::span<std::pair<Settlement, Verdict>> settled);
  explicit operator bool() const { return pending_ != nullptr; }

 private:
  friend class SubscriptionCore;
  Settlement(std::shared_ptr<SubscriptionCore> subscription,
             std::unique_ptr<PendingDelivery> pending);

  std::shared_ptr<SubscriptionCore> subscription_;
  std::unique_ptr<PendingDelivery> pending_;
};

// What a subscription calls for each delivery. Must not block for long: it runs on the
// subscription's handler threads; a handler that waits on something remote settles later.
using AsyncHandler = std::function<void(const Message& message, Settlement settlement)>;

// The user's synchronous handler as an AsyncHandler: its result (or exception) settles at once.
AsyncHandler SettleOnReturn(MessageHandler handler);

// What SettleOnReturn wraps the handler in. A subscription recognises it and calls the handler
// directly, without a Settlement per message.
struct SettlingHandler {
  MessageHandler handler;
  // The handler's result, or its exception, as a verdict.
  Verdict Call(const Message& message) const;
  void operator()(const Message& message, Settlement settlement) const;
};

struct SubscriptionSettings {
  int threads = 4;
  int max_attempts = 16;
  std::chrono::milliseconds retry_backoff{100};
  std::chrono::milliseconds retry_backoff_max{30000};
  int max_inflight = 2000;
  bool ordered = false;
  std::chrono::milliseconds close_timeout{10000};

  friend bool operator==(const SubscriptionSettings&, const SubscriptionSettings&) = default;
};

// What a subscription knows of one partition of its topic.
struct PartitionActivity {
  uint64_t epoch = 0;
  int busy = 0;  // handlers running or dead-letter sends in flight
};

struct PendingDelivery {
  DeliveryPtr delivery = std::make_unique<Delivery>();  // never null
  int attempt = 1;
  uint64_t epoch = 0;  // the partition's epoch when delivered; stale once revoked
  // The delivery's partition in the subscription's table (entries are never removed), so
  // the handler path does not look it up by number.
  PartitionActivity* partition = nullptr;
  std::string last_error;  // why the last attempt failed, for the dead-letter record
};

class SubscriptionCore : public DeliverySink,
                         public std::enable_shared_from_this<SubscriptionCore> {
 public:
  // `owner`: the subscription this core serves (for Running's callers to recognise their own
  // handlers). The core is never destroyed on one of its own handler threads (a handler may
  // drop the last reference to it): see DeleteOwnerOfPool.
  static std::shared_ptr<SubscriptionCore> Create(std::shared_ptr<Engine> engine,
                                                  const RoutedSubscription* owner,
                                                  std::string topic, std::string group,
                                                  std::string cluster, BackendPtr backend,
                                                  AsyncHandler handler, TagFilter filter,
                                                  SubscriptionSettings settings);
  ~SubscriptionCore() override;

  // The subscription whose handler runs on this thread (the handler, or anything it calls),
  // or null.
  static const SubscriptionCore* Running();

  // Subscribes through the backend; deliveries start flowing.
  Status Start(const SubscriptionSpec& spec);
  // Stops the backend consumer, lets the running handlers finish (for close_timeout at most),
  // commits what they acknowledged and hands the rest back to the cluster. Deliveries not
  // started yet are not started. A later call waits for a close under way and returns its
  // status. Called from a handler (one of its own, or any other) or a send callback
  // (UserCodeMark), it cannot wait for the handlers: it returns at once, and the close goes
  // on on a thread of its own, the handler's verdict included.
  Status Close();

  const RoutedSubscription* owner() const { return owner_; }
  const std::string& topic() const { return topic_; }
  const std::string& group() const { return group_; }
  const std::string& cluster() const { return cluster_; }
  const Backend* backend() const { return backend_.get(); }

  // DeliverySink
  void Deliver(std::vector<Delivery> batch) override;
  void DeliverSwapping(std::span<DeliveryPtr> batch) override;
  bool WaitForCapacity(Deadline deadline) override;
  void Revoke(const std::vector<int32_t>& partitions) override;

 private:
  friend class Settlement;
  using Pending = PendingDelivery;

  SubscriptionCore(std::shared_ptr<Engine> engine, const RoutedSubscription* owner,
                   std::string topic, std::string group, std::string cluster, BackendPtr backend,
                   AsyncHandler handler, TagFilter filter, SubscriptionSettings settings);
  // Close, once this thread has claimed it.
  Status CloseClaimed();
  using PendingPtr = std::unique_ptr<Pending>;

  // The worker (Work) running on this thread. A worker takes a few ready deliveries at a time
  // while its handlers are quick; those its handlers acknowledge on this thread wait here, and
  // the worker releases them once it ran what it took, under the lock it takes for its next
  // deliveries anyway: one lock per few messages instead of two per message.
  struct WorkerSlot {
    SubscriptionCore* core = nullptr;
    std::vector<PendingPtr> acked;
  };
  static thread_local WorkerSlot* current_worker_;

  // What releasing a delivery's slot leaves to do once the lock is released.
  struct Released {
    PendingPtr next;  // ordered mode: its key's next delivery, now ready to run
    bool wake_backend = false;
    PendingPtr discarded;         // not kept for reuse: freed once the lock is released
    bool notify_changed = false;  // someone waits on changed_ (Revoke, Close)
  };

  // Deliver and DeliverSwapping: takes `count` deliveries, where `at(i)` is the i-th and
  // `take(i, record)` moves it into a record (a spare one when there is one).
  template <typename At, typename Take>
  void Accept(size_t count, At at, Take take);
  bool IsStaleLocked(const Pending& p) const;
  // Queues a delivery for the handler threads. A worker runs deliveries while any are ready,
  // so a steady stream costs no task and no wake-up per message.
  void Dispatch(PendingPtr p);
  // Counts the workers the ready queue needs beyond those running (they are started by
  // StartWorkers once the lock is released).
  int ClaimWorkersLocked();
  void StartWorkers(int count);
  void Work();
  // Runs the handler of a delivery whose partition Work marked busy.
  void Run(PendingPtr p);
  // Ends a delivery's attempt the way the handler decided.
  void Conclude(PendingPtr p, Verdict verdict);
  // `delay` negative: the exponential backoff of the delivery's attempt.
  void ScheduleRetry(PendingPtr p, std::chrono::milliseconds delay = std::chrono::milliseconds(-1));
  void DeadLetter(PendingPtr p);
  // The delivery was handled: acknowledge it and release its slot.
  void Acknowledge(PendingPtr p);
  // Acknowledge of each, with one call to the backend and one lock for all; empties `acked`.
  void AcknowledgeAll(std::vector<PendingPtr>& acked);
  // Acknowledges `acked` to the backend in one call, while they still count as busy (so
  // Revoke's wait covers the acknowledgements). `scratch`: reused for the call's list.
  void AckAllOf(const std::vector<PendingPtr>& acked, std::vector<const Delivery*>& scratch);
  // What releasing several acknowledged deliveries leaves to do once the lock is released.
  struct ReleasedAll {
    bool wake_backend = false;
    bool notify_changed = false;
    bool queued_next = false;  // a key's next delivery joined ready_: workers may be needed
  };
  // Releases each of `acked` (AckAllOf done) and empties it: their keys' next deliveries join
  // ready_, records not kept for reuse go to `discarded` (to be freed after the lock). Under
  // mutex_.
  ReleasedAll ReleaseAllLocked(std::vector<PendingPtr>& acked, std::vector<PendingPtr>& discarded);
  // The delivery is done (acknowledged, or dropped to be redelivered by the cluster): release
  // its slot and start its key's next delivery.
  void Finish(PendingPtr p);
  // Releases the slot of `p` and keeps `p` for a later delivery (see spare_).
  Released ReleaseLocked(PendingPtr p);
  void AfterRelease(Released released);
  void Ack(const Delivery& delivery);
  void AckAll(std::span<const Delivery* const> deliveries);
  // The backend consumer, once Start has it (null if the subscription stopped first).
  BackendConsumer* ReadyConsumer();
  bool OrderedKey(const Pending& p) const {
    return settings_.ordered && !p.delivery->message.key.empty();
  }

  const std::shared_ptr<Engine> engine_;
  const RoutedSubscription* const owner_;
  const std::string topic_;
  const std::string group_;
  const std::string cluster_;
  const BackendPtr backend_;
  const AsyncHandler handler_;
  // handler_'s synchronous handler when it is a SettlingHandler (the user's handler), else null.
  const SettlingHandler* const settling_handler_;
  const TagFilter filter_;
  const SubscriptionSettings settings_;
  ThreadPool pool_;

  // Where WaitForCapacity lets a full subscription's backend go on again.
  int LowWater() const { return settings_.max_inflight - (settings_.max_inflight + 3) / 4; }

  std::mutex mutex_;
  std::condition_variable changed_;
  // Threads waiting on changed_ (Revoke, Close): a released delivery notifies only then.
  int changed_waiters_ = 0;
  // Backend threads waiting in WaitForCapacity (woken only at the low-water mark, or on close).
  std::condition_variable capacity_;
  int capacity_waiters_ = 0;
  int inflight_ = 0;
  // Close was called. Written under mutex_; also read without it by the workers between
  // deliveries: a delivery they took but have not started is handed back instead.
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // Close has finished (close_status_ says how)
  Status close_status_;
  std::condition_variable close_finished_;
  bool stopped_ = false;  // the backend consumer is closed: nothing more runs
  std::unordered_map<int32_t, PartitionActivity> partitions_;
  // Ordered mode: keys with a delivery under way, and their later deliveries waiting in order.
  std::unordered_map<std::string, std::deque<PendingPtr>> key_chains_;
  // Deliveries waiting for their retry time, by ticket.
  std::unordered_map<uint64_t, PendingPtr> retrying_;
  uint64_t next_ticket_ = 0;
  // Deliveries ready for a handler, and the workers (pool tasks) running them.
  std::deque<PendingPtr> ready_;
  int workers_ = 0;
  // Records of finished deliveries, kept with the buffers of their strings: DeliverSwapping
  // swaps a new delivery into one and hands the backend the old buffers to decode into, so
  // the records and strings made on the backend's thread are reused there instead of being
  // freed on a handler thread (glibc's malloc makes that slow). At most max_inflight.
  std::vector<PendingPtr> spare_;
  std::unique_ptr<BackendProducer> dead_letters_;
  // Taken by Close (which closes it), after which nothing is dead-lettered.
  bool dead_letters_closed_ = false;
  // Dead-letter sends whose callback has not returned yet; Close waits for none to be left.
  int dead_letter_callbacks_ = 0;

  // Set once Start's backend Subscribe returned; acks wait for it.
  std::atomic<BackendConsumer*> consumer_ready_{nullptr};
  std::unique_ptr<BackendConsumer> consumer_;
};

}  // namespace msgsdk::core
