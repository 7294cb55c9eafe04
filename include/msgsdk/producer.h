#pragma once

/// @file
/// Producer: sends messages to one topic.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk {

namespace internal {
class ProducerTransport;
}

/// What the cluster said when it stored a message.
struct SendReceipt {
  std::string message_id;
  /// The routing-table name of the cluster that acknowledged it (the primary).
  std::string cluster;
  int32_t partition = -1;
  int64_t offset = -1;
};

/// Called once per SendAsync, on an SDK callback thread (never an I/O thread). It may close
/// or drop its producer, and the client's last handle too.
using SendCallback = std::function<void(const Result<SendReceipt>&)>;

/// A producer of one topic, created started by Client::CreateProducer.
/// Thread-safety: all methods may be called concurrently from any thread.
/// Move-only handle; destroying it closes it.
class Producer {
 public:
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;
  ~Producer();

  /// Sends one message and waits until the cluster acknowledged it durably (per the
  /// cluster's flush mode) or the send timeout passed. The message's `topic` is ignored.
  Result<SendReceipt> Send(Message message);

  /// Sends one message; `callback` runs once with the receipt or the failure.
  void SendAsync(Message message, SendCallback callback);

  /// Sends several messages in one request; receipts in the same order. Fails as a whole
  /// only for bad input; otherwise each message succeeded (a partial failure is reported
  /// as the first failing status).
  Result<std::vector<SendReceipt>> SendBatch(std::vector<Message> messages);

  /// The topic this producer sends to.
  const std::string& topic() const;

  /// Waits for in-flight sends (bounded by the send timeout), then refuses new ones with
  /// kFailedPrecondition. Idempotent. Called from a SendAsync callback (of any client), it
  /// does not wait for the callbacks of those sends, which run afterwards: two callbacks
  /// closing each other's producers would otherwise wait for each other.
  Status Close();

 private:
  friend class Client;
  explicit Producer(std::shared_ptr<internal::ProducerTransport> transport);
  std::shared_ptr<internal::ProducerTransport> transport_;
};

}  // namespace msgsdk
