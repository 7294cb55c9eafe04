#include "backends/kafka/kafka_config.h"

#include <array>
#include <string_view>

#include <librdkafka/rdkafka.h>

namespace msgsdk::kafka {
namespace {

// librdkafka's queued.min.messages for consumers (see MakeConsumerConf).
constexpr char kQueuedMinMessages[] = "1000000";

using Type = core::PropertySpec::Type;

core::PropertyTable BuildProperties() {
  core::PropertyTable table;
  auto add = [&table](core::PropertySpec spec) { table.push_back(std::move(spec)); };
  add({.name = "bootstrap",
       .type = Type::kString,
       .required = true,
       .description = "Comma-separated host:port list of brokers to bootstrap from "
                      "(librdkafka bootstrap.servers)."});
  add({.name = "partitions",
       .type = Type::kInt,
       .default_value = "8",
       .min = 1,
       .max = 100000,
       .description =
           "Partitions of a topic the backend creates on first use through the "
           "Admin API (a broker that auto-creates topics uses its own num.partitions)."});
  add({.name = "replication_factor",
       .type = Type::kInt,
       .default_value = "-1",
       .min = -1,
       .max = 32767,
       .description = "Replication factor of topics the backend creates; -1 uses the broker's "
                      "default.replication.factor."});
  add({.name = "auto_create_topics",
       .type = Type::kBool,
       .default_value = "true",
       .description = "Create a missing topic on first use (Admin API, else broker "
                      "auto-creation); when false a missing topic is a kNotFound error."});
  add({.name = "acks",
       .type = Type::kEnum,
       .default_value = "all",
       .allowed = {"all", "1", "0"},
       .description = "Broker acknowledgements a send waits for (librdkafka acks); "
                      "idempotence requires all."});
  add({.name = "idempotence",
       .type = Type::kBool,
       .default_value = "true",
       .description = "Idempotent producer: retries never duplicate or reorder records within a "
                      "partition (librdkafka enable.idempotence)."});
  add({.name = "linger_ms",
       .type = Type::kDuration,
       .default_value = "5",
       .min = 0,
       .max = 900000,
       .description = "How long the producer waits to fill a batch before sending it "
                      "(librdkafka linger.ms)."});
  add({.name = "batch_size",
       .type = Type::kBytes,
       .default_value = "1000000",
       .min = 1,
       .max = 2147483647,
       .description = "Largest batch of records sent to one partition in one request, in bytes "
                      "(librdkafka batch.size)."});
  add({.name = "batch_num_messages",
       .type = Type::kInt,
       .default_value = "10000",
       .min = 1,
       .max = 1000000,
       .description = "Largest number of records in one batch (librdkafka batch.num.messages)."});
  add({.name = "compression",
       .type = Type::kEnum,
       .default_value = "none",
       .allowed = {"none", "gzip", "snappy", "lz4", "zstd"},
       .description = "Compression of record batches (librdkafka compression.codec)."});
  add({.name = "delivery_timeout_ms",
       .type = Type::kDuration,
       .default_value = "3000",
       .min = 1,
       .max = 2147483647,
       .description = "How long the producer keeps trying to store a record before the send "
                      "fails, kUnavailable if no broker acknowledged it (librdkafka "
                      "message.timeout.ms); keep it at most the client's send_timeout_ms."});
  add({.name = "session_timeout_ms",
       .type = Type::kDuration,
       .default_value = "45000",
       .min = 1,
       .max = 3600000,
       .description = "A consumer that sends no heartbeat for this long leaves its group and "
                      "its partitions move to other members (librdkafka session.timeout.ms)."});
  add({.name = "heartbeat_interval_ms",
       .type = Type::kDuration,
       .default_value = "3000",
       .min = 1,
       .max = 3600000,
       .description = "How often a consumer heartbeats to its group coordinator; below "
                      "session_timeout_ms (librdkafka heartbeat.interval.ms)."});
  add({.name = "commit_interval_ms",
       .type = Type::kDuration,
       .default_value = "1000",
       .min = 1,
       .max = 3600000,
       .description = "How often a consumer commits the offsets of acknowledged messages (also "
                      "committed whenever partitions are revoked and on close)."});
  add({.name = "metadata_timeout_ms",
       .type = Type::kDuration,
       .default_value = "5000",
       .min = 1,
       .max = 600000,
       .description = "Bound of topic lookups, topic creation and offset resets; an unreachable "
                      "cluster is reported as soon as every broker has failed."});
  add({.name = "librdkafka",
       .type = Type::kMap,
       .description = "librdkafka properties passed through unchanged after the backend's "
                      "defaults (security.protocol, sasl.*, ...); names and values are checked "
                      "by librdkafka."});
  return table;
}

// Properties the backend owns: overriding them would break its delivery contract.
constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kReserved = {{
    {"bootstrap.servers", "use the 'bootstrap' property"},
    {"metadata.broker.list", "use the 'bootstrap' property"},
    {"group.id", "the group is the subscription's group"},
    {"enable.auto.commit", "offsets are committed for acknowledged messages only"},
    {"enable.auto.offset.store", "offsets are committed for acknowledged messages only"},
    {"test.mock.num.brokers", "each handle would get its own mock cluster; use 'bootstrap'"},
    {"transactional.id", "transactions are not supported by the kafka backend"},
}};

Status ApplyLibrdkafka(RdKafka::Conf& conf, const KafkaSettings& settings) {
  for (const auto& [name, value] : settings.librdkafka) {
    MSGSDK_RETURN_IF_ERROR(SetConf(conf, name, value, settings));
  }
  return OkStatus();
}

Status ApplyCommon(RdKafka::Conf& conf, const KafkaSettings& settings) {
  MSGSDK_RETURN_IF_ERROR(SetConf(conf, "bootstrap.servers", settings.bootstrap, settings));
  MSGSDK_RETURN_IF_ERROR(SetConf(conf, "client.id", "msgsdk-" + settings.cluster, settings));
  // Idle connections closed by brokers are routine, not worth a log line each.
  MSGSDK_RETURN_IF_ERROR(SetConf(conf, "log.connection.close", "false", settings));
  MSGSDK_RETURN_IF_ERROR(SetConf(conf, "allow.auto.create.topics",
                                 settings.auto_create_topics ? "true" : "false", settings));
  return OkStatus();
}

}  // namespace

const char* DefaultAssignmentStrategy() {
  // Before 2.3.0, librdkafka aborts the process when a cooperative-sticky consumer is
  // destroyed after joining its group but before its first assignment (librdkafka issue
  // 4312), which a subscription closed during a rebalance does. Older versions get the eager
  // assignors: every rebalance then revokes all partitions, which the consumer handles the
  // same way (commit the acknowledged prefix, let the core drop what it queued).
  constexpr int kFixedVersion = 0x02030000;
  return rd_kafka_version() >= kFixedVersion ? "cooperative-sticky" : "range,roundrobin";
}

const core::PropertyTable& KafkaProperties() {
  static const core::PropertyTable* const table = new core::PropertyTable(BuildProperties());
  return *table;
}

std::string KafkaSettings::Describe() const {
  std::string out = "Kafka cluster '" + cluster + "'";
  if (!source.empty()) out += " (" + source + ")";
  return out;
}

Status SetConf(RdKafka::Conf& conf, const std::string& name, const std::string& value,
               const KafkaSettings& settings) {
  std::string errstr;
  const RdKafka::Conf::ConfResult result = conf.set(name, value, errstr);
  if (result == RdKafka::Conf::CONF_OK) return OkStatus();
  return InvalidArgumentError(settings.Describe() + ": librdkafka property '" + name + "' = '" +
                              value + "': " + errstr);
}

Result<KafkaSettings> ParseSettings(const core::ClusterConfig& config) {
  KafkaSettings s;
  s.cluster = config.name;
  s.source = config.source;
  s.bootstrap = config.GetString("bootstrap");
  if (s.bootstrap.empty()) {
    return InvalidArgumentError(s.Describe() +
                                ": property 'bootstrap' is required (a "
                                "comma-separated host:port list of brokers)");
  }
  s.partitions = static_cast<int>(config.GetInt("partitions", s.partitions));
  s.replication_factor = static_cast<int>(config.GetInt("replication_factor", -1));
  s.auto_create_topics = config.GetBool("auto_create_topics", true);
  s.acks = config.GetString("acks", "all");
  s.idempotence = config.GetBool("idempotence", true);
  s.linger = config.GetDuration("linger_ms", s.linger);
  s.batch_size = config.GetInt("batch_size", s.batch_size);
  s.batch_num_messages = config.GetInt("batch_num_messages", s.batch_num_messages);
  s.compression = config.GetString("compression", "none");
  s.delivery_timeout = config.GetDuration("delivery_timeout_ms", s.delivery_timeout);
  s.session_timeout = config.GetDuration("session_timeout_ms", s.session_timeout);
  s.heartbeat_interval = config.GetDuration("heartbeat_interval_ms", s.heartbeat_interval);
  s.commit_interval = config.GetDuration("commit_interval_ms", s.commit_interval);
  s.metadata_timeout = config.GetDuration("metadata_timeout_ms", s.metadata_timeout);
  s.librdkafka = config.GetMap("librdkafka");

  if (s.idempotence && s.acks != "all") {
    return InvalidArgumentError(s.Describe() + ": acks '" + s.acks +
                                "' needs idempotence: false (an idempotent producer waits for "
                                "all in-sync replicas)");
  }
  if (s.heartbeat_interval >= s.session_timeout) {
    return InvalidArgumentError(
        s.Describe() + ": heartbeat_interval_ms (" + std::to_string(s.heartbeat_interval.count()) +
        ") must be below session_timeout_ms (" + std::to_string(s.session_timeout.count()) + ")");
  }
  for (const auto& [name, value] : s.librdkafka) {
    for (const auto& [reserved, why] : kReserved) {
      if (name == reserved) {
        return InvalidArgumentError(s.Describe() + ": librdkafka property '" + name +
                                    "' cannot be set here: " + std::string(why));
      }
    }
  }
  // Let librdkafka judge every property on both kinds of handle.
  MSGSDK_ASSIGN_OR_RETURN(auto producer_conf, MakeProducerConf(s));
  MSGSDK_ASSIGN_OR_RETURN(auto consumer_conf,
                          MakeConsumerConf(s, "msgsdk-validation", StartPosition::kEarliest));
  return s;
}

Result<std::unique_ptr<RdKafka::Conf>> MakeProducerConf(const KafkaSettings& s) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  MSGSDK_RETURN_IF_ERROR(ApplyCommon(*conf, s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "enable.idempotence", s.idempotence ? "true" : "false", s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "acks", s.acks, s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "linger.ms", std::to_string(s.linger.count()), s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "batch.size", std::to_string(s.batch_size), s));
  MSGSDK_RETURN_IF_ERROR(
      SetConf(*conf, "batch.num.messages", std::to_string(s.batch_num_messages), s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "compression.codec", s.compression, s));
  MSGSDK_RETURN_IF_ERROR(
      SetConf(*conf, "message.timeout.ms", std::to_string(s.delivery_timeout.count()), s));
  // Java's partitioner: records with one key land in the partition any Kafka client picks,
  // records without a key are spread.
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "partitioner", "murmur2_random", s));
  // The SDK bounds in-flight sends itself; librdkafka's own queue must not be the limit.
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "queue.buffering.max.messages", "1000000", s));
  MSGSDK_RETURN_IF_ERROR(ApplyLibrdkafka(*conf, s));
  return conf;
}

Result<std::unique_ptr<RdKafka::Conf>> MakeConsumerConf(const KafkaSettings& s,
                                                        const std::string& group_id,
                                                        StartPosition start_from) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  MSGSDK_RETURN_IF_ERROR(ApplyCommon(*conf, s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "group.id", group_id, s));
  MSGSDK_RETURN_IF_ERROR(
      SetConf(*conf, "partition.assignment.strategy", DefaultAssignmentStrategy(), s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "enable.auto.commit", "false", s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "enable.auto.offset.store", "false", s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "enable.partition.eof", "false", s));
  // librdkafka 2.0.2 counts every partition's prefetched records against this
  // per-partition limit (their queues forward to the consumer's), stops fetching once it is
  // reached and looks again only up to a second later: a consumer that reads more slowly than
  // the fetches arrive (handlers) starves for most of that second. queued.max.messages.kbytes
  // (64 MiB by default) still bounds what is prefetched.
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "queued.min.messages", kQueuedMinMessages, s));
  MSGSDK_RETURN_IF_ERROR(SetConf(*conf, "auto.offset.reset",
                                 start_from == StartPosition::kLatest ? "latest" : "earliest", s));
  MSGSDK_RETURN_IF_ERROR(
      SetConf(*conf, "session.timeout.ms", std::to_string(s.session_timeout.count()), s));
  MSGSDK_RETURN_IF_ERROR(
      SetConf(*conf, "heartbeat.interval.ms", std::to_string(s.heartbeat_interval.count()), s));
  MSGSDK_RETURN_IF_ERROR(ApplyLibrdkafka(*conf, s));
  return conf;
}

}  // namespace msgsdk::kafka
