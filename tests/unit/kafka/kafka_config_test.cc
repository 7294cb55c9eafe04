// The kafka backend's property table and configuration checks (no cluster needed).

#include "backends/kafka/kafka_config.h"

#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "backends/kafka/kafka_backend.h"
#include "core/cluster_config.h"

namespace msgsdk::kafka {
namespace {

Result<core::ClusterConfig> Config(const std::map<std::string, std::string>& properties) {
  core::RawProperties raw;
  for (const auto& [key, value] : properties) {
    raw.push_back(core::RawEntry{.key = key, .value = core::RawValue::Scalar(value)});
  }
  return core::ValidateClusterConfig("kafka-main", "kafka", raw, KafkaProperties(),
                                     "environments.prod.clusters.kafka-main", "routing.yaml:4:7");
}

TEST(KafkaConfigTest, PropertyTableIsWellFormedAndDocumented) {
  EXPECT_TRUE(core::ValidatePropertyTable(KafkaProperties()).ok());
  for (const core::PropertySpec& spec : KafkaProperties()) {
    EXPECT_FALSE(spec.description.empty()) << spec.name;
  }
  EXPECT_EQ(MakeKafkaBackendFactory()->name(), "kafka");
}

TEST(KafkaConfigTest, DefaultsAreFilledIn) {
  auto config = Config({{"bootstrap", "k1:9092,k2:9092"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto settings = ParseSettings(*config);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->bootstrap, "k1:9092,k2:9092");
  EXPECT_EQ(settings->partitions, 8);
  EXPECT_TRUE(settings->auto_create_topics);
  EXPECT_TRUE(settings->idempotence);
  EXPECT_EQ(settings->acks, "all");
  EXPECT_EQ(settings->linger, std::chrono::milliseconds(5));
  EXPECT_EQ(settings->batch_size, 1000000);
}

TEST(KafkaConfigTest, BatchingSettingsAcceptUnits) {
  auto config = Config({{"bootstrap", "k1:9092"}, {"batch_size", "64KiB"}, {"linger_ms", "20"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto settings = ParseSettings(*config);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->batch_size, 65536);
  EXPECT_EQ(settings->linger, std::chrono::milliseconds(20));
}

TEST(KafkaConfigTest, PassedThroughPropertiesReachLibrdkafka) {
  auto config = Config({{"bootstrap", "k1:9092"},
                        {"librdkafka.socket.keepalive.enable", "true"},
                        {"librdkafka.message.max.bytes", "2000000"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto settings = ParseSettings(*config);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  auto conf = MakeProducerConf(*settings);
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  std::string value;
  ASSERT_EQ((*conf)->get("message.max.bytes", value), RdKafka::Conf::CONF_OK);
  EXPECT_EQ(value, "2000000");
  ASSERT_EQ((*conf)->get("enable.idempotence", value), RdKafka::Conf::CONF_OK);
  EXPECT_EQ(value, "true");
  ASSERT_EQ((*conf)->get("partitioner", value), RdKafka::Conf::CONF_OK);
  EXPECT_EQ(value, "murmur2_random");
}

TEST(KafkaConfigTest, UnknownLibrdkafkaPropertyIsRejectedWithItsText) {
  auto config = Config({{"bootstrap", "k1:9092"}, {"librdkafka.no.such.property", "1"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const Status status = ValidateKafkaCluster(*config);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("No such configuration property: \"no.such.property\""),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("Kafka cluster 'kafka-main' (routing.yaml:4:7)"),
            std::string::npos)
      << status.message();

  // Create() refuses it the same way, before connecting to anything.
  auto backend = MakeKafkaBackendFactory()->Create(*config);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status(), status);
}

TEST(KafkaConfigTest, InvalidLibrdkafkaValueIsRejectedWithItsText) {
  auto config = Config({{"bootstrap", "k1:9092"}, {"librdkafka.socket.timeout.ms", "soon"}});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const Status status = ValidateKafkaCluster(*config);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("socket.timeout.ms"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("Invalid value"), std::string::npos) << status.message();
}

TEST(KafkaConfigTest, PropertiesTheBackendOwnsCannotBeOverridden) {
  for (const std::string name : {"group.id", "enable.auto.commit", "bootstrap.servers"}) {
    auto config = Config({{"bootstrap", "k1:9092"}, {"librdkafka." + name, "x"}});
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    const Status status = ValidateKafkaCluster(*config);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(status.message().find("'" + name + "' cannot be set here"), std::string::npos)
        << status.message();
  }
}

TEST(KafkaConfigTest, InconsistentSettingsAreRejected) {
  auto acks = Config({{"bootstrap", "k1:9092"}, {"acks", "1"}});
  ASSERT_TRUE(acks.ok());
  EXPECT_NE(ValidateKafkaCluster(*acks).message().find("idempotence"), std::string::npos);
  auto relaxed = Config({{"bootstrap", "k1:9092"}, {"acks", "1"}, {"idempotence", "false"}});
  ASSERT_TRUE(relaxed.ok());
  EXPECT_TRUE(ValidateKafkaCluster(*relaxed).ok());

  auto heartbeat = Config({{"bootstrap", "k1:9092"},
                           {"session_timeout_ms", "6000"},
                           {"heartbeat_interval_ms", "6000"}});
  ASSERT_TRUE(heartbeat.ok());
  EXPECT_NE(ValidateKafkaCluster(*heartbeat).message().find("heartbeat_interval_ms"),
            std::string::npos);
}

TEST(KafkaConfigTest, BootstrapIsRequired) {
  auto config = Config({{"partitions", "3"}});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("bootstrap"), std::string::npos)
      << config.status().message();
}

}  // namespace
}  // namespace msgsdk::kafka
