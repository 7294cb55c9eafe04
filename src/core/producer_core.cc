#include "core/producer_core.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/async_send.h"
#include "core/engine.h"
#include "core/executor.h"
#include "core/message_id.h"
#include "core/migration_stamp.h"

namespace msgsdk::core {

ProducerCore::ProducerCore(std::shared_ptr<Engine> engine, std::string topic, ProducerRoute route,
                           std::chrono::milliseconds send_timeout)
    : engine_(std::move(engine)),
      topic_(std::move(topic)),
      fixed_send_timeout_(send_timeout),
      send_timeout_ms_(send_timeout.count() > 0 ? send_timeout.count()
                                                : engine_->settings().send_timeout.count()),
      max_message_bytes_(engine_->settings().max_message_bytes) {
  routes_.push_back(std::make_unique<ProducerRoute>(std::move(route)));
  route_.store(routes_.back().get());
}

ProducerCore::~ProducerCore() { Close().IgnoreError(); }

RouteIdentity ProducerCore::identity() const {
  const ProducerRoute& route = *route_.load();
  return {.primary = route.backend.get(),
          .shadow = route.shadow ? route.shadow->backend.get() : nullptr,
          .generation = route.generation};
}

std::vector<const Backend*> ProducerCore::backends() const {
  const ProducerRoute& route = *route_.load();
  std::vector<const Backend*> backends = {route.backend.get()};
  if (route.shadow) backends.push_back(route.shadow->backend.get());
  return backends;
}

std::shared_ptr<ShadowStats> ProducerCore::shadow_stats() const {
  return route_.load()->shadow_stats;
}

void ShadowStats::Record(const Result<StoredPosition>& stored) {
  if (stored.ok()) {
    sent.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  failed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex);
  last_error = stored.status().ToString();
}

void ProducerCore::PrepareCopies(Message& message, ProducerRoute& route) {
  if (!route.shadow) return;
  // The shadow copy is counted too, so the route stays open until it is written. The count
  // the caller holds keeps the route from finishing its drain meanwhile.
  route.counter->in_flight.EnterHeld();
  StampCopy(message, kRolePrimary, route.generation);
}

void ProducerCore::SendShadow(Message& message, ProducerRoute& route) {
  if (!route.shadow) return;
  message.properties[kMigrationRole] = kRoleShadow;
  // A shadow copy never fails its send: what it did is counted for the migration's report.
  route.shadow->producer->Send(message, [counter = route.counter, stats = route.shadow_stats](
                                            Result<StoredPosition> stored) {
    stats->Record(stored);
    counter->EndSend();
  });
}

Status ProducerCore::Prepare(Message& message) const {
  if (message.body.empty()) {
    return InvalidArgumentError("message to topic '" + topic_ + "' has an empty body");
  }
  size_t size = message.body.size() + message.key.size() + message.tag.size();
  for (const auto& [name, value] : message.properties) size += name.size() + value.size();
  const int64_t limit = max_message_bytes_.load(std::memory_order_relaxed);
  if (static_cast<int64_t>(size) > limit) {
    return InvalidArgumentError("message to topic '" + topic_ + "' is " + std::to_string(size) +
                                " bytes (body, key, tag and properties); the limit is " +
                                std::to_string(limit) + " (client.max_message_bytes)");
  }
  for (const char c : message.tag) {
    if (c == ' ' || c == '\t' || c == '|' || c == '*') {
      return InvalidArgumentError("message to topic '" + topic_ + "': tag '" + message.tag +
                                  "' must be one word without spaces, '|' or '*'");
    }
  }
  message.topic = topic_;
  message.born_at = std::chrono::system_clock::now();
  WriteMessageId(message.born_at, message.message_id);
  return OkStatus();
}

Status ProducerCore::CheckCapabilities(const Message& message, const ProducerRoute& route) {
  if (message.deliver_at && !route.capabilities.timer_messages) {
    return UnsupportedError("message to topic '" + route.counter->topic +
                            "' has deliver_at, but cluster '" + route.counter->cluster +
                            "' (backend " + route.capabilities.backend +
                            ") does not support timer messages");
  }
  return OkStatus();
}

ProducerRoute* ProducerCore::BeginSends(int64_t count) {
  while (true) {
    ProducerRoute* route = route_.load();
    if (route->counter->in_flight.Enter(count)) return route;
    // Closed: the producer was closed, or a rebind replaced this route (its successor was
    // published before it was closed, so the next load finds it). Enter counted itself out
    // again; a Close waiting for the count may have seen it in.
    route->counter->WakeClose();
    if (closed_.load()) return nullptr;
  }
}

void ProducerCore::AbandonSends(ProducerRoute& route, int64_t count) {
  route.counter->EndSend(count);
}

Status ProducerCore::ClosedError() const {
  return FailedPreconditionError("producer of topic '" + topic_ + "' is closed");
}

void ProducerCore::ApplySettings(std::chrono::milliseconds send_timeout,
                                 int64_t max_message_bytes) {
  if (fixed_send_timeout_.count() == 0) send_timeout_ms_.store(send_timeout.count());
  max_message_bytes_.store(max_message_bytes);
}

Status ProducerCore::Drain(ProducerRoute& route) const {
  SendCounter& counter = *route.counter;
  counter.in_flight.Close();
  const auto deadline = std::chrono::steady_clock::now() + send_timeout();
  // A callback closing a producer (its own, or any other of any client) must not wait for
  // callbacks: itself among them, or one that may be closing this callback's producer.
  const bool in_send_callback = InSendCallback();
  auto drained = [&counter] { return counter.in_flight.InFlight() == 0; };
  if (!in_send_callback) {
    std::unique_lock lock(counter.mutex);
    counter.drained.wait_until(lock, deadline, drained);
  }
  // The backend completes or fails whatever is still pending by the deadline.
  Status status = route.producer->Close(deadline);
  if (route.shadow) {
    Status shadow = route.shadow->producer->Close(deadline);
    if (status.ok() && !shadow.ok()) status = std::move(shadow);
  }
  if (!in_send_callback) {
    std::unique_lock lock(counter.mutex);
    counter.drained.wait(lock, drained);
  }
  return status;
}

void ProducerCore::Rebind(ProducerRoute route) {
  std::lock_guard lock(rebind_mutex_);
  routes_.push_back(std::make_unique<ProducerRoute>(std::move(route)));
  ProducerRoute* fresh = routes_.back().get();
  if (closed_.load()) {
    Drain(*fresh).IgnoreError();
    return;
  }
  ProducerRoute* old = route_.exchange(fresh);
  // Senders that counted themselves in on the old route before it closed finish there; the
  // rest find it closed and move on to `fresh`.
  Status status = Drain(*old);
  if (!status.ok()) {
    std::fprintf(stderr, "msgsdk: closing the previous route of topic '%s' (cluster '%s'): %s\n",
                 topic_.c_str(), old->counter->cluster.c_str(), status.ToString().c_str());
  }
}

namespace {

// The caller's view of a backend's answer: a receipt, or the failure with where it happened.
Result<SendReceipt> ToReceipt(Result<StoredPosition> stored, std::string message_id,
                              const SendCounter& producer) {
  if (!stored.ok()) {
    return stored.status().WithContext("send to topic '" + producer.topic + "' on cluster '" +
                                       producer.cluster + "'");
  }
  return SendReceipt{.message_id = std::move(message_id),
                     .cluster = producer.cluster,
                     .partition = stored->partition,
                     .offset = stored->offset};
}

}  // namespace

namespace {
// The completions held back by the outermost SendDoneBatch of this thread, with their records
// (else nullptr).
struct BatchedCompletions {
  std::vector<SendCompletion> completions;
  std::vector<AsyncSend*> records;  // records[i] completed completions[i]
};
thread_local BatchedCompletions* batched_completions = nullptr;
}  // namespace

SendDoneBatch::SendDoneBatch() : outermost_(batched_completions == nullptr) {
  if (outermost_) {
    // Per thread, so its capacity is reused from one batch to the next.
    thread_local BatchedCompletions batched;
    batched_completions = &batched;
  }
}

SendDoneBatch::~SendDoneBatch() {
  if (!outermost_) return;
  BatchedCompletions& batched = *batched_completions;
  batched_completions = nullptr;
  // Taken out while they are handed over: callbacks run inline (once the pool has shut down)
  // may complete sends in a batch of their own on this thread.
  std::vector<SendCompletion> completions;
  std::vector<AsyncSend*> records;
  completions.swap(batched.completions);
  records.swap(batched.records);
  // Each run of sends of one engine (client) in one hand-off. There is nearly always one: the
  // whole vector is then handed over, not its completions one by one.
  for (size_t run = 0; run < records.size();) {
    Engine& engine = records[run]->engine();
    size_t run_end = run + 1;
    while (run_end < records.size() && &records[run_end]->engine() == &engine) ++run_end;
    // The records first: once the callbacks are posted they may run, let the producer's
    // Close return and the client go, while this thread (a backend's) carries on.
    engine.async_sends().Give(std::span(records.data() + run, run_end - run));
    if (run == 0 && run_end == records.size()) {
      engine.PostCallbacks(completions);
    } else {
      std::vector<SendCompletion> part(std::make_move_iterator(completions.begin() + run),
                                       std::make_move_iterator(completions.begin() + run_end));
      engine.PostCallbacks(part);
    }
    run = run_end;
  }
  // Back, empty, with their buffers.
  completions.clear();
  records.clear();
  batched.completions.swap(completions);
  batched.records.swap(records);
}

void AsyncSend::TakeCompletion(Result<StoredPosition>&& stored, bool keep_counter,
                               SendCompletion& completion) {
  // A swap leaves the record's callback empty, without a move's temporary.
  completion.callback.swap(callback_);
  completion.counter = counter_.get();
  if (keep_counter) completion.counter_ref = counter_;
  if (stored.ok()) {
    completion.position = *stored;
  } else {
    completion.failure = std::make_unique<Status>(std::move(stored).status());
  }
  completion.message_id = message_id_;
}

void AsyncSend::Complete(Result<StoredPosition> stored) {
  if (!callback_) {
    // The record goes back before the send is counted out (after which the client may go),
    // taking its reference to the counter along.
    const std::shared_ptr<SendCounter> counter = std::move(counter_);
    GiveBack();
    counter->EndSend();
    return;
  }
  if (batched_completions != nullptr) {
    std::vector<SendCompletion>& completions = batched_completions->completions;
    // A hand-off of the batch starts where the engine, and so the counter, changes.
    const bool run_starts = completions.empty() || completions.back().counter != counter_.get();
    TakeCompletion(std::move(stored), run_starts, completions.emplace_back());
    batched_completions->records.push_back(this);
    return;
  }
  PostAlone(std::move(stored));
}

void AsyncSend::Fail(Status status) {
  if (callback_) {
    PostAlone(std::move(status));
    return;
  }
  GiveBack();
}

void AsyncSend::PostAlone(Result<StoredPosition>&& stored) {
  SendCompletion completion;
  TakeCompletion(std::move(stored), true, completion);
  // The record first: once posted, the callback may run and the client go (see
  // ~SendDoneBatch).
  Engine& engine = engine_;
  GiveBack();
  engine.PostCallback(std::move(completion));
}

void AsyncSend::GiveBack() {
  AsyncSend* self = this;
  engine_.async_sends().Give(std::span(&self, 1));
}

void AsyncSend::RunCallbacks(std::span<SendCompletion> completions) {
  // The callbacks, and the release of what they captured (a producer handle, say).
  const UserCodeMark user_code(UserCode::kSendCallback);
  // A receipt per callback thread, refilled for each successful send: its strings keep their
  // buffers, so a receipt costs no allocation (and no free) per callback. Callbacks run one at
  // a time on a thread; should one run other callbacks on its own thread, `in_use` gives
  // those receipts of their own.
  thread_local Result<SendReceipt> reused_receipt = SendReceipt{};
  thread_local bool in_use = false;
  for (SendCompletion& completion : completions) {
    auto run = [&completion](const Result<SendReceipt>& result) {
      // A throwing callback must not take the pool thread down with it.
      try {
        completion.callback(result);
      } catch (...) {
      }
    };
    const SendCounter* counter = completion.counter;
    if (counter != nullptr && completion.failure == nullptr && !in_use) {
      SendReceipt& receipt = *reused_receipt;
      // Written over in place: an id always has kMessageIdLength characters, and a thread's
      // callbacks are nearly always of one cluster.
      receipt.message_id.resize(kMessageIdLength);
      std::memcpy(receipt.message_id.data(), completion.message_id.data(), kMessageIdLength);
      if (receipt.cluster != counter->cluster) receipt.cluster = counter->cluster;
      receipt.partition = completion.position.partition;
      receipt.offset = completion.position.offset;
      in_use = true;
      run(reused_receipt);
      in_use = false;
    } else if (completion.failure != nullptr) {
      run(counter != nullptr ? ToReceipt(*completion.failure, std::string(), *counter)
                             : Result<SendReceipt>(*completion.failure));
    } else {
      run(ToReceipt(completion.position,
                    std::string(completion.message_id.data(), completion.message_id.size()),
                    *counter));
    }
    // What the callback captured goes now, while this thread is marked as running callbacks.
    completion.callback = nullptr;
  }
  // One count per run of sends of one producer route, rather than one per send.
  for (size_t run = 0; run < completions.size();) {
    // A send that failed before it was counted in has no counter.
    SendCounter* counter = completions[run].counter;
    size_t run_end = run + 1;
    while (run_end < completions.size() && completions[run_end].counter == counter) ++run_end;
    if (counter != nullptr) counter->EndSend(static_cast<int64_t>(run_end - run));
    run = run_end;
  }
}

Result<SendReceipt> ProducerCore::Send(Message&& message) {
  MSGSDK_RETURN_IF_ERROR(Prepare(message));
  ProducerRoute* route = BeginSends(1);
  if (route == nullptr) return ClosedError();
  if (Status status = CheckCapabilities(message, *route); !status.ok()) {
    AbandonSends(*route, 1);
    return status;
  }
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Result<StoredPosition>> stored;
  };
  auto waiter = std::make_shared<Waiter>();
  const std::shared_ptr<SendCounter>& counter = route->counter;
  PrepareCopies(message, *route);
  route->producer->Send(message, [waiter, counter](Result<StoredPosition> stored) {
    {
      std::lock_guard lock(waiter->mutex);
      waiter->stored.emplace(std::move(stored));
      waiter->done.notify_one();
    }
    counter->EndSend();
  });
  SendShadow(message, *route);
  const auto timeout = send_timeout();
  std::unique_lock lock(waiter->mutex);
  if (!waiter->done.wait_for(lock, timeout, [&] { return waiter->stored.has_value(); })) {
    return DeadlineExceededError("send to topic '" + topic_ + "' on cluster '" + counter->cluster +
                                 "' was not acknowledged within " +
                                 std::to_string(timeout.count()) + " ms");
  }
  return ToReceipt(std::move(*waiter->stored), std::move(message.message_id), *counter);
}

namespace {
// Lends a message the strings its id and topic are written into for the length of one
// SendAsync: strings this thread keeps, so that a 32-character id, and a topic name too long
// for a string's inline buffer, cost no allocation and free per send. The backends read the
// message during Send only, and the caller drops the message afterwards.
class BorrowedStrings {
 public:
  // Moves, not swaps: a moved string hands over its buffer, where a swap also copies the
  // short strings each side may hold.
  explicit BorrowedStrings(Message& message) : message_(message) {
    Kept& kept = ThisThreads();
    message_.message_id = std::move(kept.id);
    message_.topic = std::move(kept.topic);
  }
  ~BorrowedStrings() {
    Kept& kept = ThisThreads();
    kept.id = std::move(message_.message_id);
    kept.topic = std::move(message_.topic);
  }
  BorrowedStrings(const BorrowedStrings&) = delete;
  BorrowedStrings& operator=(const BorrowedStrings&) = delete;

 private:
  struct Kept {
    std::string id;
    std::string topic;
  };
  static Kept& ThisThreads() {
    thread_local Kept kept;
    return kept;
  }
  Message& message_;
};
}  // namespace

void ProducerCore::SendAsync(Message&& message, SendCallback&& callback) {
  const BorrowedStrings borrowed(message);
  auto fail = [this, &callback](Status status) {
    AsyncSend* send = engine_->async_sends().Take();
    send->Start(nullptr, std::move(callback), {});
    send->Fail(std::move(status));
  };
  if (Status status = Prepare(message); !status.ok()) return fail(std::move(status));
  ProducerRoute* route = BeginSends(1);
  if (route == nullptr) return fail(ClosedError());
  // Only a timer message can be beyond what a route's backend carries: the check (and its
  // Status) is skipped for every other send.
  if (message.deliver_at.has_value()) {
    if (Status status = CheckCapabilities(message, *route); !status.ok()) {
      AbandonSends(*route, 1);
      return fail(std::move(status));
    }
  }
  // The engine outlives every send: it closes its producers (which wait for their sends and
  // callbacks) before it goes away.
  AsyncSend* send = engine_->async_sends().Take();
  send->Start(route->counter, std::move(callback), message.message_id);
  PrepareCopies(message, *route);
  route->producer->Send(message, SendDone(send));
  SendShadow(message, *route);
}

Result<std::vector<SendReceipt>> ProducerCore::SendBatch(std::vector<Message> messages) {
  for (auto& message : messages) MSGSDK_RETURN_IF_ERROR(Prepare(message));
  if (messages.empty()) return std::vector<SendReceipt>();
  const auto count = static_cast<int64_t>(messages.size());
  ProducerRoute* route = BeginSends(count);
  if (route == nullptr) return ClosedError();
  for (const auto& message : messages) {
    if (Status status = CheckCapabilities(message, *route); !status.ok()) {
      AbandonSends(*route, count);
      return status;
    }
  }
  struct Batch {
    std::mutex mutex;
    std::condition_variable done;
    size_t remaining;
    std::vector<std::optional<Result<StoredPosition>>> stored;
  };
  auto batch = std::make_shared<Batch>();
  batch->remaining = messages.size();
  batch->stored.resize(messages.size());
  const std::shared_ptr<SendCounter>& counter = route->counter;
  for (size_t i = 0; i < messages.size(); ++i) {
    PrepareCopies(messages[i], *route);
    route->producer->Send(messages[i], [batch, i, counter](Result<StoredPosition> stored) {
      {
        std::lock_guard lock(batch->mutex);
        batch->stored[i].emplace(std::move(stored));
        if (--batch->remaining == 0) batch->done.notify_one();
      }
      counter->EndSend();
    });
    SendShadow(messages[i], *route);
  }
  const auto timeout = send_timeout();
  std::unique_lock lock(batch->mutex);
  if (!batch->done.wait_for(lock, timeout, [&] { return batch->remaining == 0; })) {
    return DeadlineExceededError("batch of " + std::to_string(messages.size()) +
                                 " messages to topic '" + topic_ + "' on cluster '" +
                                 counter->cluster + "' was not acknowledged within " +
                                 std::to_string(timeout.count()) + " ms");
  }
  std::vector<SendReceipt> receipts;
  receipts.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    MSGSDK_ASSIGN_OR_RETURN(
        SendReceipt receipt,
        ToReceipt(std::move(*batch->stored[i]), std::move(messages[i].message_id), *counter));
    receipts.push_back(std::move(receipt));
  }
  return receipts;
}

Status ProducerCore::Close() {
  if (closed_.exchange(true)) return OkStatus();
  std::lock_guard lock(rebind_mutex_);
  return Drain(*route_.load());
}

}  // namespace msgsdk::core
