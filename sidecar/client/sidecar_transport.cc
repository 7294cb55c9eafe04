#include "sidecar/client/sidecar_transport.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "core/executor.h"
#include "core/names.h"
#include "msgsdk/v1/messaging.grpc.pb.h"
#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

// How long Client::Create waits for the sidecar to answer.
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// A send waits this long when the producer has no send_timeout of its own. The sidecar's own
// send timeout (its routing table's) answers first; this bounds a sidecar that went away.
constexpr auto kDefaultSendTimeout = std::chrono::seconds(30);
// Messages per Publish call at most, and bytes: a batch takes no more once it holds either.
constexpr size_t kMaxBatch = 1000;
constexpr size_t kMaxBatchBytes = 4 << 20;
// The largest body whose buffer the producer's encoding scratch keeps for the next message.
constexpr size_t kScratchBodyKept = 64 << 10;
// Room a new batch makes for callbacks: most batches hold one message at low rates.
constexpr size_t kInitialBatchCapacity = 64;
// Publish calls a producer has in flight at once: one per lane, a key always in the same lane.
constexpr size_t kLanes = 4;
// Credit of a subscription with no max_inflight of its own, and its handler threads.
constexpr int kDefaultCredit = 1000;
constexpr int kDefaultHandlerThreads = 4;
// A handler thread takes up to kMaxTake waiting deliveries at a time while a batch of them
// takes less than kQuickBatch (as the subscription core's workers do).
constexpr size_t kMaxTake = 16;
constexpr auto kQuickBatch = std::chrono::microseconds(200);
// Reconnect backoff of a subscription whose stream broke.
constexpr auto kBackoffMin = std::chrono::milliseconds(50);
constexpr auto kBackoffMax = std::chrono::milliseconds(2000);
// How long Close lets running handlers finish.
constexpr auto kCloseTimeout = std::chrono::seconds(10);

std::chrono::system_clock::time_point SystemDeadline(Clock::time_point deadline) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - Clock::now());
}

// A Publish that may be sent again: the sidecar was unreachable, refused it while shutting
// down, or cancelled it when its drain ended (a producer never cancels its own calls).
bool PublishMayBeRetried(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::CANCELLED;
}

Status ConnectionError(const std::string& address, const grpc::Status& status) {
  return Status(static_cast<StatusCode>(status.error_code()),
                "msgsdk-sidecar at " + address + ": " + status.error_message());
}

// What the producers and subscriptions of one client share.
struct Connection {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Messaging::Stub> stub;
  // Publish with a request already in its wire form (SendAsync's batches).
  std::unique_ptr<grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>> encoded_stub;
  // SendAsync callbacks run here, never on gRPC's threads. Last, so that it is joined first
  // when the connection goes: its tasks use the rest.
  core::ThreadPool callbacks{"msgsdk-callback", 2};
};

// "/msgsdk.v1.Messaging/Publish", the method the encoded requests call.
const std::string& PublishMethod() {
  static const std::string method =
      std::string("/") + v1::Messaging::service_full_name() + "/Publish";
  return method;
}

// One Publish call's worth of messages: the request in its wire form, written a message at a
// time as they are sent (on the sender's thread, while each message is still in its cache; the
// message is then freed by the thread that made it), the answer as it came, read a result at a
// time when the callbacks run, and the callbacks in request order.
struct Batch {
  Batch(const std::string& encoded_topic, size_t lane, Clock::time_point deadline)
      : request(encoded_topic), deadline(deadline), lane(lane) {
    callbacks.reserve(kInitialBatchCapacity);
  }

  bool full() const { return callbacks.size() >= kMaxBatch || request.size() >= kMaxBatchBytes; }

  // The encoding of a PublishRequest so far: its topic, then one messages field per message
  // (a message's encoding is the concatenation of its fields', so the sidecar reads the
  // request any other client sends). Moved into `encoded` when the batch is first sent.
  std::string request;
  std::optional<grpc::ByteBuffer> encoded;  // kept for the attempts after the first
  grpc::ByteBuffer response;                // a PublishResponse
  std::vector<SendCallback> callbacks;
  // The first message's: the earliest of the batch.
  const Clock::time_point deadline;
  const size_t lane;
  // One per attempt: a ClientContext serves a single call.
  std::optional<grpc::ClientContext> context;
  std::chrono::milliseconds backoff = kBackoffMin;
};

class SidecarProducer final : public internal::ProducerTransport,
                              public std::enable_shared_from_this<SidecarProducer> {
 public:
  SidecarProducer(std::shared_ptr<Connection> connection, std::string topic,
                  std::chrono::milliseconds send_timeout)
      : connection_(std::move(connection)),
        topic_(std::move(topic)),
        timeout_(send_timeout),
        encoded_topic_(EncodeTopic(topic_)) {}

  ~SidecarProducer() override { Close().IgnoreError(); }

  Result<SendReceipt> Send(Message&& message) override {
    std::vector<Message> one;
    one.push_back(std::move(message));
    MSGSDK_ASSIGN_OR_RETURN(std::vector<SendReceipt> receipts, SendBatch(std::move(one)));
    return std::move(receipts.front());
  }

  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages) override {
    if (closed_.load()) return ClosedError();
    if (messages.empty()) return std::vector<SendReceipt>();
    v1::PublishRequest request;
    request.set_topic(topic_);
    for (auto& message : messages) ToProto(std::move(message), request.add_messages());
    v1::PublishResponse response;
    MSGSDK_RETURN_IF_ERROR(Call(request, &response, Clock::now() + timeout_));
    std::vector<SendReceipt> receipts;
    receipts.reserve(messages.size());
    for (auto& result : *response.mutable_results()) {
      MSGSDK_ASSIGN_OR_RETURN(SendReceipt receipt, FromProto(std::move(result)));
      receipts.push_back(std::move(receipt));
    }
    return receipts;
  }

  // Added to the lane's open batch, sent in batches. A key's messages always take the same
  // lane, which has one Publish call in flight at a time, so they reach the sidecar in send
  // order while the lanes overlap their round trips.
  void SendAsync(Message&& message, SendCallback&& callback) override {
    const size_t lane = message.key.empty()
                            ? next_lane_.fetch_add(1, std::memory_order_relaxed) % kLanes
                            : std::hash<std::string>()(message.key) % kLanes;
    std::unique_lock lock(mutex_);
    if (closed_.load()) {
      lock.unlock();
      Complete(callback, ClosedError());
      return;
    }
    std::deque<std::unique_ptr<Batch>>& queue = lanes_[lane].queue;
    if (queue.empty() || queue.back()->full()) {
      queue.push_back(std::make_unique<Batch>(encoded_topic_, lane, Clock::now() + timeout_));
    }
    Batch& batch = *queue.back();
    AppendEncoded(message, batch.request);
    batch.callbacks.push_back(std::move(callback));
    ++outstanding_;
    if (!lanes_[lane].sending) SendNextLocked(lane, lock);
  }

  Status Close() override {
    if (closed_.exchange(true)) return OkStatus();
    // A callback closing a producer (its own or any other, of any client) must not wait for
    // callbacks, itself among them, or one closing its own producer: the sends in flight
    // still complete on the callback threads.
    if (core::InSendCallback()) return OkStatus();
    std::unique_lock lock(mutex_);
    const bool drained = drained_.wait_for(lock, timeout_ + std::chrono::seconds(5),
                                           [this] { return outstanding_ == 0; });
    if (!drained) {
      return DeadlineExceededError("producer of topic '" + topic_ +
                                   "': " + std::to_string(outstanding_) +
                                   " sends still unanswered by the sidecar at close");
    }
    return OkStatus();
  }

  const std::string& topic() const override { return topic_; }

 private:
  Status ClosedError() const {
    return FailedPreconditionError("producer of topic '" + topic_ + "' is closed");
  }

  static std::string EncodeTopic(const std::string& topic) {
    v1::PublishRequest request;
    request.set_topic(topic);
    return request.SerializeAsString();
  }

  // Appends `message` as one PublishRequest.messages field. The scratch message keeps its
  // string buffers from one message to the next.
  void AppendEncoded(const Message& message, std::string& request) {
    scratch_.Clear();
    ToProto(message, &scratch_);
    AppendField(v1::PublishRequest::kMessagesFieldNumber, scratch_, request);
    // A large body's buffer is not kept for the small ones that follow.
    if (message.body.size() > kScratchBodyKept) scratch_ = v1::Message();
  }

  // Publish with retries while the sidecar is unreachable or restarting (it refused the call
  // before sending anything, cancelled it as its drain ended, or the connection broke: a message
  // may then be stored twice, which at-least-once allows), until `deadline`.
  Status Call(const v1::PublishRequest& request, v1::PublishResponse* response,
              Clock::time_point deadline) {
    auto backoff = kBackoffMin;
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(SystemDeadline(deadline));
      context.set_wait_for_ready(true);
      const grpc::Status status = connection_->stub->Publish(&context, request, response);
      if (status.ok()) return OkStatus();
      if (!PublishMayBeRetried(status) || Clock::now() + backoff >= deadline) {
        return ConnectionError(connection_->address, status)
            .WithContext("publish to topic '" + topic_ + "'");
      }
      std::this_thread::sleep_for(backoff);  // reconnect backoff, bounded by the deadline
      backoff = std::min(backoff * 2, kBackoffMax);
    }
  }

  // Sends the lane's oldest batch, if any; the lane has no call in flight.
  void SendNextLocked(size_t lane, std::unique_lock<std::mutex>& lock) {
    std::deque<std::unique_ptr<Batch>>& queue = lanes_[lane].queue;
    if (queue.empty()) {
      lanes_[lane].sending = false;
      return;
    }
    lanes_[lane].sending = true;
    std::unique_ptr<Batch> batch = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    StartCall(std::move(batch));
  }

  void StartCall(std::unique_ptr<Batch> batch) {
    if (!batch->encoded) batch->encoded = ToByteBuffer(std::move(batch->request));
    batch->context.emplace();
    batch->context->set_deadline(SystemDeadline(batch->deadline));
    batch->context->set_wait_for_ready(true);
    batch->response.Clear();
    Batch* call = batch.release();  // owned by the call until Answered
    connection_->encoded_stub->UnaryCall(
        &*call->context, PublishMethod(), grpc::StubOptions(), &*call->encoded, &call->response,
        [self = shared_from_this(), call](grpc::Status status) mutable {
          Answered(std::move(self), std::unique_ptr<Batch>(call), std::move(status));
        });
  }

  // On a gRPC thread: hand the outcome to the callback pool, which then sends the lane's next
  // batch (so a lane's callbacks run in send order). The call's reference to the producer
  // moves on with it: were it dropped here after the pool's task, it could be the last one,
  // and the producer's connection (with its gRPC channel) must not be destroyed inside gRPC.
  static void Answered(std::shared_ptr<SidecarProducer> self, std::unique_ptr<Batch> batch,
                       grpc::Status status) {
    SidecarProducer* const producer = self.get();
    core::ThreadPool& pool = producer->connection_->callbacks;
    // A task the pool refuses (the client closed) is left untouched: it keeps the producer
    // alive while this thread answers instead, and goes at the end of this scope.
    core::Task retry;
    if (PublishMayBeRetried(status) && Clock::now() + batch->backoff < batch->deadline) {
      // The sidecar is restarting: try the same batch again after a backoff, off this thread.
      const auto delay = batch->backoff;
      batch->backoff = std::min(batch->backoff * 2, kBackoffMax);
      Batch* const again = batch.release();
      retry = [self = std::move(self), again, delay] {
        std::this_thread::sleep_for(delay);  // reconnect backoff, bounded by the deadline
        self->StartCall(std::unique_ptr<Batch>(again));
      };
      if (pool.Submit(std::move(retry))) return;
      batch.reset(again);
      self = producer->shared_from_this();
    }
    Batch* const answered = batch.release();
    core::Task complete = [self = std::move(self), answered, status] {
      std::unique_ptr<Batch> batch(answered);
      self->CompleteBatch(*batch, status);
      std::unique_lock lock(self->mutex_);
      self->outstanding_ -= static_cast<int64_t>(batch->callbacks.size());
      if (self->outstanding_ == 0) self->drained_.notify_all();
      self->SendNextLocked(batch->lane, lock);
    };
    if (pool.Submit(std::move(complete))) return;
    // The client's pool is shut down: this batch and the lane's queued ones (which no answer
    // would send any more) fail here, so that the producer's Close does not wait for them.
    batch.reset(answered);
    std::deque<std::unique_ptr<Batch>> failing;
    {
      std::lock_guard lock(producer->mutex_);
      failing.swap(producer->lanes_[batch->lane].queue);
      producer->lanes_[batch->lane].sending = false;
    }
    failing.push_front(std::move(batch));
    int64_t failed = 0;
    for (const auto& each : failing) {
      for (auto& callback : each->callbacks) {
        Complete(callback, UnavailableError("client closed"));
      }
      failed += static_cast<int64_t>(each->callbacks.size());
    }
    std::lock_guard lock(producer->mutex_);
    producer->outstanding_ -= failed;
    producer->drained_.notify_all();
  }

  // Runs the batch's callbacks, one result each, in request order.
  void CompleteBatch(Batch& batch, const grpc::Status& status) {
    const Status failed = status.ok() ? OkStatus()
                                      : ConnectionError(connection_->address, status)
                                            .WithContext("publish to topic '" + topic_ + "'");
    RepeatedFieldReader results(batch.response, v1::PublishResponse::kResultsFieldNumber);
    v1::PublishResult result;  // reused: keeps its string buffers from one result to the next
    for (auto& callback : batch.callbacks) {
      Result<SendReceipt> receipt =
          !failed.ok()           ? Result<SendReceipt>(failed)
          : results.Next(result) ? FromProto(result)
          : results.failed()
              ? Result<SendReceipt>(InternalError("the sidecar's answer is not a PublishResponse"))
              : Result<SendReceipt>(InternalError("the sidecar answered fewer results than sent"));
      Complete(callback, std::move(receipt));
    }
  }

  // Runs `callback` and lets go of what it captured (a producer handle, say), both as user
  // code (core::UserCodeMark).
  static void Complete(SendCallback& callback, Result<SendReceipt> result) {
    if (!callback) return;
    const core::UserCodeMark user_code(core::UserCode::kSendCallback);
    try {
      callback(result);
    } catch (...) {
      // A throwing callback must not take the pool thread down with it.
    }
    callback = nullptr;
  }

  const std::shared_ptr<Connection> connection_;
  const std::string topic_;
  const std::chrono::milliseconds timeout_;
  const std::string
      encoded_topic_;  // a PublishRequest's topic field, which every batch starts with
  std::atomic<bool> closed_{false};

  std::mutex mutex_;
  std::condition_variable drained_;
  v1::Message scratch_;  // AppendEncoded's
  struct Lane {
    // Batches not yet sent, oldest first; the last one takes new messages until it is full.
    std::deque<std::unique_ptr<Batch>> queue;
    bool sending = false;  // a Publish call of this lane is in flight
  };
  std::array<Lane, kLanes> lanes_;
  std::atomic<size_t> next_lane_{0};  // keyless messages go round the lanes
  int64_t outstanding_ = 0;           // queued or in a call, callback not yet run
};

// A subscription through a Subscribe stream: a reader thread takes deliveries and hands them to
// the handler threads; a writer thread sends their settlements in batches. A broken stream is
// opened again with backoff; deliveries of the old stream were handed back by the sidecar, so
// their late settlements are dropped.
class SidecarSubscription final : public internal::SubscriptionTransport,
                                  public std::enable_shared_from_this<SidecarSubscription> {
 public:
  // Never destroyed on one of its own handler threads (a handler may drop the last handle):
  // see DeleteOwnerOfPool.
  static std::shared_ptr<SidecarSubscription> Create(std::shared_ptr<Connection> connection,
                                                     std::string topic, std::string group,
                                                     MessageHandler handler,
                                                     SubscribeOptions options) {
    return std::shared_ptr<SidecarSubscription>(
        new SidecarSubscription(std::move(connection), std::move(topic), std::move(group),
                                std::move(handler), std::move(options)),
        [](SidecarSubscription* dropped) { core::DeleteOwnerOfPool(dropped, dropped->handlers_); });
  }

  ~SidecarSubscription() override { Close().IgnoreError(); }

  // Opens the first stream and waits for the sidecar to start the subscription, so that a
  // refusal (a bad name, an unsupported mode) is the caller's error.
  Status Start() {
    MSGSDK_RETURN_IF_ERROR(OpenStream());
    reader_ = std::thread([this] { ReadLoop(); });
    writer_ = std::thread([this] { WriteLoop(); });
    return OkStatus();
  }

  // A later call waits for a close under way. From a handler (one of its own, or another
  // subscription's) or a send callback (core::UserCodeMark), the close cannot wait for the
  // handlers: it goes on on a thread of its own, the handler's settlement included.
  Status Close() override {
    {
      std::unique_lock lock(mutex_);
      if (core::InUserCode()) {
        if (!closing_) {
          closing_ = true;
          std::thread([self = shared_from_this()] { self->CloseClaimed(); }).detach();
        }
        return OkStatus();
      }
      if (closing_) {
        changed_.wait(lock, [this] { return closed_; });
        return OkStatus();
      }
      closing_ = true;
    }
    CloseClaimed();
    return OkStatus();
  }

  const std::string& topic() const override { return topic_; }
  const std::string& group() const override { return group_; }

 private:
  using Stream = grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>;

  struct Settled {
    uint64_t generation;
    v1::Settle settle;
  };
  // A delivery waiting for a handler thread.
  struct Ready {
    Message message;
    uint64_t id = 0;
    uint64_t generation = 0;
  };

  SidecarSubscription(std::shared_ptr<Connection> connection, std::string topic, std::string group,
                      MessageHandler handler, SubscribeOptions options)
      : connection_(std::move(connection)),
        topic_(std::move(topic)),
        group_(std::move(group)),
        handler_(std::move(handler)),
        options_(std::move(options)),
        credit_(options_.max_inflight > 0 ? options_.max_inflight : kDefaultCredit),
        handlers_("msgsdk-handler", options_.consumer_threads > 0 ? options_.consumer_threads
                                                                  : kDefaultHandlerThreads) {}

  // Close, once this thread has claimed it (closing_ set).
  void CloseClaimed() {
    changed_.notify_all();  // a reader waiting to reopen the stream gives up
    // Handlers already running finish and are settled; queued ones are skipped (the sidecar
    // hands them back when the stream ends).
    handlers_.Shutdown();
    if (reader_.joinable()) {
      {
        std::unique_lock lock(mutex_);
        writer_done_ = true;
        changed_.notify_all();
      }
      if (writer_.joinable()) writer_.join();  // flushes the last settlements, then WritesDone
      {
        std::unique_lock lock(mutex_);
        // The sidecar ends the stream once it saw WritesDone; cancel it if it does not in time.
        if (!changed_.wait_for(lock, kCloseTimeout, [this] { return stream_ended_; }) && context_) {
          context_->TryCancel();
        }
      }
      reader_.join();
    }  // else never started: no stream to end
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }

  // Opens a stream, sends Start with the credit, and waits for Started.
  Status OpenStream() {
    auto context = std::make_shared<grpc::ClientContext>();
    context->set_wait_for_ready(true);
    std::shared_ptr<Stream> stream = connection_->stub->Subscribe(context.get());
    v1::SubscribeRequest start;
    ToProto(topic_, group_, options_, start.mutable_start());
    start.set_credit(static_cast<uint32_t>(credit_));
    v1::SubscribeResponse response;
    if (!stream->Write(start) || !stream->Read(&response) || !response.has_started()) {
      const grpc::Status status = stream->Finish();
      return status.ok() ? UnavailableError("msgsdk-sidecar at " + connection_->address +
                                            " ended the stream before starting the subscription")
                         : FromGrpc(status).WithContext("subscription to topic '" + topic_ +
                                                        "' in group '" + group_ + "'");
    }
    std::lock_guard lock(mutex_);
    context_ = std::move(context);
    stream_ = std::move(stream);
    ++generation_;
    stream_ended_ = false;
    first_response_ = std::move(response);
    changed_.notify_all();
    return OkStatus();
  }

  void ReadLoop() {
    auto backoff = kBackoffMin;
    while (true) {
      std::shared_ptr<Stream> stream;
      uint64_t generation;
      v1::SubscribeResponse response;
      {
        std::lock_guard lock(mutex_);
        stream = stream_;
        generation = generation_;
        response = std::move(first_response_);
        first_response_.Clear();
      }
      Dispatch(response, generation);
      while (stream->Read(&response)) {
        Dispatch(response, generation);
        backoff = kBackoffMin;
      }
      stream->Finish();
      {
        std::lock_guard lock(mutex_);
        stream_ended_ = true;
        changed_.notify_all();
        if (closing_) return;
      }
      // The sidecar went away or restarts: open the stream again, with backoff.
      while (true) {
        {
          std::unique_lock lock(mutex_);
          if (changed_.wait_for(lock, backoff, [this] { return closing_; })) return;
        }
        backoff = std::min(backoff * 2, kBackoffMax);
        if (OpenStream().ok()) break;
      }
    }
  }

  // Queues the response's deliveries for the handler threads under one lock, and starts as
  // many draining tasks as the pool has threads not draining yet: a task per message would cost
  // a wake-up (and a sleep) of a handler thread per message, the largest cost of consuming
  // through the sidecar. Each delivery is copied into a message the handler threads gave
  // back, whose strings keep their buffers: made here and freed on a handler thread, each
  // message's strings took glibc malloc's slow path on both threads.
  void Dispatch(const v1::SubscribeResponse& response, uint64_t generation) {
    if (response.deliveries().empty()) return;
    const auto count = static_cast<size_t>(response.deliveries_size());
    std::vector<Message> spare;
    {
      std::lock_guard lock(mutex_);
      const size_t taken = std::min(count, spare_messages_.size());
      spare.assign(std::make_move_iterator(spare_messages_.end() - static_cast<ptrdiff_t>(taken)),
                   std::make_move_iterator(spare_messages_.end()));
      spare_messages_.resize(spare_messages_.size() - taken);
    }
    std::vector<Ready> arrived;
    arrived.reserve(count);
    for (const v1::Delivery& delivery : response.deliveries()) {
      Ready& ready = arrived.emplace_back();
      if (!spare.empty()) {
        ready.message = std::move(spare.back());
        spare.pop_back();
      }
      FromProto(delivery.message(), &ready.message);
      ready.id = delivery.delivery_id();
      ready.generation = generation;
    }
    int start = 0;
    {
      std::lock_guard lock(mutex_);
      ready_.insert(ready_.end(), std::make_move_iterator(arrived.begin()),
                    std::make_move_iterator(arrived.end()));
      // None if the pool shrank below the tasks draining.
      start = std::clamp(handlers_.size() - draining_, 0, static_cast<int>(ready_.size()));
      draining_ += start;
    }
    for (int i = 0; i < start; ++i) {
      if (!handlers_.Submit([this] { Drain(); })) {
        std::lock_guard lock(mutex_);
        --draining_;
      }
    }
  }

  // A handler thread's task: handles ready deliveries until none is left. It takes up to
  // kMaxTake at a time, never more than its share of those waiting, while its handlers return
  // quickly, and one at a time after a slow one, so that little waits behind a slow handler;
  // their settlements go to the writer together.
  void Drain() {
    const core::UserCodeMark user_code(core::UserCode::kHandler);
    size_t take = 1;
    std::vector<Ready> batch;
    std::vector<Settled> settled;
    while (true) {
      batch.clear();
      {
        std::lock_guard lock(mutex_);
        // Closing: what waits is not handled (the sidecar hands it back when the stream ends).
        if (closing_) ready_.clear();
        if (ready_.empty()) {
          --draining_;
          return;
        }
        const size_t share =
            std::max<size_t>(1, ready_.size() / static_cast<size_t>(std::max(1, handlers_.size())));
        const size_t n = std::min({take, share, ready_.size()});
        for (size_t i = 0; i < n; ++i) {
          // Of an earlier stream: the sidecar handed it back when that stream ended.
          if (ready_.front().generation == generation_) batch.push_back(std::move(ready_.front()));
          ready_.pop_front();
        }
      }
      const auto started = std::chrono::steady_clock::now();
      settled.clear();
      for (const Ready& ready : batch) settled.push_back(Handle(ready));
      take = std::chrono::steady_clock::now() - started < kQuickBatch ? kMaxTake : 1;
      if (settled.empty()) continue;
      std::lock_guard lock(mutex_);
      settled_.insert(settled_.end(), std::make_move_iterator(settled.begin()),
                      std::make_move_iterator(settled.end()));
      changed_.notify_all();
      // The messages go back for the reader to copy the next deliveries into.
      for (Ready& ready : batch) {
        if (spare_messages_.size() >= static_cast<size_t>(credit_)) break;
        spare_messages_.push_back(std::move(ready.message));
      }
    }
  }

  Settled Handle(const Ready& ready) {
    Settled settled{.generation = ready.generation};
    settled.settle.set_delivery_id(ready.id);
    try {
      if (handler_(ready.message) == ConsumeResult::kSuccess) {
        settled.settle.set_outcome(v1::Settle::ACK);
      } else {
        settled.settle.set_outcome(v1::Settle::RETRY);
        settled.settle.set_reason("handler returned kRetryLater");
      }
    } catch (const std::exception& e) {
      settled.settle.set_outcome(v1::Settle::RETRY);
      settled.settle.set_reason(std::string("handler threw: ") + e.what());
    } catch (...) {
      settled.settle.set_outcome(v1::Settle::RETRY);
      settled.settle.set_reason("handler threw a non-standard exception");
    }
    return settled;
  }

  // Sends settlements in batches; at close, the last ones and then WritesDone.
  void WriteLoop() {
    while (true) {
      std::vector<Settled> batch;
      std::shared_ptr<Stream> stream;
      uint64_t generation;
      bool done;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return !settled_.empty() || writer_done_; });
        batch.assign(std::make_move_iterator(settled_.begin()),
                     std::make_move_iterator(settled_.end()));
        settled_.clear();
        stream = stream_;
        generation = generation_;
        done = writer_done_;
      }
      v1::SubscribeRequest request;
      for (auto& settled : batch) {
        if (settled.generation == generation) *request.add_settles() = std::move(settled.settle);
      }
      // A failed write means the stream broke; the reader reopens it.
      if (request.settles_size() > 0) stream->Write(request);
      if (done) {
        stream->WritesDone();
        return;
      }
    }
  }

  const std::shared_ptr<Connection> connection_;
  const std::string topic_;
  const std::string group_;
  const MessageHandler handler_;
  const SubscribeOptions options_;
  const int credit_;
  core::ThreadPool handlers_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool closing_ = false;
  bool closed_ = false;
  bool writer_done_ = false;
  bool stream_ended_ = false;
  std::shared_ptr<grpc::ClientContext> context_;
  std::shared_ptr<Stream> stream_;
  uint64_t generation_ = 0;
  v1::SubscribeResponse first_response_;
  std::deque<Ready> ready_;
  std::vector<Message> spare_messages_;  // handled, for Dispatch to reuse (at most credit_)
  int draining_ = 0;  // Drain tasks submitted and not finished
  std::vector<Settled> settled_;
  std::thread reader_;
  std::thread writer_;
};

class SidecarClient final : public internal::ClientTransport {
 public:
  SidecarClient(std::shared_ptr<Connection> connection, std::string environment)
      : connection_(std::move(connection)), environment_(std::move(environment)) {}
  ~SidecarClient() override { Close().IgnoreError(); }

  Result<std::shared_ptr<internal::ProducerTransport>> CreateProducer(
      std::string_view topic, const ProducerOptions& options) override {
    MSGSDK_RETURN_IF_ERROR(Open());
    MSGSDK_RETURN_IF_ERROR(core::ValidateProducerTopic(std::string(topic)));
    const auto timeout = options.send_timeout.count() > 0
                             ? options.send_timeout
                             : std::chrono::milliseconds(kDefaultSendTimeout);
    auto producer = std::make_shared<SidecarProducer>(connection_, std::string(topic), timeout);
    Track(producer);
    return std::shared_ptr<internal::ProducerTransport>(std::move(producer));
  }

  Result<std::shared_ptr<internal::SubscriptionTransport>> Subscribe(
      std::string_view topic, std::string_view group, MessageHandler handler,
      const SubscribeOptions& options) override {
    MSGSDK_RETURN_IF_ERROR(Open());
    if (!handler) {
      return InvalidArgumentError("subscription to topic '" + std::string(topic) +
                                  "' has no handler");
    }
    auto subscription = SidecarSubscription::Create(
        connection_, std::string(topic), std::string(group), std::move(handler), options);
    MSGSDK_RETURN_IF_ERROR(subscription->Start());
    Track(subscription);
    return std::shared_ptr<internal::SubscriptionTransport>(std::move(subscription));
  }

  Result<TopicRoute> Describe(std::string_view topic) override {
    MSGSDK_RETURN_IF_ERROR(Open());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kDefaultSendTimeout);
    v1::GetRouteRequest request;
    request.set_topic(std::string(topic));
    v1::GetRouteResponse response;
    const grpc::Status status = connection_->stub->GetRoute(&context, request, &response);
    if (!status.ok()) return FromGrpc(status);
    return FromProto(response);
  }

  Status ResetOffsets(std::string_view topic, std::string_view group,
                      const ResetTarget& target) override {
    MSGSDK_RETURN_IF_ERROR(Open());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kDefaultSendTimeout);
    v1::ResetOffsetsRequest request;
    request.set_topic(std::string(topic));
    request.set_group(std::string(group));
    ToProto(target, &request);
    v1::ResetOffsetsResponse response;
    return FromGrpc(connection_->stub->ResetOffsets(&context, request, &response));
  }

  Result<RoutingState> Routing() override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kDefaultSendTimeout);
    v1::GetInfoResponse info;
    const grpc::Status status = connection_->stub->GetInfo(&context, {}, &info);
    if (!status.ok()) return FromGrpc(status);
    return FromProto(info.routing());
  }

  const std::string& environment() const override { return environment_; }

  Status Close() override {
    std::vector<std::weak_ptr<internal::ProducerTransport>> producers;
    std::vector<std::weak_ptr<internal::SubscriptionTransport>> subscriptions;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      producers.swap(producers_);
      // Kept: a later Close closes them again, which waits for a close under way (one that a
      // handler started in the background, say).
      subscriptions = subscriptions_;
    }
    for (auto& weak : subscriptions) {
      if (auto subscription = weak.lock()) subscription->Close().IgnoreError();
    }
    for (auto& weak : producers) {
      if (auto producer = weak.lock()) producer->Close().IgnoreError();
    }
    // Joined here, on the closing thread, so that it never has to be joined by one of its own
    // threads dropping the last reference. A callback closing the client leaves it running.
    if (!connection_->callbacks.IsPoolThread()) connection_->callbacks.Shutdown();
    return OkStatus();
  }

 private:
  Status Open() {
    std::lock_guard lock(mutex_);
    return closed_ ? FailedPreconditionError("client is closed") : OkStatus();
  }
  void Track(const std::shared_ptr<internal::ProducerTransport>& producer) {
    std::lock_guard lock(mutex_);
    std::erase_if(producers_, [](const auto& weak) { return weak.expired(); });
    producers_.push_back(producer);
  }
  void Track(const std::shared_ptr<internal::SubscriptionTransport>& subscription) {
    std::lock_guard lock(mutex_);
    std::erase_if(subscriptions_, [](const auto& weak) { return weak.expired(); });
    subscriptions_.push_back(subscription);
  }

  const std::shared_ptr<Connection> connection_;
  const std::string environment_;
  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::weak_ptr<internal::ProducerTransport>> producers_;
  std::vector<std::weak_ptr<internal::SubscriptionTransport>> subscriptions_;
};

}  // namespace

Result<std::shared_ptr<internal::ClientTransport>> ConnectSidecar(const std::string& address,
                                                                  const ClientOptions& options) {
  if (!options.config_path.empty() || !options.config_yaml.empty() ||
      !options.routing_service.empty()) {
    return InvalidArgumentError(
        "ClientOptions: a client of msgsdk-sidecar (" + address +
        ") takes no routing table of its own (config_path, config_yaml, routing_service); the "
        "sidecar's routing table decides");
  }
  // A callback may let go of the client's last handle: see DeleteOwnerOfPool.
  std::shared_ptr<Connection> connection(new Connection, [](Connection* dropped) {
    core::DeleteOwnerOfPool(dropped, dropped->callbacks);
  });
  connection->address = address;
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(256 << 20);
  arguments.SetMaxSendMessageSize(256 << 20);
  // Reconnect quickly after a sidecar restart (gRPC's default backoff starts at 1 s).
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  connection->channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
  connection->stub = v1::Messaging::NewStub(connection->channel);
  connection->encoded_stub =
      std::make_unique<grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>>(
          connection->channel);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kConnectTimeout);
  context.set_wait_for_ready(true);
  v1::GetInfoResponse info;
  const grpc::Status status = connection->stub->GetInfo(&context, {}, &info);
  if (!status.ok()) {
    return UnavailableError("msgsdk-sidecar at " + address + " does not answer (" +
                            status.error_message() + "); is it running?");
  }
  if (!options.environment.empty() && options.environment != info.environment()) {
    return FailedPreconditionError("ClientOptions.environment is '" + options.environment +
                                   "' but msgsdk-sidecar at " + address + " serves '" +
                                   info.environment() + "'");
  }
  return std::shared_ptr<internal::ClientTransport>(
      std::make_shared<SidecarClient>(std::move(connection), info.environment()));
}

}  // namespace msgsdk::sidecar
