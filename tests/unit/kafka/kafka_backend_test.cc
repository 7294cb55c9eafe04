// The kafka backend against librdkafka's mock cluster, driven through the backend interface
// (Backend, BackendProducer, BackendConsumer) with a test DeliverySink.

#include "backends/kafka/kafka_backend.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "backends/kafka/kafka_mapping.h"
#include "fixtures/kafka_fixture.h"
#include "testing/wait.h"
#include "unit/kafka/raw_kafka.h"
#include "unit/kafka/test_sink.h"

namespace msgsdk::kafka {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::KafkaClusterTest;
using testing::TestSink;

std::string NextMessageId() {
  static std::atomic<uint64_t> counter{1};
  char id[33];
  std::snprintf(
      id, sizeof(id), "%016llx%016llx",
      static_cast<unsigned long long>(std::chrono::system_clock::now().time_since_epoch().count()),
      static_cast<unsigned long long>(counter.fetch_add(1)));
  return id;
}

// "<prefix><n>", built without operator+ (GCC 12 misreports -Wrestrict on it).
std::string Numbered(const char* prefix, int n) {
  std::string out(prefix);
  out.append(std::to_string(n));
  return out;
}

Message MakeMessage(std::string key, std::string tag, std::string body,
                    Properties properties = {}) {
  Message m;
  m.key = std::move(key);
  m.tag = std::move(tag);
  m.body = std::move(body);
  m.properties = std::move(properties);
  m.message_id = NextMessageId();
  // Whole microseconds: what the record headers keep.
  m.born_at = FromEpochMicros(ToEpochMicros(std::chrono::system_clock::now()));
  return m;
}

Result<core::StoredPosition> SendSync(core::BackendProducer& producer, Message message,
                                      std::chrono::milliseconds timeout = 20s) {
  auto promise = std::make_shared<std::promise<Result<core::StoredPosition>>>();
  auto future = promise->get_future();
  producer.Send(std::move(message),
                [promise](Result<core::StoredPosition> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return DeadlineExceededError("the send did not complete");
  }
  return future.get();
}

// A loopback port nobody listens on.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class KafkaBackendTest : public KafkaClusterTest {
 protected:
  void TearDown() override {
    consumers_.clear();
    sinks_.clear();
    for (auto& backend : backends_) {
      backend->Close(Clock::now() + 5s).IgnoreError();
    }
    backends_.clear();
    KafkaClusterTest::TearDown();
  }

  core::Backend& MakeBackend(const std::map<std::string, std::string>& overrides = {}) {
    auto config = cluster().ClusterConfig("kafka-mock", overrides);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    auto backend = factory_->Create(*config);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    backends_.push_back(*backend);
    return *backends_.back();
  }

  std::unique_ptr<core::BackendProducer> MakeProducer(core::Backend& backend,
                                                      const std::string& topic) {
    auto producer = backend.CreateProducer(topic);
    EXPECT_TRUE(producer.ok()) << producer.status().ToString();
    return producer.ok() ? std::move(producer).value() : nullptr;
  }

  // Subscribes `sink` (which acknowledges through the returned consumer).
  core::BackendConsumer* Subscribe(core::Backend& backend, const core::SubscriptionSpec& spec,
                                   TestSink& sink) {
    auto consumer = backend.Subscribe(spec, sink);
    EXPECT_TRUE(consumer.ok()) << consumer.status().ToString();
    if (!consumer.ok()) return nullptr;
    sink.set_consumer(consumer->get());
    consumers_.push_back(std::move(consumer).value());
    return consumers_.back().get();
  }

  // Sinks outlive the consumers that deliver to them (members are destroyed in reverse).
  TestSink& NewSink() {
    sinks_.push_back(std::make_unique<TestSink>());
    return *sinks_.back();
  }

  std::unique_ptr<core::BackendFactory> factory_ = MakeKafkaBackendFactory();
  std::vector<std::unique_ptr<TestSink>> sinks_;
  std::vector<core::BackendPtr> backends_;
  std::vector<std::unique_ptr<core::BackendConsumer>> consumers_;
};

core::SubscriptionSpec Spec(const std::string& topic, const std::string& group) {
  core::SubscriptionSpec spec;
  spec.topic = topic;
  spec.group = group;
  return spec;
}

TEST_F(KafkaBackendTest, CapabilitiesAreDeclared) {
  core::Backend& backend = MakeBackend();
  const Capabilities& caps = backend.capabilities();
  EXPECT_EQ(caps.backend, "kafka");
  EXPECT_TRUE(caps.broadcast);
  EXPECT_TRUE(caps.replay);
  EXPECT_FALSE(caps.timer_messages);
  EXPECT_FALSE(caps.transactions);
  EXPECT_FALSE(caps.server_side_tag_filter);
}

TEST_F(KafkaBackendTest, ProducerWritesKeyHeadersAndTimestamp) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 3).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);

  Message first = MakeMessage("order-42", "created", "payload",
                              {{"trace", "t-1"}, {"msgsdk-id", "a user property"}});
  auto position = SendSync(*producer, first);
  ASSERT_TRUE(position.ok()) << position.status().ToString();
  EXPECT_GE(position->partition, 0);
  EXPECT_EQ(position->offset, 0);
  Message second = MakeMessage("order-42", "", "second");
  auto second_position = SendSync(*producer, second);
  ASSERT_TRUE(second_position.ok()) << second_position.status().ToString();
  EXPECT_EQ(second_position->partition, position->partition) << "one key, one partition";
  EXPECT_EQ(second_position->offset, 1);
  auto unkeyed = SendSync(*producer, MakeMessage("", "", "no key"));
  ASSERT_TRUE(unkeyed.ok()) << unkeyed.status().ToString();

  const auto records = testing::ReadRaw(cluster().bootstrap(), topic, 3, 3);
  ASSERT_EQ(records.size(), 3u);
  const testing::RawRecord* r = nullptr;
  const testing::RawRecord* no_key = nullptr;
  for (const auto& record : records) {
    if (record.value == "payload") r = &record;
    if (record.value == "no key") no_key = &record;
  }
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->key, "order-42");
  EXPECT_EQ(r->Header("msgsdk-id"), first.message_id);
  EXPECT_EQ(r->Header("msgsdk-tag"), "created");
  EXPECT_EQ(r->Header("msgsdk-born-at"), std::to_string(ToEpochMicros(first.born_at)));
  EXPECT_EQ(r->Header("trace"), "t-1");
  EXPECT_EQ(r->Header("msgsdk-prop-msgsdk-id"), "a user property");
  EXPECT_EQ(r->timestamp_ms, ToEpochMillis(first.born_at));
  EXPECT_EQ(r->timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
  ASSERT_NE(no_key, nullptr);
  EXPECT_FALSE(no_key->key.has_value()) << "an empty key is written as a null key";
  EXPECT_FALSE(no_key->Header("msgsdk-tag").has_value());
  EXPECT_TRUE(producer->Close(Clock::now() + 5s).ok());
}

TEST_F(KafkaBackendTest, SubscriptionDeliversEveryFieldInPartitionOrder) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 4).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  std::map<std::string, Message> sent;
  for (int i = 0; i < 40; ++i) {
    Message m = MakeMessage(Numbered("key-", i % 5), i % 2 ? "odd" : "even", Numbered("body-", i),
                            {{"seq", std::to_string(i)}});
    sent[m.message_id] = m;
    ASSERT_TRUE(SendSync(*producer, m).ok());
  }

  TestSink& sink = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "billing"), sink), nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(40)) << sink.deliveries().size();

  std::map<std::string, int> last_seq_by_key;
  std::map<int32_t, int64_t> last_offset_by_partition;
  for (const core::Delivery& d : sink.deliveries()) {
    const Message& m = d.message;
    ASSERT_TRUE(sent.contains(m.message_id)) << m.message_id;
    const Message& original = sent[m.message_id];
    EXPECT_EQ(m.topic, topic);
    EXPECT_EQ(m.key, original.key);
    EXPECT_EQ(m.tag, original.tag);
    EXPECT_EQ(m.body, original.body);
    EXPECT_EQ(m.properties, original.properties);
    EXPECT_EQ(m.born_at, original.born_at);
    EXPECT_FALSE(m.deliver_at.has_value());
    EXPECT_GE(m.partition, 0);
    EXPECT_GE(m.offset, 0);
    EXPECT_EQ(std::chrono::floor<std::chrono::milliseconds>(m.stored_at),
              std::chrono::floor<std::chrono::milliseconds>(original.born_at));
    const int seq = std::stoi(m.properties.at("seq"));
    if (last_seq_by_key.contains(m.key)) {
      EXPECT_GT(seq, last_seq_by_key[m.key]) << m.key;
    }
    last_seq_by_key[m.key] = seq;
    if (last_offset_by_partition.contains(m.partition)) {
      EXPECT_GT(m.offset, last_offset_by_partition[m.partition]);
    }
    last_offset_by_partition[m.partition] = m.offset;
  }
  EXPECT_EQ(sink.deliveries().size(), 40u) << "each message once";

  ASSERT_TRUE(consumers_.back()->Close(Clock::now() + 10s).ok());
  const std::vector<int32_t> revoked_list = sink.revoked();
  const std::set<int32_t> revoked(revoked_list.begin(), revoked_list.end());
  EXPECT_EQ(revoked, (std::set<int32_t>{0, 1, 2, 3})) << "every owned partition revoked on close";
  EXPECT_TRUE(consumers_.back()->Close(Clock::now() + 1s).ok()) << "Close is idempotent";
}

TEST_F(KafkaBackendTest, PlainRecordWithoutSdkHeadersIsDelivered) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  ASSERT_EQ(
      testing::ProduceRaw(cluster().bootstrap(), topic, std::string("k"), "plain", 1700000000123),
      "");
  ASSERT_EQ(testing::ProduceRaw(cluster().bootstrap(), topic, std::nullopt, "with headers",
                                1700000000456, {{"source", "legacy"}, {"msgsdk-future", "x"}}),
            "");
  core::Backend& backend = MakeBackend();
  TestSink& sink = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "legacy-readers"), sink), nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(2));
  const auto deliveries = sink.deliveries();
  const Message& plain = deliveries[0].message;
  EXPECT_EQ(plain.body, "plain");
  EXPECT_EQ(plain.key, "k");
  EXPECT_EQ(plain.tag, "");
  EXPECT_TRUE(plain.properties.empty());
  EXPECT_EQ(plain.message_id, SynthesizeMessageId(topic, 0, 0, 1700000000123));
  EXPECT_EQ(plain.born_at, FromEpochMicros(1700000000123000));
  EXPECT_EQ(plain.stored_at, plain.born_at);
  const Message& with_headers = deliveries[1].message;
  EXPECT_EQ(with_headers.key, "");
  EXPECT_EQ(with_headers.properties, (Properties{{"source", "legacy"}}))
      << "unknown msgsdk- headers are reserved, not properties";
  EXPECT_EQ(with_headers.message_id, SynthesizeMessageId(topic, 0, 1, 1700000000456));
}

TEST_F(KafkaBackendTest, RecordDecodedOverAnEarlierOneKeepsNothingOfIt) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(
      SendSync(*producer, MakeMessage("order-42", "created", "first", {{"source", "web"}})).ok());
  TestSink& sink = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "reuse"), sink), nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(1));
  // Polled later, so decoded into the delivery the first record was decoded into.
  ASSERT_EQ(testing::ProduceRaw(cluster().bootstrap(), topic, std::nullopt, "plain", 1700000000123),
            "");
  ASSERT_TRUE(sink.WaitForDeliveries(2));
  const auto deliveries = sink.deliveries();
  EXPECT_EQ(deliveries[0].message.tag, "created");
  const Message& plain = deliveries[1].message;
  EXPECT_EQ(plain.body, "plain");
  EXPECT_EQ(plain.key, "");
  EXPECT_EQ(plain.tag, "");
  EXPECT_TRUE(plain.properties.empty());
  EXPECT_FALSE(plain.deliver_at.has_value());
  EXPECT_EQ(plain.offset, 1);
  EXPECT_EQ(plain.message_id, SynthesizeMessageId(topic, 0, 1, 1700000000123));
  EXPECT_EQ(plain.born_at, FromEpochMicros(1700000000123000));
}

TEST_F(KafkaBackendTest, CommitsOnlyTheAcknowledgedPrefix) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "m")).ok());

  TestSink& first = NewSink();
  // Offset 2 is "still being handled" when the subscription closes; 3 and 4 are done.
  first.set_ack_policy([](const core::Delivery& d) { return d.message.offset != 2; });
  core::BackendConsumer* consumer = Subscribe(backend, Spec(topic, "prefix"), first);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(first.WaitForDeliveries(5));
  ASSERT_TRUE(consumer->Close(Clock::now() + 10s).ok());

  TestSink& second = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "prefix"), second), nullptr);
  ASSERT_TRUE(second.WaitForDeliveries(3));
  std::vector<int64_t> offsets;
  for (const core::Delivery& d : second.deliveries()) offsets.push_back(d.message.offset);
  EXPECT_EQ(offsets, (std::vector<int64_t>{2, 3, 4}))
      << "resumes at the first unacknowledged message, never past it";
}

TEST_F(KafkaBackendTest, AcknowledgedOffsetsAreCommittedWhileConsuming) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "m")).ok());
  TestSink& sink = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "periodic"), sink), nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(3));
  // commit_interval_ms is 200 in the fixture: no Close needed for the commit to happen.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return testing::CommittedOffsets(cluster().bootstrap(), "periodic", topic, 1) ==
               std::vector<int64_t>{3};
      },
      10s));
}

TEST_F(KafkaBackendTest, BackpressurePausesFetchingAndResumes) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 2).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "a")).ok());
  TestSink& sink = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "slow"), sink), nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(5));

  sink.set_capacity(false);
  ASSERT_TRUE(sink.WaitForCapacityChecks(sink.capacity_checks() + 3));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "b")).ok());
  // Many polls while full: the consumer keeps serving the group but delivers nothing.
  ASSERT_TRUE(sink.WaitForCapacityChecks(sink.capacity_checks() + 15));
  EXPECT_EQ(sink.deliveries().size(), 5u);

  sink.set_capacity(true);
  ASSERT_TRUE(sink.WaitForDeliveries(10));
  EXPECT_EQ(sink.deliveries().size(), 10u);
}

TEST_F(KafkaBackendTest, ResetOffsetsReplaysTheGroup) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 2).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(SendSync(*producer, MakeMessage(Numbered("k", i), "", "m")).ok());
  }
  TestSink& first = NewSink();
  core::BackendConsumer* consumer = Subscribe(backend, Spec(topic, "replay"), first);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(first.WaitForDeliveries(4));

  ASSERT_TRUE(consumer->Close(Clock::now() + 10s).ok());

  const Status reset = backend.ResetOffsets(topic, "replay", ResetTarget{});
  ASSERT_TRUE(reset.ok()) << reset.ToString();
  TestSink& second = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "replay"), second), nullptr);
  ASSERT_TRUE(second.WaitForDeliveries(4)) << "every message again after a reset to earliest";

  const Status missing = backend.ResetOffsets("no-such-topic", "replay", ResetTarget{});
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();
}

TEST_F(KafkaBackendTest, BroadcastMembersEachReceiveEverything) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 2).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(SendSync(*producer, MakeMessage(Numbered("k", i), "", "m")).ok());
  }
  TestSink& a = NewSink();
  TestSink& b = NewSink();
  core::SubscriptionSpec spec = Spec(topic, "cache-refresh");
  spec.mode = SubscriptionMode::kBroadcast;
  spec.member_id = "host-a";
  ASSERT_NE(Subscribe(backend, spec, a), nullptr);
  spec.member_id = "host-b";
  ASSERT_NE(Subscribe(backend, spec, b), nullptr);
  EXPECT_TRUE(a.WaitForDeliveries(6));
  EXPECT_TRUE(b.WaitForDeliveries(6));

  spec.member_id.clear();
  TestSink& c = NewSink();
  auto refused = backend.Subscribe(spec, c);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KafkaBackendTest, TagsOutsideTheFilterAreSkippedAndCommitted) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  for (const char* tag : {"created", "updated", "paid", "created"}) {
    ASSERT_TRUE(SendSync(*producer, MakeMessage("", tag, tag)).ok());
  }
  TestSink& sink = NewSink();
  core::SubscriptionSpec spec = Spec(topic, "filtered");
  spec.tags = {"created", "paid"};
  core::BackendConsumer* consumer = Subscribe(backend, spec, sink);
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(sink.WaitForDeliveries(3));
  std::vector<std::string> tags;
  for (const core::Delivery& d : sink.deliveries()) tags.push_back(d.message.tag);
  EXPECT_EQ(tags, (std::vector<std::string>{"created", "paid", "created"}));
  ASSERT_TRUE(consumer->Close(Clock::now() + 10s).ok());
  // Everything, the skipped record included, is committed.
  const auto committed = testing::ReadRaw(cluster().bootstrap(), topic, 1, 4);
  EXPECT_EQ(committed.size(), 4u);
}

TEST_F(KafkaBackendTest, SendFailsUnavailableWhenEveryBrokerIsDown) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend({{"delivery_timeout_ms", "1000"}});
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "before")).ok());

  ASSERT_TRUE(cluster().SetAllBrokersDown().ok());
  const auto start = Clock::now();
  auto result = SendSync(*producer, MakeMessage("", "", "while down"));
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_NE(result.status().message().find("topic '" + topic + "'"), std::string::npos);
  EXPECT_NE(result.status().message().find("kafka-mock"), std::string::npos);
  // librdkafka fails expired records on a scan it makes about once a second, so the failure
  // comes 1 to 2 s after the delivery timeout on an idle machine and later on a loaded one:
  // the bound tells a failure from a hang, it does not time the backend.
  EXPECT_LT(elapsed, 10s) << "fails after the delivery timeout, never hangs";
  ASSERT_TRUE(cluster().SetAllBrokersUp().ok());
}

TEST_F(KafkaBackendTest, UnreachableBootstrapFailsTheSendWithinItsTimeout) {
  const std::string bootstrap = "127.0.0.1:" + std::to_string(ClosedPort());
  core::Backend& backend = MakeBackend({{"bootstrap", bootstrap}, {"delivery_timeout_ms", "1000"}});
  auto start = Clock::now();
  auto producer = MakeProducer(backend, "orders");
  ASSERT_NE(producer, nullptr);
  EXPECT_LT(Clock::now() - start, 10s) << "an unreachable cluster is recognised, never a hang";

  start = Clock::now();
  auto result = SendSync(*producer, MakeMessage("", "", "nowhere"));
  ASSERT_FALSE(result.ok());
  // As above: a failure, not a hang.
  EXPECT_LT(Clock::now() - start, 10s);
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_NE(result.status().message().find(bootstrap), std::string::npos)
      << result.status().message();
}

TEST_F(KafkaBackendTest, MissingTopicWithoutAutoCreateIsNotFound) {
  core::Backend& backend = MakeBackend({{"auto_create_topics", "false"}});
  const std::string topic = UniqueTopic();
  auto producer = backend.CreateProducer(topic);
  ASSERT_FALSE(producer.ok());
  EXPECT_EQ(producer.status().code(), StatusCode::kNotFound);
  EXPECT_NE(producer.status().message().find("topic '" + topic + "'"), std::string::npos);
  EXPECT_NE(producer.status().message().find("Kafka cluster 'kafka-mock'"), std::string::npos)
      << producer.status().message();
  TestSink& sink = NewSink();
  auto consumer = backend.Subscribe(Spec(topic, "g"), sink);
  EXPECT_EQ(consumer.status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(cluster().CreateTopic(topic, 2).ok());
  EXPECT_TRUE(backend.CreateProducer(topic).ok()) << "an existing topic is fine";
}

TEST_F(KafkaBackendTest, MissingTopicIsCreatedOnFirstUse) {
  core::Backend& backend = MakeBackend();
  const std::string topic = UniqueTopic();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  auto result = SendSync(*producer, MakeMessage("", "", "first"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
}

TEST_F(KafkaBackendTest, RecordTooLargeIsInvalidArgument) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  auto result = SendSync(*producer, MakeMessage("", "", std::string(1500000, 'x')));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().ToString();
  EXPECT_NE(result.status().message().find("1500000 bytes"), std::string::npos)
      << result.status().message();
}

TEST_F(KafkaBackendTest, TimerMessagesAreRefusedNamingTheBackend) {
  const std::string topic = UniqueTopic();
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  Message m = MakeMessage("", "", "later");
  m.deliver_at = std::chrono::system_clock::now() + std::chrono::hours(1);
  auto result = SendSync(*producer, m);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(result.status().message().find("backend 'kafka'"), std::string::npos);
  EXPECT_NE(result.status().message().find("deliver_at"), std::string::npos);
}

TEST_F(KafkaBackendTest, InjectedProduceErrorsLoseAndDuplicateNothing) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  core::Backend& backend = MakeBackend({{"delivery_timeout_ms", "10000"}});
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "warm-up")).ok());
  // Retriable broker errors: librdkafka retries, idempotence keeps one copy of each record.
  cluster().PushProduceErrors(3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  cluster().PushProduceErrors(2, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  std::set<std::string> acknowledged;
  for (int i = 0; i < 20; ++i) {
    Message m = MakeMessage("", "", Numbered("m", i));
    auto result = SendSync(*producer, m);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    acknowledged.insert(m.message_id);
  }
  const auto records = testing::ReadRaw(cluster().bootstrap(), topic, 1, 21);
  ASSERT_EQ(records.size(), 21u);
  std::set<std::string> stored;
  for (const auto& r : records) {
    if (r.value != "warm-up") stored.insert(r.Header("msgsdk-id").value_or(""));
  }
  EXPECT_EQ(stored, acknowledged);
}

TEST_F(KafkaBackendTest, ProducerCloseCompletesEverySend) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 4).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  std::atomic<int> completed{0};
  std::atomic<int> failed{0};
  for (int i = 0; i < 1000; ++i) {
    producer->Send(MakeMessage(Numbered("k", i % 7), "", "m"), [&](Result<core::StoredPosition> r) {
      if (!r.ok()) ++failed;
      ++completed;
    });
  }
  EXPECT_TRUE(producer->Close(Clock::now() + 10s).ok());
  EXPECT_EQ(completed.load(), 1000);
  EXPECT_EQ(failed.load(), 0);
  auto after = SendSync(*producer, MakeMessage("", "", "late"));
  EXPECT_EQ(after.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(KafkaBackendTest, BackendClosedWhileThreadsSendAnswersEverySend) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 4).ok());
  core::Backend& backend = MakeBackend();
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  // The backend flushes and stops serving delivery reports while these threads are handing
  // records to librdkafka: each send is stored and answered, or refused, never left pending.
  std::atomic<int> sent{0};
  std::atomic<int> answered{0};
  std::atomic<int> stored{0};
  std::atomic<bool> refused{false};
  std::vector<std::thread> senders;
  const auto give_up = Clock::now() + 30s;
  for (int t = 0; t < 3; ++t) {
    senders.emplace_back([&, t] {
      while (!refused.load() && Clock::now() < give_up) {
        ++sent;
        producer->Send(MakeMessage(Numbered("k", t), "", "m"), [&](Result<core::StoredPosition> r) {
          if (r.ok()) ++stored;
          if (r.status().code() == StatusCode::kFailedPrecondition) refused = true;
          ++answered;
        });
      }
    });
  }
  EXPECT_TRUE(testing::WaitUntil([&] { return stored.load() >= 200; }));
  EXPECT_TRUE(backend.Close(Clock::now() + 20s).ok());
  for (std::thread& sender : senders) sender.join();
  EXPECT_TRUE(refused.load()) << "sends after the close are refused";
  // Reports of what reached librdkafka were served by the close; the rest were refused at once.
  EXPECT_EQ(answered.load(), sent.load());
}

TEST_F(KafkaBackendTest, ProducerCloseFailsSendsStillPendingAtItsDeadline) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 4).ok());
  core::Backend& backend = MakeBackend({{"delivery_timeout_ms", "30000"}});
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  ASSERT_TRUE(SendSync(*producer, MakeMessage("", "", "before")).ok());
  ASSERT_TRUE(cluster().SetAllBrokersDown().ok());
  // More sends than one block of the tracker's records holds, so Close finds them in many.
  constexpr int kSends = 1500;
  std::mutex mu;
  std::map<StatusCode, int> outcomes;
  int completions = 0;
  for (int i = 0; i < kSends; ++i) {
    producer->Send(MakeMessage(Numbered("k", i), "", "m"), [&](Result<core::StoredPosition> r) {
      std::lock_guard lock(mu);
      ++outcomes[r.status().code()];
      ++completions;
    });
  }
  const Status closed = producer->Close(Clock::now() + 300ms);
  EXPECT_EQ(closed.code(), StatusCode::kDeadlineExceeded) << closed.ToString();
  EXPECT_NE(closed.message().find(std::to_string(kSends) + " sends were not acknowledged"),
            std::string::npos)
      << closed.message();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(completions, kSends) << "Close completes every send before it returns";
    EXPECT_EQ(outcomes[StatusCode::kDeadlineExceeded], kSends);
  }
  // The records' reports come once the broker is back: none completes a send again.
  ASSERT_TRUE(cluster().SetAllBrokersUp().ok());
  producer.reset();
  std::lock_guard lock(mu);
  EXPECT_EQ(completions, kSends);
}

TEST_F(KafkaBackendTest, RebalanceCommitsOnRevokeAndLosesNothing) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 4).ok());
  // The mock's rebalances wait session_timeout_ms - 1 s: keep them short here.
  core::Backend& backend =
      MakeBackend({{"session_timeout_ms", "2500"}, {"heartbeat_interval_ms", "500"}});
  auto producer = MakeProducer(backend, topic);
  ASSERT_NE(producer, nullptr);
  std::set<std::string> first_batch;
  auto send_batch = [&](int from, int count, std::set<std::string>* ids) {
    for (int i = from; i < from + count; ++i) {
      Message m = MakeMessage(Numbered("k", i), "", "m");
      if (ids != nullptr) ids->insert(m.message_id);
      ASSERT_TRUE(SendSync(*producer, m).ok());
    }
  };
  send_batch(0, 8, &first_batch);
  TestSink& a = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "shared"), a), nullptr);
  ASSERT_TRUE(a.WaitForDeliveries(8));
  // The periodic commit covers everything a acknowledged before b shows up.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        int64_t total = 0;
        for (int64_t o : testing::CommittedOffsets(cluster().bootstrap(), "shared", topic, 4)) {
          total += o > 0 ? o : 0;
        }
        return total == 8;
      },
      10s));

  TestSink& b = NewSink();
  ASSERT_NE(Subscribe(backend, Spec(topic, "shared"), b), nullptr);
  // Partitions move from a to b: a is told to revoke them first.
  ASSERT_TRUE(testing::WaitUntil([&] { return !a.revoked().empty(); }, 30s));
  send_batch(8, 16, nullptr);
  std::map<std::string, int> seen;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        seen.clear();
        for (const auto* sink : {&a, &b}) {
          for (const core::Delivery& d : sink->deliveries()) ++seen[d.message.message_id];
        }
        return seen.size() >= 24;
      },
      30s))
      << seen.size();
  EXPECT_EQ(seen.size(), 24u) << "nothing lost";
  // What was acknowledged and committed before the rebalance is never handed out again.
  // (Later records may be: a partition whose assignment is lost cannot commit, and
  // at-least-once delivery hands its unconfirmed records to the next owner.)
  for (const std::string& id : first_batch) EXPECT_EQ(seen[id], 1) << id;
  EXPECT_FALSE(b.deliveries().empty()) << "the new member got partitions";
}

}  // namespace
}  // namespace msgsdk::kafka
