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
#include "core/send_counter.h"
#include "msgsdk/producer.h"

namespace msgsdk::core {

class Engine;

class ProducerCore : public std::enable_shared_from_this<ProducerCore> {
 public:
  ProducerCore(std::shared_ptr<Engine> engine, std::string topic, std::string cluster,
               Capabilities capabilities, std::unique_ptr<BackendProducer> backend,
               std::chrono::milliseconds send_timeout);
  ~ProducerCore();

  Result<SendReceipt> Send(Message&& message);
  void SendAsync(Message&& message, SendCallback callback);
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages);
  Status Close();

  const std::string& topic() const { return shared_->topic; }

 private:
  // Checks the message and fills topic, message_id and born_at.
  Status Prepare(Message& message) const;
  // Counts sends in; false (and counted out again) once the producer is closed.
  bool BeginSends(int64_t count);
  Status ClosedError() const;

  const std::shared_ptr<Engine> engine_;
  const std::shared_ptr<SendCounter> shared_;
  const Capabilities capabilities_;
  const std::unique_ptr<BackendProducer> backend_;
  const std::chrono::milliseconds send_timeout_;
  const int64_t max_message_bytes_;
};

}  // namespace msgsdk::core
