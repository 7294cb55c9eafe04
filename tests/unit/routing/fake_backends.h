#pragma once

// Backend factories with small property tables, so the routing tests depend on the routing
// code alone and not on what the real backends accept.

#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "core/backend.h"
#include "core/backend_registry.h"

namespace msgsdk::core::testing {

// A factory that only describes its properties; the routing table never creates backends.
class FakeFactory : public BackendFactory {
 public:
  FakeFactory(std::string name, PropertyTable table)
      : name_(std::move(name)), table_(std::move(table)) {}

  std::string name() const override { return name_; }
  const PropertyTable& properties() const override { return table_; }
  Result<BackendPtr> Create(const ClusterConfig& config) override {
    return UnimplementedError("fake backend '" + name_ + "' cannot create cluster '" + config.name +
                              "'");
  }

 private:
  std::string name_;
  PropertyTable table_;
};

inline PropertyTable FakeNativeTable() {
  using Type = PropertySpec::Type;
  return {
      {.name = "embedded",
       .type = Type::kBool,
       .default_value = "false",
       .description = "Run the broker inside the process."},
      {.name = "data_dir", .type = Type::kString, .description = "Where messages are stored."},
      {.name = "endpoints", .type = Type::kList, .description = "Broker addresses."},
      {.name = "flush_interval_ms",
       .type = Type::kDuration,
       .default_value = "1000",
       .min = 0,
       .max = 60000,
       .description = "How often the log is flushed."},
  };
}

inline PropertyTable FakeKafkaTable() {
  using Type = PropertySpec::Type;
  return {
      {.name = "bootstrap",
       .type = Type::kString,
       .required = true,
       .description = "Comma-separated broker list."},
      {.name = "acks",
       .type = Type::kEnum,
       .default_value = "all",
       .allowed = {"all", "1", "0"},
       .description = "Acknowledgements a produce waits for."},
      {.name = "linger_ms",
       .type = Type::kDuration,
       .default_value = "5",
       .min = 0,
       .max = 10000,
       .description = "How long a batch waits for more messages."},
      {.name = "batch_size",
       .type = Type::kBytes,
       .default_value = "1MiB",
       .min = 1,
       .max = int64_t{64} << 20,
       .description = "Largest batch."},
      {.name = "partitions",
       .type = Type::kInt,
       .default_value = "8",
       .min = 1,
       .max = 1024,
       .description = "Partitions of auto-created topics."},
      {.name = "tls",
       .type = Type::kBool,
       .default_value = "false",
       .description = "Connect with TLS."},
      {.name = "librdkafka",
       .type = Type::kMap,
       .description = "Settings passed to librdkafka unchanged."},
  };
}

inline PropertyTable FakeRedisTable() {
  using Type = PropertySpec::Type;
  return {
      {.name = "address",
       .type = Type::kString,
       .default_value = "127.0.0.1:6379",
       .description = "host:port of the server."},
      {.name = "db",
       .type = Type::kInt,
       .default_value = "0",
       .min = 0,
       .max = 15,
       .description = "Database number."},
  };
}

// native, kafka and redis, with the fake tables above.
inline std::shared_ptr<BackendRegistry> FakeRegistry(bool with_native = true) {
  auto registry = std::make_shared<BackendRegistry>();
  auto add = [&](const std::string& name, PropertyTable table) {
    Status status = registry->Register(std::make_unique<FakeFactory>(name, std::move(table)));
    EXPECT_TRUE(status.ok()) << status.ToString();
  };
  if (with_native) add("native", FakeNativeTable());
  add("kafka", FakeKafkaTable());
  add("redis", FakeRedisTable());
  return registry;
}

}  // namespace msgsdk::core::testing
