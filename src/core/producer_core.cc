#include "core/producer_core.h"

#include <optional>
#include <utility>

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

template <typename Done>
void ProducerCore::Submit(Message message, Done done) {
  std::string id = message.message_id;
  backend_->Send(std::move(message), [shared = shared_, id = std::move(id),
                                      done = std::move(done)](Result<StoredPosition> stored) mutable {
    if (stored.ok()) {
      done(Result<SendReceipt>(SendReceipt{.message_id = std::move(id),
                                           .cluster = shared->cluster,
                                           .partition = stored->partition,
                                           .offset = stored->offset}));
    } else {
      done(Result<SendReceipt>(stored.status().WithContext(
          "send to topic '" + shared->topic + "' on cluster '" + shared->cluster + "'")));
    }
  });
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
  Submit(std::move(message), [waiter, shared = shared_](Result<SendReceipt> result) {
    {
      std::lock_guard lock(waiter->mutex);
      waiter->result.emplace(std::move(result));
      waiter->done.notify_one();
    }
    shared->EndSend();
  });
  std::unique_lock lock(waiter->mutex);
  if (!waiter->done.wait_for(lock, send_timeout_, [&] { return waiter->result.has_value(); })) {
    return DeadlineExceededError("send to topic '" + shared_->topic + "' on cluster '" +
                                 shared_->cluster + "' was not acknowledged within " +
                                 std::to_string(send_timeout_.count()) + " ms");
  }
  return std::move(*waiter->result);
}

void ProducerCore::SendAsync(Message message, SendCallback callback) {
  Status status = Prepare(message);
  if (!status.ok()) {
    if (callback) engine_->CompleteSend(std::move(callback), std::move(status), nullptr);
    return;
  }
  if (!BeginSends(1)) {
    if (callback) engine_->CompleteSend(std::move(callback), ClosedError(), nullptr);
    return;
  }
  // The engine outlives every send: it closes its producers (which wait for their sends and
  // callbacks) before it goes away.
  Submit(std::move(message), [engine = engine_.get(), shared = shared_,
                              callback = std::move(callback)](Result<SendReceipt> result) mutable {
    if (!callback) {
      shared->EndSend();
      return;
    }
    // Counted out after the callback ran, so Close waits for callbacks too.
    engine->CompleteSend(std::move(callback), std::move(result), std::move(shared));
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
    Submit(std::move(messages[i]), [batch, i, shared = shared_](Result<SendReceipt> result) {
      {
        std::lock_guard lock(batch->mutex);
        batch->results[i].emplace(std::move(result));
        if (--batch->remaining == 0) batch->done.notify_one();
      }
      shared->EndSend();
    });
  }
  std::unique_lock lock(batch->mutex);
  if (!batch->done.wait_for(lock, send_timeout_, [&] { return batch->remaining == 0; })) {
    return DeadlineExceededError("batch of " + std::to_string(batch->results.size()) +
                                 " messages to topic '" + shared_->topic + "' on cluster '" +
                                 shared_->cluster + "' was not acknowledged within " +
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
