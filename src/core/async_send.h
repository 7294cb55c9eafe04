#pragma once

// The record of one SendAsync: made by the producer when the message is handed to the backend,
// completed by the backend through a SendDone, queued to the callback pool, freed after the
// callback ran. The one allocation a SendAsync costs beyond the message itself.

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/backend.h"
#include "core/message_id.h"
#include "core/send_counter.h"
#include "msgsdk/producer.h"

namespace msgsdk::core {

class Engine;

class AsyncSend final : public SendDone::Target {
 public:
  // `counter` is null for a send that failed before it was counted in. `message_id` is the
  // message's (kMessageIdLength characters), or empty for such a send.
  AsyncSend(Engine& engine, std::shared_ptr<SendCounter> counter, SendCallback callback,
            std::string_view message_id)
      : engine_(engine), counter_(std::move(counter)), callback_(std::move(callback)) {
    message_id.copy(message_id_.data(), message_id_.size());
  }

  // The backend's answer: queued with the callback to the engine's callback pool (or, with no
  // callback, the send is counted out at once).
  void Complete(Result<StoredPosition> stored) override;
  // A send that failed before reaching a backend.
  void Fail(Status status);
  Engine& engine() const { return engine_; }
  // On the callback pool: makes the receipt (or the failure, with the topic and cluster
  // added), runs the callback, then counts the send out, so Close waits for callbacks too.
  void RunCallback();

 private:
  Engine& engine_;
  const std::shared_ptr<SendCounter> counter_;
  SendCallback callback_;
  // Kept inline and made into the receipt's string on the callback thread: a string made here
  // would be allocated on the sender's thread and freed on another, the slow path of malloc.
  std::array<char, kMessageIdLength> message_id_{};
  std::optional<Result<StoredPosition>> stored_;
};

}  // namespace msgsdk::core
