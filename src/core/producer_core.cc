#include "core/producer_core.h"

#include <optional>
#include <utility>

#include "core/async_send.h"
#include "core/engine.h"
#include "core/message_id.h"

namespace msgsdk::core {

ProducerCore::ProducerCore(std::shared_ptr<Engine> engine, std::string topic, std::string cluster,
                           Capabilities capabilities, std::unique_ptr<BackendProducer> backend,
                           std::chrono::milliseconds send_timeout)
    : engine_(std::move(engine)),
      shared_(std::make_shared<SendCounter>(std::move(topic), std::move(cluster))),
      capabilities_(std::move(capabilities)),
      backend_(std::move(backend)),
      send_timeout_(send_timeout),
      max_message_bytes_(engine_->settings().max_message_bytes) {}

ProducerCore::~ProducerCore() { Close().IgnoreError(); }

Status ProducerCore::Prepare(Message& message) const {
  const std::string& topic = shared_->topic;
  if (message.body.empty()) {
    return InvalidArgumentError("message to topic '" + topic + "' has an empty body");
  }
  size_t size = message.body.size() + message.key.size() + message.tag.size();
  for (const auto& [name, value] : message.properties) size += name.size() + value.size();
  if (static_cast<int64_t>(size) > max_message_bytes_) {
    return InvalidArgumentError("message to topic '" + topic + "' is " + std::to_string(size) +
                                " bytes (body, key, tag and properties); the limit is " +
                                std::to_string(max_message_bytes_) +
                                " (client.max_message_bytes)");
  }
  for (const char c : message.tag) {
    if (c == ' ' || c == '\t' || c == '|' || c == '*') {
      return InvalidArgumentError("message to topic '" + topic + "': tag '" + message.tag +
                                  "' must be one word without spaces, '|' or '*'");
    }
  }
  if (message.deliver_at && !capabilities_.timer_messages) {
    return UnsupportedError("message to topic '" + topic + "' has deliver_at, but cluster '" +
                            shared_->cluster + "' (backend " + capabilities_.backend +
                            ") does not support timer messages");
  }
  message.topic = topic;
  message.born_at = std::chrono::system_clock::now();
  message.message_id = NewMessageId(message.born_at);
  return OkStatus();
}

bool ProducerCore::BeginSends(int64_t count) {
  shared_->in_flight.fetch_add(count);
  if (!shared_->closed.load()) return true;
  if (shared_->in_flight.fetch_sub(count) == count) {
    std::lock_guard lock(shared_->mutex);
    shared_->drained.notify_all();
  }
  return false;
}

Status ProducerCore::ClosedError() const {
  return FailedPreconditionError("producer of topic '" + shared_->topic + "' is closed");
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

void AsyncSend::Complete(Result<StoredPosition> stored) {
  if (!callback_) {
    counter_->EndSend();
    delete this;
    return;
  }
  stored_.emplace(std::move(stored));
  engine_.PostCallback(this);
}

void AsyncSend::Fail(Status status) {
  if (!callback_) {
    delete this;
    return;
  }
  stored_.emplace(std::move(status));
  engine_.PostCallback(this);
}

void AsyncSend::RunCallback() {
  const Result<SendReceipt> result =
      counter_ ? ToReceipt(std::move(*stored_), std::string(message_id_.data(), message_id_.size()),
                           *counter_)
               : Result<SendReceipt>(stored_->status());
  // A throwing callback must not take the pool thread down with it.
  try {
    callback_(result);
  } catch (...) {
  }
  if (counter_) counter_->EndSend();
}

Result<SendReceipt> ProducerCore::Send(Message&& message) {
  MSGSDK_RETURN_IF_ERROR(Prepare(message));
  if (!BeginSends(1)) return ClosedError();
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Result<StoredPosition>> stored;
  };
  auto waiter = std::make_shared<Waiter>();
  backend_->Send(message, [waiter, shared = shared_](Result<StoredPosition> stored) {
    {
      std::lock_guard lock(waiter->mutex);
      waiter->stored.emplace(std::move(stored));
      waiter->done.notify_one();
    }
    shared->EndSend();
  });
  std::unique_lock lock(waiter->mutex);
  if (!waiter->done.wait_for(lock, send_timeout_, [&] { return waiter->stored.has_value(); })) {
    return DeadlineExceededError("send to topic '" + shared_->topic + "' on cluster '" +
                                 shared_->cluster + "' was not acknowledged within " +
                                 std::to_string(send_timeout_.count()) + " ms");
  }
  return ToReceipt(std::move(*waiter->stored), std::move(message.message_id), *shared_);
}

void ProducerCore::SendAsync(Message&& message, SendCallback callback) {
  Status status = Prepare(message);
  if (!status.ok()) {
    (new AsyncSend(*engine_, nullptr, std::move(callback), {}))->Fail(std::move(status));
    return;
  }
  if (!BeginSends(1)) {
    (new AsyncSend(*engine_, nullptr, std::move(callback), {}))->Fail(ClosedError());
    return;
  }
  // The engine outlives every send: it closes its producers (which wait for their sends and
  // callbacks) before it goes away.
  auto* send = new AsyncSend(*engine_, shared_, std::move(callback), message.message_id);
  backend_->Send(message, SendDone(send));
}

Result<std::vector<SendReceipt>> ProducerCore::SendBatch(std::vector<Message> messages) {
  for (auto& message : messages) MSGSDK_RETURN_IF_ERROR(Prepare(message));
  if (messages.empty()) return std::vector<SendReceipt>();
  if (!BeginSends(static_cast<int64_t>(messages.size()))) return ClosedError();
  struct Batch {
    std::mutex mutex;
    std::condition_variable done;
    size_t remaining;
    std::vector<std::optional<Result<StoredPosition>>> stored;
  };
  auto batch = std::make_shared<Batch>();
  batch->remaining = messages.size();
  batch->stored.resize(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    backend_->Send(messages[i], [batch, i, shared = shared_](Result<StoredPosition> stored) {
      {
        std::lock_guard lock(batch->mutex);
        batch->stored[i].emplace(std::move(stored));
        if (--batch->remaining == 0) batch->done.notify_one();
      }
      shared->EndSend();
    });
  }
  std::unique_lock lock(batch->mutex);
  if (!batch->done.wait_for(lock, send_timeout_, [&] { return batch->remaining == 0; })) {
    return DeadlineExceededError("batch of " + std::to_string(messages.size()) +
                                 " messages to topic '" + shared_->topic + "' on cluster '" +
                                 shared_->cluster + "' was not acknowledged within " +
                                 std::to_string(send_timeout_.count()) + " ms");
  }
  std::vector<SendReceipt> receipts;
  receipts.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    MSGSDK_ASSIGN_OR_RETURN(
        SendReceipt receipt,
        ToReceipt(std::move(*batch->stored[i]), std::move(messages[i].message_id), *shared_));
    receipts.push_back(std::move(receipt));
  }
  return receipts;
}

Status ProducerCore::Close() {
  if (shared_->closed.exchange(true)) return OkStatus();
  const auto deadline = std::chrono::steady_clock::now() + send_timeout_;
  // A callback closing its own producer must not wait for itself.
  const bool on_callback_thread = engine_->OnCallbackThread();
  auto drained = [this] { return shared_->in_flight.load() == 0; };
  if (!on_callback_thread) {
    std::unique_lock lock(shared_->mutex);
    shared_->drained.wait_until(lock, deadline, drained);
  }
  // The backend completes or fails whatever is still pending by the deadline.
  Status status = backend_->Close(deadline);
  if (!on_callback_thread) {
    std::unique_lock lock(shared_->mutex);
    shared_->drained.wait(lock, drained);
  }
  return status;
}

}  // namespace msgsdk::core
