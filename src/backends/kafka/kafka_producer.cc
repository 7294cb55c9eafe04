#include "backends/kafka/kafka_producer.h"

#include <utility>
#include <vector>

namespace msgsdk::kafka {

KafkaTopicProducer::KafkaTopicProducer(std::shared_ptr<KafkaCluster> cluster, std::string topic)
    : cluster_(std::move(cluster)),
      topic_(std::move(topic)),
      tracker_(std::make_shared<SendTracker>()) {}

KafkaTopicProducer::~KafkaTopicProducer() { Close(std::chrono::steady_clock::now()).IgnoreError(); }

void KafkaTopicProducer::Send(const Message& message, core::SendDone done) {
  if (message.deliver_at.has_value()) {
    done(UnsupportedError("send to " + cluster_->DescribeTopic(topic_) +
                          ": backend 'kafka' does not support timer messages (deliver_at)"));
    return;
  }
  auto send = std::make_unique<PendingSend>();
  send->tracker = tracker_;
  send->done = std::move(done);
  send->topic = topic_;
  send->bytes = message.body.size() + message.key.size();
  if (!tracker_->Add(send.get())) {
    core::SendDone refused = std::move(send->done);
    refused(FailedPreconditionError("send to " + cluster_->DescribeTopic(topic_) +
                                    ": the producer is closed"));
    return;
  }
  PendingSend* raw = send.get();
  const Status status = cluster_->Produce(topic_, message, raw);
  if (status.ok()) {
    send.release();  // librdkafka owns it until the delivery report
    return;
  }
  tracker_->Finish(raw, status);
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
