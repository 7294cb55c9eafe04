#pragma once

// The record of one SendAsync: taken by the producer from its engine's AsyncSendPool when the
// message is handed to the backend, completed by the backend through a SendDone, and given
// back to the pool by the completing thread, which hands the callback and what it needs to the
// callback pool as a SendCompletion. A steady stream of sends allocates no records: one made on
// the sender's thread and freed on another would take glibc malloc's slow path on both (the
// free locks the sender's arena while the sender allocates from it).

#include <array>
#include <cstdint>
#include <memory>
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

// What the callback pool needs of one completed SendAsync, handed over by value. The record
// itself goes back to its pool on the thread that completed it: a record handed to a callback
// thread would come back to the sending thread's core with its lines held by the other core,
// and both threads would wait for them (the callback thread when it clears the record, the
// sender when it reuses it). Completions are written and read in order, which the cores'
// prefetchers follow.
struct SendCompletion {
  // Leaves message_id unset, for TakeCompletion to fill (a completion is made per send).
  SendCompletion() {}  // NOLINT(modernize-use-equals-default): `= default` would zero it

  SendCallback callback;
  // Null for a send that failed before it was counted in.
  SendCounter* counter = nullptr;
  // Keeps `counter` until the callbacks ran (a producer closed from a send callback does not
  // wait for them). Set on the first completion of each run of one counter in a hand-off
  // only: the pool releases a batch's completions together, after running all of them, and
  // a reference per completion would make the completing and the callback thread each write
  // the counter's reference count once per send.
  std::shared_ptr<SendCounter> counter_ref;
  StoredPosition position;
  std::unique_ptr<Status> failure;  // null: stored at `position`
  std::array<char, kMessageIdLength> message_id;
};

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

  // The backend's answer: its completion is queued to the engine's callback pool (or, with no
  // callback, the send is counted out at once), and the record goes back to the pool.
  void Complete(Result<StoredPosition> stored) override;
  // A send that failed before reaching a backend.
  void Fail(Status status);
  Engine& engine() const { return engine_; }
  // On the callback pool, for a batch of completed sends of one engine: makes each receipt
  // (or the failure, with the topic and cluster added) and runs each callback, then counts
  // the sends out (so Close waits for callbacks too).
  static void RunCallbacks(std::span<SendCompletion> completions);

 private:
  // Fills `completion`, a new one, for the callback pool: takes the callback. `keep_counter`:
  // it holds a reference to the counter (see SendCompletion::counter_ref).
  void TakeCompletion(Result<StoredPosition>&& stored, bool keep_counter,
                      SendCompletion& completion);
  // Hands this send's completion to the callback pool by itself, and the record back.
  void PostAlone(Result<StoredPosition>&& stored);
  // Gives this record back to the engine's pool, alone.
  void GiveBack();

  Engine& engine_;
  std::shared_ptr<SendCounter> counter_;
  SendCallback callback_;
  // Kept inline, copied into the completion and made into the receipt's string on the callback
  // thread: a string made here would be allocated on the sender's thread and freed on
  // another, the slow path of malloc.
  std::array<char, kMessageIdLength> message_id_{};
};

// A backend completing a batch of sends loads their records ahead (SendDone::Prefetch).
static_assert(sizeof(AsyncSend) <= SendDone::kPrefetchBytes);

// An engine's AsyncSend records. A thread completing a batch of sends gives them back at once.
class AsyncSendPool {
 public:
  explicit AsyncSendPool(Engine& engine)
      : records_([&engine](void* where) { new (where) AsyncSend(engine); }, kMaxSpare) {}

  AsyncSend* Take() { return records_.Take(); }
  // Records whose sends completed (their callbacks, if any, handed to the callback pool).
  void Give(std::span<AsyncSend* const> sends) { records_.Give(sends); }

 private:
  // Spare records kept at most beyond a block's worth (see RecordSlab).
  static constexpr size_t kMaxSpare = 16384;
  StashedSlab<AsyncSend> records_;
};

}  // namespace msgsdk::core
