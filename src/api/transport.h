#pragma once

// What the public handles talk to: the core in this process, or msgsdk-sidecar over gRPC.
// The handles (client.cc) check for moved-from handles and catch exceptions; a transport
// implements the operations themselves, with the public API's contracts.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "msgsdk/client.h"

namespace msgsdk::core {
class Engine;
}  // namespace msgsdk::core

namespace msgsdk::internal {

class ProducerTransport {
 public:
  virtual ~ProducerTransport() = default;
  virtual Result<SendReceipt> Send(Message&& message) = 0;
  virtual void SendAsync(Message&& message, SendCallback&& callback) = 0;
  virtual Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages) = 0;
  virtual Status Close() = 0;
  virtual const std::string& topic() const = 0;
};

class SubscriptionTransport {
 public:
  virtual ~SubscriptionTransport() = default;
  virtual Status Close() = 0;
  virtual const std::string& topic() const = 0;
  virtual const std::string& group() const = 0;
};

class ClientTransport {
 public:
  virtual ~ClientTransport() = default;
  virtual Result<std::shared_ptr<ProducerTransport>> CreateProducer(
      std::string_view topic, const ProducerOptions& options) = 0;
  virtual Result<std::shared_ptr<SubscriptionTransport>> Subscribe(
      std::string_view topic, std::string_view group, MessageHandler handler,
      const SubscribeOptions& options) = 0;
  virtual Result<TopicRoute> Describe(std::string_view topic) = 0;
  virtual Status ResetOffsets(std::string_view topic, std::string_view group,
                              const ResetTarget& target) = 0;
  virtual const std::string& environment() const = 0;
  virtual Result<RoutingState> Routing() = 0;
  virtual Status Close() = 0;
};

// The transport `options` ask for: msgsdk-sidecar when ClientOptions::sidecar or MSGSDK_SIDECAR
// names one, the core in this process otherwise (its routing table from the routing service
// ClientOptions::routing_service or MSGSDK_ROUTING_SERVICE names, if any).
Result<std::shared_ptr<ClientTransport>> Connect(ClientOptions options);

// The core in this process, with every backend compiled in.
Result<std::shared_ptr<ClientTransport>> ConnectInProcess(ClientOptions options);
// The core in this process, over an engine made elsewhere (one that follows a routing service).
std::shared_ptr<ClientTransport> ConnectInProcess(std::shared_ptr<core::Engine> engine);

}  // namespace msgsdk::internal
