#include "backends/kafka/kafka_backend.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "backends/kafka/kafka_cluster.h"
#include "backends/kafka/kafka_config.h"
#include "backends/kafka/kafka_consumer.h"
#include "backends/kafka/kafka_errors.h"
#include "backends/kafka/kafka_mapping.h"
#include "backends/kafka/kafka_producer.h"

namespace msgsdk::kafka {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(core::Deadline deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(1, left));
}

class KafkaBackend : public core::Backend {
 public:
  explicit KafkaBackend(std::shared_ptr<KafkaCluster> cluster) : cluster_(std::move(cluster)) {
    capabilities_.backend = "kafka";
    capabilities_.timer_messages = false;
    capabilities_.transactions = false;
    capabilities_.broadcast = true;
    capabilities_.server_side_tag_filter = false;
    capabilities_.replay = true;
  }

  const Capabilities& capabilities() const override { return capabilities_; }

  Result<std::unique_ptr<core::BackendProducer>> CreateProducer(const std::string& topic) override {
    const Status topic_status = cluster_->EnsureTopic(topic);
    // An unreachable cluster is not a reason to refuse a producer: its sends fail (or succeed
    // once the cluster is back) within their own timeout.
    if (!topic_status.ok() && topic_status.code() != StatusCode::kUnavailable) {
      return topic_status;
    }
    MSGSDK_ASSIGN_OR_RETURN(auto producer, KafkaTopicProducer::Create(cluster_, topic));
    return std::unique_ptr<core::BackendProducer>(std::move(producer));
  }

  Result<std::unique_ptr<core::BackendConsumer>> Subscribe(const core::SubscriptionSpec& spec,
                                                           core::DeliverySink& sink) override {
    const Status topic_status = cluster_->EnsureTopic(spec.topic);
    // Likewise a consumer keeps trying to join until the cluster is reachable.
    if (!topic_status.ok() && topic_status.code() != StatusCode::kUnavailable) {
      return topic_status;
    }
    MSGSDK_ASSIGN_OR_RETURN(auto subscription, KafkaSubscription::Start(cluster_, spec, sink));
    return std::unique_ptr<core::BackendConsumer>(std::move(subscription));
  }

  Status ResetOffsets(const std::string& topic, const std::string& group,
                      const ResetTarget& target) override;
  Result<std::vector<core::PartitionPosition>> Positions(
      const core::SubscriptionSpec& spec) override;

  Status Close(core::Deadline deadline) override { return cluster_->Shutdown(deadline); }

 private:
  // Commits `offsets` for a group that must have no active member.
  Status CommitForGroup(const std::string& topic, const std::string& group,
                        const std::vector<std::pair<int32_t, int64_t>>& offsets,
                        core::Deadline deadline);
  Status CommitAsOnlyMember(const std::string& topic, const std::string& group,
                            const std::vector<std::pair<int32_t, int64_t>>& offsets,
                            core::Deadline deadline);

  std::shared_ptr<KafkaCluster> cluster_;
  Capabilities capabilities_;
};

Status KafkaBackend::ResetOffsets(const std::string& topic, const std::string& group,
                                  const ResetTarget& target) {
  const KafkaSettings& settings = cluster_->settings();
  const core::Deadline deadline = Clock::now() + settings.metadata_timeout;
  const std::string what = "group '" + group + "' on " + cluster_->DescribeTopic(topic);
  MSGSDK_ASSIGN_OR_RETURN(const std::vector<int32_t> partitions,
                          cluster_->Partitions(topic, deadline));

  // A consumer handle of the group that never joins it: it only reads offsets and commits.
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                          MakeConsumerConf(settings, group, StartPosition::kEarliest));
  std::string errstr;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&cluster_->events()), errstr);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (consumer == nullptr) {
    return InvalidArgumentError("resetting offsets of " + what + ": " + errstr);
  }

  std::vector<std::pair<int32_t, int64_t>> offsets;
  auto watermark = [&](int32_t partition, bool high, int64_t* out) -> Status {
    int64_t low_mark = 0;
    int64_t high_mark = 0;
    const RdKafka::ErrorCode err = consumer->query_watermark_offsets(
        topic, partition, &low_mark, &high_mark, RemainingMs(deadline));
    if (err != RdKafka::ERR_NO_ERROR) {
      return KafkaStatus(err, "resetting offsets of " + what +
                                  ": reading the bounds of "
                                  "partition " +
                                  std::to_string(partition));
    }
    *out = high ? high_mark : low_mark;
    return OkStatus();
  };

  if (target.kind == ResetTarget::Kind::kTimestamp) {
    const int64_t millis = ToEpochMillis(target.timestamp);
    std::vector<RdKafka::TopicPartition*> query;
    for (int32_t partition : partitions) {
      query.push_back(RdKafka::TopicPartition::create(topic, partition, millis));
    }
    const RdKafka::ErrorCode err = consumer->offsetsForTimes(query, RemainingMs(deadline));
    Status status = KafkaStatus(err, "resetting offsets of " + what + " to a timestamp");
    for (RdKafka::TopicPartition* tp : query) {
      if (!status.ok()) break;
      if (tp->err() != RdKafka::ERR_NO_ERROR) {
        status = KafkaStatus(tp->err(), "resetting offsets of " + what + ": partition " +
                                            std::to_string(tp->partition()));
        break;
      }
      int64_t offset = tp->offset();
      // No record at or after the timestamp: start after the last one.
      if (offset < 0) status = watermark(tp->partition(), true, &offset);
      offsets.emplace_back(tp->partition(), offset);
    }
    RdKafka::TopicPartition::destroy(query);
    MSGSDK_RETURN_IF_ERROR(status);
  } else {
    const bool latest = target.kind == ResetTarget::Kind::kLatest;
    for (int32_t partition : partitions) {
      int64_t offset = 0;
      MSGSDK_RETURN_IF_ERROR(watermark(partition, latest, &offset));
      offsets.emplace_back(partition, offset);
    }
  }

  consumer->close();
  consumer.reset();
  return CommitForGroup(topic, group, offsets, deadline);
}

Result<std::vector<core::PartitionPosition>> KafkaBackend::Positions(
    const core::SubscriptionSpec& spec) {
  const KafkaSettings& settings = cluster_->settings();
  const core::Deadline deadline = Clock::now() + settings.metadata_timeout;
  const std::string group = KafkaGroupId(spec);
  const std::string what =
      "positions of group '" + group + "' on " + cluster_->DescribeTopic(spec.topic);
  MSGSDK_ASSIGN_OR_RETURN(const std::vector<int32_t> partitions,
                          cluster_->Partitions(spec.topic, deadline));
  // A consumer handle of the group that never joins it: it only reads offsets.
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                          MakeConsumerConf(settings, group, StartPosition::kEarliest));
  std::string errstr;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&cluster_->events()), errstr);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (consumer == nullptr) return InvalidArgumentError(what + ": " + errstr);

  std::vector<RdKafka::TopicPartition*> query;
  for (int32_t partition : partitions) {
    query.push_back(RdKafka::TopicPartition::create(spec.topic, partition));
  }
  Status status =
      KafkaStatus(consumer->committed(query, RemainingMs(deadline)), what + ": committed offsets");
  std::vector<core::PartitionPosition> positions;
  for (RdKafka::TopicPartition* tp : query) {
    if (!status.ok()) break;
    int64_t low = 0;
    int64_t high = 0;
    const RdKafka::ErrorCode err = consumer->query_watermark_offsets(
        spec.topic, tp->partition(), &low, &high, RemainingMs(deadline));
    if (err != RdKafka::ERR_NO_ERROR) {
      status = KafkaStatus(err, what + ": the end of partition " + std::to_string(tp->partition()));
      break;
    }
    // A partition the group never committed reports RD_KAFKA_OFFSET_INVALID (-1001).
    positions.push_back({.partition = tp->partition(),
                         .end = high,
                         .committed = tp->offset() >= 0 ? tp->offset() : -1,
                         .start = low});
  }
  RdKafka::TopicPartition::destroy(query);
  consumer->close();
  MSGSDK_RETURN_IF_ERROR(status);
  return positions;
}

Status KafkaBackend::CommitForGroup(const std::string& topic, const std::string& group,
                                    const std::vector<std::pair<int32_t, int64_t>>& offsets,
                                    core::Deadline deadline) {
  const KafkaSettings& settings = cluster_->settings();
  const std::string what = "group '" + group + "' on " + cluster_->DescribeTopic(topic);
  const std::string context = "resetting offsets of " + what;
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                          MakeConsumerConf(settings, group, StartPosition::kEarliest));
  std::string errstr;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&cluster_->events()), errstr);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (consumer == nullptr) return InvalidArgumentError(context + ": " + errstr);

  // Kafka accepts offsets from outside a group only while it has no members.
  const rd_kafka_group_list* groups = nullptr;
  const rd_kafka_resp_err_t list_err =
      rd_kafka_list_groups(consumer->c_ptr(), group.c_str(), &groups, RemainingMs(deadline));
  if (list_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    int members = 0;
    for (int i = 0; i < groups->group_cnt; ++i) members += groups->groups[i].member_cnt;
    rd_kafka_group_list_destroy(groups);
    if (members > 0) {
      consumer->close();
      return FailedPreconditionError(context + ": the group has " + std::to_string(members) +
                                     " active member(s); close its subscriptions first");
    }
    Status status = CommitOffsets(consumer->c_ptr(), topic, offsets, deadline, what, nullptr);
    consumer->close();
    if (status.code() == StatusCode::kAborted) {
      // A member joined meanwhile: the coordinator refuses commits from outside the group.
      return FailedPreconditionError(context +
                                     ": the group has active members; close its "
                                     "subscriptions first (" +
                                     status.message() + ")");
    }
    return status;
  }
  if (list_err != RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
    consumer->close();
    return KafkaStatus(static_cast<RdKafka::ErrorCode>(list_err),
                       context + ": reading the group's state");
  }
  consumer->close();
  return CommitAsOnlyMember(topic, group, offsets, deadline + settings.session_timeout);
}

Status KafkaBackend::CommitAsOnlyMember(const std::string& topic, const std::string& group,
                                        const std::vector<std::pair<int32_t, int64_t>>& offsets,
                                        core::Deadline deadline) {
  // Brokers without ListGroups (librdkafka's mock cluster) also refuse commits from outside
  // a group, even an empty one: join it, and commit only if every partition is ours, that is
  // if nobody else is a member.
  const KafkaSettings& settings = cluster_->settings();
  const std::string what = "group '" + group + "' on " + cluster_->DescribeTopic(topic);
  const std::string context = "resetting offsets of " + what;
  class Assignments : public RdKafka::RebalanceCb {
   public:
    void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                      std::vector<RdKafka::TopicPartition*>& partitions) override {
      const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
      if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
        for (const RdKafka::TopicPartition* tp : partitions) owned.insert(tp->partition());
        if (cooperative) {
          delete consumer->incremental_assign(partitions);
        } else {
          consumer->assign(partitions);
        }
      } else {
        for (const RdKafka::TopicPartition* tp : partitions) owned.erase(tp->partition());
        if (err == RdKafka::ERR__REVOKE_PARTITIONS && cooperative) {
          delete consumer->incremental_unassign(partitions);
        } else {
          consumer->unassign();
        }
      }
    }
    std::set<int32_t> owned;
  } assignments;
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                          MakeConsumerConf(settings, group, StartPosition::kEarliest));
  std::string errstr;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&cluster_->events()), errstr);
  conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(&assignments), errstr);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (consumer == nullptr) return InvalidArgumentError(context + ": " + errstr);
  const RdKafka::ErrorCode err = consumer->subscribe({topic});
  if (err != RdKafka::ERR_NO_ERROR) {
    consumer->close();
    return KafkaStatus(err, context + ": joining the group");
  }
  Status status;
  while (assignments.owned.size() < offsets.size() && Clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message(
        consumer->consume(std::min(100, RemainingMs(deadline))));
    if (message->err() == RdKafka::ERR_INCONSISTENT_GROUP_PROTOCOL) {
      status = FailedPreconditionError(context +
                                       ": the group has active members; close its "
                                       "subscriptions first");
      break;
    }
  }
  if (!status.ok()) {
    // Refused by the group.
  } else if (assignments.owned.size() < offsets.size()) {
    status = FailedPreconditionError(context + ": the group has other active members (only " +
                                     std::to_string(assignments.owned.size()) + " of " +
                                     std::to_string(offsets.size()) +
                                     " partitions could be taken); close its subscriptions first");
  } else {
    status = CommitOffsets(consumer->c_ptr(), topic, offsets, deadline, what, nullptr);
  }
  consumer->close();
  return status;
}

class KafkaBackendFactory : public core::BackendFactory {
 public:
  std::string name() const override { return "kafka"; }
  const core::PropertyTable& properties() const override { return KafkaProperties(); }
  Result<core::BackendPtr> Create(const core::ClusterConfig& config) override {
    MSGSDK_ASSIGN_OR_RETURN(KafkaSettings settings, ParseSettings(config));
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<KafkaCluster> cluster,
                            KafkaCluster::Start(std::move(settings)));
    return core::BackendPtr(std::make_shared<KafkaBackend>(std::move(cluster)));
  }
};

}  // namespace

std::unique_ptr<core::BackendFactory> MakeKafkaBackendFactory() {
  return std::make_unique<KafkaBackendFactory>();
}

Status ValidateKafkaCluster(const core::ClusterConfig& config) {
  return ParseSettings(config).status();
}

}  // namespace msgsdk::kafka
