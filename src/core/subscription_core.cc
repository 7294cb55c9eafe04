#include "core/subscription_core.h"

#include <algorithm>
#include <exception>
#include <thread>
#include <utility>

#include "core/engine.h"
#include "core/migration_stamp.h"
#include "msgsdk/message.h"

namespace msgsdk::core {
namespace {

// Property names the SDK adds to a dead-lettered message.
constexpr char kDlqOriginTopic[] = "msgsdk.dlq.origin_topic";
constexpr char kDlqOriginPartition[] = "msgsdk.dlq.origin_partition";
constexpr char kDlqOriginOffset[] = "msgsdk.dlq.origin_offset";
constexpr char kDlqAttempts[] = "msgsdk.dlq.attempts";
constexpr char kDlqReason[] = "msgsdk.dlq.reason";
// A worker takes up to this many ready deliveries at once while its handlers are quick...
constexpr size_t kMaxWorkerBatch = 16;
// ...that is, while running what it took lasts less than this.
constexpr auto kQuickBatch = std::chrono::microseconds(200);

}  // namespace

Settlement::Settlement(std::shared_ptr<SubscriptionCore> subscription,
                       std::unique_ptr<PendingDelivery> pending)
    : subscription_(std::move(subscription)), pending_(std::move(pending)) {}

Settlement::Settlement(Settlement&&) noexcept = default;

Settlement& Settlement::operator=(Settlement&& other) noexcept {
  if (this != &other) {
    if (pending_) {
      Settle({.kind = Verdict::Kind::kRetry, .reason = "the delivery was abandoned unsettled"});
    }
    subscription_ = std::move(other.subscription_);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

Settlement::~Settlement() {
  if (pending_) {
    Settle({.kind = Verdict::Kind::kRetry, .reason = "the delivery was abandoned unsettled"});
  }
}

void Settlement::Settle(Verdict verdict) {
  if (!pending_) return;
  std::shared_ptr<SubscriptionCore> subscription = std::move(subscription_);
  subscription->Conclude(std::move(pending_), std::move(verdict));
}

void Settlement::SettleAll(std::span<std::pair<Settlement, Verdict>> settled) {
  std::shared_ptr<SubscriptionCore> subscription;  // the one `acked` belongs to
  std::vector<SubscriptionCore::PendingPtr> acked;
  const auto acknowledge = [&] {
    if (!acked.empty()) subscription->AcknowledgeAll(acked);
  };
  for (auto& [settlement, verdict] : settled) {
    if (!settlement.pending_) continue;
    if (verdict.kind != Verdict::Kind::kAck) {
      acknowledge();  // the earlier ones first: in order
      settlement.Settle(std::move(verdict));
      continue;
    }
    if (settlement.subscription_ != subscription) {
      acknowledge();
      subscription = std::move(settlement.subscription_);
    } else {
      settlement.subscription_.reset();
    }
    acked.push_back(std::move(settlement.pending_));
  }
  acknowledge();
}

Verdict SettlingHandler::Call(const Message& message) const {
  Verdict verdict{.kind = Verdict::Kind::kRetry};
  try {
    if (handler(message) == ConsumeResult::kSuccess) {
      verdict.kind = Verdict::Kind::kAck;
    } else {
      verdict.reason = "handler returned kRetryLater";
    }
  } catch (const std::exception& e) {
    verdict.reason = std::string("handler threw: ") + e.what();
  } catch (...) {
    verdict.reason = "handler threw a non-standard exception";
  }
  return verdict;
}

void SettlingHandler::operator()(const Message& message, Settlement settlement) const {
  settlement.Settle(Call(message));
}

AsyncHandler SettleOnReturn(MessageHandler handler) {
  return SettlingHandler{.handler = std::move(handler)};
}

std::shared_ptr<SubscriptionCore> SubscriptionCore::Create(std::shared_ptr<Engine> engine,
                                                           const RoutedSubscription* owner,
                                                           std::string topic, std::string group,
                                                           std::string cluster, BackendPtr backend,
                                                           AsyncHandler handler, TagFilter filter,
                                                           SubscriptionSettings settings) {
  return std::shared_ptr<SubscriptionCore>(
      new SubscriptionCore(std::move(engine), owner, std::move(topic), std::move(group),
                           std::move(cluster), std::move(backend), std::move(handler),
                           std::move(filter), settings),
      [](SubscriptionCore* core) { DeleteOwnerOfPool(core, core->pool_); });
}

SubscriptionCore::SubscriptionCore(std::shared_ptr<Engine> engine, const RoutedSubscription* owner,
                                   std::string topic, std::string group, std::string cluster,
                                   BackendPtr backend, AsyncHandler handler, TagFilter filter,
                                   SubscriptionSettings settings)
    : engine_(std::move(engine)),
      owner_(owner),
      topic_(std::move(topic)),
      group_(std::move(group)),
      cluster_(std::move(cluster)),
      backend_(std::move(backend)),
      handler_(std::move(handler)),
      settling_handler_(handler_.target<SettlingHandler>()),
      filter_(std::move(filter)),
      settings_(settings),
      pool_("msgsdk-handler", settings.threads) {}

SubscriptionCore::~SubscriptionCore() { Close().IgnoreError(); }

Status SubscriptionCore::Start(const SubscriptionSpec& spec) {
  auto consumer = backend_->Subscribe(spec, *this);
  if (!consumer.ok()) {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      stopped_ = closed_ = true;
    }
    // A backend that delivered before its Subscribe failed has a handler waiting to ack.
    changed_.notify_all();
    return consumer.status();
  }
  consumer_ = std::move(consumer).value();
  {
    // Under the lock: else an ack that checked between this store and its wait would miss
    // the wake-up and wait until the next change.
    std::lock_guard lock(mutex_);
    consumer_ready_.store(consumer_.get(), std::memory_order_release);
  }
  changed_.notify_all();
  return OkStatus();
}

BackendConsumer* SubscriptionCore::ReadyConsumer() {
  BackendConsumer* consumer = consumer_ready_.load(std::memory_order_acquire);
  if (consumer == nullptr) {
    // A backend may deliver before Subscribe has returned to Start.
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] {
      consumer = consumer_ready_.load(std::memory_order_acquire);
      return consumer != nullptr || stopped_;
    });
  }
  return consumer;
}

void SubscriptionCore::Ack(const Delivery& delivery) {
  if (BackendConsumer* consumer = ReadyConsumer()) consumer->Ack(delivery);
}

void SubscriptionCore::AckAll(std::span<const Delivery* const> deliveries) {
  if (BackendConsumer* consumer = ReadyConsumer()) consumer->AckAll(deliveries);
}

thread_local SubscriptionCore::WorkerSlot* SubscriptionCore::current_worker_ = nullptr;

const SubscriptionCore* SubscriptionCore::Running() {
  return current_worker_ != nullptr ? current_worker_->core : nullptr;
}

bool SubscriptionCore::IsStaleLocked(const Pending& p) const {
  return stopped_ || p.partition == nullptr || p.partition->epoch != p.epoch;
}

void SubscriptionCore::Deliver(std::vector<Delivery> batch) {
  // Moved into the records' own deliveries (a spare record keeps its Delivery object).
  Accept(
      batch.size(), [&](size_t i) -> Delivery& { return batch[i]; },
      [&](size_t i, Pending& p) { *p.delivery = std::move(batch[i]); });
}

void SubscriptionCore::DeliverSwapping(std::span<DeliveryPtr> batch) {
  // The backend's record and the spare one change places: the backend decodes its next
  // message into the spare's buffers.
  Accept(
      batch.size(), [&](size_t i) -> Delivery& { return *batch[i]; },
      [&](size_t i, Pending& p) { p.delivery.swap(batch[i]); });
}

template <typename At, typename Take>
void SubscriptionCore::Accept(size_t count, At at, Take take) {
  // Records for the batch: spare ones taken under a short hold of the lock, filled without
  // it (the handler threads take and finish deliveries meanwhile), then queued under one more.
  std::vector<PendingPtr> taken;
  taken.reserve(count);
  {
    std::lock_guard lock(mutex_);
    const size_t reused = std::min(spare_.size(), count);
    for (size_t i = 0; i < reused; ++i) {
      taken.push_back(std::move(spare_.back()));
      spare_.pop_back();
    }
  }
  std::vector<size_t> filtered_out;
  std::vector<PendingPtr> filled;
  filled.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Message& message = at(i).message;
    // A shadow copy of a migrating topic: its primary copy is handled on the other cluster.
    if (!filter_.Matches(message.tag) || IsShadowCopy(message)) {
      filtered_out.push_back(i);
      continue;
    }
    PendingPtr p;
    if (taken.empty()) {
      p = std::make_unique<Pending>();
    } else {
      p = std::move(taken.back());
      taken.pop_back();
    }
    take(i, *p);
    Message& m = p->delivery->message;
    // A spare record usually holds the cluster's name already.
    if (m.cluster != cluster_) m.cluster = cluster_;
    p->attempt = std::max(0, m.delivery_attempt) + 1;
    p->last_error.clear();
    filled.push_back(std::move(p));
  }
  int new_workers = 0;
  {
    // One lock for the whole batch: the deliveries go straight to the ready queue.
    std::lock_guard lock(mutex_);
    // A run of one partition looks its state up once.
    int32_t partition = -1;
    PartitionActivity* state = nullptr;
    for (PendingPtr& p : filled) {
      const Message& m = p->delivery->message;
      if (state == nullptr || m.partition != partition) {
        partition = m.partition;
        state = &partitions_[partition];
      }
      p->epoch = state->epoch;
      p->partition = state;
      ++inflight_;
      if (OrderedKey(*p)) {
        auto [chain, inserted] = key_chains_.try_emplace(m.key);
        if (!inserted) {
          chain->second.push_back(std::move(p));
          continue;
        }
      }
      ready_.push_back(std::move(p));
    }
    // Spare records the batch did not need (it had filtered deliveries) go back.
    for (PendingPtr& p : taken) spare_.push_back(std::move(p));
    new_workers = ClaimWorkersLocked();
  }
  // Filtered deliveries stay in the batch: the backend reuses them like the others.
  for (size_t i : filtered_out) Ack(at(i));
  StartWorkers(new_workers);
}

bool SubscriptionCore::WaitForCapacity(Deadline deadline) {
  std::unique_lock lock(mutex_);
  if (!closing_ && inflight_ >= settings_.max_inflight) {
    // Full: wait until a quarter has drained, so the backend is woken once per many finished
    // deliveries rather than once per delivery.
    ++capacity_waiters_;
    capacity_.wait_until(lock, deadline, [this] { return closing_ || inflight_ <= LowWater(); });
    --capacity_waiters_;
  }
  return !closing_ && inflight_ < settings_.max_inflight;
}

void SubscriptionCore::Revoke(const std::vector<int32_t>& partitions) {
  std::vector<PendingPtr> dropped;
  std::unique_lock lock(mutex_);
  for (int32_t partition : partitions) ++partitions_[partition].epoch;
  // Deliveries waiting for a retry or behind their key are dropped now, so their slots free up
  // at once; queued ones are dropped when a pool thread reaches them. A key lives in one
  // partition, so a stale retrying head means its whole chain is stale.
  for (auto it = retrying_.begin(); it != retrying_.end();) {
    if (!IsStaleLocked(*it->second)) {
      ++it;
      continue;
    }
    if (OrderedKey(*it->second)) {
      auto chain = key_chains_.find(it->second->delivery->message.key);
      if (chain != key_chains_.end()) {
        for (auto& waiting : chain->second) dropped.push_back(std::move(waiting));
        key_chains_.erase(chain);
      }
    }
    dropped.push_back(std::move(it->second));
    it = retrying_.erase(it);
  }
  // Chains whose head is queued or running keep the head (it finishes or is dropped itself).
  for (auto& [key, chain] : key_chains_) {
    for (auto it = chain.begin(); it != chain.end();) {
      if (IsStaleLocked(**it)) {
        dropped.push_back(std::move(*it));
        it = chain.erase(it);
      } else {
        ++it;
      }
    }
  }
  inflight_ -= static_cast<int>(dropped.size());
  changed_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + settings_.close_timeout;
  ++changed_waiters_;
  changed_.wait_until(lock, deadline, [&] {
    return std::all_of(partitions.begin(), partitions.end(),
                       [&](int32_t partition) { return partitions_[partition].busy == 0; });
  });
  --changed_waiters_;
}

void SubscriptionCore::Dispatch(PendingPtr p) {
  int new_workers;
  {
    std::lock_guard lock(mutex_);
    ready_.push_back(std::move(p));
    new_workers = ClaimWorkersLocked();
  }
  StartWorkers(new_workers);
}

int SubscriptionCore::ClaimWorkersLocked() {
  // One worker per ready delivery, up to the subscription's threads; running workers go on
  // to the next ready delivery by themselves.
  const int wanted = std::min(settings_.threads, workers_ + static_cast<int>(ready_.size()));
  const int claimed = std::max(0, wanted - workers_);
  workers_ += claimed;
  return claimed;
}

void SubscriptionCore::StartWorkers(int count) {
  if (count == 0) return;
  auto self = shared_from_this();
  int failed = 0;
  for (int i = 0; i < count; ++i) {
    if (!pool_.Submit([self] { self->Work(); })) ++failed;
  }
  if (failed == 0) return;
  // The pool is shut down only after the consumer stopped: what is ready is dropped (the
  // cluster delivers it again).
  std::deque<PendingPtr> dropped;
  {
    std::lock_guard lock(mutex_);
    workers_ -= failed;
    if (workers_ == 0) dropped.swap(ready_);
  }
  for (auto& pending : dropped) Finish(std::move(pending));
}

void SubscriptionCore::Work() {
  WorkerSlot slot{.core = this};
  WorkerSlot* const outer = std::exchange(current_worker_, &slot);
  const UserCodeMark user_code(UserCode::kHandler);
  std::vector<PendingPtr> batch;      // taken, to run
  std::vector<PendingPtr> stale;      // taken, revoked while queued
  std::vector<PendingPtr> discarded;  // released, not kept for reuse
  std::vector<const Delivery*> to_ack;
  size_t batch_limit = 1;
  while (true) {
    AckAllOf(slot.acked, to_ack);
    bool took = false;
    ReleasedAll released;
    int new_workers = 0;
    {
      // Releasing what the last handlers acknowledged, then taking deliveries and marking
      // their partitions busy, is one step: a Revoke either sees a partition busy (and waits
      // for the handlers) or finds its deliveries stale here.
      std::lock_guard lock(mutex_);
      released = ReleaseAllLocked(slot.acked, discarded);
      // At most a fair share of what is ready, so the other workers have theirs.
      const size_t share =
          std::max<size_t>(1, ready_.size() / static_cast<size_t>(settings_.threads));
      const size_t count = std::min({batch_limit, share, ready_.size()});
      for (size_t i = 0; i < count; ++i) {
        PendingPtr p = std::move(ready_.front());
        ready_.pop_front();
        if (IsStaleLocked(*p)) {
          stale.push_back(std::move(p));
        } else {
          ++p->partition->busy;
          batch.push_back(std::move(p));
        }
      }
      took = count > 0;
      if (!took) {
        --workers_;
      } else if (released.queued_next) {
        new_workers = ClaimWorkersLocked();
      }
    }
    if (released.notify_changed) changed_.notify_all();
    if (released.wake_backend) capacity_.notify_all();
    discarded.clear();
    StartWorkers(new_workers);
    if (!took) break;
    // Revoked while queued: the partition's next owner delivers them again.
    for (PendingPtr& p : stale) Finish(std::move(p));
    stale.clear();
    if (batch.empty()) continue;
    const auto start = std::chrono::steady_clock::now();
    for (PendingPtr& p : batch) {
      if (closing_.load(std::memory_order_relaxed)) {
        // Closing: handed back unstarted (the cluster delivers it again), so the close waits
        // for the handler running now only.
        Conclude(std::move(p), {.kind = Verdict::Kind::kRelease});
        continue;
      }
      Run(std::move(p));
    }
    batch.clear();
    // Quick handlers: take more at a time (fewer locks per message). Slow ones: one at a
    // time, so no delivery waits behind others taken with it, and a Revoke waits for one
    // handler per worker only.
    batch_limit = std::chrono::steady_clock::now() - start < kQuickBatch
                      ? std::min(batch_limit * 2, kMaxWorkerBatch)
                      : 1;
  }
  current_worker_ = outer;
}

void SubscriptionCore::Run(PendingPtr p) {
  p->delivery->message.delivery_attempt = p->attempt;
  if (settling_handler_ != nullptr) {
    // The user's synchronous handler: settled here, with no Settlement to build and move.
    Verdict verdict = settling_handler_->Call(p->delivery->message);
    if (verdict.kind == Verdict::Kind::kAck) {
      Acknowledge(std::move(p));
    } else {
      Conclude(std::move(p), std::move(verdict));
    }
    return;
  }
  // Taken before `p` moves into the settlement, which keeps the message alive until settled.
  const Message& message = p->delivery->message;
  try {
    handler_(message, Settlement(shared_from_this(), std::move(p)));
  } catch (...) {
    // An AsyncHandler that throws has dropped its settlement: the delivery is retried.
  }
}

void SubscriptionCore::Conclude(PendingPtr p, Verdict verdict) {
  if (verdict.kind == Verdict::Kind::kRelease) {
    {
      std::lock_guard lock(mutex_);
      --p->partition->busy;
    }
    Finish(std::move(p));
    return;
  }
  if (verdict.kind != Verdict::Kind::kAck) p->last_error = std::move(verdict.reason);
  if (verdict.kind == Verdict::Kind::kDeadLetter ||
      (verdict.kind == Verdict::Kind::kRetry && p->attempt >= settings_.max_attempts)) {
    DeadLetter(std::move(p));  // stays busy until the dead letter is stored
    return;
  }
  if (verdict.kind == Verdict::Kind::kRetry) {
    {
      std::lock_guard lock(mutex_);
      --p->partition->busy;
    }
    ScheduleRetry(std::move(p), verdict.retry_delay);
    return;
  }
  Acknowledge(std::move(p));
}

void SubscriptionCore::Acknowledge(PendingPtr p) {
  WorkerSlot* worker = current_worker_;
  if (worker != nullptr && worker->core == this) {
    // Settled by its handler on a worker of this subscription (a synchronous handler settles
    // as it returns): the worker acknowledges and releases it when its handlers of the moment
    // have run, with one call to the backend and the lock it takes for its next deliveries.
    worker->acked.push_back(std::move(p));
    return;
  }
  // Acknowledge while still counted busy, so Revoke's wait covers the ack; then the partition
  // is no longer busy and the slot is free, under one lock.
  Ack(*p->delivery);
  Released released;
  {
    std::lock_guard lock(mutex_);
    --p->partition->busy;
    released = ReleaseLocked(std::move(p));
  }
  AfterRelease(std::move(released));
}

void SubscriptionCore::AcknowledgeAll(std::vector<PendingPtr>& acked) {
  if (acked.empty()) return;
  WorkerSlot* worker = current_worker_;
  if (worker != nullptr && worker->core == this) {
    for (PendingPtr& p : acked) worker->acked.push_back(std::move(p));
    acked.clear();
    return;
  }
  std::vector<const Delivery*> deliveries;
  AckAllOf(acked, deliveries);
  std::vector<PendingPtr> discarded;  // freed once the lock is released
  ReleasedAll released;
  int new_workers = 0;
  {
    std::lock_guard lock(mutex_);
    released = ReleaseAllLocked(acked, discarded);
    if (released.queued_next) new_workers = ClaimWorkersLocked();
  }
  if (released.notify_changed) changed_.notify_all();
  if (released.wake_backend) capacity_.notify_all();
  discarded.clear();
  StartWorkers(new_workers);
}

void SubscriptionCore::AckAllOf(const std::vector<PendingPtr>& acked,
                                std::vector<const Delivery*>& scratch) {
  if (acked.empty()) return;
  scratch.clear();
  for (const PendingPtr& p : acked) scratch.push_back(p->delivery.get());
  AckAll(scratch);
}

SubscriptionCore::ReleasedAll SubscriptionCore::ReleaseAllLocked(
    std::vector<PendingPtr>& acked, std::vector<PendingPtr>& discarded) {
  ReleasedAll all;
  for (PendingPtr& p : acked) {
    --p->partition->busy;
    Released released = ReleaseLocked(std::move(p));
    all.wake_backend |= released.wake_backend;
    all.notify_changed |= released.notify_changed;
    if (released.discarded) discarded.push_back(std::move(released.discarded));
    if (released.next) {
      // Its key's next delivery: queued here rather than under a lock of its own.
      ready_.push_back(std::move(released.next));
      all.queued_next = true;
    }
  }
  acked.clear();
  return all;
}

void SubscriptionCore::ScheduleRetry(PendingPtr p, std::chrono::milliseconds delay) {
  if (delay.count() < 0) {
    const int shift = std::min(p->attempt - 1, 30);
    delay = settings_.retry_backoff * (1LL << shift);
    if (delay > settings_.retry_backoff_max || delay.count() < 0) {
      delay = settings_.retry_backoff_max;
    }
  }
  ++p->attempt;
  uint64_t ticket;
  {
    std::lock_guard lock(mutex_);
    if (IsStaleLocked(*p)) {
      // fall through to drop below
      ticket = 0;
    } else {
      ticket = ++next_ticket_;
      retrying_.emplace(ticket, std::move(p));
    }
  }
  if (ticket == 0) {
    Finish(std::move(p));
    return;
  }
  std::weak_ptr<SubscriptionCore> weak = shared_from_this();
  const bool scheduled =
      engine_->timers().Schedule(std::chrono::steady_clock::now() + delay, [weak, ticket] {
        auto self = weak.lock();
        if (!self) return;
        PendingPtr due;
        {
          std::lock_guard lock(self->mutex_);
          auto it = self->retrying_.find(ticket);
          if (it == self->retrying_.end()) return;  // dropped by Revoke or Close
          due = std::move(it->second);
          self->retrying_.erase(it);
        }
        self->Dispatch(std::move(due));
      });
  if (!scheduled) {
    PendingPtr dropped;
    {
      std::lock_guard lock(mutex_);
      auto it = retrying_.find(ticket);
      if (it == retrying_.end()) return;
      dropped = std::move(it->second);
      retrying_.erase(it);
    }
    Finish(std::move(dropped));
  }
}

void SubscriptionCore::DeadLetter(PendingPtr p) {
  const Message& original = p->delivery->message;
  Message letter;
  letter.topic = DeadLetterTopic(group_);
  letter.key = original.key;
  letter.tag = original.tag;
  letter.properties = original.properties;
  letter.properties[kDlqOriginTopic] = original.topic;
  letter.properties[kDlqOriginPartition] = std::to_string(original.partition);
  letter.properties[kDlqOriginOffset] = std::to_string(original.offset);
  letter.properties[kDlqAttempts] = std::to_string(p->attempt);
  letter.properties[kDlqReason] = p->last_error;
  letter.body = original.body;
  letter.message_id = original.message_id;
  letter.born_at = original.born_at;

  BackendProducer* producer = nullptr;
  Status status;
  {
    std::lock_guard lock(mutex_);
    ++dead_letter_callbacks_;
    if (dead_letters_closed_) {
      // Settled after Close gave up waiting for it: its dead-letter producer is gone (a new
      // one would never be closed). Left unacknowledged, the cluster delivers it again.
      status = FailedPreconditionError("dead-lettering on topic '" + letter.topic +
                                       "': the subscription is closed");
    } else if (!dead_letters_) {
      auto created = backend_->CreateProducer(letter.topic);
      if (created.ok()) {
        dead_letters_ = std::move(created).value();
      } else {
        status = created.status();
      }
    }
    producer = dead_letters_.get();
  }
  // Holds `this`, not a reference: it runs on a backend thread, where dropping the last
  // reference would tear down that backend from its own thread. Close waits for it to
  // return (dead_letter_callbacks_; the dead-letter producer completes every send when it
  // closes).
  auto on_stored = [self = this, holder = std::make_shared<PendingPtr>(std::move(p))](
                       Result<StoredPosition> stored) {
    PendingPtr pending = std::move(*holder);
    if (stored.ok()) {
      self->Ack(*pending->delivery);
      {
        std::lock_guard lock(self->mutex_);
        --pending->partition->busy;
      }
      self->Finish(std::move(pending));
    } else {
      // The dead-letter topic refused it: never drop the message; try again after the
      // longest backoff (it stays unacknowledged, so a crash redelivers it too).
      pending->last_error += "; dead-letter send failed: " + stored.status().ToString();
      --pending->attempt;
      {
        std::lock_guard lock(self->mutex_);
        --pending->partition->busy;
      }
      self->ScheduleRetry(std::move(pending));
    }
    // The last touch of the core: under the lock, since once it is let go Close may return
    // and the core be freed.
    std::lock_guard lock(self->mutex_);
    if (--self->dead_letter_callbacks_ == 0) self->changed_.notify_all();
  };
  if (producer == nullptr) {
    on_stored(status);
    return;
  }
  producer->Send(std::move(letter), std::move(on_stored));
}

void SubscriptionCore::Finish(PendingPtr p) {
  Released released;
  {
    std::lock_guard lock(mutex_);
    released = ReleaseLocked(std::move(p));
  }
  AfterRelease(std::move(released));
}

SubscriptionCore::Released SubscriptionCore::ReleaseLocked(PendingPtr p) {
  Released released;
  --inflight_;
  released.wake_backend = capacity_waiters_ > 0 && inflight_ <= LowWater();
  released.notify_changed = changed_waiters_ > 0;
  if (OrderedKey(*p)) {
    auto chain = key_chains_.find(p->delivery->message.key);
    if (chain != key_chains_.end()) {
      if (chain->second.empty()) {
        key_chains_.erase(chain);
      } else {
        released.next = std::move(chain->second.front());
        chain->second.pop_front();
      }
    }
  }
  if (spare_.size() < static_cast<size_t>(settings_.max_inflight) && !stopped_ &&
      WorthReusing(*p->delivery)) {
    spare_.push_back(std::move(p));
  } else {
    released.discarded = std::move(p);
  }
  return released;
}

void SubscriptionCore::AfterRelease(Released released) {
  if (released.notify_changed) changed_.notify_all();
  if (released.wake_backend) capacity_.notify_all();
  if (released.next) Dispatch(std::move(released.next));
}

Status SubscriptionCore::Close() {
  {
    std::unique_lock lock(mutex_);
    if (InUserCode()) {
      // A handler, its own or another subscription's, or a send callback: the close waits
      // for the handlers, this one among them, or one that may be waiting for this one
      // (UserCodeMark).
      if (!closing_) {
        closing_ = true;
        std::thread([self = shared_from_this()] { self->CloseClaimed().IgnoreError(); }).detach();
      }
      return OkStatus();
    }
    if (closing_) {
      close_finished_.wait(lock, [this] { return closed_; });
      return close_status_;
    }
    closing_ = true;
  }
  return CloseClaimed();
}

Status SubscriptionCore::CloseClaimed() {
  changed_.notify_all();
  capacity_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + settings_.close_timeout;
  Status status;
  if (consumer_) status = consumer_->Close(deadline);
  std::vector<PendingPtr> dropped;
  {
    std::unique_lock lock(mutex_);
    // Whatever the backend did not revoke is abandoned now: it was not acknowledged, so the
    // cluster delivers it again.
    stopped_ = true;
    for (auto& [partition, state] : partitions_) ++state.epoch;
    for (auto& [ticket, p] : retrying_) dropped.push_back(std::move(p));
    retrying_.clear();
    for (auto& [key, chain] : key_chains_) {
      for (auto& p : chain) dropped.push_back(std::move(p));
    }
    key_chains_.clear();
    inflight_ -= static_cast<int>(dropped.size());
    ++changed_waiters_;
    changed_.wait_until(lock, deadline, [this] {
      return std::all_of(partitions_.begin(), partitions_.end(),
                         [](const auto& entry) { return entry.second.busy == 0; });
    });
    --changed_waiters_;
  }
  changed_.notify_all();
  pool_.Shutdown();
  std::unique_ptr<BackendProducer> dead_letters;
  std::vector<PendingPtr> spare;
  {
    std::lock_guard lock(mutex_);
    dead_letters = std::move(dead_letters_);
    dead_letters_closed_ = true;
    spare.swap(spare_);
  }
  if (dead_letters) dead_letters->Close(deadline).IgnoreError();
  {
    std::unique_lock lock(mutex_);
    // The producer's Close completed every dead-letter send, but their callbacks may still
    // be running on a backend thread, and they use this core until they return.
    changed_.wait(lock, [this] { return dead_letter_callbacks_ == 0; });
    closed_ = true;
    close_status_ = status;
  }
  close_finished_.notify_all();
  return status;
}

}  // namespace msgsdk::core
