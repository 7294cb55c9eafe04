// The native factory's choice between embedded mode and a msgsdk-broker daemon.

#include "backends/native/native_backend.h"

#include <gtest/gtest.h>

#include "core/cluster_config.h"

namespace msgsdk::native {
namespace {

Result<core::BackendPtr> CreateWith(const std::vector<std::pair<std::string, std::string>>& props) {
  auto factory = MakeNativeBackendFactory();
  core::RawProperties raw;
  for (const auto& [key, value] : props) {
    raw.push_back(core::RawEntry{key, core::RawValue::Scalar(value, "test.yaml:1:1"), ""});
  }
  auto config = core::ValidateClusterConfig("main", "native", raw, factory->properties(),
                                            "environments.test.clusters.main", "test.yaml:1:1");
  if (!config.ok()) return config.status();
  return factory->Create(*config);
}

TEST(NativeBackendFactoryTest, EndpointsAndEmbeddedExcludeEachOther) {
  auto both = CreateWith({{"endpoints", "127.0.0.1:9876"}, {"embedded", "true"}});
  EXPECT_EQ(both.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(both.status().message().find("exclude each other"), std::string::npos)
      << both.status().ToString();
  auto neither = CreateWith({{"embedded", "false"}});
  EXPECT_EQ(neither.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(neither.status().message().find("needs endpoints"), std::string::npos)
      << neither.status().ToString();
}

TEST(NativeBackendFactoryTest, DaemonSettingsAreChecked) {
  auto bad_address = CreateWith({{"endpoints", "broker-without-port"}});
  EXPECT_EQ(bad_address.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_address.status().message().find("broker-without-port"), std::string::npos)
      << bad_address.status().ToString();
  auto heartbeat = CreateWith({{"endpoints", "127.0.0.1:9876"},
                               {"session_timeout_ms", "1000"},
                               {"heartbeat_interval_ms", "1000"}});
  EXPECT_EQ(heartbeat.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(heartbeat.status().message().find("heartbeat_interval_ms"), std::string::npos);
  auto backoff = CreateWith({{"endpoints", "127.0.0.1:9876"},
                             {"reconnect_backoff_ms", "500"},
                             {"reconnect_backoff_max_ms", "100"}});
  EXPECT_EQ(backoff.status().code(), StatusCode::kInvalidArgument);
}

TEST(NativeBackendFactoryTest, DaemonClusterConnectsLazilyAndFailsRequestsClearly) {
  // Nothing listens on port 1: creating the backend succeeds (connections are made on first
  // use) and the first request fails with kUnavailable naming the cluster.
  auto backend = CreateWith({{"endpoints", "127.0.0.1:1"},
                             {"request_timeout_ms", "200"},
                             {"reconnect_backoff_ms", "10"}});
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  EXPECT_EQ((*backend)->capabilities().backend, "native");
  auto producer = (*backend)->CreateProducer("t");
  EXPECT_EQ(producer.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(producer.status().message().find("native cluster 'main'"), std::string::npos)
      << producer.status().ToString();
  EXPECT_TRUE((*backend)->Close(std::chrono::steady_clock::now()).ok());
}

}  // namespace
}  // namespace msgsdk::native
