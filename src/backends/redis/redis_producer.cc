#include "backends/redis/redis_producer.h"

#include <utility>

#include "backends/redis/redis_codec.h"

namespace msgsdk::redis {

using Clock = std::chrono::steady_clock;

void SendTracker::Done() {
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Under the mutex, so a waiter between its check and its wait cannot miss it.
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

bool SendTracker::WaitIdle(core::Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return pending() == 0; });
}

Writer::Writer(std::shared_ptr<BackendState> state) : state_(std::move(state)) {}

void Writer::Start() {
  // The thread holds a reference: the writer lives until its thread has finished.
  thread_ = std::thread([self = shared_from_this()] { self->Run(); });
}

Writer::~Writer() {
  if (!thread_.joinable()) return;
  // The last reference is usually dropped by the thread itself as it ends.
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void Writer::Submit(PendingSend send) {
  send.enqueued = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    lock.unlock();
    // The backend is closed: no writer thread is left to complete it.
    Complete(send, FailedPreconditionError("redis cluster '" + state_->options.cluster +
                                           "' is closed: send to stream '" + send.stream() +
                                           "' refused"));
    return;
  }
  queue_.push_back(std::move(send));
  // The writer only sleeps on an empty queue: one wake-up per batch, not per send.
  const bool wake = queue_.size() == 1;
  lock.unlock();
  if (wake) cv_.notify_one();
}

size_t Writer::CancelQueued(const SendTracker* tracker, const Status& status) {
  std::deque<PendingSend> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<PendingSend> kept;
    for (PendingSend& send : queue_) {
      (send.tracker.get() == tracker ? cancelled : kept).push_back(std::move(send));
    }
    queue_.swap(kept);
  }
  for (PendingSend& send : cancelled) Complete(send, status);
  return cancelled.size();
}

void Writer::Stop(core::Deadline deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = deadline;
    }
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  // From a completion callback (the writer thread itself) there is nothing to wait for.
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Writer::Complete(PendingSend& send, Result<core::StoredPosition> result) {
  (result.ok() ? state_->sends_ok : state_->sends_failed).fetch_add(1, std::memory_order_relaxed);
  Finish(send, std::move(result));
}

void Writer::Finish(PendingSend& send, Result<core::StoredPosition> result) {
  core::SendDone done = std::move(send.done);
  std::shared_ptr<SendTracker> tracker = std::move(send.tracker);
  if (done) done(std::move(result));
  if (tracker) tracker->Done();
}

void Writer::TakeBatch(size_t max, std::vector<PendingSend>& batch) {
  std::vector<PendingSend> failures;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!queue_.empty() && batch.size() < max) {
      PendingSend& front = queue_.front();
      (front.command.empty() ? failures : batch).push_back(std::move(front));
      queue_.pop_front();
    }
  }
  for (PendingSend& send : failures) Complete(send, send.failure);
}

void Writer::FailExpired(const Status& cause, bool fail_all) {
  const auto now = Clock::now();
  const auto limit = state_->options.command_timeout;
  std::deque<PendingSend> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<PendingSend> kept;
    for (PendingSend& send : queue_) {
      const bool expire = fail_all || send.command.empty() || now - send.enqueued >= limit;
      (expire ? expired : kept).push_back(std::move(send));
    }
    queue_.swap(kept);
  }
  for (PendingSend& send : expired) {
    if (send.command.empty()) {
      Complete(send, send.failure);
      continue;
    }
    Complete(send, Status(cause.code(), "send to stream '" + send.stream() +
                                            "' was not written: " + cause.message()));
  }
}

Status Writer::WriteBatch(Connection& connection, std::vector<PendingSend>& batch) {
  // One buffer, one write for the whole batch.
  std::string& output = connection.output();
  for (const PendingSend& send : batch) output.append(send.command);
  Status written = connection.Flush("XADD", batch.front().stream());
  if (!written.ok()) {
    state_->connection_failures.fetch_add(1, std::memory_order_relaxed);
    failure_log_.Failure("writer: " + written.ToString());
    FailWritten(batch, 0, written);
  }
  return written;
}

void Writer::FailWritten(std::vector<PendingSend>& batch, size_t from, const Status& lost) {
  if (from >= batch.size()) return;
  const Status unknown(lost.code(), lost.message() +
                                        "; the reply was lost, the message may or may not "
                                        "have been stored");
  for (size_t i = from; i < batch.size(); ++i) Complete(batch[i], unknown);
}

Status Writer::ReadReplies(Connection& connection, std::vector<PendingSend>& batch,
                           bool& reconnect) {
  // The batch's callbacks reach the callback pool in one hand-off.
  const core::SendDoneBatch completions;
  size_t i = 0;
  int64_t stored = 0;
  Status lost;
  for (; i < batch.size(); ++i) {
    PendingSend& send = batch[i];
    auto reply = connection.ReadReply("XADD", send.stream());
    if (!reply.ok()) {
      if (!connection.connected()) {
        lost = reply.status();
        break;
      }
      // READONLY (failover), LOADING...: the next round reconnects and finds the primary.
      if (reply.status().code() == StatusCode::kUnavailable) reconnect = true;
      Complete(send, reply.status());
      continue;
    }
    const auto id = ParseEntryId(ReplyString(reply->get()));
    if (!id) {
      Complete(send, InternalError("redis cluster '" + state_->options.cluster + "': XADD to '" +
                                   send.stream() + "' answered without an entry id"));
      continue;
    }
    ++stored;
    Finish(send, core::StoredPosition{send.partition, EntryIdToOffset(*id)});
  }
  state_->sends_ok.fetch_add(stored, std::memory_order_relaxed);
  if (i == batch.size()) return OkStatus();
  state_->connection_failures.fetch_add(1, std::memory_order_relaxed);
  failure_log_.Failure("writer: " + lost.ToString());
  FailWritten(batch, i, lost);
  return lost;
}

bool Writer::StopDue() {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_ && Clock::now() >= stop_deadline_;
}

void Writer::WriteAndComplete(Connection& connection, std::vector<PendingSend>& batch,
                              std::vector<PendingSend>& next, size_t depth) {
  if (!WriteBatch(connection, batch).ok()) {
    batch.clear();
    return;
  }
  bool reconnect = false;
  while (!batch.empty()) {
    // The next batch goes out before this one's replies are read: Redis stores it while
    // this thread completes the sends of the first. At most two batches are outstanding.
    if (!reconnect && !StopDue()) {
      TakeBatch(depth, next);
      if (!next.empty()) {
        const Status written = WriteBatch(connection, next);
        if (!written.ok()) {
          // The connection is gone, and the replies of the batch before with it.
          FailWritten(batch, 0, written);
          next.clear();
          break;
        }
      }
    }
    const Status read = ReadReplies(connection, batch, reconnect);
    if (!read.ok()) {
      // The connection is gone: the batch written after this one is lost with it.
      FailWritten(next, 0, read);
      next.clear();
      break;
    }
    batch.swap(next);
    next.clear();
  }
  batch.clear();
  if (reconnect) connection.Disconnect();
}

void Writer::Run() {
  BlockSigpipeInThisThread();
  NameThisThread("redis-writer");
  Connection connection(state_->Settings("writer"));
  Backoff backoff;
  const auto depth = static_cast<size_t>(state_->options.pipeline_depth);
  // Reused by every round: their capacity stays.
  std::vector<PendingSend> batch;
  std::vector<PendingSend> next;
  batch.reserve(depth);
  next.reserve(depth);
  while (true) {
    bool stopping = false;
    core::Deadline deadline{};
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) break;
      stopping = stopping_;
      deadline = stop_deadline_;
    }
    if (stopping && Clock::now() >= deadline) {
      FailExpired(DeadlineExceededError("redis cluster '" + state_->options.cluster +
                                        "' closed before the send was written"),
                  /*fail_all=*/true);
      continue;
    }
    if (!connection.connected()) {
      Status status = connection.EnsureConnected();
      if (!status.ok()) {
        state_->connection_failures.fetch_add(1, std::memory_order_relaxed);
        failure_log_.Failure("writer: " + status.ToString());
        // Authentication or configuration errors do not heal by waiting: fail at once.
        FailExpired(status, /*fail_all=*/!status.IsRetriable());
        auto wake = Clock::now() + backoff.Next();
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_ && stop_deadline_ < wake) wake = stop_deadline_;
        cv_.wait_until(lock, wake, [&] { return stopping_ != stopping; });
        continue;
      }
      failure_log_.Success("writer connection to " + connection.endpoint());
      backoff.Reset();
    }
    TakeBatch(depth, batch);
    if (!batch.empty()) WriteAndComplete(connection, batch, next, depth);
    batch.clear();
  }
}

RedisProducer::RedisProducer(std::shared_ptr<BackendState> state, std::shared_ptr<Writer> writer,
                             std::string topic)
    : state_(std::move(state)), writer_(std::move(writer)), topic_(std::move(topic)) {
  std::vector<std::string> streams;
  streams.reserve(static_cast<size_t>(state_->options.partitions));
  for (int32_t p = 0; p < state_->options.partitions; ++p) {
    streams.push_back(state_->StreamOf(topic_, p));
  }
  tracker_ = std::make_shared<SendTracker>(std::move(streams));
}

RedisProducer::~RedisProducer() {
  Close(Clock::now() + state_->options.command_timeout).IgnoreError();
}

void RedisProducer::Send(const Message& message, core::SendDone done) {
  PendingSend send;
  send.done = std::move(done);
  send.tracker = tracker_;
  const int32_t partitions = state_->options.partitions;
  send.partition = message.key.empty()
                       ? static_cast<int32_t>(round_robin_.fetch_add(1, std::memory_order_relaxed) %
                                              static_cast<uint64_t>(partitions))
                       : PartitionForKey(message.key, partitions);
  if (closed_.load(std::memory_order_acquire)) {
    send.failure = FailedPreconditionError("producer of topic '" + topic_ + "' on redis cluster '" +
                                           state_->options.cluster + "' is closed");
  } else if (message.deliver_at.has_value()) {
    send.failure =
        UnsupportedError("backend \"redis\" (cluster '" + state_->options.cluster +
                         "') does not support timer messages (capability timer_messages): topic '" +
                         topic_ + "', message with deliver_at refused");
  } else {
    send.command = EncodeXadd(tracker_->stream(send.partition), state_->options.maxlen, message);
  }
  tracker_->Add();
  writer_->Submit(std::move(send));
}

Status RedisProducer::Close(core::Deadline deadline) {
  closed_.store(true, std::memory_order_release);
  if (tracker_->WaitIdle(deadline)) return OkStatus();
  const size_t cancelled = writer_->CancelQueued(
      tracker_.get(), DeadlineExceededError("producer of topic '" + topic_ +
                                            "' closed before the send was written"));
  const int64_t in_flight = tracker_->pending();
  if (in_flight == 0) {
    return DeadlineExceededError("producer of topic '" + topic_ +
                                 "': " + std::to_string(cancelled) +
                                 " sends were still queued at the close deadline and failed");
  }
  return DeadlineExceededError("producer of topic '" + topic_ + "': " + std::to_string(cancelled) +
                               " queued sends failed at the close deadline and " +
                               std::to_string(in_flight) +
                               " written ones complete within command_timeout_ms");
}

}  // namespace msgsdk::redis
