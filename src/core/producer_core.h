#pragma once

// A producer of one topic: checks and stamps each message, hands it to the cluster's backend,
// and completes the caller (sync, or a callback on the SDK pool).

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "msgsdk/producer.h"

namespace msgsdk::core {

class Engine;

class ProducerCore : public std::enable_shared_from_this<ProducerCore> {
 public:
  ProducerCore(std::shared_ptr<Engine> engine, std::string topic, std::string cluster,
               Capabilities capabilities, std::unique_ptr<BackendProducer> backend,
               std::chrono::milliseconds send_timeout);

  Result<SendReceipt> Send(Message message);
  void SendAsync(Message message, SendCallback callback);
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages);
  Status Close();

  const std::string& topic() const { return topic_; }

 private:
  // Checks the message and fills topic, message_id and born_at.
  Status Prepare(Message& message) const;
  // Hands a prepared message to the backend; `done` runs on the backend's thread.
  void Submit(Message message, std::function<void(Result<SendReceipt>)> done);
  // Counts a send in; false (and counted out again) once the producer is closed.
  bool BeginSends(int64_t count);
  void EndSend();
  Status ClosedError() const;

  const std::shared_ptr<Engine> engine_;
  const std::string topic_;
  const std::string cluster_;
  const Capabilities capabilities_;
  const std::unique_ptr<BackendProducer> backend_;
  const std::chrono::milliseconds send_timeout_;
  const int64_t max_message_bytes_;

  // Sends are counted before `closed_` is checked and Close sets `closed_` before it waits
  // for the count, so no send slips past a Close (both sequentially consistent).
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> closed_{false};
  std::mutex mutex_;
  std::condition_variable drained_;
};

}  // namespace msgsdk::core
