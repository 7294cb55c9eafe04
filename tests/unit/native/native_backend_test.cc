// The native factory's choice between embedded mode and a msgsdk-broker daemon, and the
// embedded backend over a store whose retention deleted messages a group had not read.

#include "backends/native/native_backend.h"

#include <condition_variable>
#include <future>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "backends/native/broker/broker.h"
#include "core/backend.h"
#include "core/cluster_config.h"
#include "testing/temp_dir.h"

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

TEST(NativeBackendFactoryTest, RetentionPropertiesAreChecked) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"retention_ms", "-1"},
                                                        {"retention_bytes", "-1"},
                                                        {"retention_check_interval_ms", "0"},
                                                        {"retention_ms", "a week"}}) {
    auto backend = CreateWith({{key, value}});
    EXPECT_EQ(backend.status().code(), StatusCode::kInvalidArgument) << key << ": " << value;
    EXPECT_NE(backend.status().message().find(key), std::string::npos)
        << backend.status().ToString();
  }
}

// Hands every delivery to the test; acknowledges none.
class RecordingSink : public core::DeliverySink {
 public:
  void Deliver(std::vector<core::Delivery> batch) override {
    std::lock_guard lock(mutex_);
    for (core::Delivery& delivery : batch) offsets_.push_back(delivery.message.offset);
    changed_.notify_all();
  }
  bool WaitForCapacity(core::Deadline) override { return true; }
  void Revoke(const std::vector<int32_t>&) override {}

  std::vector<int64_t> WaitFor(size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(20), [&] { return offsets_.size() >= count; });
    return offsets_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int64_t> offsets_;
};

TEST(NativeRetentionTest, AGroupBehindTheQueueStartContinuesFromIt) {
  msgsdk::testing::TempDir dir("msgsdk-native-retention");
  const std::vector<std::pair<std::string, std::string>> properties = {
      {"data_dir", dir.str()},
      {"queues", "1"},
      {"segment_bytes", "4096"},
      {"retention_bytes", "8192"},
      // The test runs the check itself.
      {"retention_check_interval_ms", "86400000"}};
  auto backend = CreateWith(properties);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto producer = (*backend)->CreateProducer("t");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  constexpr int kMessages = 200;
  for (int i = 0; i < kMessages; ++i) {
    Message message{.body = std::string(100, 'x')};
    message.topic = "t";
    message.message_id = "id-" + std::to_string(i);
    std::promise<Result<core::StoredPosition>> stored;
    (*producer)->Send(message,
                      [&stored](Result<core::StoredPosition> result) { stored.set_value(result); });
    ASSERT_TRUE(stored.get_future().get().ok());
  }

  // The same directory in the same process is the same broker.
  BrokerOptions options;
  options.store.data_dir = dir.path();
  options.store.retention = {.max_bytes = 8192, .check_interval = std::chrono::hours(24)};
  auto broker = AcquireEmbeddedBroker(options);
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  MessageStore& store = (*broker)->store();
  ASSERT_TRUE(store.CommitOffset("g", "t", 0, 0).ok());
  auto report = store.EnforceRetention();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const int64_t start = store.MinOffset("t", 0);
  ASSERT_GT(start, 0);

  const core::SubscriptionSpec spec{.topic = "t", .group = "g", .member_id = "m1"};
  auto positions = (*backend)->Positions(spec);
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  ASSERT_EQ(positions->size(), 1u);
  EXPECT_EQ((*positions)[0].start, start);
  EXPECT_EQ((*positions)[0].committed, 0);
  EXPECT_EQ((*positions)[0].end, kMessages);
  EXPECT_EQ((*positions)[0].Remaining(kMessages), kMessages - start)
      << "what is left counts from the start, not from the committed offset";

  RecordingSink sink;
  auto consumer = (*backend)->Subscribe(spec, sink);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  const std::vector<int64_t> offsets = sink.WaitFor(static_cast<size_t>(kMessages - start));
  ASSERT_EQ(offsets.size(), static_cast<size_t>(kMessages - start));
  for (size_t i = 0; i < offsets.size(); ++i) {
    EXPECT_EQ(offsets[i], start + static_cast<int64_t>(i));
  }
  ASSERT_TRUE((*consumer)->Close(std::chrono::steady_clock::now() + std::chrono::seconds(10)).ok());
  // Nothing was acknowledged: the group's position is the queue's start now.
  EXPECT_EQ(store.CommittedOffset("g", "t", 0), start);

  // A later cluster over the same directory (a reloaded routing table) changes the policy of
  // the running broker.
  auto properties_reloaded = properties;
  properties_reloaded[3].second = "4096";
  auto reloaded = CreateWith(properties_reloaded);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  EXPECT_EQ(store.Retention().max_bytes, 4096u);
  EXPECT_TRUE((*reloaded)->Close(std::chrono::steady_clock::now()).ok());
  EXPECT_TRUE((*backend)->Close(std::chrono::steady_clock::now()).ok());
}

}  // namespace
}  // namespace msgsdk::native
