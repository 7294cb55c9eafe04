// msgsdk-broker killed with SIGKILL under load, again and again: in group-commit mode every
// send it acknowledged is delivered afterwards, and no committed offset ever goes backwards.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/native/client/broker_client.h"
#include "backends/native/protocol/broker.pb.h"
#include "fixtures/broker_fixture.h"
#include "msgsdk/msgsdk.h"
#include "testing/status_macros.h"
#include "testing/wait.h"

namespace msgsdk::native {
namespace {

using namespace std::chrono_literals;
using client::BrokerClient;
using client::CallAndWait;
using protocol::FrameType;

constexpr int kKills = 20;
constexpr int kProducers = 3;
constexpr char kTopic[] = "crashes";
constexpr char kGroup[] = "survivors";

// The group's committed offset of every queue, read straight from the broker (-1: none yet).
Result<std::vector<int64_t>> CommittedOffsets(BrokerClient& client, int32_t queues) {
  std::vector<int64_t> offsets;
  for (int32_t queue = 0; queue < queues; ++queue) {
    wire::QueryOffsetRequest request;
    request.set_topic(kTopic);
    request.set_group(kGroup);
    request.set_queue(queue);
    MSGSDK_ASSIGN_OR_RETURN(auto response, CallAndWait<wire::QueryOffsetResponse>(
                                               client, FrameType::kQueryOffset, request, 10s));
    offsets.push_back(response.has_committed() ? response.committed() : -1);
  }
  return offsets;
}

TEST(BrokerCrashTest, SigkillUnderLoadLosesNoAcknowledgedMessageAndNoCommittedOffset) {
  auto started = test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  test::BrokerProcess& broker = **started;
  const std::string yaml =
      "environments:\n"
      "  test:\n"
      "    clusters:\n"
      "      main: " +
      broker.ClusterYaml(
          "poll_wait_ms: 50, heartbeat_interval_ms: 100, reconnect_backoff_ms: 5, "
          "reconnect_backoff_max_ms: 50, request_timeout_ms: 2000") +
      "\n"
      "    default_cluster: main\n";
  auto client = Client::Create({.config_yaml = yaml, .environment = "test"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  // Producers: every send the broker acknowledged is recorded; failures while it is down are
  // expected and retried with the next message.
  std::mutex mutex;
  std::set<std::string> acknowledged;
  std::atomic<int64_t> acks{0};
  std::atomic<bool> producing{true};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      auto producer = client->CreateProducer(kTopic);
      ASSERT_TRUE(producer.ok()) << producer.status().ToString();
      for (int i = 0; producing.load(); ++i) {
        auto receipt = producer->Send(
            {.key = std::to_string(p) + "-" + std::to_string(i % 8), .body = std::to_string(i)});
        if (!receipt.ok()) continue;
        std::lock_guard lock(mutex);
        acknowledged.insert(receipt->message_id);
        ++acks;
      }
    });
  }
  testing::Collector collector;
  auto subscription = client->Subscribe(kTopic, kGroup, [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(subscription.ok()) << subscription.status().ToString();

  auto inspector = BrokerClient::Create({.endpoints = {broker.endpoint()},
                                         .reconnect_backoff_min = 5ms,
                                         .reconnect_backoff_max = 50ms,
                                         .cluster = "inspector"});
  ASSERT_TRUE(inspector.ok()) << inspector.status().ToString();
  wire::GetOrCreateTopicRequest topic;
  topic.set_topic(kTopic);
  auto described = CallAndWait<wire::GetOrCreateTopicResponse>(
      **inspector, FrameType::kGetOrCreateTopic, topic, 10s);
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  const int32_t queues = described->queues();

  std::vector<int64_t> highest(static_cast<size_t>(queues), -1);
  auto check_offsets = [&](int kill) {
    Result<std::vector<int64_t>> committed = UnavailableError("not asked");
    ASSERT_TRUE(testing::WaitUntil([&] {
      committed = CommittedOffsets(**inspector, queues);
      return committed.ok();
    })) << committed.status().ToString();
    for (int32_t q = 0; q < queues; ++q) {
      const auto i = static_cast<size_t>(q);
      EXPECT_GE((*committed)[i], highest[i])
          << "queue " << q << "'s committed offset went backwards after kill " << kill;
      highest[i] = std::max(highest[i], (*committed)[i]);
    }
  };

  for (int kill = 1; kill <= kKills; ++kill) {
    // Under load: wait for new acknowledgements since the last restart, then kill.
    const int64_t before = acks.load();
    ASSERT_TRUE(testing::WaitUntil([&] { return acks.load() >= before + 200; }, 30s))
        << "no progress after restart " << kill - 1 << "\n" << broker.LogTail();
    check_offsets(kill);
    MSGSDK_ASSERT_OK(broker.Kill());
    MSGSDK_ASSERT_OK(broker.Restart());
    check_offsets(kill);
  }
  producing = false;
  for (auto& t : producers) t.join();

  std::set<std::string> expected;
  {
    std::lock_guard lock(mutex);
    expected = acknowledged;
  }
  // Every acknowledged send, not just as many distinct ids: sends that failed while the broker
  // went down may have been stored and are delivered too.
  collector.WaitForIds(expected, 60s);
  const auto delivered = collector.count_by_id();
  size_t lost = 0;
  for (const auto& id : expected) lost += delivered.count(id) == 0 ? 1 : 0;
  std::printf("%d SIGKILLs: %zu sends acknowledged, %zu delivered (%zu redelivered), %zu lost\n",
              kKills, expected.size(), collector.distinct(),
              collector.size() - collector.distinct(), lost);
  EXPECT_EQ(lost, 0u);
  MSGSDK_EXPECT_OK(subscription->Close());
  check_offsets(kKills + 1);
  (*inspector)->Close();
  MSGSDK_EXPECT_OK(client->Close());
  MSGSDK_EXPECT_OK(broker.Stop());
}

}  // namespace
}  // namespace msgsdk::native
