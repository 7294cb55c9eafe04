#include "backends/redis/redis_options.h"

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "backends/redis/redis_backend.h"

namespace msgsdk::redis {
namespace {

using ::testing::HasSubstr;

core::ClusterConfig Config(std::map<std::string, std::string> properties) {
  core::ClusterConfig config;
  config.name = "main";
  config.backend = "redis";
  config.source = "routing.yaml:4:7";
  config.properties = std::move(properties);
  return config;
}

TEST(RedisOptionsTest, FactoryIsNamedRedisAndUsesTheTable) {
  auto factory = MakeRedisBackendFactory();
  EXPECT_EQ(factory->name(), "redis");
  EXPECT_EQ(&factory->properties(), &RedisPropertyTable());
}

TEST(RedisOptionsTest, EveryPropertyIsDescribedAndDefaultsAreInRange) {
  std::set<std::string> names;
  for (const core::PropertySpec& spec : RedisPropertyTable()) {
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    if (spec.type == core::PropertySpec::Type::kDuration) {
      EXPECT_TRUE(spec.name.ends_with("_ms")) << spec.name;
    }
    if ((spec.type == core::PropertySpec::Type::kInt ||
         spec.type == core::PropertySpec::Type::kDuration) &&
        !spec.default_value.empty()) {
      const int64_t value = std::stoll(spec.default_value);
      EXPECT_GE(value, spec.min) << spec.name;
      EXPECT_LE(value, spec.max) << spec.name;
    }
  }
  for (const char* name :
       {"endpoint", "endpoints", "user", "password", "database", "partitions", "key_prefix",
        "maxlen", "connect_timeout_ms", "command_timeout_ms", "block_ms", "claim_idle_ms",
        "read_batch", "pipeline_depth", "backlog_warn_percent", "backlog_check_ms"}) {
    EXPECT_TRUE(names.contains(name)) << name;
  }
}

TEST(RedisOptionsTest, DefaultsApplyWhenAbsent) {
  auto options = ParseRedisOptions(Config({{"endpoint", "127.0.0.1:6379"}}));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->cluster, "main");
  ASSERT_EQ(options->endpoints.size(), 1u);
  EXPECT_EQ(options->endpoints[0].ToString(), "127.0.0.1:6379");
  EXPECT_EQ(options->partitions, 4);
  EXPECT_EQ(options->key_prefix, "msgsdk");
  EXPECT_EQ(options->maxlen, 0);
  EXPECT_EQ(options->database, 0);
  EXPECT_EQ(options->claim_idle, std::chrono::milliseconds(30000));
  EXPECT_EQ(options->pipeline_depth, 256);
  EXPECT_EQ(options->read_batch, 256);
  EXPECT_EQ(options->backlog_warn_percent, 80);
}

TEST(RedisOptionsTest, ReadsEverySetting) {
  auto options = ParseRedisOptions(Config({{"endpoint", "redis.internal:6380"},
                                           {"endpoints", "10.0.0.2:6379,unix:/run/redis.sock"},
                                           {"user", "app"},
                                           {"password", "pw"},
                                           {"database", "3"},
                                           {"partitions", "16"},
                                           {"key_prefix", "svc"},
                                           {"maxlen", "100000"},
                                           {"connect_timeout_ms", "500"},
                                           {"command_timeout_ms", "700"},
                                           {"block_ms", "100"},
                                           {"claim_idle_ms", "250"},
                                           {"read_batch", "64"},
                                           {"pipeline_depth", "32"},
                                           {"backlog_warn_percent", "50"},
                                           {"backlog_check_ms", "1000"}}));
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  ASSERT_EQ(options->endpoints.size(), 3u);
  EXPECT_EQ(options->endpoints[1].ToString(), "10.0.0.2:6379");
  EXPECT_EQ(options->endpoints[2].unix_path, "/run/redis.sock");
  EXPECT_EQ(options->user, "app");
  EXPECT_EQ(options->password, "pw");
  EXPECT_EQ(options->database, 3);
  EXPECT_EQ(options->partitions, 16);
  EXPECT_EQ(options->key_prefix, "svc");
  EXPECT_EQ(options->maxlen, 100000);
  EXPECT_EQ(options->connect_timeout.count(), 500);
  EXPECT_EQ(options->command_timeout.count(), 700);
  EXPECT_EQ(options->block.count(), 100);
  EXPECT_EQ(options->claim_idle.count(), 250);
  EXPECT_EQ(options->read_batch, 64);
  EXPECT_EQ(options->pipeline_depth, 32);
  EXPECT_EQ(options->backlog_warn_percent, 50);
  EXPECT_EQ(options->backlog_check_interval.count(), 1000);
}

TEST(RedisOptionsTest, RejectsBadValuesNamingClusterAndProperty) {
  auto missing = ParseRedisOptions(Config({}));
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("redis cluster 'main' (routing.yaml:4:7)"));
  EXPECT_THAT(missing.status().message(), HasSubstr("`endpoint` is required"));

  auto bad_port = ParseRedisOptions(Config({{"endpoint", "localhost:99999"}}));
  EXPECT_EQ(bad_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_port.status().message(), HasSubstr("endpoint 'localhost:99999'"));

  auto bad_extra = ParseRedisOptions(
      Config({{"endpoint", "localhost:6379"}, {"endpoints", "localhost:1,nope"}}));
  EXPECT_THAT(bad_extra.status().message(), HasSubstr("endpoints entry 'nope' has no port"));

  auto zero_partitions =
      ParseRedisOptions(Config({{"endpoint", "localhost:6379"}, {"partitions", "0"}}));
  EXPECT_EQ(zero_partitions.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(zero_partitions.status().message(), HasSubstr("`partitions` is 0"));

  auto empty_prefix =
      ParseRedisOptions(Config({{"endpoint", "localhost:6379"}, {"key_prefix", ""}}));
  EXPECT_THAT(empty_prefix.status().message(), HasSubstr("`key_prefix` is empty"));
}

TEST(RedisOptionsTest, ParsesEndpoints) {
  EXPECT_EQ(ParseEndpoint("[::1]:6379", "endpoint")->host, "::1");
  EXPECT_EQ(ParseEndpoint("[::1]:6379", "endpoint")->ToString(), "[::1]:6379");
  EXPECT_EQ(ParseEndpoint("unix:///run/redis/r.sock", "endpoint")->unix_path, "/run/redis/r.sock");
  EXPECT_FALSE(ParseEndpoint("unix:relative.sock", "endpoint").ok());
  EXPECT_FALSE(ParseEndpoint("::1:6379", "endpoint").ok());
  EXPECT_FALSE(ParseEndpoint(":6379", "endpoint").ok());
  EXPECT_FALSE(ParseEndpoint("host:", "endpoint").ok());
  EXPECT_FALSE(ParseEndpoint("host:0", "endpoint").ok());
  EXPECT_FALSE(ParseEndpoint("host:6x", "endpoint").ok());
}

}  // namespace
}  // namespace msgsdk::redis
