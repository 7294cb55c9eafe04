// The public handles: thin pimpl wrappers over the core. This is one of the two places where
// exceptions are caught (the other is each backend's error mapping): nothing escapes the API.

#include "msgsdk/client.h"

#include <exception>
#include <utility>

#include "api/default_registry.h"
#include "core/engine.h"
#include "core/producer_core.h"
#include "core/subscription_core.h"

namespace msgsdk {
namespace {

Status ClosedHandle(const char* what) {
  return FailedPreconditionError(std::string(what) + " handle is empty (moved from)");
}

// Runs `body`, turning an escaped exception into kInternal.
template <typename Fn>
auto Guard(const char* operation, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(std::string(operation) + ": out of memory");
  } catch (const std::exception& e) {
    return InternalError(std::string(operation) + ": " + e.what());
  }
}

}  // namespace

// ---- Client -----------------------------------------------------------------------------

Result<Client> Client::Create(ClientOptions options) {
  return Guard("Client::Create", [&]() -> Result<Client> {
    MSGSDK_ASSIGN_OR_RETURN(auto engine, core::Engine::Create(std::move(options),
                                                              internal::DefaultBackendRegistry()));
    return Client(std::move(engine));
  });
}

Client::Client(std::shared_ptr<core::Engine> engine) : engine_(std::move(engine)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (engine_) engine_->Close().IgnoreError();
    engine_ = std::move(other.engine_);
  }
  return *this;
}
Client::~Client() {
  if (engine_) engine_->Close().IgnoreError();
}

Result<Producer> Client::CreateProducer(std::string_view topic, ProducerOptions options) {
  if (!engine_) return ClosedHandle("Client");
  return Guard("Client::CreateProducer", [&]() -> Result<Producer> {
    MSGSDK_ASSIGN_OR_RETURN(auto core, engine_->CreateProducer(topic, options));
    return Producer(std::move(core));
  });
}

Result<Subscription> Client::Subscribe(std::string_view topic, std::string_view group,
                                       MessageHandler handler, SubscribeOptions options) {
  if (!engine_) return ClosedHandle("Client");
  return Guard("Client::Subscribe", [&]() -> Result<Subscription> {
    MSGSDK_ASSIGN_OR_RETURN(auto core,
                            engine_->Subscribe(topic, group, std::move(handler), options));
    return Subscription(std::move(core));
  });
}

Result<TopicRoute> Client::Describe(std::string_view topic) const {
  if (!engine_) return ClosedHandle("Client");
  return Guard("Client::Describe", [&] { return engine_->Describe(topic); });
}

Status Client::ResetOffsets(std::string_view topic, std::string_view group, ResetTarget target) {
  if (!engine_) return ClosedHandle("Client");
  return Guard("Client::ResetOffsets",
               [&] { return engine_->ResetOffsets(topic, group, target); });
}

const std::string& Client::environment() const {
  static const std::string kNone;
  return engine_ ? engine_->environment() : kNone;
}

Status Client::Close() {
  if (!engine_) return OkStatus();
  return Guard("Client::Close", [&] { return engine_->Close(); });
}

// ---- Producer ---------------------------------------------------------------------------

Producer::Producer(std::shared_ptr<core::ProducerCore> core) : core_(std::move(core)) {}
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&& other) noexcept {
  if (this != &other) {
    if (core_) core_->Close().IgnoreError();
    core_ = std::move(other.core_);
  }
  return *this;
}
Producer::~Producer() {
  if (core_) core_->Close().IgnoreError();
}

Result<SendReceipt> Producer::Send(Message message) {
  if (!core_) return ClosedHandle("Producer");
  return Guard("Producer::Send", [&] { return core_->Send(std::move(message)); });
}

void Producer::SendAsync(Message message, SendCallback callback) {
  if (!core_) {
    if (callback) callback(ClosedHandle("Producer"));
    return;
  }
  try {
    core_->SendAsync(std::move(message), std::move(callback));
  } catch (const std::exception& e) {
    // Only allocation can throw here, before the message was handed on.
    if (callback) callback(InternalError(std::string("Producer::SendAsync: ") + e.what()));
  }
}

Result<std::vector<SendReceipt>> Producer::SendBatch(std::vector<Message> messages) {
  if (!core_) return ClosedHandle("Producer");
  return Guard("Producer::SendBatch", [&] { return core_->SendBatch(std::move(messages)); });
}

const std::string& Producer::topic() const {
  static const std::string kNone;
  return core_ ? core_->topic() : kNone;
}

Status Producer::Close() {
  if (!core_) return OkStatus();
  return Guard("Producer::Close", [&] { return core_->Close(); });
}

// ---- Subscription -----------------------------------------------------------------------

Subscription::Subscription(std::shared_ptr<core::SubscriptionCore> core)
    : core_(std::move(core)) {}
Subscription::Subscription(Subscription&&) noexcept = default;
Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (core_) core_->Close().IgnoreError();
    core_ = std::move(other.core_);
  }
  return *this;
}
Subscription::~Subscription() {
  if (core_) core_->Close().IgnoreError();
}

const std::string& Subscription::topic() const {
  static const std::string kNone;
  return core_ ? core_->topic() : kNone;
}

const std::string& Subscription::group() const {
  static const std::string kNone;
  return core_ ? core_->group() : kNone;
}

Status Subscription::Close() {
  if (!core_) return OkStatus();
  return Guard("Subscription::Close", [&] { return core_->Close(); });
}

}  // namespace msgsdk
