#include "backends/native/broker/broker.h"

#include <condition_variable>
#include <filesystem>
#include <map>
#include <utility>

#include "backends/native/native_log.h"

namespace msgsdk::native {

Result<std::unique_ptr<Broker>> Broker::Open(BrokerOptions options) {
  std::unique_ptr<Broker> broker(new Broker(std::move(options)));
  StoreOptions store_options = broker->options_.store;
  // The store's writer stops before the broker's members go (Close runs first in ~Broker).
  store_options.on_published = [b = broker.get()] { b->NotifyAppended(); };
  if (!store_options.on_retention) {
    // Embedded: the operator's log is the process's standard error.
    store_options.on_retention =
        [dir = store_options.data_dir](const Result<RetentionReport>& report) {
          if (report.ok()) {
            LogInfo(dir.native() + ": " + DescribeRetention(*report));
          } else {
            LogWarning(dir.native() + ": " + report.status().ToString());
          }
        };
  }
  MSGSDK_ASSIGN_OR_RETURN(broker->store_, MessageStore::Open(std::move(store_options)));
  return broker;
}

Broker::Broker(BrokerOptions options)
    : options_(std::move(options)), groups_(options_.session_timeout) {}

Broker::~Broker() { Close().IgnoreError(); }

void Broker::NotifyAppended() {
  // Sequentially consistent, as are the waiter's count and its read of appends_ (Dekker's
  // pattern): either this sees the waiter or the waiter sees this append. On x86 it costs
  // what acquire and release cost.
  appends_.fetch_add(1);
  // Notifying costs a syscall per append; only pay it when someone waits.
  if (waiters_.load() > 0) {
    std::lock_guard lock(wait_mutex_);
    appended_.notify_all();
  }
}

void Broker::WaitForAppend(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(wait_mutex_);
  waiters_.fetch_add(1);
  appended_.wait_until(lock, deadline, [&] { return appends_.load() != seen; });
  waiters_.fetch_sub(1, std::memory_order_acq_rel);
}

void Broker::WakeAll() {
  std::lock_guard lock(wait_mutex_);
  appends_.fetch_add(1, std::memory_order_acq_rel);
  appended_.notify_all();
}

Status Broker::ResetOffsets(const std::string& topic, const std::string& group,
                            const ResetTarget& target) {
  if (groups_.HasMembers(group, topic)) {
    return FailedPreconditionError("group '" + group + "' has live members on topic '" + topic +
                                   "'; stop them before resetting its offsets");
  }
  auto info = store_->FindTopic(topic);
  if (!info) return NotFoundError("topic '" + topic + "' does not exist");
  std::vector<QueueOffset> offsets;
  for (int32_t queue = 0; queue < info->queues; ++queue) {
    int64_t offset = 0;
    switch (target.kind) {
      case ResetTarget::Kind::kEarliest:
        offset = store_->MinOffset(topic, queue);
        break;
      case ResetTarget::Kind::kLatest:
        offset = store_->MaxOffset(topic, queue);
        break;
      case ResetTarget::Kind::kTimestamp: {
        MSGSDK_ASSIGN_OR_RETURN(offset, store_->OffsetForTimestamp(topic, queue, target.timestamp));
        break;
      }
    }
    offsets.push_back(QueueOffset{queue, offset});
  }
  // One commit: a crash leaves the group either before or after the reset, on every queue.
  MSGSDK_RETURN_IF_ERROR(store_->CommitOffsetsAndWait(group, topic, offsets));
  return store_->FlushOffsets();
}

Status Broker::Close() {
  WakeAll();
  return store_ ? store_->Close() : OkStatus();
}

namespace {

// Open embedded brokers by canonical data directory. A directory whose broker is being closed
// stays listed (expired) until the close finished, so a new opener waits instead of failing
// on the directory lock.
struct EmbeddedBrokers {
  std::mutex mutex;
  std::condition_variable closed;
  std::map<std::string, std::weak_ptr<Broker>> open;
};

EmbeddedBrokers& Embedded() {
  static auto* brokers = new EmbeddedBrokers();  // never destroyed: used from static teardown
  return *brokers;
}

}  // namespace

Result<std::shared_ptr<Broker>> AcquireEmbeddedBroker(const BrokerOptions& options) {
  std::error_code error;
  std::filesystem::create_directories(options.store.data_dir, error);
  auto canonical = std::filesystem::weakly_canonical(options.store.data_dir, error);
  const std::string key = error ? options.store.data_dir.string() : canonical.string();

  EmbeddedBrokers& brokers = Embedded();
  std::shared_ptr<Broker> existing;
  std::unique_lock lock(brokers.mutex);
  while (true) {
    auto it = brokers.open.find(key);
    if (it == brokers.open.end()) break;
    existing = it->second.lock();
    if (existing) break;
    brokers.closed.wait(lock);
  }
  if (existing) {
    // Unlock first: dropping the last reference runs the deleter, which takes the lock.
    lock.unlock();
    if (existing->options().store.flush_mode != options.store.flush_mode) {
      return FailedPreconditionError(
          "data directory " + key +
          " is already open in this process with another flush_mode; every cluster naming "
          "one data directory must use the same settings");
    }
    // Retention may change while the broker runs (a reloaded routing table): the latest
    // opener's policy applies.
    if (existing->store().Retention() != options.store.retention) {
      MSGSDK_RETURN_IF_ERROR(existing->store().SetRetention(options.store.retention));
    }
    return existing;
  }
  BrokerOptions resolved = options;
  resolved.store.data_dir = key;
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<Broker> opened, Broker::Open(std::move(resolved)));
  std::shared_ptr<Broker> broker(opened.release(), [key](Broker* b) {
    delete b;  // closes the store and releases the directory lock
    EmbeddedBrokers& all = Embedded();
    std::lock_guard lock(all.mutex);
    all.open.erase(key);
    all.closed.notify_all();
  });
  brokers.open[key] = broker;
  return broker;
}

}  // namespace msgsdk::native
