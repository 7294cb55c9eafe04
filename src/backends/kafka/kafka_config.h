#pragma once

// The Kafka backend's cluster properties, and the librdkafka configurations built from them.

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <librdkafka/rdkafkacpp.h>

#include "core/cluster_config.h"
#include "msgsdk/options.h"
#include "msgsdk/result.h"

namespace msgsdk::kafka {

// The property table of the "kafka" backend (docs/configuration.md is generated from it).
const core::PropertyTable& KafkaProperties();

// A cluster entry's settings, typed.
struct KafkaSettings {
  std::string cluster;  // routing-table name, for error messages
  std::string source;   // "routing.yaml:12:7"
  std::string bootstrap;
  int partitions = 8;
  int replication_factor = -1;
  bool auto_create_topics = true;
  std::string acks = "all";
  bool idempotence = true;
  std::chrono::milliseconds linger{5};
  int64_t batch_size = 1000000;
  int64_t batch_num_messages = 10000;
  std::string compression = "none";
  std::chrono::milliseconds delivery_timeout{3000};
  std::chrono::milliseconds session_timeout{45000};
  std::chrono::milliseconds heartbeat_interval{3000};
  std::chrono::milliseconds commit_interval{1000};
  std::chrono::milliseconds metadata_timeout{5000};
  // librdkafka properties passed through, applied after the backend's own defaults.
  std::map<std::string, std::string> librdkafka;

  // "Kafka cluster 'main' (routing.yaml:12:7)".
  std::string Describe() const;
};

// Reads and checks `config`, including every passed-through librdkafka property (set on a
// producer and a consumer configuration, so librdkafka itself judges names and values).
Result<KafkaSettings> ParseSettings(const core::ClusterConfig& config);

// The producer's configuration (without callbacks).
Result<std::unique_ptr<RdKafka::Conf>> MakeProducerConf(const KafkaSettings& settings);

// A consumer's configuration in `group_id` (without callbacks).
Result<std::unique_ptr<RdKafka::Conf>> MakeConsumerConf(const KafkaSettings& settings,
                                                        const std::string& group_id,
                                                        StartPosition start_from);

// The consumers' partition.assignment.strategy unless the librdkafka map sets one:
// cooperative-sticky where the linked librdkafka handles it safely, else range,roundrobin.
const char* DefaultAssignmentStrategy();

// Sets one property, turning librdkafka's refusal into kInvalidArgument with its own text.
Status SetConf(RdKafka::Conf& conf, const std::string& name, const std::string& value,
               const KafkaSettings& settings);

}  // namespace msgsdk::kafka
