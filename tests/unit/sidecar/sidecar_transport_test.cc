// The SDK's sidecar transport chosen by the routing file: `transport: { sidecar: ADDRESS }`.

#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fixtures/sidecar_fixture.h"
#include "msgsdk/msgsdk.h"
#include "testing/dropped_client.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk {
namespace {

class SidecarTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sidecar = testing::SidecarProcess::Start(
        {.routing_yaml = "version: 4\n"
                         "environments:\n"
                         "  test:\n"
                         "    clusters:\n"
                         "      main: { backend: native, data_dir: " +
                         data_.str() +
                         " }\n"
                         "    default_cluster: main\n",
         .environment = "test"});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status().ToString();
    sidecar_ = std::move(sidecar).value();
  }

  std::string WriteClientFile(const std::string& text) {
    const auto path = files_.path() / "client.yaml";
    std::ofstream(path) << text;
    return path.string();
  }

  testing::TempDir data_{"msgsdk-sidecar-data"};
  testing::TempDir files_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
};

TEST_F(SidecarTransportTest, TheRoutingFileSendsTheClientToTheSidecar) {
  const std::string path =
      WriteClientFile("transport:\n  sidecar: \"" + sidecar_->unix_target() + "\"\n");
  auto client = Client::Create({.config_path = path});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ(client->environment(), "test");
  auto producer = client->CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto receipt = producer->Send({.body = "through the sidecar"});
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  EXPECT_EQ(receipt->cluster, "main");
  // The sidecar's routing table runs, not the client's file.
  auto routing = client->Routing();
  ASSERT_TRUE(routing.ok()) << routing.status().ToString();
  EXPECT_EQ(routing->version, 4);
  EXPECT_NE(routing->source, path);
  EXPECT_EQ(routing->applied, 1);
}

TEST_F(SidecarTransportTest, AnEmptySidecarAddressNamesTheField) {
  const std::string path = WriteClientFile("transport:\n  sidecar: \"\"\n");
  auto client = Client::Create({.config_path = path});
  ASSERT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("client.yaml:2:"), std::string::npos)
      << client.status().message();
  EXPECT_NE(client.status().message().find("transport.sidecar"), std::string::npos)
      << client.status().message();
}

// Sends keep coming while the sidecar drains, is down and starts again: every one is answered
// with its receipt once the sidecar is back (the batches in flight are sent again), nothing
// acknowledged is lost, and each key's messages are stored in send order (a batch sent again
// may store copies after the first ones, which at-least-once allows).
// A send callback may let go of the client's last handles: nothing waits for itself, and the
// connection is torn down once the callback thread is done with it.
TEST_F(SidecarTransportTest, ASendCallbackMayDropTheLastHandlesOfItsClient) {
  auto client = Client::Create({.sidecar = sidecar_->address()});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto producer = client->CreateProducer("dropped");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  const auto start = std::chrono::steady_clock::now();
  const Status sent = testing::SendFromACallbackThatDropsItsClient(std::move(client).value(),
                                                                   std::move(producer).value());
  EXPECT_TRUE(sent.ok()) << sent.ToString();
  // Well within a send timeout: closing from the callback did not wait for that callback.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(SidecarTransportTest, SendAsyncCarriesOnThroughASidecarRestart) {
  auto client = Client::Create({.sidecar = sidecar_->address()});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto producer = client->CreateProducer("restarts", {.send_timeout = std::chrono::seconds(60)});
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();

  constexpr int kKeys = 8;
  constexpr int kWindow = 2000;  // sends not yet answered, at most
  std::mutex mutex;
  std::condition_variable answered;
  int answers = 0;
  std::set<std::string> acknowledged;
  std::vector<std::string> failures;
  bool stop = false;
  int sent = 0;
  auto wait_for_answers = [&](int n) {
    std::unique_lock lock(mutex);
    return answered.wait_for(lock, std::chrono::seconds(90), [&] { return answers >= n; });
  };
  std::thread sender([&] {
    for (int i = 0;; ++i) {
      {
        std::unique_lock lock(mutex);
        answered.wait(lock, [&] { return stop || i - answers < kWindow; });
        if (stop) return;
        sent = i + 1;
      }
      producer->SendAsync({.key = "key-" + std::to_string(i % kKeys), .body = std::to_string(i)},
                          [&](const Result<SendReceipt>& receipt) {
                            std::lock_guard lock(mutex);
                            ++answers;
                            if (receipt.ok()) {
                              acknowledged.insert(receipt->message_id);
                            } else {
                              failures.push_back(receipt.status().ToString());
                            }
                            answered.notify_all();
                          });
    }
  });

  ASSERT_TRUE(wait_for_answers(3000));
  ASSERT_TRUE(sidecar_->Stop().ok());
  int answers_before_restart;
  {
    std::lock_guard lock(mutex);
    answers_before_restart = answers;
  }
  ASSERT_TRUE(sidecar_->Restart().ok());
  const bool carried_on = wait_for_answers(answers_before_restart + 3000);
  int total;
  {
    std::lock_guard lock(mutex);
    stop = true;
    answered.notify_all();
  }
  sender.join();
  {
    std::lock_guard lock(mutex);
    total = sent;
  }
  ASSERT_TRUE(carried_on) << "no sends were answered after the restart";
  ASSERT_TRUE(wait_for_answers(total));
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(failures.empty()) << failures.size()
                                  << " sends failed, the first: " << failures.front();
    EXPECT_EQ(static_cast<int>(acknowledged.size()), total);
  }

  testing::Collector collector;
  auto subscription = client->Subscribe("restarts", "after-restart",
                                        [&](const Message& message) {
                                          collector.Add(message);
                                          return ConsumeResult::kSuccess;
                                        },
                                        {.ordered = true});
  ASSERT_TRUE(subscription.ok()) << subscription.status().ToString();
  ASSERT_TRUE(collector.WaitForIds(acknowledged, std::chrono::seconds(60)))
      << collector.distinct() << " of " << acknowledged.size() << " acknowledged messages came";
  ASSERT_TRUE(subscription->Close().ok());

  // Per key, each body's first delivery comes in send order.
  std::map<std::string, int> last_by_key;
  std::set<std::string> seen;
  for (const Message& message : collector.messages()) {
    if (!seen.insert(message.body).second) continue;
    const int number = std::stoi(message.body);
    auto [it, first] = last_by_key.emplace(message.key, number);
    if (!first) {
      EXPECT_GT(number, it->second) << "key " << message.key;
      it->second = number;
    }
  }
}

}  // namespace
}  // namespace msgsdk
