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
  ~ProducerCore();

  Result<SendReceipt> Send(Message message);
  void SendAsync(Message message, SendCallback callback);
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages);
  Status Close();

  const std::string& topic() const { return shared_->topic; }

 private:
  // What a send's completion needs. Completions hold this, never the ProducerCore: the last
  // reference to a producer must not be dropped on a backend thread, which would then have to
  // tear down the backend that runs it.
  struct Shared {
    Shared(std::string topic, std::string cluster)
        : topic(std::move(topic)), cluster(std::move(cluster)) {}
    // Counts a send out; wakes Close when the last one is done.
    void EndSend();

    const std::string topic;
    const std::string cluster;
    // Sends are counted before `closed` is checked and Close sets `closed` before it waits for
    // the count, so no send slips past a Close (both sequentially consistent). A SendAsync
    // counts until its callback has run, so Close also waits for callbacks.
    std::atomic<int64_t> in_flight{0};
    std::atomic<bool> closed{false};
    std::mutex mutex;
    std::condition_variable drained;
  };

  // Checks the message and fills topic, message_id and born_at.
  Status Prepare(Message& message) const;
  // Counts sends in; false (and counted out again) once the producer is closed.
  bool BeginSends(int64_t count);
  // Hands a prepared message to the backend; `done` runs on the backend's thread and must end
  // with shared->EndSend() (or hand that on).
  void Submit(Message message, std::function<void(Result<SendReceipt>)> done);
  Status ClosedError() const;

  const std::shared_ptr<Engine> engine_;
  const std::shared_ptr<Shared> shared_;
  const Capabilities capabilities_;
  const std::unique_ptr<BackendProducer> backend_;
  const std::chrono::milliseconds send_timeout_;
  const int64_t max_message_bytes_;
};

}  // namespace msgsdk::core
