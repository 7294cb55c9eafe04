#pragma once

// A BackendConsumer: one librdkafka KafkaConsumer in the subscription's group, served by a
// dedicated poll thread that also runs its rebalance callbacks.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "backends/kafka/assignment_offsets.h"
#include "backends/kafka/kafka_cluster.h"
#include "core/backend.h"

namespace msgsdk::kafka {

// The Kafka group a subscription joins: the SDK group, or for broadcast a group of its own
// per member ("<group>.<member_id>"), so every member reads every partition.
std::string KafkaGroupId(const core::SubscriptionSpec& spec);

// Commits `offsets` of `topic` for the group of consumer handle `rk`, waiting for the answer
// until `deadline`. `what` names the subscription in errors; `on_committed` (optional) is told
// each partition the coordinator accepted.
Status CommitOffsets(rd_kafka_t* rk, const std::string& topic,
                     const std::vector<std::pair<int32_t, int64_t>>& offsets,
                     core::Deadline deadline, const std::string& what,
                     const std::function<void(int32_t, int64_t)>& on_committed);

class KafkaSubscription : public core::BackendConsumer {
 public:
  // Joins the group and starts the poll thread.
  static Result<std::unique_ptr<KafkaSubscription>> Start(std::shared_ptr<KafkaCluster> cluster,
                                                          const core::SubscriptionSpec& spec,
                                                          core::DeliverySink& sink);
  ~KafkaSubscription() override;

  // Thread-safe; may be called from any thread, concurrently.
  void Ack(const core::Delivery& delivery) override;
  void AckAll(std::span<const core::Delivery* const> deliveries) override;
  Status Close(core::Deadline deadline) override;

 private:
  class Rebalancer;
  using Offsets = std::vector<std::pair<int32_t, int64_t>>;

  KafkaSubscription(std::shared_ptr<KafkaCluster> cluster, const core::SubscriptionSpec& spec,
                    core::DeliverySink& sink);

  // ---- poll thread only ----
  void Run();
  // Polls up to kMaxBatch records (waiting up to `wait_ms` for the first), decodes those of
  // owned partitions and dispatches them.
  void PollBatch(int wait_ms);
  // Tracks the polled deliveries and hands those still owned (and not filtered) to the sink.
  void Dispatch();
  // The epoch of an owned partition, 0 if not owned (without the tracker's lock).
  uint64_t OwnedEpoch(int32_t partition) const;
  void AssignPartition(int32_t partition);
  void RevokePartition(int32_t partition);
  void OnAssign(const std::vector<RdKafka::TopicPartition*>& partitions);
  void OnRevoke(const std::vector<RdKafka::TopicPartition*>& partitions, bool lost);
  void OnRebalanceError(RdKafka::ErrorCode err);
  void SetPaused(bool paused);
  void CommitChanged();
  void DrainCommitResults();
  Status CommitSync(const Offsets& offsets, core::Deadline deadline);
  Status Shutdown(core::Deadline deadline);
  // A rebalance event polled through the event API while closing.
  void ServeRebalanceEvent(rd_kafka_event_t* event);
  std::string Describe() const;

  const std::shared_ptr<KafkaCluster> cluster_;
  const core::SubscriptionSpec spec_;
  const std::string group_id_;
  core::DeliverySink& sink_;
  const std::set<std::string> tags_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  rd_kafka_queue_t* commit_queue_ = nullptr;
  AssignmentOffsets tracker_;
  // ---- poll thread only ----
  // The records of the current poll, decoded into *deliveries_[0, n); polled_[i] is the epoch
  // of the partition of deliveries_[i] when it was polled. The records are the spent ones the
  // sink's DeliverSwapping left there, with their buffers, for the next poll to reuse.
  std::vector<core::DeliveryPtr> deliveries_;
  std::vector<uint64_t> polled_;
  // The records of a poll per partition and ownership; only the first of them in use.
  struct PartitionRun {
    int32_t partition = -1;
    uint64_t epoch = 0;
    std::vector<size_t> records;  // indexes into deliveries_
  };
  std::vector<PartitionRun> groups_;
  std::vector<int64_t> offsets_;
  std::vector<char> tracked_;
  std::vector<char> keep_;  // per delivery: handed to the sink
  // The epoch of each owned partition by partition id (0: not owned); mirrors tracker_.
  std::vector<uint64_t> epochs_;
  bool paused_ = false;
  // The last failed commit of a revocation (poll thread only).
  Status revoke_commit_status_;
  bool cooperative_ = true;

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool close_requested_ = false;
  bool finished_ = false;
  core::Deadline close_deadline_{};
  Status close_status_;
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace msgsdk::kafka
