#include "core/producer_core.h"

#include <utility>

#include "core/engine.h"
#include "core/message_id.h"

namespace msgsdk::core {

ProducerCore::ProducerCore(std::shared_ptr<Engine> engine, std::string topic, std::string cluster,
                           Capabilities capabilities, std::unique_ptr<BackendProducer> backend,
                           std::chrono::milliseconds send_timeout)
    : engine_(std::move(engine)),
      topic_(std::move(topic)),
      cluster_(std::move(cluster)),
      capabilities_(std::move(capabilities)),
      backend_(std::move(backend)),
      send_timeout_(send_timeout),
      max_message_bytes_(engine_->settings().max_message_bytes) {}

Status ProducerCore::Prepare(Message& message) const {
  size_t size = message.body.size() + message.key.size() + message.tag.size();
  for (const auto& [name, value] : message.properties) size += name.size() + value.size();
  if (message.body.empty()) {
    return InvalidArgumentError("message to topic '" + topic_ + "' has an empty body");
  }
  if (static_cast<int64_t>(size) > max_message_bytes_) {
    return InvalidArgumentError("message to topic '" + topic_ + "' is " + std::to_string(size) +
                                " bytes (body, key, tag and properties); the limit is " +
                                std::to_string(max_message_bytes_) +
                                " (client.max_message_bytes)");
  }
  for (const char c : message.tag) {
    if (c == ' ' || c == '\t' || c == '|' || c == '*') {
      return InvalidArgumentError("message to topic '" + topic_ + "': tag '" + message.tag +
                                  "' must be one word without spaces, '|' or '*'");
    }
  }
  if (message.deliver_at && !capabilities_.timer_messages) {
    return UnsupportedError("message to topic '" + topic_ + "' has deliver_at, but cluster '" +
                            cluster_ + "' (backend " + capabilities_.backend +
                            ") does not support timer messages");
  }
  message.topic = topic_;
  message.born_at = std::chrono::system_clock::now();
  message.message_id = NewMessageId(message.born_at);
  return OkStatus();
}

void ProducerCore::Submit(Message message, std::function<void(Result<SendReceipt>)> done) {
  std::string id = message.message_id;
  backend_->Send(std::move(message), [this, self = shared_from_this(), id = std::move(id),
                                      done = std::move(done)](Result<StoredPosition> stored) {
    if (stored.ok()) {
      done(SendReceipt{.message_id = id,
                       .cluster = cluster_,
                       .partition = stored->partition,
                       .offset = stored->offset});
    } else {
      done(stored.status().WithContext("send to topic '" + topic_ + "' on cluster '" + cluster_ +
                                       "'"));
    }
    EndSend();
  });
}

bool ProducerCore::BeginSends(int64_t count) {
  in_flight_.fetch_add(count);
  if (!closed_.load()) return true;
  if (in_flight_.fetch_sub(count) == count) {
    std::lock_guard lock(mutex_);
    drained_.notify_all();
  }
  return false;
}

void ProducerCore::EndSend() {
  if (in_flight_.fetch_sub(1) == 1 && closed_.load()) {
    std::lock_guard lock(mutex_);
    drained_.notify_all();
  }
}

Status ProducerCore::ClosedError() const {
  return FailedPreconditionError("producer of topic '" + topic_ + "' is closed");
}

Result<SendReceipt> ProducerCore::Send(Message message) {
  MSGSDK_RETURN_IF_ERROR(Prepare(message));
  if (!BeginSends(1)) return ClosedError();
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Result<SendReceipt>> result;
  };
  auto waiter = std::make_shared<Waiter>();
  Submit(std::move(message), [waiter](Result<SendReceipt> result) {
    std::lock_guard lock(waiter->mutex);
    waiter->result.emplace(std::move(result));
    waiter->done.notify_one();
  });
  std::unique_lock lock(waiter->mutex);
  if (!waiter->done.wait_for(lock, send_timeout_, [&] { return waiter->result.has_value(); })) {
    return DeadlineExceededError("send to topic '" + topic_ + "' on cluster '" + cluster_ +
                                 "' was not acknowledged within " +
                                 std::to_string(send_timeout_.count()) + " ms");
  }
  return std::move(*waiter->result);
}

void ProducerCore::SendAsync(Message message, SendCallback callback) {
  Status status = Prepare(message);
  if (status.ok() && !BeginSends(1)) status = ClosedError();
  if (!status.ok()) {
    if (callback) engine_->CompleteSend(std::move(callback), std::move(status));
    return;
  }
  if (!callback) {
    Submit(std::move(message), [](Result<SendReceipt>) {});
    return;
  }
  Submit(std::move(message), [engine = engine_.get(), callback = std::move(callback)](
                                 Result<SendReceipt> result) mutable {
    engine->CompleteSend(std::move(callback), std::move(result));
  });
}

Result<std::vector<SendReceipt>> ProducerCore::SendBatch(std::vector<Message> messages) {
  for (auto& message : messages) MSGSDK_RETURN_IF_ERROR(Prepare(message));
  if (messages.empty()) return std::vector<SendReceipt>();
  if (!BeginSends(static_cast<int64_t>(messages.size()))) return ClosedError();
  struct Batch {
    std::mutex mutex;
    std::condition_variable done;
    size_t remaining;
    std::vector<std::optional<Result<SendReceipt>>> results;
  };
  auto batch = std::make_shared<Batch>();
  batch->remaining = messages.size();
  batch->results.resize(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    Submit(std::move(messages[i]), [batch, i](Result<SendReceipt> result) {
      std::lock_guard lock(batch->mutex);
      batch->results[i].emplace(std::move(result));
      if (--batch->remaining == 0) batch->done.notify_one();
    });
  }
  std::unique_lock lock(batch->mutex);
  if (!batch->done.wait_for(lock, send_timeout_, [&] { return batch->remaining == 0; })) {
    return DeadlineExceededError("batch of " + std::to_string(batch->results.size()) +
                                 " messages to topic '" + topic_ + "' on cluster '" + cluster_ +
                                 "' was not acknowledged within " +
                                 std::to_string(send_timeout_.count()) + " ms");
  }
  std::vector<SendReceipt> receipts;
  receipts.reserve(batch->results.size());
  for (auto& result : batch->results) {
    if (!result->ok()) return result->status();
    receipts.push_back(std::move(**result));
  }
  return receipts;
}

Status ProducerCore::Close() {
  if (closed_.exchange(true)) return OkStatus();
  const auto deadline = std::chrono::steady_clock::now() + send_timeout_;
  {
    std::unique_lock lock(mutex_);
    drained_.wait_until(lock, deadline, [this] { return in_flight_.load() == 0; });
  }
  return backend_->Close(deadline);
}

}  // namespace msgsdk::core
