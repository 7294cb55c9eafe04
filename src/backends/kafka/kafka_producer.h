#pragma once

// A BackendProducer of one topic over the cluster's shared librdkafka producer.

#include <memory>
#include <string>

#include "backends/kafka/kafka_cluster.h"
#include "core/backend.h"

namespace msgsdk::kafka {

class KafkaTopicProducer : public core::BackendProducer {
 public:
  KafkaTopicProducer(std::shared_ptr<KafkaCluster> cluster, std::string topic);
  ~KafkaTopicProducer() override;

  void Send(const Message& message, core::SendDone done) override;
  Status Close(core::Deadline deadline) override;

 private:
  const std::shared_ptr<KafkaCluster> cluster_;
  const std::string topic_;
  const std::shared_ptr<SendTracker> tracker_;
};

}  // namespace msgsdk::kafka
