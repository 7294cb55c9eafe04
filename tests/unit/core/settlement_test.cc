// Deliveries settled after the handler returned (how the sidecar hands them to a remote client):
// acknowledged, retried after a chosen delay, dead-lettered at once, or dropped unsettled.
// Runs the engine over the embedded native backend in a scratch directory.

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "backends/native/native_backend.h"
#include "core/backend_registry.h"
#include "core/engine.h"
#include "core/producer_core.h"
#include "core/subscription_core.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk::core {
namespace {

using namespace std::chrono_literals;

class SettlementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = std::make_shared<BackendRegistry>();
    ASSERT_TRUE(registry->Register(native::MakeNativeBackendFactory()).ok());
    ClientOptions options;
    options.config_yaml =
        "environments:\n"
        "  test:\n"
        "    clusters:\n"
        "      main:\n"
        "        backend: native\n"
        "        data_dir: " +
        dir_.str() +
        "\n"
        "        poll_wait_ms: 50\n"
        "    default_cluster: main\n";
    auto engine = Engine::Create(options, registry);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }
  void TearDown() override {
    // A subscription is closed before its last reference goes (the handle's contract).
    for (auto& subscription : subscriptions_) EXPECT_TRUE(subscription->Close().ok());
    if (engine_) {
      EXPECT_TRUE(engine_->Close().ok());
    }
  }

  void SendBodies(const std::string& topic, const std::vector<std::string>& bodies) {
    auto producer = engine_->CreateProducer(topic, ProducerOptions{});
    ASSERT_TRUE(producer.ok()) << producer.status().ToString();
    for (const auto& body : bodies) {
      Message message;
      message.body = body;
      auto receipt = (*producer)->Send(std::move(message));
      ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
    }
  }

  static SubscribeOptions Options() {
    SubscribeOptions options;
    options.retry_backoff = 5ms;
    options.max_attempts = 3;
    return options;
  }

  std::shared_ptr<RoutedSubscription> Keep(
      Result<std::shared_ptr<RoutedSubscription>> subscription) {
    EXPECT_TRUE(subscription.ok()) << subscription.status().ToString();
    if (!subscription.ok()) return nullptr;
    subscriptions_.push_back(*subscription);
    return *subscription;
  }

  // Sends a marker and checks it is the first message a new subscription of `group` gets:
  // everything before it was acknowledged.
  void ExpectTheGroupResumesAfterThem(const std::string& topic, const std::string& group) {
    SendBodies(topic, {"marker"});
    testing::Collector next_messages;
    auto next = Keep(engine_->Subscribe(
        topic, group,
        [&](const Message& m) {
          next_messages.Add(m);
          return ConsumeResult::kSuccess;
        },
        Options()));
    ASSERT_TRUE(next);
    ASSERT_TRUE(next_messages.WaitForDeliveries(1));
    EXPECT_EQ(next_messages.messages().front().body, "marker");
  }

  testing::TempDir dir_{"msgsdk-settlement"};
  std::shared_ptr<Engine> engine_;
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions_;
};

// Settlements kept by the handler, settled by the test from its own thread.
class Held {
 public:
  void Add(const Message& message, Settlement settlement) {
    std::lock_guard lock(mutex_);
    messages_.push_back(message);
    settlements_.push_back(std::move(settlement));
    changed_.notify_all();
  }
  bool WaitFor(size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 20s, [&] { return messages_.size() >= n; });
  }
  std::vector<Settlement> Take() {
    std::lock_guard lock(mutex_);
    return std::move(settlements_);
  }
  std::vector<Message> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> messages_;
  std::vector<Settlement> settlements_;
};

TEST_F(SettlementTest, SettledLaterFromAnotherThreadIsAcknowledged) {
  SendBodies("orders", {"a", "b", "c"});
  Held held;
  auto subscription = Keep(engine_->Subscribe(
      "orders", "g",
      AsyncHandler([&](const Message& m, Settlement s) { held.Add(m, std::move(s)); }), Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(3));
  std::thread settler([settlements = held.Take()]() mutable {
    for (auto& settlement : settlements) settlement.Settle({.kind = Verdict::Kind::kAck});
  });
  settler.join();
  ASSERT_TRUE(subscription->Close().ok());

  // Acknowledged: the group's next subscription starts after them.
  ExpectTheGroupResumesAfterThem("orders", "g");
}

// SettleAll, as the sidecar settles a client's batch: the acknowledgements go to the backend
// together, a retry among them is retried, and what is acknowledged is not delivered again.
TEST_F(SettlementTest, SettleAllAcknowledgesTogetherAndRetriesTheRest) {
  SendBodies("orders", {"a", "b", "c", "d", "e"});
  Held held;
  auto subscription = Keep(engine_->Subscribe(
      "orders", "g",
      AsyncHandler([&](const Message& m, Settlement s) { held.Add(m, std::move(s)); }), Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(5));
  std::vector<Message> first = held.messages();
  std::vector<std::pair<Settlement, Verdict>> settled;
  for (auto& settlement : held.Take()) settled.emplace_back(std::move(settlement), Verdict{});
  for (size_t i = 0; i < first.size(); ++i) {
    if (first[i].body == "c") {
      settled[i].second = {.kind = Verdict::Kind::kRetry, .retry_delay = 1ms, .reason = "later"};
    }
  }
  std::thread settler([&] { Settlement::SettleAll(settled); });
  settler.join();
  for (const auto& [settlement, verdict] : settled) EXPECT_FALSE(settlement) << "settled once";
  // Only "c" comes again, as its second attempt.
  ASSERT_TRUE(held.WaitFor(6));
  const Message again = held.messages().back();
  EXPECT_EQ(again.body, "c");
  EXPECT_EQ(again.delivery_attempt, 2);
  Settlement::SettleAll(settled);  // settling what is settled already does nothing
  std::vector<std::pair<Settlement, Verdict>> last;
  for (auto& settlement : held.Take()) last.emplace_back(std::move(settlement), Verdict{});
  Settlement::SettleAll(last);
  ASSERT_TRUE(subscription->Close().ok());

  // All five were acknowledged: the group's next subscription starts after them.
  ExpectTheGroupResumesAfterThem("orders", "g");
}

TEST_F(SettlementTest, RetryWaitsTheChosenDelayAndCountsTheAttempt) {
  SendBodies("orders", {"a"});
  Held held;
  auto subscription = Keep(engine_->Subscribe(
      "orders", "g", AsyncHandler([&](const Message& m, Settlement s) {
        if (m.delivery_attempt == 1) {
          s.Settle({.kind = Verdict::Kind::kRetry, .retry_delay = 20ms, .reason = "busy"});
        } else {
          held.Add(m, std::move(s));
        }
      }),
      Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(1));
  EXPECT_EQ(held.messages().front().body, "a");
  EXPECT_EQ(held.messages().front().delivery_attempt, 2);
  for (auto& settlement : held.Take()) settlement.Settle({});
}

TEST_F(SettlementTest, DeadLetterGoesToTheDeadLetterTopicAtOnce) {
  SendBodies("orders", {"poison"});
  auto subscription = Keep(
      engine_->Subscribe("orders", "g", AsyncHandler([](const Message&, Settlement s) {
                           s.Settle({.kind = Verdict::Kind::kDeadLetter, .reason = "cannot parse"});
                         }),
                         Options()));
  ASSERT_TRUE(subscription);
  testing::Collector letters;
  auto dlq = Keep(engine_->Subscribe(
      DeadLetterTopic("g"), "inspect",
      [&](const Message& m) {
        letters.Add(m);
        return ConsumeResult::kSuccess;
      },
      Options()));
  ASSERT_TRUE(dlq);
  ASSERT_TRUE(letters.WaitForDeliveries(1));
  const Message letter = letters.messages().front();
  EXPECT_EQ(letter.body, "poison");
  EXPECT_EQ(letter.properties.at("msgsdk.dlq.reason"), "cannot parse");
  EXPECT_EQ(letter.properties.at("msgsdk.dlq.attempts"), "1");
}

TEST_F(SettlementTest, DroppedSettlementIsRetried) {
  SendBodies("orders", {"a"});
  Held held;
  auto subscription =
      Keep(engine_->Subscribe("orders", "g", AsyncHandler([&](const Message& m, Settlement s) {
                                if (m.delivery_attempt > 1) held.Add(m, std::move(s));
                                // attempt 1: `s` goes out of scope unsettled
                              }),
                              Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(1));
  EXPECT_EQ(held.messages().front().delivery_attempt, 2);
  for (auto& settlement : held.Take()) settlement.Settle({});
}

TEST_F(SettlementTest, ReleasedDeliveriesComeBackAfterTheSubscriptionClosesUncounted) {
  SendBodies("orders", {"a"});
  Held held;
  auto subscription = Keep(engine_->Subscribe(
      "orders", "g",
      AsyncHandler([&](const Message& m, Settlement s) { held.Add(m, std::move(s)); }), Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(1));
  for (auto& settlement : held.Take()) settlement.Settle({.kind = Verdict::Kind::kRelease});
  ASSERT_TRUE(subscription->Close().ok());

  testing::Collector again;
  auto next = Keep(engine_->Subscribe(
      "orders", "g",
      [&](const Message& m) {
        again.Add(m);
        return ConsumeResult::kSuccess;
      },
      Options()));
  ASSERT_TRUE(next);
  ASSERT_TRUE(again.WaitForDeliveries(1));
  EXPECT_EQ(again.messages().front().body, "a");
  EXPECT_EQ(again.messages().front().delivery_attempt, 1);
}

TEST_F(SettlementTest, CloseWaitsForUnsettledDeliveries) {
  SendBodies("orders", {"a"});
  Held held;
  auto subscription = Keep(engine_->Subscribe(
      "orders", "g",
      AsyncHandler([&](const Message& m, Settlement s) { held.Add(m, std::move(s)); }), Options()));
  ASSERT_TRUE(subscription);
  ASSERT_TRUE(held.WaitFor(1));
  std::vector<Settlement> late = held.Take();
  std::thread closer([&] { EXPECT_TRUE(subscription->Close().ok()); });
  // Close waits (bounded) for unsettled deliveries; settling ends the wait.
  for (auto& settlement : late) settlement.Settle({.kind = Verdict::Kind::kRetry});
  closer.join();
}

}  // namespace
}  // namespace msgsdk::core
