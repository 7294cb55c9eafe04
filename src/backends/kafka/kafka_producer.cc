#include "backends/kafka/kafka_producer.h"

#include <utility>
#include <vector>

namespace msgsdk::kafka {

Result<std::unique_ptr<KafkaTopicProducer>> KafkaTopicProducer::Create(
    std::shared_ptr<KafkaCluster> cluster, std::string topic) {
  MSGSDK_ASSIGN_OR_RETURN(rd_kafka_topic_t * handle, cluster->NewTopicHandle(topic));
  return std::unique_ptr<KafkaTopicProducer>(
      new KafkaTopicProducer(std::move(cluster), std::move(topic), handle));
}

KafkaTopicProducer::KafkaTopicProducer(std::shared_ptr<KafkaCluster> cluster, std::string topic,
                                       rd_kafka_topic_t* handle)
    : cluster_(std::move(cluster)),
      topic_(std::move(topic)),
      handle_(handle),
      tracker_(new SendTracker(cluster_.get(), topic_)) {}

KafkaTopicProducer::~KafkaTopicProducer() {
  Close(std::chrono::steady_clock::now()).IgnoreError();
  tracker_->Release();
  // Records still queued hold their own reference to the topic.
  rd_kafka_topic_destroy(handle_);
}

void KafkaTopicProducer::Send(const Message& message, core::SendDone done) {
  if (message.deliver_at.has_value()) {
    done(UnsupportedError("send to " + cluster_->DescribeTopic(topic_) +
                          ": backend 'kafka' does not support timer messages (deliver_at)"));
    return;
  }
  if (!tracker_->Send(message, handle_, done)) return;
  cluster_->AfterSend();
}

Status KafkaTopicProducer::Close(core::Deadline deadline) {
  std::vector<core::SendDone> expired = tracker_->Close(deadline);
  if (expired.empty()) return OkStatus();
  const Status status = DeadlineExceededError(
      "send to " + cluster_->DescribeTopic(topic_) +
      ": not acknowledged before the producer was closed (the record may still be stored)");
  for (core::SendDone& done : expired) done(status);
  return DeadlineExceededError("closing the producer of " + cluster_->DescribeTopic(topic_) + ": " +
                               std::to_string(expired.size()) +
                               " sends were not acknowledged by the deadline");
}

}  // namespace msgsdk::kafka
