#include "backends/native/native_backend.h"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "backends/native/broker/broker.h"
#include "backends/native/client/remote_backend.h"
#include "backends/native/native_log.h"
#include "core/offset_tracker.h"

namespace msgsdk::native {
namespace {

using core::Deadline;
using core::Delivery;
using core::PropertySpec;
using Type = core::PropertySpec::Type;

// Upper bounds of the retention properties: about 100 years, and 1 PiB.
constexpr int64_t kMaxRetentionMs = int64_t{100} * 365 * 24 * 3600 * 1000;
constexpr int64_t kMaxRetentionBytes = int64_t{1} << 50;

// Where the store keeps a subscriber's offsets: per group, or per member in broadcast mode.
std::string OffsetsKey(const core::SubscriptionSpec& spec) {
  return spec.mode == SubscriptionMode::kBroadcast ? spec.group + "@" + spec.member_id : spec.group;
}

const core::PropertyTable& NativeProperties() {
  static const core::PropertyTable table = {
      {.name = "embedded",
       .type = Type::kBool,
       .description = "true: run the broker inside the client process, storing in data_dir "
                      "(the default without endpoints). false: use the msgsdk-broker daemon "
                      "named by endpoints (the default with them)."},
      {.name = "endpoints",
       .type = Type::kList,
       .description = "host:port of a msgsdk-broker daemon serving this cluster (several "
                      "addresses of it are tried in turn). When set, the daemon owns the "
                      "storage: data_dir, flush and segment settings, max_message_bytes and "
                      "queues are its flags, not these properties."},
      {.name = "connect_timeout_ms",
       .type = Type::kDuration,
       .default_value = "3000",
       .min = 1,
       .max = 600000,
       .description = "Daemon mode: how long one connection attempt to an endpoint may take."},
      {.name = "reconnect_backoff_ms",
       .type = Type::kDuration,
       .default_value = "50",
       .min = 1,
       .max = 600000,
       .description = "Daemon mode: delay before reconnecting after a failed attempt or a lost "
                      "connection; doubled after each failure up to reconnect_backoff_max_ms."},
      {.name = "reconnect_backoff_max_ms",
       .type = Type::kDuration,
       .default_value = "2000",
       .min = 1,
       .max = 600000,
       .description = "Daemon mode: the longest delay between reconnection attempts."},
      {.name = "request_timeout_ms",
       .type = Type::kDuration,
       .default_value = "10000",
       .min = 1,
       .max = 600000,
       .description = "Daemon mode: how long a request (a batch of sends, a commit, a group "
                      "call) waits for its answer, including while no connection can be made; "
                      "a long-polling fetch gets poll_wait_ms more."},
      {.name = "session_timeout_ms",
       .type = Type::kDuration,
       .default_value = "10000",
       .min = 100,
       .max = 300000,
       .description = "Daemon mode: a consumer that has not heartbeated for this long is "
                      "removed from its group and its queues go to the other members."},
      {.name = "heartbeat_interval_ms",
       .type = Type::kDuration,
       .default_value = "1000",
       .min = 1,
       .max = 300000,
       .description = "Daemon mode: how often a consumer heartbeats (and learns of "
                      "rebalances); must be below session_timeout_ms."},
      {.name = "data_dir",
       .type = Type::kString,
       .default_value = "./msgsdk-data",
       .description = "Directory of the embedded broker's commit log, indexes and offsets; "
                      "relative paths are resolved against the working directory. One process "
                      "at a time may open it."},
      {.name = "flush_mode",
       .type = Type::kEnum,
       .default_value = "group_commit",
       .allowed = {"group_commit", "periodic"},
       .description = "group_commit: a send is acknowledged after the fdatasync covering it "
                      "(concurrent sends share one); consumers read it once written, without "
                      "waiting for that fdatasync. periodic: acknowledged once written to "
                      "the page cache, fdatasync every flush_interval_ms (a machine crash can "
                      "lose that window; a process crash loses nothing)."},
      {.name = "flush_interval_ms",
       .type = Type::kDuration,
       .default_value = "200",
       .min = 1,
       .max = 60000,
       .description = "periodic mode: how often the commit log is fdatasync'ed."},
      {.name = "segment_bytes",
       .type = Type::kBytes,
       .default_value = "1073741824",
       .min = 4096,
       .max = int64_t{64} << 30,
       .description = "Size at which a commit-log segment file is sealed and a new one begun."},
      {.name = "index_entries_per_file",
       .type = Type::kInt,
       .default_value = "1048576",
       .min = 16,
       .max = 100000000,
       .description = "Entries (32 bytes each) per queue index file."},
      {.name = "queues",
       .type = Type::kInt,
       .default_value = "8",
       .min = 1,
       .max = 1024,
       .description = "Queues of a topic created by its first use; a key's messages share one "
                      "queue, so this bounds a group's parallelism."},
      {.name = "max_message_bytes",
       .type = Type::kBytes,
       .default_value = "4194304",
       .min = 1,
       .max = int64_t{256} << 20,
       .description = "Largest record the broker stores (body, key, tag and properties)."},
      {.name = "retention_ms",
       .type = Type::kDuration,
       .default_value = "0",
       .min = 0,
       .max = kMaxRetentionMs,
       .description = "Retention by age: a sealed commit-log segment is deleted once the newest "
                      "message in it was stored this long ago (0: messages are kept forever). "
                      "The active segment is never deleted, so a message lives at least until "
                      "its segment is sealed (segment_bytes)."},
      {.name = "retention_bytes",
       .type = Type::kBytes,
       .default_value = "0",
       .min = 0,
       .max = kMaxRetentionBytes,
       .description = "Retention by size: sealed commit-log segments are deleted, oldest first, "
                      "while the log holds more than this (0: unlimited). The log can exceed it "
                      "by up to one segment (the active one is never deleted)."},
      {.name = "retention_check_interval_ms",
       .type = Type::kDuration,
       .default_value = "60000",
       .min = 10,
       .max = 86400000,
       .description = "How often the embedded broker checks retention_ms and retention_bytes "
                      "and deletes what they allow."},
      {.name = "offset_flush_interval_ms",
       .type = Type::kDuration,
       .default_value = "100",
       .min = 1,
       .max = 60000,
       .description = "periodic mode: how often the consumer-offsets journal is fdatasync'ed "
                      "(a commit is written to it first, so only a machine crash can lose "
                      "that window). group_commit: unused, a commit is durable when it "
                      "completes."},
      {.name = "commit_interval_ms",
       .type = Type::kDuration,
       .default_value = "100",
       .min = 1,
       .max = 3600000,
       .description = "How often a consumer commits the offsets of acknowledged messages (also "
                      "whenever it gives up a queue, and on close). In group_commit mode each "
                      "commit costs the broker an fdatasync, shared with the commit log's; a "
                      "consumer that crashes redelivers up to this much."},
      {.name = "pull_batch",
       .type = Type::kInt,
       .default_value = "256",
       .min = 1,
       .max = 65536,
       .description = "Messages a consumer reads from one queue per fetch."},
      {.name = "poll_wait_ms",
       .type = Type::kDuration,
       .default_value = "500",
       .min = 1,
       .max = 60000,
       .description = "How long an idle consumer waits for new messages before checking its "
                      "group assignment again."},
  };
  return table;
}

// The queue a key's messages go to. FNV-1a (TagHash) is stable across versions and platforms,
// so a key keeps its queue, and therefore its order, across restarts.
int32_t QueueForKey(const std::string& key, int32_t queues) {
  return static_cast<int32_t>(TagHash(key) % static_cast<uint64_t>(queues));
}

class NativeProducer : public core::BackendProducer {
 public:
  NativeProducer(std::shared_ptr<Broker> broker, int32_t queues)
      : broker_(std::move(broker)), queues_(queues) {}

  // The completion captures nothing but `done` (one pointer, kept inline by the store's
  // std::function), and the broker wakes long-polling consumers once per written batch: a
  // send allocates nothing here.
  void Send(const Message& message, core::SendDone done) override {
    const int32_t queue =
        message.key.empty()
            ? static_cast<int32_t>(next_queue_.fetch_add(1, std::memory_order_relaxed) % queues_)
            : QueueForKey(message.key, queues_);
    broker_->store().Append(queue, message, [done](Result<AppendResult> result) {
      if (result.ok()) {
        done(core::StoredPosition{result->queue, result->queue_offset});
      } else {
        done(result.status());
      }
    });
  }

  // The store completes every append, also when it closes, and the core waits for its sends
  // before it lets a producer go: there is nothing of this producer's own to drain.
  Status Close(Deadline) override { return OkStatus(); }

 private:
  const std::shared_ptr<Broker> broker_;
  const int32_t queues_;
  std::atomic<uint64_t> next_queue_{0};
};

struct ConsumerSettings {
  int32_t pull_batch = 256;
  std::chrono::milliseconds poll_wait{500};
  std::chrono::milliseconds commit_interval{100};
};

// One subscription's fetch loop. Clustering: the group coordinator says which queues this
// member owns; broadcast: the member reads every queue with offsets of its own.
class NativeConsumer : public core::BackendConsumer {
 public:
  NativeConsumer(std::shared_ptr<Broker> broker, core::SubscriptionSpec spec,
                 core::DeliverySink& sink, int32_t queues, ConsumerSettings settings)
      : broker_(std::move(broker)),
        spec_(std::move(spec)),
        sink_(sink),
        queues_(queues),
        settings_(settings),
        offsets_key_(OffsetsKey(spec_)) {
    for (const auto& tag : spec_.tags) tag_hashes_.push_back(TagHash(tag));
    thread_ = std::thread([this] { Run(); });
  }

  ~NativeConsumer() override { Close(std::chrono::steady_clock::now()).IgnoreError(); }

  void Ack(const Delivery& delivery) override {
    const Delivery* const one = &delivery;
    AckAll(std::span(&one, 1));
  }
  // The core acknowledges a handler thread's batch at once: one lock for all of it.
  void AckAll(std::span<const Delivery* const> deliveries) override {
    std::lock_guard lock(mutex_);
    core::AckOwned(owned_, deliveries);
  }

  Status Close(Deadline) override {
    stopping_.store(true, std::memory_order_release);
    broker_->WakeAll();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    return close_status_;
  }

 private:
  struct OwnedQueue {
    core::OffsetTracker tracker;
    int64_t fetch_offset = 0;
    int64_t committed = -1;
  };

  bool Stopping() const { return stopping_.load(std::memory_order_acquire); }

  void Run() {
    pthread_setname_np(pthread_self(), "msgsdk-nfetch");
    while (!Stopping()) {
      UpdateAssignment();
      const uint64_t seen = broker_->AppendCount();
      const bool fetched = FetchOnce();
      // A failed commit is retried on the next round (the position is remembered only once
      // stored); until then a crash would redeliver, never skip.
      CommitInBackground();
      if (!fetched && !Stopping()) {
        broker_->WaitForAppend(seen, std::chrono::steady_clock::now() + settings_.poll_wait);
      }
    }
    // Finish: handlers of everything we own complete (or are abandoned), then commit and leave.
    std::vector<int32_t> all;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) all.push_back(queue);
    }
    sink_.Revoke(all);
    WaitForBackgroundCommit();
    Status status = Commit(/*flush=*/true);
    if (spec_.mode == SubscriptionMode::kClustering) {
      broker_->groups().Leave(spec_.group, spec_.topic, spec_.member_id);
    }
    std::lock_guard lock(mutex_);
    owned_.clear();
    close_status_ = status;
  }

  void UpdateAssignment() {
    std::vector<int32_t> owned;
    std::vector<int32_t> to_release;
    if (spec_.mode == SubscriptionMode::kBroadcast) {
      for (int32_t q = 0; q < queues_; ++q) owned.push_back(q);
    } else {
      auto assignment =
          broker_->groups().Heartbeat(spec_.group, spec_.topic, spec_.member_id, queues_);
      owned = std::move(assignment.owned);
      to_release = std::move(assignment.to_release);
    }
    if (!to_release.empty()) {
      sink_.Revoke(to_release);
      WaitForBackgroundCommit();
      for (int32_t queue : to_release) {
        // If this commit fails the next owner starts earlier and redelivers: no loss.
        CommitQueue(queue).IgnoreError();
        {
          std::lock_guard lock(mutex_);
          owned_.erase(queue);
        }
        broker_->groups().Release(spec_.group, spec_.topic, spec_.member_id, queue);
      }
    }
    for (int32_t queue : owned) {
      if (std::find(to_release.begin(), to_release.end(), queue) != to_release.end()) continue;
      std::lock_guard lock(mutex_);
      if (owned_.count(queue) != 0) continue;
      const auto committed = broker_->store().CommittedOffset(offsets_key_, spec_.topic, queue);
      int64_t start;
      if (committed) {
        start = *committed;
        const int64_t first = broker_->store().MinOffset(spec_.topic, queue);
        if (start < first) {
          WarnDeleted(queue, start, first);
          start = first;
        }
      } else if (spec_.start_from == StartPosition::kLatest) {
        start = broker_->store().MaxOffset(spec_.topic, queue);
      } else {
        start = broker_->store().MinOffset(spec_.topic, queue);
      }
      OwnedQueue state{core::OffsetTracker(start), start, committed.value_or(-1)};
      owned_.emplace(queue, std::move(state));
    }
  }

  // Reads one batch from every owned queue; true if anything was delivered.
  bool FetchOnce() {
    std::vector<std::pair<int32_t, int64_t>> positions;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) positions.emplace_back(queue, state.fetch_offset);
    }
    bool delivered = false;
    for (const auto& [queue, offset] : positions) {
      if (Stopping()) break;
      if (!sink_.WaitForCapacity(std::chrono::steady_clock::now() + settings_.poll_wait)) break;
      auto read = broker_->store().ReadInPlace(spec_.topic, queue, offset, settings_.pull_batch,
                                               int64_t{8} << 20, tag_hashes_);
      if (!read.ok()) {
        LogWarning("reading topic '" + spec_.topic + "' queue " + std::to_string(queue) +
                   " at offset " + std::to_string(offset) + ": " + read.status().ToString());
        continue;
      }
      // A group that fell behind the queue's start (retention deleted what it had not read)
      // reads on from the start.
      if (read->min_offset > offset) WarnDeleted(queue, offset, read->min_offset);
      // Copied into the records the core hands back spent (see DeliverySink::DeliverSwapping):
      // no allocation per message in a steady stream, and nothing this thread allocated is
      // freed on a handler thread.
      const size_t count = read->records.size();
      for (size_t i = 0; i < count; ++i) {
        Delivery& delivery = core::RecordToDecodeInto(deliveries_, i);
        CopyRecord(read->records[i], &delivery.message);
        delivery.receipt.clear();
      }
      {
        std::lock_guard lock(mutex_);
        auto it = owned_.find(queue);
        if (it == owned_.end()) continue;
        for (size_t i = 0; i < count; ++i) {
          it->second.tracker.Delivered(read->records[i].meta.queue_offset);
        }
        it->second.tracker.FetchedUpTo(read->next_offset);
        it->second.fetch_offset = read->next_offset;
      }
      if (count > 0) {
        delivered = true;
        sink_.DeliverSwapping(std::span(deliveries_.data(), count));
      }
    }
    return delivered;
  }

  void WarnDeleted(int32_t queue, int64_t from, int64_t to) {
    LogWarning(RetentionSkipWarning(spec_.group, spec_.topic, queue, from, to));
  }

  Status CommitQueue(int32_t queue) {
    int64_t position;
    {
      std::lock_guard lock(mutex_);
      auto it = owned_.find(queue);
      if (it == owned_.end()) return OkStatus();
      position = it->second.tracker.CommitPosition();
      if (position == it->second.committed) return OkStatus();
    }
    MSGSDK_RETURN_IF_ERROR(
        broker_->store().CommitOffset(offsets_key_, spec_.topic, queue, position));
    std::lock_guard lock(mutex_);
    auto it = owned_.find(queue);
    if (it != owned_.end()) it->second.committed = position;
    return OkStatus();
  }

  // The acknowledged prefix of every owned queue that moved since its last commit (lock held).
  std::vector<QueueOffset> UncommittedLocked() const {
    std::vector<QueueOffset> offsets;
    for (const auto& [queue, state] : owned_) {
      const int64_t position = state.tracker.CommitPosition();
      if (position != state.committed) offsets.push_back(QueueOffset{queue, position});
    }
    return offsets;
  }

  // Remembers what a commit stored; a queue given up meanwhile is not touched.
  void Committed(const std::vector<QueueOffset>& offsets) {
    std::lock_guard lock(mutex_);
    for (const QueueOffset& offset : offsets) {
      auto it = owned_.find(offset.queue);
      if (it != owned_.end()) it->second.committed = offset.offset;
    }
  }

  // Commits every queue that moved, in one write, without making the fetch loop wait for it
  // to be durable (in group-commit mode, for an fdatasync). One at a time: a round that finds
  // the previous commit still running leaves its positions to the next round.
  // At most one per commit_interval: in group-commit mode each is an fdatasync of the offsets
  // journal, which the commit log's own fdatasyncs would otherwise queue behind.
  void CommitInBackground() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_commit_) return;
    std::vector<QueueOffset> offsets;
    {
      std::lock_guard lock(mutex_);
      if (commit_running_) return;
      offsets = UncommittedLocked();
      if (offsets.empty()) return;
      commit_running_ = true;
    }
    next_commit_ = now + settings_.commit_interval;
    broker_->store().CommitOffsets(offsets_key_, spec_.topic, offsets,
                                   [this, offsets](const Status& status) {
                                     if (status.ok()) Committed(offsets);
                                     std::lock_guard lock(mutex_);
                                     commit_running_ = false;
                                     commit_done_.notify_all();
                                   });
  }

  // Before a commit that must land after it (a release, the final one), and before this
  // consumer may go.
  void WaitForBackgroundCommit() {
    std::unique_lock lock(mutex_);
    commit_done_.wait(lock, [this] { return !commit_running_; });
  }

  // Commits every queue that moved, in one write, and waits until it is durable.
  Status Commit(bool flush) {
    std::vector<QueueOffset> offsets;
    {
      std::lock_guard lock(mutex_);
      offsets = UncommittedLocked();
    }
    Status status;
    if (!offsets.empty()) {
      status = broker_->store().CommitOffsetsAndWait(offsets_key_, spec_.topic, offsets);
      if (status.ok()) Committed(offsets);
    }
    if (flush) {
      Status flushed = broker_->store().FlushOffsets();
      if (status.ok() && !flushed.ok()) status = flushed;
    }
    return status;
  }

  const std::shared_ptr<Broker> broker_;
  const core::SubscriptionSpec spec_;
  core::DeliverySink& sink_;
  const int32_t queues_;
  const ConsumerSettings settings_;
  const std::string offsets_key_;
  std::vector<uint64_t> tag_hashes_;

  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable commit_done_;
  bool commit_running_ = false;                          // guarded by mutex_
  std::chrono::steady_clock::time_point next_commit_{};  // the consuming thread only
  std::map<int32_t, OwnedQueue> owned_;
  // The consuming thread only: the records a read is copied into, kept with their buffers.
  std::vector<core::DeliveryPtr> deliveries_;
  Status close_status_;
  std::thread thread_;
};

class NativeBackend : public core::Backend {
 public:
  NativeBackend(std::shared_ptr<Broker> broker, int32_t queues, ConsumerSettings settings)
      : broker_(std::move(broker)), queues_(queues), settings_(settings) {
    capabilities_.backend = "native";
    capabilities_.broadcast = true;
    capabilities_.server_side_tag_filter = true;
    capabilities_.replay = true;
  }

  const Capabilities& capabilities() const override { return capabilities_; }

  Result<std::unique_ptr<core::BackendProducer>> CreateProducer(const std::string& topic) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<Broker> broker, Live());
    MSGSDK_ASSIGN_OR_RETURN(TopicInfo info, broker->store().GetOrCreateTopic(topic, queues_));
    return std::unique_ptr<core::BackendProducer>(new NativeProducer(broker, info.queues));
  }

  Result<std::unique_ptr<core::BackendConsumer>> Subscribe(const core::SubscriptionSpec& spec,
                                                           core::DeliverySink& sink) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<Broker> broker, Live());
    MSGSDK_ASSIGN_OR_RETURN(TopicInfo info, broker->store().GetOrCreateTopic(spec.topic, queues_));
    return std::unique_ptr<core::BackendConsumer>(
        new NativeConsumer(broker, spec, sink, info.queues, settings_));
  }

  Status ResetOffsets(const std::string& topic, const std::string& group,
                      const ResetTarget& target) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<Broker> broker, Live());
    return broker->ResetOffsets(topic, group, target);
  }

  Result<std::vector<core::PartitionPosition>> Positions(
      const core::SubscriptionSpec& spec) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<Broker> broker, Live());
    // Made if missing, as a producer or a subscription would: all its partitions are empty.
    MSGSDK_ASSIGN_OR_RETURN(const TopicInfo info,
                            broker->store().GetOrCreateTopic(spec.topic, queues_));
    const std::string key = OffsetsKey(spec);
    std::vector<core::PartitionPosition> positions;
    for (int32_t queue = 0; queue < info.queues; ++queue) {
      const std::optional<int64_t> committed =
          broker->store().CommittedOffset(key, spec.topic, queue);
      // The start first: it never passes the end read after it.
      const int64_t start = broker->store().MinOffset(spec.topic, queue);
      positions.push_back({.partition = queue,
                           .end = broker->store().MaxOffset(spec.topic, queue),
                           .committed = committed.value_or(-1),
                           .start = start});
    }
    return positions;
  }

  Status Close(Deadline) override {
    // Producers and consumers hold the broker too; it closes when the last of them is gone.
    std::lock_guard lock(mutex_);
    broker_.reset();
    return OkStatus();
  }

 private:
  Result<std::shared_ptr<Broker>> Live() {
    std::lock_guard lock(mutex_);
    if (!broker_) return FailedPreconditionError("native cluster is closed");
    return broker_;
  }

  std::mutex mutex_;
  std::shared_ptr<Broker> broker_;
  const int32_t queues_;
  const ConsumerSettings settings_;
  Capabilities capabilities_;
};

RetentionPolicy RetentionFromConfig(const core::ClusterConfig& config) {
  RetentionPolicy policy;
  policy.max_age = config.GetDuration("retention_ms", policy.max_age);
  policy.max_bytes = static_cast<uint64_t>(
      config.GetInt("retention_bytes", static_cast<int64_t>(policy.max_bytes)));
  policy.check_interval = config.GetDuration("retention_check_interval_ms", policy.check_interval);
  return policy;
}

class NativeBackendFactory : public core::BackendFactory {
 public:
  std::string name() const override { return "native"; }
  const core::PropertyTable& properties() const override { return NativeProperties(); }

  Result<core::BackendPtr> Create(const core::ClusterConfig& config) override {
    const bool has_endpoints = !config.GetList("endpoints").empty();
    const std::string embedded = config.GetString("embedded");
    if (has_endpoints && embedded == "true") {
      return InvalidArgumentError("native cluster '" + config.name + "' (" + config.source +
                                  "): embedded: true and endpoints exclude each other");
    }
    if (!has_endpoints && embedded == "false") {
      return InvalidArgumentError("native cluster '" + config.name + "' (" + config.source +
                                  "): embedded: false needs endpoints, the host:port of a "
                                  "msgsdk-broker daemon");
    }
    if (has_endpoints) return client::CreateRemoteBackend(config);
    BrokerOptions options;
    options.store.data_dir = config.GetString("data_dir", "./msgsdk-data");
    options.store.flush_mode = config.GetString("flush_mode", "group_commit") == "periodic"
                                   ? FlushMode::kPeriodic
                                   : FlushMode::kGroupCommit;
    options.store.flush_interval =
        config.GetDuration("flush_interval_ms", options.store.flush_interval);
    options.store.segment_bytes = static_cast<uint64_t>(
        config.GetInt("segment_bytes", static_cast<int64_t>(options.store.segment_bytes)));
    options.store.index_entries_per_file = static_cast<uint32_t>(
        config.GetInt("index_entries_per_file", options.store.index_entries_per_file));
    options.store.max_message_bytes =
        static_cast<uint32_t>(config.GetInt("max_message_bytes", options.store.max_message_bytes));
    const auto queues = static_cast<int32_t>(config.GetInt("queues", 8));
    options.store.default_queues = queues;
    options.store.offset_flush_interval =
        config.GetDuration("offset_flush_interval_ms", options.store.offset_flush_interval);
    options.store.retention = RetentionFromConfig(config);
    ConsumerSettings settings{
        .pull_batch = static_cast<int32_t>(config.GetInt("pull_batch", 256)),
        .poll_wait = config.GetDuration("poll_wait_ms", std::chrono::milliseconds(500)),
        .commit_interval =
            config.GetDuration("commit_interval_ms", std::chrono::milliseconds(100))};
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<Broker> broker, AcquireEmbeddedBroker(options));
    return core::BackendPtr(std::make_shared<NativeBackend>(std::move(broker), queues, settings));
  }
};

}  // namespace

std::unique_ptr<core::BackendFactory> MakeNativeBackendFactory() {
  return std::make_unique<NativeBackendFactory>();
}

}  // namespace msgsdk::native
