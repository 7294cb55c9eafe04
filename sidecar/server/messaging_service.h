#pragma once

// The msgsdk.v1.Messaging service: the core behind gRPC. Every RPC uses the callback API and
// never blocks a gRPC thread: sends complete through SendAsync callbacks, deliveries are
// pushed by the subscription core and settled when the client answers, and whatever may block
// (connecting a backend, subscribing, closing a subscription) runs on the service's own pool.

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/message_allocator.h>

#include "core/engine.h"
#include "core/executor.h"
#include "core/producer_core.h"
#include "msgsdk/v1/messaging.grpc.pb.h"

namespace msgsdk::sidecar {

class SubscribeStream;

// Publish's request and response on one protobuf arena per call: a batch of a thousand
// messages is parsed into it and freed at once, instead of in thousands of small allocations.
// The handler takes the request's strings (GetRpcAllocatorState gives it the mutable request).
class PublishArenaAllocator final
    : public grpc::MessageAllocator<v1::PublishRequest, v1::PublishResponse> {
 public:
  grpc::MessageHolder<v1::PublishRequest, v1::PublishResponse>* AllocateMessages() override;
};

struct ServiceOptions {
  // Most deliveries one stream holds before the client has credit for them (unsent) or has
  // settled them (sent): the subscription's max_inflight.
  int max_inflight_per_stream = 2000;
  // Deliveries per SubscribeResponse at most.
  int max_batch = 256;
  // Threads for the blocking work (subscribing, closing subscriptions, first sends to a topic).
  int blocking_threads = 4;
};

class MessagingService final : public v1::Messaging::CallbackService {
 public:
  MessagingService(std::shared_ptr<core::Engine> engine, ServiceOptions options);
  ~MessagingService() override;

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetRoute(grpc::CallbackServerContext* context,
                                     const v1::GetRouteRequest* request,
                                     v1::GetRouteResponse* response) override;
  grpc::ServerUnaryReactor* ResetOffsets(grpc::CallbackServerContext* context,
                                         const v1::ResetOffsetsRequest* request,
                                         v1::ResetOffsetsResponse* response) override;
  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context,
                                    const v1::GetInfoRequest* request,
                                    v1::GetInfoResponse* response) override;

  // Shutting down: refuses new calls, ends every open stream (their unsettled deliveries go
  // back to the cluster) and waits, up to `deadline`, until their subscriptions are closed and
  // every publish in flight is answered.
  void Drain(std::chrono::steady_clock::time_point deadline);

  core::Engine& engine() { return *engine_; }
  const ServiceOptions& options() const { return options_; }
  // Runs blocking work off the gRPC threads. False once draining ended.
  bool RunBlocking(core::Task task) { return blocking_.Submit(std::move(task)); }
  // Streams report their subscription closed (or never opened) here.
  void StreamClosed(SubscribeStream* stream);

 private:
  // The topic's producer, created on first use (cached: one per topic for the service's life).
  Result<std::shared_ptr<core::ProducerCore>> ProducerFor(const std::string& topic);
  // Sends every message of `request` (taking their strings) and answers when all are answered.
  void SendAll(std::shared_ptr<core::ProducerCore> producer, v1::PublishRequest* request,
               v1::PublishResponse* response, grpc::ServerUnaryReactor* reactor);
  // Counts a unary call in (false while draining: it is refused) and out.
  bool BeginCall();
  void FinishCall(grpc::ServerUnaryReactor* reactor, const grpc::Status& status);

  const std::shared_ptr<core::Engine> engine_;
  const ServiceOptions options_;
  core::ThreadPool blocking_;
  PublishArenaAllocator publish_allocator_;

  std::mutex producers_mutex_;
  std::map<std::string, std::shared_ptr<core::ProducerCore>> producers_;

  std::mutex streams_mutex_;
  std::condition_variable streams_closed_;
  bool draining_ = false;
  std::set<std::shared_ptr<SubscribeStream>> streams_;
  int calls_in_flight_ = 0;  // unary calls not yet finished
};

}  // namespace msgsdk::sidecar
