// The delivery contract of msgsdk, stated once and run against every backend x transport cell.
// A cell whose backend lacks a capability must refuse the feature with kUnsupported naming
// it; the test checks that refusal instead of passing silently.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "conformance/cluster_environment.h"
#include "msgsdk/msgsdk.h"
#include "testing/status_macros.h"
#include "testing/wait.h"

namespace msgsdk::conformance {
namespace {

using namespace std::chrono_literals;
using testing::Collector;

class ConformanceTest : public ::testing::TestWithParam<Cell> {
 protected:
  void SetUp() override {
    env_ = GetParam().make();
    auto client = Client::Create(env_->Options());
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_.emplace(std::move(client).value());
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->name());
    for (char& c : name) {
      if (c == '/') c = '-';
    }
    topic_ = "t-";
    topic_.append(name).append("-").append(std::to_string(getpid()));
    topic_.append("-").append(std::to_string(counter++));
  }

  void TearDown() override {
    if (client_) {
      MSGSDK_EXPECT_OK(client_->Close());
    }
  }

  Client& client() { return *client_; }
  // A new client of the same cluster in place of the fixture's (closed or dropped) one.
  void ReopenClient() {
    auto reopened = Client::Create(env_->Options());
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    client_.emplace(std::move(reopened).value());
  }
  Capabilities capabilities() {
    auto route = client_->Describe(topic_);
    EXPECT_TRUE(route.ok()) << route.status().ToString();
    return route.ok() ? route->capabilities : Capabilities{};
  }

  Producer MakeProducer(const std::string& topic) {
    auto producer = client_->CreateProducer(topic);
    EXPECT_TRUE(producer.ok()) << producer.status().ToString();
    return std::move(producer).value();
  }

  Subscription MakeSubscription(const std::string& topic, const std::string& group,
                                MessageHandler handler, SubscribeOptions options = {}) {
    auto subscription = client_->Subscribe(topic, group, std::move(handler), options);
    EXPECT_TRUE(subscription.ok()) << subscription.status().ToString();
    return std::move(subscription).value();
  }

  static MessageHandler CollectInto(Collector& collector) {
    return [&collector](const Message& m) {
      collector.Add(m);
      return ConsumeResult::kSuccess;
    };
  }

  // Sends `n` messages synchronously; returns their ids in send order.
  std::vector<std::string> SendN(Producer& producer, int n, const std::string& key_prefix = "k",
                                 int keys = 8) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto receipt = producer.Send(
          {.key = key_prefix + std::to_string(i % keys), .body = "message-" + std::to_string(i)});
      EXPECT_TRUE(receipt.ok()) << receipt.status().ToString();
      if (receipt.ok()) ids.push_back(receipt->message_id);
    }
    return ids;
  }

  std::unique_ptr<ClusterEnvironment> env_;
  std::optional<Client> client_;
  std::string topic_;
};

TEST_P(ConformanceTest, PublishThenSubscribeDeliversEverythingIntact) {
  Producer producer = MakeProducer(topic_);
  std::string binary_body("\0\x01\xff payload \n", 13);
  std::map<std::string, Message> sent;
  for (int i = 0; i < 50; ++i) {
    Message m{.key = "order-" + std::to_string(i % 5),
              .tag = i % 2 == 0 ? "created" : "paid",
              .properties = {{"trace-id", "abc" + std::to_string(i)}, {"empty", ""}},
              .body = binary_body + std::to_string(i)};
    auto receipt = producer.Send(m);
    ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
    EXPECT_EQ(receipt->message_id.size(), 32u);
    sent[receipt->message_id] = m;
  }
  Collector collector;
  Subscription sub = MakeSubscription(topic_, "g1", CollectInto(collector));
  ASSERT_TRUE(collector.WaitForDistinct(sent.size()));
  for (const Message& got : collector.messages()) {
    auto it = sent.find(got.message_id);
    ASSERT_NE(it, sent.end()) << "unexpected message " << got.message_id;
    EXPECT_EQ(got.topic, topic_);
    EXPECT_EQ(got.key, it->second.key);
    EXPECT_EQ(got.tag, it->second.tag);
    EXPECT_EQ(got.body, it->second.body);
    EXPECT_EQ(got.properties, it->second.properties);
    EXPECT_EQ(got.delivery_attempt, 1);
    EXPECT_FALSE(got.cluster.empty());
    EXPECT_GE(got.partition, 0);
    EXPECT_NE(got.born_at, Timestamp{});
    EXPECT_NE(got.stored_at, Timestamp{});
  }
}

TEST_P(ConformanceTest, MessageIdsAreUniqueAndTimeOrdered) {
  Producer producer = MakeProducer(topic_);
  std::vector<std::string> ids = SendN(producer, 200);
  ASSERT_EQ(ids.size(), 200u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

// Threads keep sending while their producer closes under them: every send is answered
// exactly once, stored or refused as closed, and Close returns only once the callbacks of the
// sends it let through have run.
TEST_P(ConformanceTest, ProducerClosedWhileThreadsSendAnswersEverySendOnce) {
  Producer producer = MakeProducer(topic_);
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> stored{0};
  std::atomic<int64_t> refused{0};
  std::atomic<int64_t> otherwise{0};
  std::atomic<int64_t> answered_twice{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> senders;
  for (int t = 0; t < 3; ++t) {
    senders.emplace_back([&] {
      while (!stop.load()) {
        auto answers = std::make_shared<std::atomic<int>>(0);
        sent.fetch_add(1);
        producer.SendAsync({.key = "k", .body = "b"}, [&, answers](const Result<SendReceipt>& r) {
          if (answers->fetch_add(1) > 0) answered_twice.fetch_add(1);
          if (r.ok()) {
            stored.fetch_add(1);
          } else if (r.status().code() == StatusCode::kFailedPrecondition) {
            refused.fetch_add(1);
          } else {
            otherwise.fetch_add(1);
          }
        });
      }
    });
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return stored.load() >= 200; }));
  MSGSDK_ASSERT_OK(producer.Close());
  const int64_t stored_when_closed = stored.load();
  stop.store(true);
  for (auto& sender : senders) sender.join();
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return stored.load() + refused.load() + otherwise.load() >= sent.load(); }));
  EXPECT_EQ(answered_twice.load(), 0);
  EXPECT_EQ(otherwise.load(), 0);
  EXPECT_EQ(stored.load() + refused.load() + otherwise.load(), sent.load());
  EXPECT_EQ(stored.load(), stored_when_closed) << "a send was stored after Close returned";
}

TEST_P(ConformanceTest, FiftyProducersFiftyConsumersLoseNothing) {
  constexpr int kProducers = 50;
  constexpr int kPerProducer = 40;
  Collector collector;
  // All fifty join at once (as a fleet starting up does), which also lets group-based
  // backends settle them in one rebalance instead of fifty.
  std::vector<std::optional<Subscription>> subs(50);
  {
    std::vector<std::thread> joiners;
    for (auto& sub : subs) {
      joiners.emplace_back([&] {
        sub.emplace(
            MakeSubscription(topic_, "many", CollectInto(collector), {.consumer_threads = 1}));
      });
    }
    for (auto& t : joiners) t.join();
  }
  std::vector<Producer> producers;
  for (int i = 0; i < kProducers; ++i) producers.push_back(MakeProducer(topic_));
  std::atomic<int> acked{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        producers[p].SendAsync(
            {.key = "p" + std::to_string(p), .body = std::to_string(p) + ":" + std::to_string(i)},
            [&](const Result<SendReceipt>& r) { (r.ok() ? acked : failed).fetch_add(1); });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(testing::WaitUntil([&] { return acked + failed == kProducers * kPerProducer; }));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_TRUE(collector.WaitForDistinct(kProducers * kPerProducer, 60s))
      << "received " << collector.distinct() << " of " << kProducers * kPerProducer;
  // And they leave at once too.
  std::vector<std::thread> leavers;
  for (auto& sub : subs) {
    leavers.emplace_back([&] { MSGSDK_EXPECT_OK(sub->Close()); });
  }
  for (auto& t : leavers) t.join();
}

TEST_P(ConformanceTest, TwoGroupsEachReceiveEverything) {
  Collector billing, audit;
  Subscription a = MakeSubscription(topic_, "billing", CollectInto(billing));
  Subscription b = MakeSubscription(topic_, "audit", CollectInto(audit));
  Producer producer = MakeProducer(topic_);
  auto ids = SendN(producer, 100);
  ASSERT_TRUE(billing.WaitForDistinct(ids.size()));
  ASSERT_TRUE(audit.WaitForDistinct(ids.size()));
}

TEST_P(ConformanceTest, TopicsAreIsolated) {
  const std::string other = topic_ + "-other";
  Producer p1 = MakeProducer(topic_);
  Producer p2 = MakeProducer(other);
  auto ids1 = SendN(p1, 30);
  auto ids2 = SendN(p2, 20);
  Collector c1, c2;
  Subscription s1 = MakeSubscription(topic_, "iso", CollectInto(c1));
  Subscription s2 = MakeSubscription(other, "iso", CollectInto(c2));
  ASSERT_TRUE(c1.WaitForDistinct(ids1.size()));
  ASSERT_TRUE(c2.WaitForDistinct(ids2.size()));
  MSGSDK_ASSERT_OK(s1.Close());
  MSGSDK_ASSERT_OK(s2.Close());
  std::set<std::string> expected1(ids1.begin(), ids1.end());
  for (const auto& m : c1.messages()) {
    EXPECT_EQ(m.topic, topic_);
    EXPECT_TRUE(expected1.count(m.message_id)) << "foreign message on " << topic_;
  }
  EXPECT_EQ(c2.distinct(), ids2.size());
}

TEST_P(ConformanceTest, RetryLaterRedeliversWithBackoffThenDeadLetters) {
  Producer producer = MakeProducer(topic_);
  auto flaky = producer.Send({.key = "a", .body = "flaky"});
  auto poison = producer.Send({.key = "b", .body = "poison"});
  ASSERT_TRUE(flaky.ok() && poison.ok());

  std::mutex mutex;
  std::map<std::string, std::vector<int>> attempts;  // body -> attempts seen
  Subscription sub = MakeSubscription(topic_, "retrying", [&](const Message& m) {
    std::lock_guard lock(mutex);
    attempts[m.body].push_back(m.delivery_attempt);
    if (m.body == "flaky" && m.delivery_attempt < 3) return ConsumeResult::kRetryLater;
    if (m.body == "poison") throw std::runtime_error("cannot parse poison");
    return ConsumeResult::kSuccess;
  });
  Collector dead;
  Subscription dlq = MakeSubscription(DeadLetterTopic("retrying"), "dlq-reader", CollectInto(dead));
  ASSERT_TRUE(dead.WaitForDistinct(1));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(attempts["flaky"], (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(attempts["poison"], (std::vector<int>{1, 2, 3, 4}));  // max_attempts: 4
  }
  const Message letter = dead.messages().front();
  EXPECT_EQ(letter.body, "poison");
  EXPECT_EQ(letter.message_id, poison->message_id);
  EXPECT_EQ(letter.properties.at("msgsdk.dlq.origin_topic"), topic_);
  EXPECT_EQ(letter.properties.at("msgsdk.dlq.attempts"), "4");
  EXPECT_NE(letter.properties.at("msgsdk.dlq.reason").find("cannot parse poison"),
            std::string::npos);
}

TEST_P(ConformanceTest, RetriesNeverBlockOtherKeys) {
  Producer producer = MakeProducer(topic_);
  std::atomic<bool> release_stuck{false};
  Collector done;
  Subscription sub = MakeSubscription(topic_, "unblocked",
                                      [&](const Message& m) {
                                        if (m.key == "stuck" && !release_stuck)
                                          return ConsumeResult::kRetryLater;
                                        done.Add(m);
                                        return ConsumeResult::kSuccess;
                                      },
                                      {.ordered = true, .max_attempts = 1000});
  ASSERT_TRUE(producer.Send({.key = "stuck", .body = "first"}).ok());
  ASSERT_TRUE(producer.Send({.key = "stuck", .body = "second"}).ok());
  auto others = SendN(producer, 40, "free-", 10);
  // Every other key gets through while "stuck" keeps retrying.
  ASSERT_TRUE(done.WaitForDistinct(others.size()));
  for (const auto& m : done.messages()) EXPECT_NE(m.key, "stuck");
  release_stuck = true;
  ASSERT_TRUE(done.WaitForDistinct(others.size() + 2));
  // And the stuck key kept its order through the retries.
  std::vector<std::string> stuck_bodies;
  for (const auto& m : done.messages()) {
    if (m.key == "stuck") stuck_bodies.push_back(m.body);
  }
  EXPECT_EQ(stuck_bodies, (std::vector<std::string>{"first", "second"}));
}

// Per-key order under at-least-once: a message is never handed to a handler before every
// earlier message of its key has been handled, and one key is never handled by two handlers at
// once. A rebalance may replay a key from its last committed position (a redelivery of
// something already handled); that is allowed, skipping ahead is not.
TEST_P(ConformanceTest, PerKeyOrderWithSeveralConsumers) {
  constexpr int kKeys = 16;
  constexpr int kPerKey = 40;
  std::mutex mutex;
  std::map<std::string, int> next_unseen;        // key -> smallest sequence not yet handled
  std::map<std::string, std::set<int>> handled;  // key -> sequences handled at least once
  std::map<std::string, int> concurrent;
  std::vector<std::string> violations;
  std::atomic<bool> overlap{false};
  auto handler = [&](const Message& m) {
    const int sequence = std::stoi(m.body);
    {
      std::lock_guard lock(mutex);
      if (++concurrent[m.key] > 1) overlap = true;
      int& next = next_unseen[m.key];
      if (sequence > next) {
        violations.push_back(m.key + ": " + std::to_string(sequence) + " before " +
                             std::to_string(next));
      }
      handled[m.key].insert(sequence);
      while (handled[m.key].count(next) != 0) ++next;
    }
    std::this_thread::yield();
    {
      std::lock_guard lock(mutex);
      --concurrent[m.key];
    }
    return ConsumeResult::kSuccess;
  };
  std::vector<Subscription> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(
        MakeSubscription(topic_, "ordered", handler, {.ordered = true, .consumer_threads = 4}));
  }
  Producer producer = MakeProducer(topic_);
  for (int i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < kKeys; ++k) {
      producer.SendAsync(
          {.key = "key-" + std::to_string(k), .body = std::to_string(i)},
          [](const Result<SendReceipt>& r) { EXPECT_TRUE(r.ok()) << r.status().ToString(); });
    }
  }
  auto all_handled = [&] {
    std::lock_guard lock(mutex);
    if (next_unseen.size() < static_cast<size_t>(kKeys)) return false;
    for (const auto& [key, next] : next_unseen) {
      if (next < kPerKey) return false;
    }
    return true;
  };
  ASSERT_TRUE(testing::WaitUntil(all_handled, 60s)) << "not every message was handled";
  EXPECT_FALSE(overlap) << "two deliveries of one key ran at the same time";
  std::lock_guard lock(mutex);
  EXPECT_TRUE(violations.empty()) << "order violations, first: " << violations.front();
}

TEST_P(ConformanceTest, TagFilterDeliversOnlyMatchingTags) {
  Producer producer = MakeProducer(topic_);
  int wanted = 0;
  for (int i = 0; i < 60; ++i) {
    const char* tags[] = {"created", "paid", "shipped"};
    const std::string tag = tags[i % 3];
    if (tag != "shipped") ++wanted;
    ASSERT_TRUE(producer.Send({.tag = tag, .body = std::to_string(i)}).ok());
  }
  Collector filtered, all;
  Subscription a = MakeSubscription(topic_, "filtered", CollectInto(filtered),
                                    {.tag_filter = "created || paid"});
  Subscription b = MakeSubscription(topic_, "everything", CollectInto(all));
  ASSERT_TRUE(all.WaitForDistinct(60));
  ASSERT_TRUE(filtered.WaitForDistinct(wanted));
  MSGSDK_ASSERT_OK(a.Close());
  for (const auto& m : filtered.messages()) EXPECT_NE(m.tag, "shipped");
  EXPECT_EQ(filtered.distinct(), static_cast<size_t>(wanted));
}

TEST_P(ConformanceTest, BroadcastGivesEveryMemberEverything) {
  Collector first, second;
  auto sub1 = client().Subscribe(topic_, "fanout", CollectInto(first),
                                 {.mode = SubscriptionMode::kBroadcast, .instance_id = "m1"});
  if (!capabilities().broadcast) {
    ASSERT_EQ(sub1.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(sub1.status().message().find("broadcast"), std::string::npos);
    return;
  }
  ASSERT_TRUE(sub1.ok()) << sub1.status().ToString();
  Subscription sub2 = MakeSubscription(topic_, "fanout", CollectInto(second),
                                       {.mode = SubscriptionMode::kBroadcast, .instance_id = "m2"});
  Producer producer = MakeProducer(topic_);
  auto ids = SendN(producer, 50);
  ASSERT_TRUE(first.WaitForDistinct(ids.size()));
  ASSERT_TRUE(second.WaitForDistinct(ids.size()));
}

TEST_P(ConformanceTest, TimerMessagesAreHeldOrRefusedByName) {
  Producer producer = MakeProducer(topic_);
  const auto deliver_at = std::chrono::system_clock::now() + 1500ms;
  auto receipt = producer.Send({.body = "later", .deliver_at = deliver_at});
  if (!capabilities().timer_messages) {
    ASSERT_EQ(receipt.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(receipt.status().message().find("timer messages"), std::string::npos);
    EXPECT_NE(receipt.status().message().find(capabilities().backend), std::string::npos);
    return;
  }
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  Collector collector;
  Subscription sub = MakeSubscription(topic_, "timers", CollectInto(collector));
  ASSERT_TRUE(collector.WaitForDistinct(1));
  EXPECT_GE(std::chrono::system_clock::now(), deliver_at);
}

TEST_P(ConformanceTest, ClosingAndReopeningSubscriptionsLosesNothing) {
  Producer producer = MakeProducer(topic_);
  constexpr int kTotal = 600;
  std::atomic<bool> producing{true};
  std::set<std::string> sent;
  std::mutex sent_mutex;
  std::thread sender([&] {
    for (int i = 0; i < kTotal; ++i) {
      auto receipt = producer.Send({.key = std::to_string(i % 7), .body = std::to_string(i)});
      ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
      std::lock_guard lock(sent_mutex);
      sent.insert(receipt->message_id);
    }
    producing = false;
  });
  Collector collector;
  // No assertion may leave while the sender runs (a joinable thread would abort the run):
  // a failed close is reported once the sender has been joined.
  Status close_failure;
  for (int round = 0; round < 10 && close_failure.ok(); ++round) {
    Subscription sub = MakeSubscription(topic_, "churn", CollectInto(collector));
    collector.WaitForDeliveries(std::min<size_t>(kTotal, (round + 1) * kTotal / 12), 5s);
    close_failure =
        sub.Close().WithContext("closing the subscription of round " + std::to_string(round));
  }
  sender.join();
  MSGSDK_ASSERT_OK(close_failure);
  Subscription last = MakeSubscription(topic_, "churn", CollectInto(collector));
  ASSERT_TRUE(collector.WaitForDistinct(kTotal, 30s)) << "got " << collector.distinct();
  auto counts = collector.count_by_id();
  for (const auto& id : sent) EXPECT_TRUE(counts.count(id)) << "lost " << id;
}

TEST_P(ConformanceTest, ManySubscriptionsClosedConcurrently) {
  Producer producer = MakeProducer(topic_);
  auto ids = SendN(producer, 200);
  Collector collector;
  std::vector<Subscription> subs;
  for (int i = 0; i < 20; ++i) {
    subs.push_back(
        MakeSubscription(topic_, "closers", CollectInto(collector), {.consumer_threads = 1}));
  }
  collector.WaitForDeliveries(50, 10s);
  std::vector<std::thread> closers;
  std::atomic<int> failures{0};
  for (auto& sub : subs) {
    closers.emplace_back([&] {
      if (!sub.Close().ok()) ++failures;
      if (!sub.Close().ok()) ++failures;  // idempotent
    });
  }
  for (auto& t : closers) t.join();
  EXPECT_EQ(failures.load(), 0);
  // Whatever was not acknowledged comes back to the group.
  Subscription again = MakeSubscription(topic_, "closers", CollectInto(collector));
  ASSERT_TRUE(collector.WaitForDistinct(ids.size()));
}

// Runs a close in the first message's handler, once the test holds its subscription's handle,
// and reports what the close returned.
class CloseInFirstHandler {
 public:
  // From the handler.
  void OnMessage(const std::function<Status()>& close) {
    if (closing_.exchange(true)) return;
    subscribed_.wait();
    closed_.set_value(close());
  }
  // The test holds the subscription's handle.
  void Subscribed() { subscribed_promise_.set_value(); }
  // What the close returned (kDeadlineExceeded if no handler ran in time).
  Status Wait() {
    std::future<Status> closed = closed_.get_future();
    if (closed.wait_for(30s) != std::future_status::ready) {
      return DeadlineExceededError("no handler ran");
    }
    return closed.get();
  }

 private:
  std::promise<void> subscribed_promise_;
  std::shared_future<void> subscribed_ = subscribed_promise_.get_future().share();
  std::promise<Status> closed_;
  std::atomic<bool> closing_{false};
};

// A handler may close its own subscription. That close cannot wait for the handler calling
// it: it returns at once and goes on once the handler has returned, the handler's verdict
// included; a later Close waits for it.
TEST_P(ConformanceTest, AHandlerMayCloseItsOwnSubscription) {
  Producer producer = MakeProducer(topic_);
  // One key, ordered: one delivery at a time, in send order, in every cell, so the handler that
  // closes has the first, and every later one goes back to the group. (On Kafka, whose commit
  // covers only a partition's acknowledged prefix, an acknowledged message behind a returned
  // one would come back.)
  auto ids = SendN(producer, 20, "k", 1);
  Collector before;
  CloseInFirstHandler closer;
  std::optional<Subscription> sub;
  sub.emplace(MakeSubscription(topic_, "self-closers",
                               [&](const Message& m) {
                                 before.Add(m);
                                 closer.OnMessage([&] { return sub->Close(); });
                                 return ConsumeResult::kSuccess;
                               },
                               {.ordered = true, .consumer_threads = 1}));
  closer.Subscribed();
  MSGSDK_ASSERT_OK(closer.Wait());
  MSGSDK_EXPECT_OK(sub->Close());
  sub.reset();
  EXPECT_EQ(before.size(), 1u) << "a handler ran after its subscription closed";

  // The closing handler's acknowledgement was committed; everything after it comes back.
  Collector after;
  Subscription next = MakeSubscription(topic_, "self-closers", CollectInto(after));
  ASSERT_TRUE(after.WaitForIds({ids.begin() + 1, ids.end()}));
  EXPECT_EQ(after.count_by_id().count(ids[0]), 0u) << "the closing handler's message came back";
}

// A handler may close its client, and drop its last handle: that close too goes on once the
// handler has returned, and a later Close (here the subscription's) waits for it.
TEST_P(ConformanceTest, AHandlerMayCloseAndDropItsClient) {
  Producer producer = MakeProducer(topic_);
  auto ids = SendN(producer, 20);
  MSGSDK_ASSERT_OK(producer.Close());
  Collector seen;
  CloseInFirstHandler closer;
  std::optional<Subscription> sub;
  sub.emplace(MakeSubscription(topic_, "client-closers", [&](const Message& m) {
    seen.Add(m);
    closer.OnMessage([&] {
      Status status = client_->Close();
      client_.reset();  // the client's last handle
      return status;
    });
    return ConsumeResult::kSuccess;
  }));
  closer.Subscribed();
  MSGSDK_ASSERT_OK(closer.Wait());
  MSGSDK_EXPECT_OK(sub->Close());
  sub.reset();

  // Nothing was lost: a new client of the same group gets every message not handled before.
  ASSERT_NO_FATAL_FAILURE(ReopenClient());
  Subscription next = MakeSubscription(topic_, "client-closers", CollectInto(seen));
  EXPECT_TRUE(seen.WaitForIds({ids.begin(), ids.end()}));
}

// Two handlers, of two subscriptions, that each close the other's subscription once both
// are running.
class CloseEachOther {
 public:
  // From the handler of subscription `side` (0 or 1): the first message waits (30 s at most)
  // until the other side's handler runs too and the test holds both handles, then closes.
  void OnMessage(int side, const std::function<Status()>& close_other) {
    if (started_[side].exchange(true)) return;
    bool together;
    {
      std::unique_lock lock(mutex_);
      ++running_;
      changed_.notify_all();
      together = changed_.wait_for(lock, 30s, [this] { return running_ == 2 && subscribed_; });
    }
    closed_[side].set_value(together ? close_other()
                                     : DeadlineExceededError("the other handler never ran"));
  }
  void Subscribed() {
    std::lock_guard lock(mutex_);
    subscribed_ = true;
    changed_.notify_all();
  }
  // What side's close returned (kDeadlineExceeded if it did not return in time).
  Status Wait(int side) {
    std::future<Status> closed = closed_[side].get_future();
    if (closed.wait_for(30s) != std::future_status::ready) {
      return DeadlineExceededError("the close of side " + std::to_string(side) +
                                   " did not return");
    }
    return closed.get();
  }

 private:
  std::atomic<bool> started_[2] = {false, false};
  std::mutex mutex_;
  std::condition_variable changed_;
  int running_ = 0;
  bool subscribed_ = false;
  std::promise<Status> closed_[2];
};

// Handlers closing each other's subscriptions at the same moment: neither close waits for the
// other's handler (each would wait for the other for good), both return at once, and later
// closes from the test wait for them.
TEST_P(ConformanceTest, HandlersMayCloseEachOthersSubscriptions) {
  Producer producer = MakeProducer(topic_);
  SendN(producer, 5);
  MSGSDK_ASSERT_OK(producer.Close());
  CloseEachOther closers;
  std::optional<Subscription> subs[2];
  for (int side : {0, 1}) {
    subs[side].emplace(MakeSubscription(topic_, "cross-closers-" + std::to_string(side),
                                        [&, side](const Message&) {
                                          closers.OnMessage(
                                              side, [&] { return subs[1 - side]->Close(); });
                                          return ConsumeResult::kSuccess;
                                        },
                                        {.consumer_threads = 1}));
  }
  closers.Subscribed();
  MSGSDK_EXPECT_OK(closers.Wait(0));
  MSGSDK_EXPECT_OK(closers.Wait(1));
  for (auto& sub : subs) MSGSDK_EXPECT_OK(sub->Close());
}

// A send callback and a handler closing each other's handles at the same moment: the handler
// closes the producer whose callback is running (a producer's close waits for its callbacks),
// the callback closes the subscription whose handler is running (a subscription's close
// waits for its handlers). Neither waits for the other for good.
TEST_P(ConformanceTest, ASendCallbackAndAHandlerMayCloseEachOthersHandles) {
  CloseEachOther closers;
  std::optional<Producer> producer = MakeProducer(topic_);
  std::optional<Subscription> sub;
  sub.emplace(MakeSubscription(topic_, "callback-closer",
                               [&](const Message&) {
                                 closers.OnMessage(0, [&] { return producer->Close(); });
                                 return ConsumeResult::kSuccess;
                               },
                               {.consumer_threads = 1}));
  closers.Subscribed();
  producer->SendAsync(
      {.key = "k", .body = "closes the subscription"},
      [&](const Result<SendReceipt>&) { closers.OnMessage(1, [&] { return sub->Close(); }); });
  MSGSDK_EXPECT_OK(closers.Wait(0));
  MSGSDK_EXPECT_OK(closers.Wait(1));
  MSGSDK_EXPECT_OK(sub->Close());
  MSGSDK_EXPECT_OK(producer->Close());
}

// Two clients whose send callbacks close each other's producers at the same moment: a
// producer's close waits for its callbacks, but not when called from a send callback (of
// any client), so neither waits for the other for good.
TEST_P(ConformanceTest, SendCallbacksOfTwoClientsMayCloseEachOthersProducers) {
  auto other_client = Client::Create(env_->Options());
  ASSERT_TRUE(other_client.ok()) << other_client.status().ToString();
  CloseEachOther closers;
  std::optional<Producer> producers[2];
  producers[0].emplace(MakeProducer(topic_));
  auto other_producer = other_client->CreateProducer(topic_);
  ASSERT_TRUE(other_producer.ok()) << other_producer.status().ToString();
  producers[1].emplace(std::move(other_producer).value());
  closers.Subscribed();
  for (int side : {0, 1}) {
    producers[side]->SendAsync(
        {.key = "k", .body = "closes the other producer"}, [&, side](const Result<SendReceipt>&) {
          closers.OnMessage(side, [&] { return producers[1 - side]->Close(); });
        });
  }
  MSGSDK_EXPECT_OK(closers.Wait(0));
  MSGSDK_EXPECT_OK(closers.Wait(1));
  for (auto& producer : producers) MSGSDK_EXPECT_OK(producer->Close());
  MSGSDK_EXPECT_OK(other_client->Close());
}

TEST_P(ConformanceTest, RestartedClientResumesFromCommittedOffsets) {
  Producer producer = MakeProducer(topic_);
  auto first_ids = SendN(producer, 100);
  Collector before;
  {
    Subscription sub = MakeSubscription(topic_, "resume", CollectInto(before));
    ASSERT_TRUE(before.WaitForDistinct(first_ids.size()));
    MSGSDK_ASSERT_OK(sub.Close());
  }
  MSGSDK_ASSERT_OK(producer.Close());
  MSGSDK_ASSERT_OK(client().Close());
  client_.reset();

  ASSERT_NO_FATAL_FAILURE(ReopenClient());
  Producer producer2 = MakeProducer(topic_);
  auto second_ids = SendN(producer2, 50);
  Collector after;
  Subscription sub = MakeSubscription(topic_, "resume", CollectInto(after));
  ASSERT_TRUE(after.WaitForDistinct(second_ids.size()));
  MSGSDK_ASSERT_OK(sub.Close());
  std::set<std::string> old_ids(first_ids.begin(), first_ids.end());
  for (const auto& m : after.messages()) {
    EXPECT_FALSE(old_ids.count(m.message_id)) << "redelivered after a clean close: " << m.body;
  }
  EXPECT_EQ(after.distinct(), second_ids.size());
}

TEST_P(ConformanceTest, ResetOffsetsReplaysFromEarliest) {
  Producer producer = MakeProducer(topic_);
  auto ids = SendN(producer, 40);
  Collector first;
  {
    Subscription sub = MakeSubscription(topic_, "replay", CollectInto(first));
    ASSERT_TRUE(first.WaitForDistinct(ids.size()));
    MSGSDK_ASSERT_OK(sub.Close());
  }
  Status reset = client().ResetOffsets(topic_, "replay", {.kind = ResetTarget::Kind::kEarliest});
  if (!capabilities().replay) {
    ASSERT_EQ(reset.code(), StatusCode::kUnsupported);
    return;
  }
  ASSERT_TRUE(reset.ok()) << reset.ToString();
  Collector second;
  Subscription sub = MakeSubscription(topic_, "replay", CollectInto(second));
  ASSERT_TRUE(second.WaitForDistinct(ids.size()));
}

TEST_P(ConformanceTest, BadInputGetsClearStatuses) {
  auto bad_topic = client().CreateProducer("has space");
  EXPECT_EQ(bad_topic.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_topic.status().message().find("has space"), std::string::npos);
  auto reserved = client().CreateProducer("__dlq.x");
  EXPECT_EQ(reserved.status().code(), StatusCode::kInvalidArgument);
  auto bad_group =
      client().Subscribe(topic_, "", [](const Message&) { return ConsumeResult::kSuccess; });
  EXPECT_EQ(bad_group.status().code(), StatusCode::kInvalidArgument);
  auto no_handler = client().Subscribe(topic_, "g", nullptr);
  EXPECT_EQ(no_handler.status().code(), StatusCode::kInvalidArgument);
  auto bad_filter = client().Subscribe(
      topic_, "g", [](const Message&) { return ConsumeResult::kSuccess; }, {.tag_filter = "a || "});
  EXPECT_EQ(bad_filter.status().code(), StatusCode::kInvalidArgument);

  Producer producer = MakeProducer(topic_);
  auto empty = producer.Send({.body = ""});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  auto huge = producer.Send({.body = std::string((4 << 20) + 1, 'x')});
  EXPECT_EQ(huge.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(huge.status().message().find("max_message_bytes"), std::string::npos);
  MSGSDK_ASSERT_OK(producer.Close());
  auto after_close = producer.Send({.body = "x"});
  EXPECT_EQ(after_close.status().code(), StatusCode::kFailedPrecondition);
}

// A child process sends messages one by one and reports each acknowledged id on a pipe; the
// test kills it with SIGKILL mid-stream. Every id it reported must be readable afterwards.
TEST_P(ConformanceTest, ProducerKilledWithSigkillLosesNoAcknowledgedMessage) {
  // The child opens the cluster itself: close ours first (an embedded data directory can be
  // open in one process at a time).
  MSGSDK_ASSERT_OK(client().Close());
  client_.reset();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const std::string yaml = env_->RoutingYaml();
  const std::string sidecar = env_->Options().sidecar;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    if (sidecar.empty()) {
      setenv("MSGSDK_CHILD_CONFIG_YAML", yaml.c_str(), 1);
    } else {
      setenv("MSGSDK_SIDECAR", sidecar.c_str(), 1);  // the child sends through the sidecar
    }
    execl(MSGSDK_CHILD_PRODUCER, MSGSDK_CHILD_PRODUCER, topic_.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  FILE* reports = fdopen(fds[0], "r");
  std::vector<std::string> acked;
  char line[128];
  while (acked.size() < 300 && std::fgets(line, sizeof(line), reports) != nullptr) {
    std::string id(line);
    if (!id.empty() && id.back() == '\n') id.pop_back();
    acked.push_back(id);
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  std::fclose(reports);
  ASSERT_EQ(acked.size(), 300u) << "the child stopped early";

  ASSERT_NO_FATAL_FAILURE(ReopenClient());
  Collector collector;
  Subscription sub = MakeSubscription(topic_, "after-crash", CollectInto(collector));
  // The child may have stored more than it reported: wait for exactly the reported ones.
  auto all_arrived = [&] {
    auto counts = collector.count_by_id();
    return std::all_of(acked.begin(), acked.end(),
                       [&](const std::string& id) { return counts.count(id) > 0; });
  };
  testing::WaitUntil(all_arrived, 30s);
  auto counts = collector.count_by_id();
  for (const auto& id : acked) EXPECT_TRUE(counts.count(id)) << "acknowledged but lost: " << id;
}

INSTANTIATE_TEST_SUITE_P(Cells, ConformanceTest, ::testing::ValuesIn(AllCells()),
                         [](const ::testing::TestParamInfo<Cell>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace msgsdk::conformance
