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

#include "core/engine.h"
#include "core/executor.h"
#include "core/producer_core.h"
#include "msgsdk/v1/messaging.grpc.pb.h"

namespace msgsdk::sidecar {

class SubscribeStream;
class PublishCall;

struct ServiceOptions {
  // Most deliveries one stream holds before the client has credit for them (unsent) or has
  // settled them (sent): the subscription's max_inflight.
  int max_inflight_per_stream = 2000;
  // Deliveries per SubscribeResponse at most.
  int max_batch = 256;
  // Threads for the blocking work (subscribing, closing subscriptions, first sends to a topic).
  int blocking_threads = 4;
};

// Publish is served raw (bytes in, bytes out): the request is parsed onto an arena of the call,
// whose sends take its strings, and the answer is encoded at once when the last send is
// answered, without building a PublishResponse of thousands of small objects.
using MessagingServiceBase =
    v1::Messaging::WithRawCallbackMethod_Publish<v1::Messaging::CallbackService>;

class MessagingService final : public MessagingServiceBase {
 public:
  MessagingService(std::shared_ptr<core::Engine> engine, ServiceOptions options);
  ~MessagingService() override;

  // A msgsdk.v1.PublishRequest in, a msgsdk.v1.PublishResponse out.
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
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
  // Sends every message of the call (taking their strings) and answers when all are answered.
  void SendAll(std::shared_ptr<core::ProducerCore> producer, std::unique_ptr<PublishCall> call);
  friend class PublishCall;
  // Counts a unary call in (false while draining: it is refused) and out.
  bool BeginCall();
  void FinishCall(grpc::ServerUnaryReactor* reactor, const grpc::Status& status);

  const std::shared_ptr<core::Engine> engine_;
  const ServiceOptions options_;
  core::ThreadPool blocking_;

  std::mutex producers_mutex_;
  std::map<std::string, std::shared_ptr<core::ProducerCore>> producers_;

  std::mutex streams_mutex_;
  std::condition_variable streams_closed_;
  bool draining_ = false;
  std::set<std::shared_ptr<SubscribeStream>> streams_;
  int calls_in_flight_ = 0;  // unary calls not yet finished
};

}  // namespace msgsdk::sidecar
