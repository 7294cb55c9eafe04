#include "sidecar/server/messaging_service.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <google/protobuf/arena.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {

namespace {

// What a stream that ended still held goes back to the cluster, without counting as attempts.
void Release(std::vector<core::Settlement>& settlements) {
  for (auto& settlement : settlements) {
    settlement.Settle({.kind = core::Verdict::Kind::kRelease});
  }
  settlements.clear();
}

}  // namespace

// One Subscribe call: a subscription of the core whose deliveries go out in batches, as far as
// the client's credit allows, and are settled when the client's Settle arrives. Lives until
// gRPC is done with the stream (OnDone) and its subscription is closed.
class SubscribeStream final
    : public grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>,
      public std::enable_shared_from_this<SubscribeStream> {
 public:
  explicit SubscribeStream(MessagingService& service) : service_(service) {}

  // gRPC holds the stream through `self_` until OnDone.
  void Begin() {
    self_ = shared_from_this();
    StartRead(&request_);
  }

  // Ends the stream gracefully (the client closed its side, or the sidecar shuts down):
  // deliveries still unsettled go back, and the client hears the end only once the
  // subscription is closed and its offsets committed, so it may reset them or subscribe again
  // at once.
  void End(const Status& why) {
    std::vector<core::Settlement> released;
    {
      std::lock_guard lock(mutex_);
      FinishLocked(ToGrpc(why), released, /*after_close=*/true);
    }
    Release(released);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client closed its side (or the stream broke): the subscription ends with it.
      End(OkStatus());
      return;
    }
    std::vector<std::pair<core::Settlement, core::Verdict>> settled;
    std::vector<core::Settlement> released;
    bool subscribe = false;
    bool read_more = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      Status invalid = TakeRequestLocked(settled, subscribe);
      if (!invalid.ok()) {
        FinishLocked(ToGrpc(invalid), released);
      } else {
        WriteMoreLocked();
        read_more = true;
      }
    }
    // Settled outside the lock: settling runs the core's ack and dead-letter paths. And
    // before the next read starts: that read may bring the end of the stream, which closes
    // the subscription, and a client's last settlements (a handler that acknowledged its
    // message and closed its subscription) must count before that close revokes them.
    core::Settlement::SettleAll(settled);
    Release(released);
    if (read_more) {
      std::lock_guard lock(mutex_);
      if (!finished_) StartRead(&request_);
    }
    if (subscribe) StartSubscription();
  }

  void OnWriteDone(bool ok) override {
    std::vector<core::Settlement> released;
    std::unique_lock lock(mutex_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"),
                   released);
      lock.unlock();
      Release(released);
      return;
    }
    if (finish_pending_) {
      finish_pending_ = false;
      Finish(finish_status_);
      return;
    }
    WriteMoreLocked();
  }

  void OnCancel() override {
    std::vector<core::Settlement> released;
    {
      std::lock_guard lock(mutex_);
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled"), released);
    }
    Release(released);
  }

  void OnDone() override {
    // gRPC is done with the stream; the service may still hold it until the subscription is
    // closed. Dropping `self_` may delete this object: nothing may follow.
    std::shared_ptr<SubscribeStream> self;
    std::lock_guard lock(mutex_);
    self = std::move(self_);
  }

 private:
  struct Unsent {
    std::unique_ptr<v1::Delivery> delivery;
    core::Settlement settlement;
  };
  enum class SubscriptionState { kNone, kStarting, kOpen, kClosing, kClosed };

  // Reads one request into `settled` (settlements to settle) and `subscribe`.
  Status TakeRequestLocked(std::vector<std::pair<core::Settlement, core::Verdict>>& settled,
                           bool& subscribe) {
    if (request_.has_start()) {
      if (state_ != SubscriptionState::kNone) {
        return InvalidArgumentError(
            "SubscribeRequest.start: the stream already has a "
            "subscription; start comes in the first request only");
      }
      start_ = request_.start();
      state_ = SubscriptionState::kStarting;
      subscribe = true;
    } else if (state_ == SubscriptionState::kNone) {
      return InvalidArgumentError("SubscribeRequest: the first request must carry start");
    }
    credit_ += request_.credit();
    for (v1::Settle& settle : *request_.mutable_settles()) {
      auto it = held_.find(settle.delivery_id());
      if (it == held_.end()) {
        return InvalidArgumentError("Settle.delivery_id " + std::to_string(settle.delivery_id()) +
                                    ": no such delivery is waiting on this stream (never "
                                    "delivered, or settled already)");
      }
      core::Verdict verdict;
      switch (settle.outcome()) {
        case v1::Settle::ACK:
          verdict.kind = core::Verdict::Kind::kAck;
          break;
        case v1::Settle::RETRY:
          verdict.kind = core::Verdict::Kind::kRetry;
          if (settle.retry_delay_ms() > 0) {
            verdict.retry_delay = std::chrono::milliseconds(settle.retry_delay_ms());
          }
          break;
        case v1::Settle::DEAD_LETTER:
          verdict.kind = core::Verdict::Kind::kDeadLetter;
          break;
        default:
          return InvalidArgumentError("Settle.outcome " + std::to_string(settle.outcome()) +
                                      " of delivery " + std::to_string(settle.delivery_id()) +
                                      " is not ACK, RETRY or DEAD_LETTER");
      }
      verdict.reason = settle.reason().empty() && verdict.kind != core::Verdict::Kind::kAck
                           ? "settled by the client without a reason"
                           : std::move(*settle.mutable_reason());
      settled.emplace_back(std::move(it->second), std::move(verdict));
      held_.erase(it);
      --in_flight_;
    }
    request_.Clear();
    return OkStatus();
  }

  void StartSubscription() {
    auto self = shared_from_this();
    const bool queued = service_.RunBlocking([self] {
      auto options = FromProto(self->start_);
      Result<std::shared_ptr<core::RoutedSubscription>> subscription =
          options.ok() ? self->Subscribe(*options) : options.status();
      self->Subscribed(std::move(subscription));
    });
    if (!queued) {
      Subscribed(UnavailableError("msgsdk-sidecar is shutting down"));
    }
  }

  Result<std::shared_ptr<core::RoutedSubscription>> Subscribe(SubscribeOptions options) {
    options.max_inflight = service_.options().max_inflight_per_stream;
    // The handler only queues a delivery for the stream, so one thread keeps up, and the
    // stream then carries each partition's deliveries in order. The client's own
    // consumer_threads decide how many of its handlers run at once.
    options.consumer_threads = 1;
    std::weak_ptr<SubscribeStream> weak = shared_from_this();
    return service_.engine().Subscribe(
        start_.topic(), start_.group(),
        core::AsyncHandler([weak](const Message& message, core::Settlement settlement) {
          // A stream that is gone hands the delivery back; its subscription is closing.
          if (auto stream = weak.lock()) {
            stream->Offer(message, std::move(settlement));
          } else {
            settlement.Settle({.kind = core::Verdict::Kind::kRelease});
          }
        }),
        options);
  }

  void Subscribed(Result<std::shared_ptr<core::RoutedSubscription>> subscription) {
    std::vector<core::Settlement> released;
    bool close_now = false;
    {
      std::lock_guard lock(mutex_);
      if (!subscription.ok()) {
        state_ = SubscriptionState::kClosed;
        if (finished_) {
          SendDeferredStatusLocked();
        } else {
          FinishLocked(ToGrpc(subscription.status()), released);
        }
      } else {
        subscription_ = std::move(subscription).value();
        if (finished_) {
          state_ = SubscriptionState::kClosing;
          close_now = true;
        } else {
          state_ = SubscriptionState::kOpen;
          started_.mutable_started()->set_cluster(subscription_->cluster());
          WriteMoreLocked();
        }
      }
    }
    Release(released);
    if (close_now) CloseSubscription();
    if (!subscription.ok()) service_.StreamClosed(this);
  }

  // From the subscription's handler threads. The delivery is encoded into a spare one, whose
  // strings keep their buffers from message to message: made and freed on the gRPC thread
  // that wrote them, each message's strings took glibc malloc's slow path on both threads.
  void Offer(const Message& message, core::Settlement settlement) {
    std::unique_lock lock(mutex_);
    if (finished_) {
      lock.unlock();
      settlement.Settle({.kind = core::Verdict::Kind::kRelease});
      return;
    }
    std::unique_ptr<v1::Delivery> delivery;
    if (spare_deliveries_.empty()) {
      delivery = std::make_unique<v1::Delivery>();
    } else {
      delivery = std::move(spare_deliveries_.back());
      spare_deliveries_.pop_back();
    }
    ToProto(message, delivery->mutable_message());
    delivery->set_delivery_id(++next_delivery_id_);
    unsent_.push_back(Unsent{.delivery = std::move(delivery), .settlement = std::move(settlement)});
    WriteMoreLocked();
  }

  // The deliveries of the last response, written, become spare (at most a few batches' worth).
  void RecycleResponseLocked() {
    auto& written = *response_.mutable_deliveries();
    const size_t keep = 4 * static_cast<size_t>(service_.options().max_batch);
    while (!written.empty()) {
      std::unique_ptr<v1::Delivery> delivery(written.ReleaseLast());
      if (spare_deliveries_.size() >= keep) continue;
      delivery->Clear();
      spare_deliveries_.push_back(std::move(delivery));
    }
  }

  void WriteMoreLocked() {
    if (writing_ || finished_ || state_ != SubscriptionState::kOpen) return;
    RecycleResponseLocked();
    response_.Clear();
    if (started_.has_started()) {
      response_.Swap(&started_);
    }
    int batch = 0;
    while (!unsent_.empty() && in_flight_ < credit_ && batch < service_.options().max_batch) {
      Unsent& next = unsent_.front();
      held_.emplace(next.delivery->delivery_id(), std::move(next.settlement));
      response_.mutable_deliveries()->AddAllocated(next.delivery.release());
      unsent_.pop_front();
      ++in_flight_;
      ++batch;
    }
    if (!response_.has_started() && response_.deliveries_size() == 0) return;
    writing_ = true;
    StartWrite(&response_);
  }

  // Ends the stream once: what it holds goes back (the settlements land in `released`, released
  // by the caller after the lock), and the subscription closes off the gRPC thread. With
  // `after_close`, the status is sent once the subscription is closed.
  void FinishLocked(grpc::Status status, std::vector<core::Settlement>& released,
                    bool after_close = false) {
    if (finished_) return;
    finished_ = true;
    for (auto& [id, settlement] : held_) released.push_back(std::move(settlement));
    held_.clear();
    for (auto& unsent : unsent_) released.push_back(std::move(unsent.settlement));
    unsent_.clear();
    if (after_close &&
        (state_ == SubscriptionState::kOpen || state_ == SubscriptionState::kStarting)) {
      deferred_status_ = std::move(status);
      status_deferred_ = true;
    } else {
      SendStatusLocked(std::move(status));
    }
    switch (state_) {
      case SubscriptionState::kNone:
        state_ = SubscriptionState::kClosed;
        closed_without_subscription_ = true;
        break;
      case SubscriptionState::kOpen: {
        state_ = SubscriptionState::kClosing;
        auto self = shared_from_this();
        if (!service_.RunBlocking([self] { self->CloseSubscription(); })) {
          // The pool is gone only after every stream reported closed; never reached.
          state_ = SubscriptionState::kClosed;
        }
        break;
      }
      default:
        break;  // kStarting closes when Subscribed sees finished_
    }
    if (closed_without_subscription_) {
      closed_without_subscription_ = false;
      ReportClosedLater();
    }
  }

  // Finish, or after the write in progress (gRPC allows one operation of each kind at a time).
  void SendStatusLocked(grpc::Status status) {
    if (writing_) {
      finish_pending_ = true;
      finish_status_ = std::move(status);
    } else {
      Finish(std::move(status));
    }
  }

  void SendDeferredStatusLocked() {
    if (!status_deferred_) return;
    status_deferred_ = false;
    SendStatusLocked(std::move(deferred_status_));
  }

  // StreamClosed takes the service's lock: not under ours.
  void ReportClosedLater() {
    auto self = shared_from_this();
    if (!service_.RunBlocking([self] { self->service_.StreamClosed(self.get()); })) return;
  }

  void CloseSubscription() {
    std::shared_ptr<core::RoutedSubscription> subscription;
    {
      std::lock_guard lock(mutex_);
      subscription = subscription_;
    }
    if (subscription) subscription->Close().IgnoreError();
    {
      std::lock_guard lock(mutex_);
      state_ = SubscriptionState::kClosed;
      subscription_.reset();
      SendDeferredStatusLocked();
    }
    service_.StreamClosed(this);
  }

  MessagingService& service_;
  std::shared_ptr<SubscribeStream> self_;
  v1::SubscribeRequest request_;  // the read in progress; only the reactor touches it

  std::mutex mutex_;
  v1::Start start_;
  SubscriptionState state_ = SubscriptionState::kNone;
  std::shared_ptr<core::RoutedSubscription> subscription_;
  bool finished_ = false;
  bool finish_pending_ = false;
  bool status_deferred_ = false;
  grpc::Status deferred_status_;
  bool closed_without_subscription_ = false;
  grpc::Status finish_status_;
  bool writing_ = false;
  v1::SubscribeResponse response_;  // the write in progress
  v1::SubscribeResponse started_;   // the Started answer, until it is written
  uint64_t credit_ = 0;             // granted so far
  uint64_t in_flight_ = 0;          // sent, not settled
  uint64_t next_delivery_id_ = 0;
  std::deque<Unsent> unsent_;
  std::vector<std::unique_ptr<v1::Delivery>> spare_deliveries_;
  std::unordered_map<uint64_t, core::Settlement> held_;
};

namespace {

// A stream refused before it started (the sidecar is shutting down).
class RefusedStream final
    : public grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse> {
 public:
  explicit RefusedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One Publish call: the request parsed on the call's arena, each message's outcome in its own
// slot as the core answers it, and the answer encoded in one go when the last is in.
class PublishCall {
 public:
  PublishCall(MessagingService& service, grpc::ServerUnaryReactor* reactor,
              grpc::ByteBuffer* response)
      : service_(service),
        reactor_(reactor),
        response_(response),
        arena_(ArenaOptions()),
        request_(google::protobuf::Arena::CreateMessage<v1::PublishRequest>(&arena_)) {}

  // False if the bytes are no PublishRequest.
  bool Parse(const grpc::ByteBuffer& bytes) {
    grpc::ByteBuffer copy(bytes);  // shares the slices; the reader needs a mutable buffer
    grpc::ProtoBufferReader reader(&copy);
    return request_->ParseFromZeroCopyStream(&reader);
  }

  v1::PublishRequest& request() { return *request_; }
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

  // Every message of the request, each with its own slot for the outcome.
  void SendAll(core::ProducerCore& producer) {
    const int count = request_->messages_size();
    outcomes_.resize(static_cast<size_t>(count));
    remaining_.store(count, std::memory_order_relaxed);
    for (int i = 0; i < count; ++i) {
      // Two words of capture: the callback is kept inline, not allocated.
      producer.SendAsync(FromProto(std::move(*request_->mutable_messages(i))),
                         [this, i](const Result<SendReceipt>& receipt) { Answered(i, receipt); });
    }
  }

  // Answers an empty request at once.
  void AnswerEmpty() { Answer(); }

 private:
  static google::protobuf::ArenaOptions ArenaOptions() {
    google::protobuf::ArenaOptions options;
    // A full batch of small messages takes a few hundred KiB: grow in large blocks.
    options.start_block_size = 16 << 10;
    options.max_block_size = 256 << 10;
    return options;
  }

  // On the core's callback threads. The last answer sends the response and frees the call.
  void Answered(int i, const Result<SendReceipt>& receipt) {
    outcomes_[static_cast<size_t>(i)].emplace(receipt);
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) Answer();
  }

  void Answer() {
    std::string bytes;
    bytes.reserve(outcomes_.size() * kResultBytesGuess);
    v1::PublishResult result;  // reused: keeps its string buffers from one result to the next
    for (const auto& outcome : outcomes_) {
      result.Clear();
      ToProto(*outcome, &result);
      AppendField(v1::PublishResponse::kResultsFieldNumber, result, bytes);
    }
    *response_ = ToByteBuffer(std::move(bytes));
    service_.FinishCall(reactor_, grpc::Status::OK);
    delete this;
  }

  // An OK result: a 32-character id, a short cluster name, partition and offset.
  static constexpr size_t kResultBytesGuess = 64;

  MessagingService& service_;
  grpc::ServerUnaryReactor* const reactor_;
  grpc::ByteBuffer* const response_;
  google::protobuf::Arena arena_;
  v1::PublishRequest* const request_;
  std::vector<std::optional<Result<SendReceipt>>> outcomes_;
  std::atomic<int> remaining_{0};
};

MessagingService::MessagingService(std::shared_ptr<core::Engine> engine, ServiceOptions options)
    : engine_(std::move(engine)),
      options_(options),
      blocking_("msgsdk-sidecar", options.blocking_threads) {}

MessagingService::~MessagingService() {
  Drain(std::chrono::steady_clock::now());
  blocking_.Shutdown();
}

Result<std::shared_ptr<core::ProducerCore>> MessagingService::ProducerFor(
    const std::string& topic) {
  {
    std::lock_guard lock(producers_mutex_);
    auto it = producers_.find(topic);
    if (it != producers_.end()) return it->second;
  }
  MSGSDK_ASSIGN_OR_RETURN(auto producer, engine_->CreateProducer(topic, ProducerOptions{}));
  std::lock_guard lock(producers_mutex_);
  // Another call may have made one meanwhile: keep the first, the new one closes unused.
  return producers_.emplace(topic, std::move(producer)).first->second;
}

bool MessagingService::BeginCall() {
  std::lock_guard lock(streams_mutex_);
  if (draining_) return false;
  ++calls_in_flight_;
  return true;
}

void MessagingService::FinishCall(grpc::ServerUnaryReactor* reactor, const grpc::Status& status) {
  reactor->Finish(status);
  std::lock_guard lock(streams_mutex_);
  if (--calls_in_flight_ == 0) streams_closed_.notify_all();
}

namespace {

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE, "msgsdk-sidecar is shutting down");

}  // namespace

grpc::ServerUnaryReactor* MessagingService::Publish(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  auto call = std::make_unique<PublishCall>(*this, reactor, response);
  if (!call->Parse(*request)) {
    FinishCall(reactor, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     "Publish: the request is not a msgsdk.v1.PublishRequest"));
    return reactor;
  }
  std::shared_ptr<core::ProducerCore> producer;
  {
    std::lock_guard lock(producers_mutex_);
    auto it = producers_.find(call->request().topic());
    if (it != producers_.end()) producer = it->second;
  }
  if (producer) {
    SendAll(std::move(producer), std::move(call));
    return reactor;
  }
  // The first send to a topic resolves its route and may connect a backend: not on this thread.
  PublishCall* waiting = call.release();
  if (!RunBlocking([this, waiting] {
        std::unique_ptr<PublishCall> call(waiting);
        auto created = ProducerFor(call->request().topic());
        if (!created.ok()) {
          FinishCall(call->reactor(), ToGrpc(created.status().WithContext("Publish")));
          return;
        }
        SendAll(std::move(created).value(), std::move(call));
      })) {
    delete waiting;
    FinishCall(reactor, kShuttingDown);
  }
  return reactor;
}

void MessagingService::SendAll(std::shared_ptr<core::ProducerCore> producer,
                               std::unique_ptr<PublishCall> call) {
  // From here the call frees itself once it answered.
  PublishCall* sending = call.release();
  if (sending->request().messages_size() == 0) {
    sending->AnswerEmpty();
    return;
  }
  sending->SendAll(*producer);
}

grpc::ServerUnaryReactor* MessagingService::GetRoute(grpc::CallbackServerContext* context,
                                                     const v1::GetRouteRequest* request,
                                                     v1::GetRouteResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  if (!RunBlocking([this, request, response, reactor] {
        auto route = engine_->Describe(request->topic());
        if (!route.ok()) {
          FinishCall(reactor, ToGrpc(route.status()));
          return;
        }
        ToProto(*route, response);
        FinishCall(reactor, grpc::Status::OK);
      })) {
    FinishCall(reactor, kShuttingDown);
  }
  return reactor;
}

grpc::ServerUnaryReactor* MessagingService::ResetOffsets(grpc::CallbackServerContext* context,
                                                         const v1::ResetOffsetsRequest* request,
                                                         v1::ResetOffsetsResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!BeginCall()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  if (!RunBlocking([this, request, reactor] {
        auto target = FromProto(*request);
        const Status status =
            target.ok() ? engine_->ResetOffsets(request->topic(), request->group(), *target)
                        : target.status();
        FinishCall(reactor, ToGrpc(status));
      })) {
    FinishCall(reactor, kShuttingDown);
  }
  return reactor;
}

grpc::ServerUnaryReactor* MessagingService::GetInfo(grpc::CallbackServerContext* context,
                                                    const v1::GetInfoRequest* /*request*/,
                                                    v1::GetInfoResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  response->set_environment(engine_->environment());
  response->set_client_id(engine_->client_id());
  ToProto(engine_->Routing(), response->mutable_routing());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>* MessagingService::Subscribe(
    grpc::CallbackServerContext* /*context*/) {
  auto stream = std::make_shared<SubscribeStream>(*this);
  {
    std::lock_guard lock(streams_mutex_);
    if (draining_) {
      return new RefusedStream(kShuttingDown);
    }
    streams_.insert(stream);
  }
  stream->Begin();
  return stream.get();
}

void MessagingService::StreamClosed(SubscribeStream* stream) {
  std::shared_ptr<SubscribeStream> last;  // released after the lock
  std::lock_guard lock(streams_mutex_);
  for (auto it = streams_.begin(); it != streams_.end(); ++it) {
    if (it->get() == stream) {
      last = *it;
      streams_.erase(it);
      break;
    }
  }
  streams_closed_.notify_all();
}

void MessagingService::Drain(std::chrono::steady_clock::time_point deadline) {
  std::vector<std::shared_ptr<SubscribeStream>> open;
  {
    std::lock_guard lock(streams_mutex_);
    draining_ = true;
    open.assign(streams_.begin(), streams_.end());
  }
  for (auto& stream : open) stream->End(UnavailableError("msgsdk-sidecar is shutting down"));
  open.clear();
  std::unique_lock lock(streams_mutex_);
  streams_closed_.wait_until(lock, deadline,
                             [this] { return streams_.empty() && calls_in_flight_ == 0; });
}

}  // namespace msgsdk::sidecar
