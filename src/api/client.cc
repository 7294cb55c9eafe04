// The public handles: thin pimpl wrappers over a transport (the core in this process, or
// msgsdk-sidecar). This is one of the two places where exceptions are caught (the other is each
// backend's error mapping): nothing escapes the API.

#include "msgsdk/client.h"

#include <exception>
#include <utility>

#include "api/transport.h"

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
    MSGSDK_ASSIGN_OR_RETURN(auto transport, internal::Connect(std::move(options)));
    return Client(std::move(transport));
  });
}

Client::Client(std::shared_ptr<internal::ClientTransport> transport)
    : transport_(std::move(transport)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (transport_) transport_->Close().IgnoreError();
    transport_ = std::move(other.transport_);
  }
  return *this;
}
Client::~Client() {
  if (transport_) transport_->Close().IgnoreError();
}

Result<Producer> Client::CreateProducer(std::string_view topic, ProducerOptions options) {
  if (!transport_) return ClosedHandle("Client");
  return Guard("Client::CreateProducer", [&]() -> Result<Producer> {
    MSGSDK_ASSIGN_OR_RETURN(auto producer, transport_->CreateProducer(topic, options));
    return Producer(std::move(producer));
  });
}

Result<Subscription> Client::Subscribe(std::string_view topic, std::string_view group,
                                       MessageHandler handler, SubscribeOptions options) {
  if (!transport_) return ClosedHandle("Client");
  return Guard("Client::Subscribe", [&]() -> Result<Subscription> {
    MSGSDK_ASSIGN_OR_RETURN(auto subscription,
                            transport_->Subscribe(topic, group, std::move(handler), options));
    return Subscription(std::move(subscription));
  });
}

Result<TopicRoute> Client::Describe(std::string_view topic) const {
  if (!transport_) return ClosedHandle("Client");
  return Guard("Client::Describe", [&] { return transport_->Describe(topic); });
}

Status Client::ResetOffsets(std::string_view topic, std::string_view group, ResetTarget target) {
  if (!transport_) return ClosedHandle("Client");
  return Guard("Client::ResetOffsets",
               [&] { return transport_->ResetOffsets(topic, group, target); });
}

Result<RoutingState> Client::Routing() const {
  if (!transport_) return ClosedHandle("Client");
  return Guard("Client::Routing", [&] { return transport_->Routing(); });
}

const std::string& Client::environment() const {
  static const std::string kNone;
  return transport_ ? transport_->environment() : kNone;
}

Status Client::Close() {
  if (!transport_) return OkStatus();
  return Guard("Client::Close", [&] { return transport_->Close(); });
}

// ---- Producer ---------------------------------------------------------------------------

Producer::Producer(std::shared_ptr<internal::ProducerTransport> transport)
    : transport_(std::move(transport)) {}
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&& other) noexcept {
  if (this != &other) {
    if (transport_) transport_->Close().IgnoreError();
    transport_ = std::move(other.transport_);
  }
  return *this;
}
Producer::~Producer() {
  if (transport_) transport_->Close().IgnoreError();
}

Result<SendReceipt> Producer::Send(Message message) {
  if (!transport_) return ClosedHandle("Producer");
  return Guard("Producer::Send", [&] { return transport_->Send(std::move(message)); });
}

void Producer::SendAsync(Message message, SendCallback callback) {
  if (!transport_) {
    if (callback) callback(ClosedHandle("Producer"));
    return;
  }
  try {
    transport_->SendAsync(std::move(message), std::move(callback));
  } catch (const std::exception& e) {
    // Only allocation can throw here, before the message was handed on.
    if (callback) callback(InternalError(std::string("Producer::SendAsync: ") + e.what()));
  }
}

Result<std::vector<SendReceipt>> Producer::SendBatch(std::vector<Message> messages) {
  if (!transport_) return ClosedHandle("Producer");
  return Guard("Producer::SendBatch", [&] { return transport_->SendBatch(std::move(messages)); });
}

const std::string& Producer::topic() const {
  static const std::string kNone;
  return transport_ ? transport_->topic() : kNone;
}

Status Producer::Close() {
  if (!transport_) return OkStatus();
  return Guard("Producer::Close", [&] { return transport_->Close(); });
}

// ---- Subscription -----------------------------------------------------------------------

Subscription::Subscription(std::shared_ptr<internal::SubscriptionTransport> transport)
    : transport_(std::move(transport)) {}
Subscription::Subscription(Subscription&&) noexcept = default;
Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (transport_) transport_->Close().IgnoreError();
    transport_ = std::move(other.transport_);
  }
  return *this;
}
Subscription::~Subscription() {
  if (transport_) transport_->Close().IgnoreError();
}

const std::string& Subscription::topic() const {
  static const std::string kNone;
  return transport_ ? transport_->topic() : kNone;
}

const std::string& Subscription::group() const {
  static const std::string kNone;
  return transport_ ? transport_->group() : kNone;
}

Status Subscription::Close() {
  if (!transport_) return OkStatus();
  return Guard("Subscription::Close", [&] { return transport_->Close(); });
}

}  // namespace msgsdk
