#pragma once

// A BackendProducer of one topic over the cluster's shared librdkafka producer.

#include <memory>
#include <string>

#include <librdkafka/rdkafka.h>

#include "backends/kafka/kafka_cluster.h"
#include "core/backend.h"

namespace msgsdk::kafka {

class KafkaTopicProducer : public core::BackendProducer {
 public:
  // Fails only if librdkafka refuses a handle of the topic.
  static Result<std::unique_ptr<KafkaTopicProducer>> Create(std::shared_ptr<KafkaCluster> cluster,
                                                            std::string topic);
  ~KafkaTopicProducer() override;
  KafkaTopicProducer(const KafkaTopicProducer&) = delete;
  KafkaTopicProducer& operator=(const KafkaTopicProducer&) = delete;

  void Send(const Message& message, core::SendDone done) override;
  Status Close(core::Deadline deadline) override;

 private:
  KafkaTopicProducer(std::shared_ptr<KafkaCluster> cluster, std::string topic,
                     rd_kafka_topic_t* handle);

  const std::shared_ptr<KafkaCluster> cluster_;
  const std::string topic_;
  // Resolved once: producing by name would look the topic up in librdkafka on every send.
  rd_kafka_topic_t* const handle_;
  // Released, not deleted: it lives on until the last delivery report of its sends.
  SendTracker* const tracker_;
};

}  // namespace msgsdk::kafka
