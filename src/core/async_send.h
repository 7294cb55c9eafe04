#pragma once

// The record of one SendAsync: taken by the producer from its engine's AsyncSendPool when the
// message is handed to the backend, completed by the backend through a SendDone, queued to the
// callback pool, and given back to the pool after the callback ran. A steady stream of sends
// allocates no records: one made on the sender's thread and freed on a callback thread would
// take glibc malloc's slow path on both (the free locks the sender's arena while the sender
// allocates from it).

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "core/backend.h"
#include "core/message_id.h"
#include "core/send_counter.h"
#include "core/stashed_slab.h"
#include "msgsdk/producer.h"

namespace msgsdk::core {

class Engine;

class AsyncSend final : public SendDone::Target {
 public:
  explicit AsyncSend(Engine& engine) : engine_(engine) {}

  // Readies the record for one send. `counter` is null for a send that failed before it was
  // counted in. `message_id` is the message's (kMessageIdLength characters), or empty for
  // such a send.
  void Start(const std::shared_ptr<SendCounter>& counter, SendCallback callback,
             std::string_view message_id) {
    // A record reused by the same producer keeps its reference: no count changes hands
    // between the sender's and the callback threads.
    if (counter_ != counter) counter_ = counter;
    callback_ = std::move(callback);
    message_id.copy(message_id_.data(), message_id_.size());
  }

  // The backend's answer: queued with the callback to the engine's callback pool (or, with no
  // callback, the send is counted out at once).
  void Complete(Result<StoredPosition> stored) override;
  // A send that failed before reaching a backend.
  void Fail(Status status);
  Engine& engine() const { return engine_; }
  // On the callback pool, for a batch of completed sends of one engine: makes each receipt
  // (or the failure, with the topic and cluster added) and runs each callback, then counts
  // the sends out (so Close waits for callbacks too) and gives the records back to the pool.
  static void RunCallbacks(std::span<AsyncSend* const> sends);

 private:
  // Runs the callback and lets go of it and its result.
  void RunCallback();

  Engine& engine_;
  std::shared_ptr<SendCounter> counter_;
  SendCallback callback_;
  // Kept inline and made into the receipt's string on the callback thread: a string made here
  // would be allocated on the sender's thread and freed on another, the slow path of malloc.
  std::array<char, kMessageIdLength> message_id_{};
  std::optional<Result<StoredPosition>> stored_;
};

// A backend completing a batch of sends loads their records ahead (SendDone::Prefetch).
static_assert(sizeof(AsyncSend) <= SendDone::kPrefetchBytes);

// An engine's AsyncSend records. The callback pool gives a whole batch back at once.
class AsyncSendPool {
 public:
  explicit AsyncSendPool(Engine& engine)
      : records_([&engine](void* where) { new (where) AsyncSend(engine); }, kMaxSpare) {}

  AsyncSend* Take() { return records_.Take(); }
  // Records whose callbacks ran (or that had none).
  void Give(std::span<AsyncSend* const> sends) { records_.Give(sends); }

 private:
  // Spare records kept at most beyond a block's worth (see RecordSlab).
  static constexpr size_t kMaxSpare = 16384;
  StashedSlab<AsyncSend> records_;
};

}  // namespace msgsdk::core
