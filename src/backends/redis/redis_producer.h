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
#include <vector>

#include "backends/redis/redis_log.h"
#include "backends/redis/redis_state.h"
#include "core/backend.h"

namespace msgsdk::redis {

// What the sends of one producer share: its stream names (for error messages) and the count
// of its sends that are not complete yet, so Close can wait for them. The count is atomic:
// it changes twice per send, on the sending thread and on the writer thread.
class SendTracker {
 public:
  explicit SendTracker(std::vector<std::string> streams) : streams_(std::move(streams)) {}

  void Add() { pending_.fetch_add(1, std::memory_order_relaxed); }
  void Done();
  // True when none is pending (waits until `deadline`).
  bool WaitIdle(core::Deadline deadline);
  int64_t pending() const { return pending_.load(std::memory_order_acquire); }
  const std::string& stream(int32_t partition) const {
    return streams_[static_cast<size_t>(partition)];
  }

 private:
  const std::vector<std::string> streams_;
  std::atomic<int64_t> pending_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

// One queued send.
struct PendingSend {
  // The encoded XADD; empty when the send is to fail with `failure` without being written.
  std::string command;
  int32_t partition = -1;
  Status failure;
  core::SendDone done;
  std::shared_ptr<SendTracker> tracker;
  std::chrono::steady_clock::time_point enqueued{};

  const std::string& stream() const { return tracker->stream(partition); }
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
  // Moves up to `max` sends from the queue into `batch` (sends that only carry a failure are
  // completed instead).
  void TakeBatch(size_t max, std::vector<PendingSend>& batch);
  void FailExpired(const Status& cause, bool fail_all);
  // Writes `batch` and completes its sends from the replies, writing each next batch before
  // reading the replies of the one before. `next` is scratch space.
  void WriteAndComplete(Connection& connection, std::vector<PendingSend>& batch,
                        std::vector<PendingSend>& next, size_t depth);
  // One write for the batch; the failure (the batch then failed) if the connection broke.
  Status WriteBatch(Connection& connection, std::vector<PendingSend>& batch);
  // Completes the sends of a written batch from their replies; the failure if the connection
  // was lost (the rest of the batch then failed). `reconnect`: a reply asked for a new
  // connection.
  Status ReadReplies(Connection& connection, std::vector<PendingSend>& batch, bool& reconnect);
  // Fails the written sends of `batch` from `from` on: their replies were lost with `lost`.
  void FailWritten(std::vector<PendingSend>& batch, size_t from, const Status& lost);
  // Stop was asked and its deadline has passed.
  bool StopDue();
  // Counts the outcome, then runs the completion.
  void Complete(PendingSend& send, Result<core::StoredPosition> result);
  // Runs the completion only (the caller counts).
  static void Finish(PendingSend& send, Result<core::StoredPosition> result);

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
  std::shared_ptr<SendTracker> tracker_;
  std::atomic<uint64_t> round_robin_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace msgsdk::redis
