#include "backends/kafka/kafka_consumer.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

#include "backends/kafka/kafka_errors.h"
#include "backends/kafka/kafka_mapping.h"

namespace msgsdk::kafka {
namespace {

using Clock = std::chrono::steady_clock;

// Records handed to the core in one Deliver call at most.
constexpr size_t kMaxBatch = 1000;
// How long one poll waits for records when nothing is pending.
constexpr int kPollWaitMs = 100;
// How long the poll thread waits for the core to have room again before it pauses the
// partitions. Pausing makes librdkafka discard what it prefetched (fetched again on resume),
// which costs far more than handlers catching up for a moment; waiting longer would delay
// rebalance callbacks, which only polling serves.
constexpr auto kFullWait = std::chrono::milliseconds(200);
// While paused: how long a poll serves group events, then how long to wait for capacity.
constexpr int kPausedPollWaitMs = 20;
constexpr auto kPausedCapacityWait = std::chrono::milliseconds(50);

int RemainingMs(core::Deadline deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

bool IsCooperative(RdKafka::KafkaConsumer* consumer) {
  return consumer->rebalance_protocol() == "COOPERATIVE";
}

}  // namespace

std::string KafkaGroupId(const core::SubscriptionSpec& spec) {
  if (spec.mode == SubscriptionMode::kBroadcast) return spec.group + "." + spec.member_id;
  return spec.group;
}

class KafkaSubscription::Rebalancer : public RdKafka::RebalanceCb {
 public:
  explicit Rebalancer(KafkaSubscription& owner) : owner_(owner) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      owner_.OnAssign(partitions);
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      owner_.OnRevoke(partitions, consumer->assignment_lost());
    } else {
      owner_.OnRebalanceError(err);
    }
  }

 private:
  KafkaSubscription& owner_;
};

KafkaSubscription::KafkaSubscription(std::shared_ptr<KafkaCluster> cluster,
                                     const core::SubscriptionSpec& spec, core::DeliverySink& sink)
    : cluster_(std::move(cluster)),
      spec_(spec),
      group_id_(KafkaGroupId(spec)),
      sink_(sink),
      tags_(spec.tags.begin(), spec.tags.end()),
      rebalancer_(std::make_unique<Rebalancer>(*this)) {}

Result<std::unique_ptr<KafkaSubscription>> KafkaSubscription::Start(
    std::shared_ptr<KafkaCluster> cluster, const core::SubscriptionSpec& spec,
    core::DeliverySink& sink) {
  if (spec.mode == SubscriptionMode::kBroadcast && spec.member_id.empty()) {
    return InvalidArgumentError("broadcast subscription of group '" + spec.group + "' to " +
                                cluster->DescribeTopic(spec.topic) +
                                ": a member id is required (offsets are kept per member)");
  }
  std::unique_ptr<KafkaSubscription> sub(new KafkaSubscription(std::move(cluster), spec, sink));
  const KafkaSettings& settings = sub->cluster_->settings();
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf,
                          MakeConsumerConf(settings, sub->group_id_, spec.start_from));
  std::string errstr;
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&sub->cluster_->events()), errstr) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(sub->rebalancer_.get()),
                errstr) != RdKafka::Conf::CONF_OK) {
    return InternalError(sub->Describe() + ": cannot install librdkafka callbacks: " + errstr);
  }
  sub->consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), errstr));
  if (sub->consumer_ == nullptr) {
    return InvalidArgumentError(sub->Describe() +
                                ": librdkafka refused the consumer configuration: " + errstr);
  }
  sub->commit_queue_ = rd_kafka_queue_new(sub->consumer_->c_ptr());
  const RdKafka::ErrorCode err = sub->consumer_->subscribe({spec.topic});
  if (err != RdKafka::ERR_NO_ERROR) {
    Status status = KafkaStatus(err, sub->Describe() + ": subscribing");
    rd_kafka_queue_destroy(sub->commit_queue_);
    sub->commit_queue_ = nullptr;
    sub->consumer_->close();
    sub->consumer_.reset();
    return status;
  }
  sub->thread_ = std::thread([raw = sub.get()] { raw->Run(); });
  return sub;
}

KafkaSubscription::~KafkaSubscription() {
  if (!thread_.joinable()) {
    // Start failed before the poll thread ran: nothing joined, nothing to leave.
    if (commit_queue_ != nullptr) rd_kafka_queue_destroy(commit_queue_);
    return;
  }
  Close(Clock::now() + cluster_->settings().metadata_timeout).IgnoreError();
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

std::string KafkaSubscription::Describe() const {
  std::string out = "subscription of group '" + spec_.group + "'";
  if (group_id_ != spec_.group) out += " (Kafka group '" + group_id_ + "')";
  return out + " to " + cluster_->DescribeTopic(spec_.topic);
}

namespace {

// The epoch a delivery's receipt carries (0 if it holds none).
uint64_t ReceiptEpoch(const core::Delivery& delivery) {
  uint64_t epoch = 0;
  const std::string& receipt = delivery.receipt;
  auto [ptr, ec] = std::from_chars(receipt.data(), receipt.data() + receipt.size(), epoch);
  if (ec != std::errc() || ptr != receipt.data() + receipt.size()) return 0;
  return epoch;
}

}  // namespace

void KafkaSubscription::Ack(const core::Delivery& delivery) {
  if (const uint64_t epoch = ReceiptEpoch(delivery)) {
    tracker_.Ack(delivery.message.partition, epoch, delivery.message.offset);
  }
}

void KafkaSubscription::AckAll(std::span<const core::Delivery* const> deliveries) {
  // In chunks under one lock of the tracker each.
  constexpr size_t kChunk = 32;
  std::array<AssignmentOffsets::Acked, kChunk> chunk;
  size_t used = 0;
  for (const core::Delivery* delivery : deliveries) {
    const uint64_t epoch = ReceiptEpoch(*delivery);
    if (epoch == 0) continue;
    chunk[used++] = {delivery->message.partition, epoch, delivery->message.offset};
    if (used == kChunk) {
      tracker_.AckAll(std::span(chunk.data(), used));
      used = 0;
    }
  }
  if (used > 0) tracker_.AckAll(std::span(chunk.data(), used));
}

Status KafkaSubscription::Close(core::Deadline deadline) {
  {
    std::unique_lock lock(mu_);
    if (!close_requested_) {
      close_requested_ = true;
      close_deadline_ = deadline;
      stop_.store(true, std::memory_order_release);
    }
    if (!cv_.wait_until(lock, deadline, [this] { return finished_; })) {
      return DeadlineExceededError("closing " + Describe() +
                                   ": leaving the group did not finish by the deadline");
    }
  }
  std::lock_guard join_lock(join_mu_);
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  return close_status_;
}

// ---- poll thread ---------------------------------------------------------------------------

void KafkaSubscription::Run() {
  pthread_setname_np(pthread_self(), "msgsdk-kpoll");
  const auto commit_interval = cluster_->settings().commit_interval;
  auto next_commit = Clock::now() + commit_interval;
  while (!stop_.load(std::memory_order_acquire)) {
    if (!paused_ && !sink_.WaitForCapacity(Clock::now() + kFullWait)) SetPaused(true);
    if (paused_) {
      // Keep polling while paused: rebalances and commits are served from here.
      PollBatch(kPausedPollWaitMs);
      if (stop_.load(std::memory_order_acquire)) break;
      if (sink_.WaitForCapacity(Clock::now() + kPausedCapacityWait)) SetPaused(false);
    } else {
      PollBatch(kPollWaitMs);
    }
    DrainCommitResults();
    if (Clock::now() >= next_commit) {
      CommitChanged();
      next_commit = Clock::now() + commit_interval;
    }
  }
  core::Deadline deadline;
  {
    std::lock_guard lock(mu_);
    deadline = close_deadline_;
  }
  Status status = Shutdown(deadline);
  {
    std::lock_guard lock(mu_);
    finished_ = true;
    close_status_ = std::move(status);
  }
  cv_.notify_all();
}

void KafkaSubscription::PollBatch(int wait_ms) {
  // The C API: the C++ one wraps every record in an object of its own.
  rd_kafka_t* rk = consumer_->c_ptr();
  while (deliveries_.size() < kMaxBatch) deliveries_.push_back(std::make_unique<core::Delivery>());
  polled_.clear();
  int wait = wait_ms;
  while (polled_.size() < kMaxBatch) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(rk, wait);
    wait = 0;
    if (message == nullptr) break;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Consumer errors (unreachable brokers, a topic not available yet) are transient and
      // librdkafka retries them itself; a fatal one stops this consumer for good.
      if (message->err == RD_KAFKA_RESP_ERR__FATAL) {
        std::fprintf(stderr, "msgsdk: %s: fatal consumer error: %s\n", Describe().c_str(),
                     rd_kafka_message_errstr(message));
      }
      rd_kafka_message_destroy(message);
      continue;
    }
    // The epoch at the time of consumption: a rebalance during the rest of this batch makes
    // the record stale, and it must then not be delivered.
    const uint64_t epoch = OwnedEpoch(message->partition);
    if (epoch != 0) {
      // Decoded into a spent delivery (see DeliverSwapping) worth reusing, and the record
      // destroyed at once: what librdkafka allocated for it (its parsed headers) is freed
      // before the next record needs the same, as the raw consumer does, instead of a
      // thousand allocations piling up before the first free.
      core::Delivery& delivery = core::RecordToDecodeInto(deliveries_, polled_.size());
      DecodeRecordInto(message, &delivery.message);
      polled_.push_back(epoch);
    }
    rd_kafka_message_destroy(message);
  }
  if (!polled_.empty()) Dispatch();
}

void KafkaSubscription::Dispatch() {
  cluster_->events().NoteBrokerAnswered();
  const size_t polled = polled_.size();
  // Tracked per partition (and ownership), in partition order, under one lock per run. The
  // runs' vectors are kept from one poll to the next.
  size_t group_count = 0;
  for (size_t i = 0; i < polled; ++i) {
    const int32_t partition = deliveries_[i]->message.partition;
    const uint64_t epoch = polled_[i];
    const auto used_end = groups_.begin() + static_cast<ptrdiff_t>(group_count);
    auto group = std::find_if(groups_.begin(), used_end, [&](const PartitionRun& g) {
      return g.partition == partition && g.epoch == epoch;
    });
    if (group == used_end) {
      if (group_count == groups_.size()) groups_.emplace_back();
      group = groups_.begin() + static_cast<ptrdiff_t>(group_count++);
      group->partition = partition;
      group->epoch = epoch;
      group->records.clear();
    }
    group->records.push_back(i);
  }
  keep_.assign(polled, 0);
  for (const PartitionRun& group : std::span(groups_.data(), group_count)) {
    offsets_.clear();
    for (size_t i : group.records) offsets_.push_back(deliveries_[i]->message.offset);
    if (tracker_.Track(group.partition, group.epoch, offsets_, tracked_) == 0) continue;
    char digits[24];
    const char* digits_end = std::to_chars(digits, digits + sizeof(digits), group.epoch).ptr;
    const std::string_view receipt(digits, static_cast<size_t>(digits_end - digits));
    for (size_t k = 0; k < group.records.size(); ++k) {
      if (!tracked_[k]) continue;
      core::Delivery& delivery = *deliveries_[group.records[k]];
      if (!tags_.empty() && !tags_.contains(delivery.message.tag)) {
        // Filtered here, before the core sees it: handled as far as the group is concerned.
        tracker_.Ack(group.partition, group.epoch, offsets_[k]);
        continue;
      }
      delivery.receipt.assign(receipt);
      keep_[group.records[k]] = 1;
    }
  }
  // Every partition's records go to the core in one batch, in the order polled (each
  // partition's in partition order): one lock of the core and one wake-up of its handlers per
  // poll, not per partition. Those not handed out move behind, keeping their buffers.
  size_t count = 0;
  for (size_t i = 0; i < polled; ++i) {
    if (!keep_[i]) continue;
    if (i != count) deliveries_[count].swap(deliveries_[i]);
    ++count;
  }
  if (count > 0) sink_.DeliverSwapping(std::span(deliveries_.data(), count));
  polled_.clear();
}

uint64_t KafkaSubscription::OwnedEpoch(int32_t partition) const {
  if (partition < 0 || static_cast<size_t>(partition) >= epochs_.size()) return 0;
  return epochs_[static_cast<size_t>(partition)];
}

void KafkaSubscription::AssignPartition(int32_t partition) {
  if (partition < 0) return;
  if (static_cast<size_t>(partition) >= epochs_.size()) {
    epochs_.resize(static_cast<size_t>(partition) + 1, 0);
  }
  epochs_[static_cast<size_t>(partition)] = tracker_.Assign(partition);
}

void KafkaSubscription::RevokePartition(int32_t partition) {
  tracker_.Revoke(partition);
  if (partition >= 0 && static_cast<size_t>(partition) < epochs_.size()) {
    epochs_[static_cast<size_t>(partition)] = 0;
  }
}

void KafkaSubscription::OnAssign(const std::vector<RdKafka::TopicPartition*>& partitions) {
  for (const RdKafka::TopicPartition* tp : partitions) AssignPartition(tp->partition());
  if (IsCooperative(consumer_.get())) {
    if (RdKafka::Error* error = consumer_->incremental_assign(partitions)) {
      std::fprintf(stderr, "msgsdk: %s: incremental assign failed: %s\n", Describe().c_str(),
                   error->str().c_str());
      delete error;
    }
  } else {
    consumer_->assign(partitions);
  }
  if (paused_) {
    std::vector<RdKafka::TopicPartition*> added(partitions.begin(), partitions.end());
    consumer_->pause(added);
  }
}

void KafkaSubscription::OnRevoke(const std::vector<RdKafka::TopicPartition*>& partitions,
                                 bool lost) {
  std::vector<int32_t> owned;
  for (const RdKafka::TopicPartition* tp : partitions) {
    if (OwnedEpoch(tp->partition()) != 0) owned.push_back(tp->partition());
  }
  if (!owned.empty()) {
    // The core finishes or drops what it holds of these partitions first, so the commit
    // below covers every acknowledgement that will ever come for them.
    sink_.Revoke(owned);
    if (!lost) {
      // Lost partitions already belong to someone else: a commit would be rejected.
      Status committed = CommitSync(tracker_.Committable(true, &owned),
                                    Clock::now() + cluster_->settings().metadata_timeout);
      if (!committed.ok()) revoke_commit_status_ = std::move(committed);
    }
    for (int32_t partition : owned) RevokePartition(partition);
  }
  if (IsCooperative(consumer_.get())) {
    if (RdKafka::Error* error = consumer_->incremental_unassign(partitions)) {
      std::fprintf(stderr, "msgsdk: %s: incremental unassign failed: %s\n", Describe().c_str(),
                   error->str().c_str());
      delete error;
    }
  } else {
    consumer_->unassign();
  }
}

void KafkaSubscription::OnRebalanceError(RdKafka::ErrorCode err) {
  std::fprintf(stderr, "msgsdk: %s: rebalance failed: %s\n", Describe().c_str(),
               RdKafka::err2str(err).c_str());
  const std::vector<int32_t> owned = tracker_.Partitions();
  if (!owned.empty()) sink_.Revoke(owned);
  for (int32_t partition : owned) RevokePartition(partition);
  consumer_->unassign();
}

void KafkaSubscription::SetPaused(bool paused) {
  std::vector<RdKafka::TopicPartition*> assignment;
  consumer_->assignment(assignment);
  if (!assignment.empty()) {
    if (paused) {
      consumer_->pause(assignment);
    } else {
      consumer_->resume(assignment);
    }
  }
  RdKafka::TopicPartition::destroy(assignment);
  paused_ = paused;
}

void KafkaSubscription::CommitChanged() {
  const Offsets offsets = tracker_.Committable(true);
  if (offsets.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const auto& [partition, offset] : offsets) {
    rd_kafka_topic_partition_list_add(list, spec_.topic.c_str(), partition)->offset = offset;
  }
  // The result arrives on commit_queue_; failed commits are simply repeated by the next one.
  rd_kafka_commit_queue(consumer_->c_ptr(), list, commit_queue_, nullptr, nullptr);
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSubscription::DrainCommitResults() {
  while (rd_kafka_event_t* event = rd_kafka_queue_poll(commit_queue_, 0)) {
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT &&
        rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (const rd_kafka_topic_partition_list_t* list =
              rd_kafka_event_topic_partition_list(event)) {
        for (int i = 0; i < list->cnt; ++i) {
          if (list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            tracker_.MarkCommitted(list->elems[i].partition, list->elems[i].offset);
          }
        }
      }
    }
    rd_kafka_event_destroy(event);
  }
}

Status CommitOffsets(rd_kafka_t* rk, const std::string& topic,
                     const std::vector<std::pair<int32_t, int64_t>>& offsets,
                     core::Deadline deadline, const std::string& what,
                     const std::function<void(int32_t, int64_t)>& on_committed) {
  if (offsets.empty()) return OkStatus();
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const auto& [partition, offset] : offsets) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = offset;
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  auto err =
      static_cast<RdKafka::ErrorCode>(rd_kafka_commit_queue(rk, list, queue, nullptr, nullptr));
  rd_kafka_topic_partition_list_destroy(list);
  Status status;
  if (err != RdKafka::ERR_NO_ERROR) {
    status = KafkaStatus(err, "committing offsets of " + what);
  } else if (rd_kafka_event_t* event =
                 rd_kafka_queue_poll(queue, std::max(1, RemainingMs(deadline)))) {
    err = static_cast<RdKafka::ErrorCode>(rd_kafka_event_error(event));
    std::string detail =
        rd_kafka_event_error_string(event) ? rd_kafka_event_error_string(event) : "";
    if (const rd_kafka_topic_partition_list_t* result =
            rd_kafka_event_topic_partition_list(event)) {
      for (int i = 0; i < result->cnt; ++i) {
        const rd_kafka_topic_partition_t& tp = result->elems[i];
        if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          if (err == RdKafka::ERR_NO_ERROR && on_committed) on_committed(tp.partition, tp.offset);
        } else if (err == RdKafka::ERR_NO_ERROR) {
          err = static_cast<RdKafka::ErrorCode>(tp.err);
          detail.clear();
        }
      }
    }
    status = KafkaStatus(err, "committing offsets of " + what, detail);
    rd_kafka_event_destroy(event);
  } else {
    status = DeadlineExceededError("committing offsets of " + what +
                                   ": no answer from the group coordinator by the deadline");
  }
  rd_kafka_queue_destroy(queue);
  return status;
}

Status KafkaSubscription::CommitSync(const Offsets& offsets, core::Deadline deadline) {
  return CommitOffsets(
      consumer_->c_ptr(), spec_.topic, offsets, deadline, Describe(),
      [this](int32_t partition, int64_t offset) { tracker_.MarkCommitted(partition, offset); });
}

Status KafkaSubscription::Shutdown(core::Deadline deadline) {
  // Commit while still a member. During a rebalance the coordinator refuses it; the
  // revocation that leaving the group brings (OnRevoke) then commits what is left.
  Status early_commit;
  const std::vector<int32_t> owned = tracker_.Partitions();
  if (!owned.empty()) {
    sink_.Revoke(owned);
    early_commit = CommitSync(tracker_.Committable(true, &owned), deadline);
  }
  revoke_commit_status_ = OkStatus();

  // Leave the group without blocking past the deadline: close through a queue served here
  // with the event API (records still arriving on it are dropped: they were never handed out).
  rd_kafka_t* rk = consumer_->c_ptr();
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  Status status;
  if (rd_kafka_error_t* error = rd_kafka_consumer_close_queue(rk, queue)) {
    status = KafkaStatus(static_cast<RdKafka::ErrorCode>(rd_kafka_error_code(error)),
                         "closing " + Describe(), rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else {
    while (!rd_kafka_consumer_closed(rk) && Clock::now() < deadline) {
      rd_kafka_event_t* event =
          rd_kafka_queue_poll(queue, std::clamp(RemainingMs(deadline), 1, 100));
      if (event == nullptr) continue;
      if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) ServeRebalanceEvent(event);
      rd_kafka_event_destroy(event);
    }
    if (!rd_kafka_consumer_closed(rk)) {
      status = DeadlineExceededError("closing " + Describe() +
                                     ": leaving the group did not finish by the deadline");
    }
  }
  rd_kafka_queue_destroy(queue);

  Status commit_status = revoke_commit_status_;
  const std::vector<int32_t> left = tracker_.Partitions();
  if (!left.empty()) {
    // Never revoked (the deadline passed, or the assignment was lost): the early commit is
    // all there is.
    commit_status = early_commit;
    for (int32_t partition : left) RevokePartition(partition);
  }
  // A commit refused because the group was rebalancing (other members joining or leaving
  // at the same time) is not a failure of this close: the group's next owner of those
  // partitions receives their messages again, as at-least-once delivery allows.
  if (status.ok() && commit_status.code() != StatusCode::kAborted) status = commit_status;
  DrainCommitResults();
  rd_kafka_queue_destroy(commit_queue_);
  commit_queue_ = nullptr;
  consumer_.reset();  // without a second, blocking close
  return status;
}

void KafkaSubscription::ServeRebalanceEvent(rd_kafka_event_t* event) {
  const auto err = static_cast<RdKafka::ErrorCode>(rd_kafka_event_error(event));
  std::vector<RdKafka::TopicPartition*> partitions;
  if (const rd_kafka_topic_partition_list_t* list = rd_kafka_event_topic_partition_list(event)) {
    for (int i = 0; i < list->cnt; ++i) {
      partitions.push_back(
          RdKafka::TopicPartition::create(list->elems[i].topic, list->elems[i].partition));
    }
  }
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    OnAssign(partitions);
  } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
    OnRevoke(partitions, consumer_->assignment_lost());
  } else {
    OnRebalanceError(err);
  }
  RdKafka::TopicPartition::destroy(partitions);
}

}  // namespace msgsdk::kafka
