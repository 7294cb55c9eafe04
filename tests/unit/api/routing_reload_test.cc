// Live routing from a watched file: a new version applies without a restart, producers and
// subscriptions follow it make-before-break, and an invalid version changes nothing.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "msgsdk/msgsdk.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk {
namespace {

using namespace std::chrono_literals;

// Two embedded clusters, "a" and "b", each in its own data directory; `orders` goes to
// `cluster` in version `version`.
class RoutingReloadTest : public ::testing::Test {
 protected:
  std::string Yaml(int version, const std::string& cluster, const std::string& client = "") {
    return "version: " + std::to_string(version) +
           "\n"
           "environments:\n"
           "  dev:\n"
           "    clusters:\n"
           "      a: { backend: native, data_dir: " +
           (dir_.path() / "a").string() +
           " }\n"
           "      b: { backend: native, data_dir: " +
           (dir_.path() / "b").string() +
           " }\n"
           "    topics:\n"
           "      orders: { cluster: " +
           cluster + " }\n" + client;
  }

  // Replaces the file the way configuration tools do: a new file renamed over the old one.
  void Write(const std::string& text) {
    const auto staged = dir_.path() / "routing.yaml.new";
    std::ofstream(staged) << text;
    ASSERT_EQ(std::rename(staged.c_str(), path().c_str()), 0);
  }

  std::string path() const { return (dir_.path() / "routing.yaml").string(); }

  Client Start(const std::string& first) {
    Write(first);
    auto client = Client::Create({.config_path = path()});
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return std::move(client).value();
  }

  static int64_t Version(const Client& client) {
    auto state = client.Routing();
    return state.ok() ? state->version : -1;
  }

  testing::TempDir dir_;
};

TEST_F(RoutingReloadTest, ProducerFollowsTheNewRouteWithoutARestart) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto before = producer->Send({.body = "one"});
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->cluster, "a");

  const auto changed_at = std::chrono::steady_clock::now();
  Write(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  auto after = producer->Send({.body = "two"});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->cluster, "b");
  std::printf("version 2 applied %lld ms after the file changed\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - changed_at)
                                         .count()));
  auto route = client.Describe("orders");
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(route->cluster, "b");
  auto state = client.Routing();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->applied, 2);
  EXPECT_EQ(state->rejected, 0);
  EXPECT_EQ(state->source, path());
  EXPECT_TRUE(state->pending.empty()) << state->pending;
}

TEST_F(RoutingReloadTest, InvalidVersionIsRefusedAndTheRunningOneStays) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  Write(Yaml(2, "b") + "    default_cluster: nowhere\n");
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        auto state = client.Routing();
        return state.ok() && state->rejected == 1;
      },
      10s));
  auto state = client.Routing();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, 1);
  EXPECT_NE(state->last_rejection.find("routing.yaml:"), std::string::npos)
      << state->last_rejection;
  EXPECT_NE(state->last_rejection.find("default_cluster"), std::string::npos)
      << state->last_rejection;
  auto receipt = producer->Send({.body = "still a"});
  ASSERT_TRUE(receipt.ok());
  EXPECT_EQ(receipt->cluster, "a");

  // Fixed: the next valid version applies.
  Write(Yaml(3, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 3; }, 10s));
  EXPECT_EQ(producer->Send({.body = "now b"})->cluster, "b");
}

TEST_F(RoutingReloadTest, VersionLeavingATopicInUseWithoutARouteIsRefused) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  Write(
      "version: 2\n"
      "environments:\n"
      "  dev:\n"
      "    clusters:\n"
      "      a: { backend: native, data_dir: " +
      (dir_.path() / "a").string() +
      " }\n"
      "    topics:\n"
      "      payments: { cluster: a }\n");
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        auto state = client.Routing();
        return state.ok() && state->rejected == 1;
      },
      10s));
  auto state = client.Routing();
  EXPECT_EQ(state->version, 1);
  EXPECT_NE(state->last_rejection.find("'orders'"), std::string::npos) << state->last_rejection;
  EXPECT_TRUE(producer->Send({.body = "kept"}).ok());
}

TEST_F(RoutingReloadTest, VersionWithoutThisClientsEnvironmentIsRefused) {
  Client client = Start(Yaml(1, "a"));
  Write(
      "version: 2\n"
      "environments:\n"
      "  prod:\n"
      "    clusters:\n"
      "      a: { backend: native, data_dir: " +
      (dir_.path() / "a").string() +
      " }\n"
      "    default_cluster: a\n");
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        auto state = client.Routing();
        return state.ok() && state->rejected == 1;
      },
      10s));
  EXPECT_NE(client.Routing()->last_rejection.find("'dev'"), std::string::npos);
  EXPECT_EQ(client.environment(), "dev");
}

TEST_F(RoutingReloadTest, NoSendFailsWhileTheRouteFlips) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  std::atomic<bool> running{true};
  std::mutex mutex;
  std::map<std::string, int> by_cluster;
  std::vector<std::string> failures;
  std::atomic<int> completed{0};
  std::thread sender([&] {
    int sent = 0;
    while (running.load()) {
      producer->SendAsync({.key = std::to_string(sent % 5), .body = std::to_string(sent)},
                          [&](const Result<SendReceipt>& receipt) {
                            std::lock_guard lock(mutex);
                            if (receipt.ok()) {
                              ++by_cluster[receipt->cluster];
                            } else {
                              failures.push_back(receipt.status().ToString());
                            }
                            ++completed;
                          });
      ++sent;
      if (sent % 64 == 0) std::this_thread::yield();
    }
  });
  for (int version = 2; version <= 7; ++version) {
    Write(Yaml(version, version % 2 == 0 ? "b" : "a"));
    ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == version; }, 10s));
    const int seen = completed.load();
    // Some sends complete on each version before the next flip.
    ASSERT_TRUE(testing::WaitUntil([&] { return completed.load() > seen + 100; }, 10s));
  }
  running = false;
  sender.join();
  ASSERT_TRUE(producer->Close().ok());
  std::lock_guard lock(mutex);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_GT(by_cluster["a"], 0);
  EXPECT_GT(by_cluster["b"], 0);
}

TEST_F(RoutingReloadTest, SubscriptionMovesToTheNewCluster) {
  Client client = Start(Yaml(1, "a"));
  testing::Collector collector;
  auto subscription = client.Subscribe("orders", "billing", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(subscription.ok()) << subscription.status().ToString();
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer->Send({.body = "a" + std::to_string(i)}).ok());
  ASSERT_TRUE(collector.WaitForDistinct(10));

  Write(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  for (int i = 0; i < 10; ++i) {
    auto receipt = producer->Send({.body = "b" + std::to_string(i)});
    ASSERT_TRUE(receipt.ok());
    EXPECT_EQ(receipt->cluster, "b");
  }
  ASSERT_TRUE(collector.WaitForDistinct(20));
  std::map<std::string, int> by_cluster;
  for (const auto& message : collector.messages()) ++by_cluster[message.cluster];
  EXPECT_EQ(by_cluster["a"], 10);
  EXPECT_EQ(by_cluster["b"], 10);
  for (const auto& [id, count] : collector.count_by_id()) EXPECT_EQ(count, 1) << id;
}

TEST_F(RoutingReloadTest, ClientSettingsChangeLive) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  const std::string body(2048, 'x');
  ASSERT_TRUE(producer->Send({.body = body}).ok());
  Write(Yaml(2, "a", "client: { max_message_bytes: 1024, consumer_threads: 2 }\n"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  auto refused = producer->Send({.body = body});
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("1024"), std::string::npos);
}

TEST_F(RoutingReloadTest, UnreadableFileKeepsTheRunningVersion) {
  Client client = Start(Yaml(1, "a"));
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  ASSERT_EQ(std::remove(path().c_str()), 0);
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        auto state = client.Routing();
        return state.ok() && state->rejected == 1;
      },
      10s));
  EXPECT_NE(client.Routing()->last_rejection.find("no such file"), std::string::npos);
  EXPECT_EQ(producer->Send({.body = "kept"})->cluster, "a");
  Write(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  EXPECT_EQ(producer->Send({.body = "moved"})->cluster, "b");
}

}  // namespace
}  // namespace msgsdk
