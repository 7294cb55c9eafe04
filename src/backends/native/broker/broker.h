#pragma once

// The native broker: the storage engine plus what turns it into a message broker — consumer
// groups, long polling, offset resets. Clients in the same process use it directly (embedded
// mode); the msgsdk-broker daemon serves it over the network.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/native/broker/group_coordinator.h"
#include "backends/native/storage/message_store.h"
#include "msgsdk/client.h"

namespace msgsdk::native {

struct BrokerOptions {
  StoreOptions store;
  // A member that has not heartbeated for this long leaves its group.
  std::chrono::milliseconds session_timeout{30000};
};

// Thread-safety: all methods may be called concurrently.
class Broker {
 public:
  static Result<std::unique_ptr<Broker>> Open(BrokerOptions options);
  ~Broker();

  MessageStore& store() { return *store_; }
  GroupCoordinator& groups() { return groups_; }
  const BrokerOptions& options() const { return options_; }

  // Called by the store after each batch it wrote: stored messages are readable, so
  // long-polling consumers wake up.
  void NotifyAppended();

  // Blocks until a message was stored after `seen` (see AppendCount), the deadline passes or
  // WakeAll is called.
  void WaitForAppend(uint64_t seen, std::chrono::steady_clock::time_point deadline);
  // How many appends completed so far (a change means new data may be readable).
  uint64_t AppendCount() const { return appends_.load(std::memory_order_acquire); }
  // Wakes every WaitForAppend (a consumer is stopping).
  void WakeAll();

  // Moves `group`'s committed offsets on every queue of `topic`. kFailedPrecondition while the
  // group has live members.
  Status ResetOffsets(const std::string& topic, const std::string& group,
                      const ResetTarget& target);

  Status Close();

 private:
  explicit Broker(BrokerOptions options);

  const BrokerOptions options_;
  std::unique_ptr<MessageStore> store_;
  GroupCoordinator groups_;

  std::atomic<uint64_t> appends_{0};
  std::atomic<int> waiters_{0};
  std::mutex wait_mutex_;
  std::condition_variable appended_;
};

// The broker embedded in this process for a data directory, shared by every client of the
// process that names the same directory (a data directory can be open only once). The first
// opener's settings win, except retention, where the latest opener's policy applies (a
// reloaded routing table changes it without a restart); a later opener asking for a different
// flush mode gets kFailedPrecondition. The broker closes when the last user releases it.
Result<std::shared_ptr<Broker>> AcquireEmbeddedBroker(const BrokerOptions& options);

}  // namespace msgsdk::native
