#pragma once

// Sending: every producer of a backend hands its XADD commands to one Writer, a thread with
// its own connection that drains the queue and pipelines up to `pipeline_depth` commands per
// round trip, then completes each send from its reply.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backends/redis/redis_log.h"
#include "backends/redis/redis_state.h"
#include "core/backend.h"

namespace msgsdk::redis {

// Counts the sends of one producer that are not complete yet, so Close can wait for them.
class SendTracker {
 public:
  void Add();
  void Done();
  // True when none is pending (waits until `deadline`).
  bool WaitIdle(core::Deadline deadline);
  int64_t pending() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t pending_ = 0;
};

// One queued send.
struct PendingSend {
  // The encoded XADD; empty when the send is to fail with `failure` without being written.
  std::string command;
  std::string stream;
  int32_t partition = -1;
  Status failure;
  core::SendDone done;
  std::shared_ptr<SendTracker> tracker;
  std::chrono::steady_clock::time_point enqueued{};
};

class Writer : public std::enable_shared_from_this<Writer> {
 public:
  explicit Writer(std::shared_ptr<BackendState> state);
  ~Writer();
  // Starts the writer thread (once, right after construction by make_shared).
  void Start();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Queues a send; its `done` runs on the writer thread. After Stop, fails it at once.
  void Submit(PendingSend send);

  // Fails the queued (not yet written) sends of `tracker` with `status`; returns how many.
  size_t CancelQueued(const SendTracker* tracker, const Status& status);

  // Writes what is queued until `deadline`, fails the rest, and joins the thread.
  // Idempotent. Sends submitted afterwards fail at once (on the caller's thread).
  void Stop(core::Deadline deadline);

 private:
  void Run();
  // Takes up to `max` sends from the queue (sends that only carry a failure are completed).
  std::deque<PendingSend> TakeBatch(size_t max);
  void FailExpired(const Status& cause, bool fail_all);
  void WriteBatch(Connection& connection, std::deque<PendingSend>& batch);
  void Complete(PendingSend& send, Result<core::StoredPosition> result);

  std::shared_ptr<BackendState> state_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PendingSend> queue_;
  bool stopping_ = false;
  core::Deadline stop_deadline_{};
  std::mutex stop_mu_;
  std::thread thread_;
  FailureLog failure_log_;
};

class RedisProducer final : public core::BackendProducer {
 public:
  RedisProducer(std::shared_ptr<BackendState> state, std::shared_ptr<Writer> writer,
                std::string topic);
  ~RedisProducer() override;

  void Send(const Message& message, core::SendDone done) override;
  Status Close(core::Deadline deadline) override;

 private:
  std::shared_ptr<BackendState> state_;
  std::shared_ptr<Writer> writer_;
  std::string topic_;
  std::vector<std::string> streams_;
  std::shared_ptr<SendTracker> tracker_ = std::make_shared<SendTracker>();
  std::atomic<uint64_t> round_robin_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace msgsdk::redis
