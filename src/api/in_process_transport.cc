// The in-process transport: the public handles over the core, one virtual call away.

#include <utility>

#include "api/default_registry.h"
#include "api/transport.h"
#include "core/engine.h"
#include "core/producer_core.h"
#include "core/subscription_core.h"

namespace msgsdk::internal {
namespace {

class InProcessProducer final : public ProducerTransport {
 public:
  explicit InProcessProducer(std::shared_ptr<core::ProducerCore> core) : core_(std::move(core)) {}
  Result<SendReceipt> Send(Message&& message) override { return core_->Send(std::move(message)); }
  void SendAsync(Message&& message, SendCallback&& callback) override {
    core_->SendAsync(std::move(message), std::move(callback));
  }
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages) override {
    return core_->SendBatch(std::move(messages));
  }
  Status Close() override { return core_->Close(); }
  const std::string& topic() const override { return core_->topic(); }

 private:
  const std::shared_ptr<core::ProducerCore> core_;
};

class InProcessSubscription final : public SubscriptionTransport {
 public:
  explicit InProcessSubscription(std::shared_ptr<core::RoutedSubscription> subscription)
      : subscription_(std::move(subscription)) {}
  Status Close() override { return subscription_->Close(); }
  const std::string& topic() const override { return subscription_->topic(); }
  const std::string& group() const override { return subscription_->group(); }

 private:
  const std::shared_ptr<core::RoutedSubscription> subscription_;
};

class InProcessClient final : public ClientTransport {
 public:
  explicit InProcessClient(std::shared_ptr<core::Engine> engine) : engine_(std::move(engine)) {}
  Result<std::shared_ptr<ProducerTransport>> CreateProducer(
      std::string_view topic, const ProducerOptions& options) override {
    MSGSDK_ASSIGN_OR_RETURN(auto core, engine_->CreateProducer(topic, options));
    return std::shared_ptr<ProducerTransport>(std::make_shared<InProcessProducer>(std::move(core)));
  }
  Result<std::shared_ptr<SubscriptionTransport>> Subscribe(
      std::string_view topic, std::string_view group, MessageHandler handler,
      const SubscribeOptions& options) override {
    MSGSDK_ASSIGN_OR_RETURN(auto subscription,
                            engine_->Subscribe(topic, group, std::move(handler), options));
    return std::shared_ptr<SubscriptionTransport>(
        std::make_shared<InProcessSubscription>(std::move(subscription)));
  }
  Result<TopicRoute> Describe(std::string_view topic) override { return engine_->Describe(topic); }
  Status ResetOffsets(std::string_view topic, std::string_view group,
                      const ResetTarget& target) override {
    return engine_->ResetOffsets(topic, group, target);
  }
  const std::string& environment() const override { return engine_->environment(); }
  Result<RoutingState> Routing() override { return engine_->Routing(); }
  Status Close() override { return engine_->Close(); }

 private:
  const std::shared_ptr<core::Engine> engine_;
};

}  // namespace

Result<std::shared_ptr<ClientTransport>> ConnectInProcess(ClientOptions options) {
  MSGSDK_ASSIGN_OR_RETURN(auto engine,
                          core::Engine::Create(std::move(options), DefaultBackendRegistry()));
  return ConnectInProcess(std::move(engine));
}

std::shared_ptr<ClientTransport> ConnectInProcess(std::shared_ptr<core::Engine> engine) {
  return std::make_shared<InProcessClient>(std::move(engine));
}

}  // namespace msgsdk::internal
