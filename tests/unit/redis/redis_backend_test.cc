// The redis backend against a real redis-server (started by the fixture on a free port).

#include "backends/redis/redis_backend.h"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "backends/redis/redis_backend_impl.h"
#include "backends/redis/redis_codec.h"
#include "fixtures/redis_fixture.h"
#include "unit/redis/redis_test_util.h"

namespace msgsdk::redis {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using namespace testing;  // NOLINT(build/namespaces): the test helpers
using Clock = std::chrono::steady_clock;

class RedisBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = test::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    shared_server = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete shared_server;
    shared_server = nullptr;
  }

  void SetUp() override {
    if (shared_server == nullptr) GTEST_SKIP() << "no redis-server";
    topic_ = TestTopic();
  }

  static std::shared_ptr<RedisBackend> Backend(
      const std::map<std::string, std::string>& extra = {}) {
    auto backend = RedisBackend::Create(RedisConfig(*shared_server, extra));
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? *backend : nullptr;
  }

  core::SubscriptionSpec Spec(std::string group = "g") const {
    core::SubscriptionSpec spec;
    spec.topic = topic_;
    spec.group = std::move(group);
    return spec;
  }

  std::string Stream(int32_t partition) const { return StreamKey("msgsdk", topic_, partition); }

  static std::string Cli(const std::vector<std::string>& args) {
    auto out = shared_server->Cli(args);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : std::string();
  }

  // Pending entries of `group` on `stream` (XPENDING summary).
  static int64_t Pending(const std::string& stream, const std::string& group) {
    const auto lines = Lines(Cli({"XPENDING", stream, group}));
    return lines.empty() ? -1 : std::stoll(lines[0]);
  }

  // Waits until `predicate` holds or `timeout` passes; returns the last value.
  template <typename Predicate>
  static bool Eventually(Predicate predicate, std::chrono::milliseconds timeout = 10000ms) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (predicate()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return predicate();
  }

  static test::RedisServer* shared_server;
  std::string topic_;
};

test::RedisServer* RedisBackendTest::shared_server = nullptr;

TEST_F(RedisBackendTest, DeclaresItsCapabilities) {
  auto backend = Backend();
  ASSERT_NE(backend, nullptr);
  const Capabilities& caps = backend->capabilities();
  EXPECT_EQ(caps.backend, "redis");
  EXPECT_TRUE(caps.broadcast);
  EXPECT_TRUE(caps.replay);
  EXPECT_FALSE(caps.timer_messages);
  EXPECT_FALSE(caps.transactions);
  EXPECT_FALSE(caps.server_side_tag_filter);
  EXPECT_TRUE(backend->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, RoundTripKeepsEveryField) {
  auto backend = Backend();
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  std::vector<Message> sent;
  std::map<std::string, core::StoredPosition> positions;
  for (int i = 0; i < 20; ++i) {
    Message m = MakeMessage(std::string("body\0", 5) + std::to_string(i),
                            i % 2 == 0 ? "key-" + std::to_string(i % 6) : "",
                            i % 3 == 0 ? "created" : "", {{"n", std::to_string(i)}});
    auto position = SendSync(**producer, m);
    ASSERT_TRUE(position.ok()) << position.status().ToString();
    EXPECT_GE(position->partition, 0);
    EXPECT_LT(position->partition, 4);
    if (!m.key.empty()) {
      EXPECT_EQ(position->partition, PartitionForKey(m.key, 4));
    }
    positions[m.message_id] = *position;
    sent.push_back(m);
  }

  RecordingSink sink;
  auto consumer = backend->Subscribe(Spec(), sink);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  const auto got = sink.WaitFor(sent.size());
  ASSERT_EQ(got.size(), sent.size());
  for (const Message& m : sent) {
    const auto it = std::find_if(got.begin(), got.end(), [&](const core::Delivery& d) {
      return d.message.message_id == m.message_id;
    });
    ASSERT_NE(it, got.end()) << m.message_id;
    const Message& r = it->message;
    EXPECT_EQ(r.topic, topic_);
    EXPECT_EQ(r.key, m.key);
    EXPECT_EQ(r.tag, m.tag);
    EXPECT_EQ(r.body, m.body);
    EXPECT_EQ(r.properties, m.properties);
    EXPECT_FALSE(r.deliver_at.has_value());
    EXPECT_EQ(ToUnixMillis(r.born_at), ToUnixMillis(m.born_at));
    EXPECT_GE(r.stored_at, FromUnixMillis(ToUnixMillis(m.born_at)));
    EXPECT_EQ(r.delivery_attempt, 0);
    EXPECT_EQ(r.partition, positions[m.message_id].partition);
    EXPECT_EQ(r.offset, positions[m.message_id].offset);
    EXPECT_EQ(EntryIdToOffset(*ParseEntryId(it->receipt)), r.offset);
  }
  // Within a partition, offsets rise in delivery order.
  std::map<int32_t, int64_t> last;
  for (const core::Delivery& d : got) {
    EXPECT_GT(d.message.offset, last[d.message.partition]);
    last[d.message.partition] = d.message.offset;
    (*consumer)->Ack(d);
  }
  EXPECT_TRUE(Eventually([&] {
    for (int p = 0; p < 4; ++p) {
      if (Pending(Stream(p), "g") != 0) return false;
    }
    return true;
  }));
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
  EXPECT_THAT(sink.revoked(), ElementsAre(ElementsAre(0, 1, 2, 3)));
  EXPECT_TRUE((*producer)->Close(Clock::now() + 5s).ok());
  EXPECT_TRUE(backend->Close(Clock::now() + 5s).ok());
  EXPECT_EQ(backend->stats().sends_ok, 20);
}

TEST_F(RedisBackendTest, EntriesAreReadableWithRedisCli) {
  auto backend = Backend({{"partitions", "1"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  const Message m = MakeMessage("hello world", "order-42", "created", {{"trace", "t-9"}});
  ASSERT_TRUE(SendSync(**producer, m).ok());
  const auto lines = Lines(Cli({"XRANGE", Stream(0), "-", "+"}));
  // entry id, then field/value lines in the order the SDK writes them.
  ASSERT_EQ(lines.size(), 13u) << Cli({"XRANGE", Stream(0), "-", "+"});
  EXPECT_TRUE(ParseEntryId(lines[0]).has_value());
  EXPECT_THAT(std::vector<std::string>(lines.begin() + 1, lines.end()),
              ElementsAre("id", m.message_id, "key", "order-42", "tag", "created", "born",
                          std::to_string(ToUnixMillis(m.born_at)), "prop.trace", "t-9", "body",
                          "hello world"));
}

TEST_F(RedisBackendTest, DeliversEntriesWrittenByRedisCli) {
  auto backend = Backend({{"partitions", "2"}});
  ASSERT_NE(backend, nullptr);
  RecordingSink sink;
  auto consumer = backend->Subscribe(Spec(), sink);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  const std::string first_id = Lines(Cli({"XADD", Stream(1), "*", "body", "hello"}))[0];
  Cli({"XADD", Stream(0), "*", "source", "cli", "body", "with a field"});
  Cli({"XADD", Stream(0), "*", "nobody", "here"});
  const auto got = sink.WaitFor(3);
  ASSERT_EQ(got.size(), 3u);
  const auto by_body = [&](const std::string& body) {
    return *std::find_if(got.begin(), got.end(),
                         [&](const core::Delivery& d) { return d.message.body == body; });
  };
  const core::Delivery hello = by_body("hello");
  EXPECT_EQ(hello.receipt, first_id);
  EXPECT_EQ(hello.message.partition, 1);
  EXPECT_EQ(hello.message.message_id, SyntheticMessageId(Stream(1), *ParseEntryId(first_id)));
  EXPECT_EQ(hello.message.born_at, hello.message.stored_at);
  EXPECT_TRUE(hello.message.properties.empty());
  EXPECT_THAT(by_body("with a field").message.properties, ElementsAre(Pair("source", "cli")));
  EXPECT_THAT(by_body("").message.properties, ElementsAre(Pair("nobody", "here")));
  for (const auto& d : got) (*consumer)->Ack(d);
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, AcknowledgesOnlyWhatTheCoreAcks) {
  auto backend = Backend({{"partitions", "1"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  RecordingSink sink;
  auto consumer = backend->Subscribe(Spec(), sink);
  ASSERT_TRUE(consumer.ok());
  const auto got = sink.WaitFor(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(Pending(Stream(0), "g"), 3);
  (*consumer)->Ack(got[1]);
  EXPECT_TRUE(Eventually([&] { return Pending(Stream(0), "g") == 2; }));
  const auto remaining = Lines(Cli({"XPENDING", Stream(0), "g", "-", "+", "10"}));
  EXPECT_THAT(remaining, Contains(got[0].receipt));
  EXPECT_THAT(remaining, Contains(got[2].receipt));
  EXPECT_THAT(remaining, ::testing::Not(Contains(got[1].receipt)));
  (*consumer)->Ack(got[0]);
  (*consumer)->Ack(got[2]);
  EXPECT_TRUE(Eventually([&] { return Pending(Stream(0), "g") == 0; }));
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, SharedStreamsClaimWhatACrashedMemberHeldAfterClaimIdle) {
  auto backend =
      Backend({{"partitions", "1"}, {"claim_idle_ms", "150"}, {"stream_assignment", "shared"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  Cli({"XGROUP", "CREATE", Stream(0), "g", "0", "MKSTREAM"});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  // A member that read everything and died without acknowledging.
  Cli({"XREADGROUP", "GROUP", "g", "crashed", "COUNT", "100", "STREAMS", Stream(0), ">"});
  ASSERT_EQ(Pending(Stream(0), "g"), 5);

  RecordingSink sink;
  const auto start = Clock::now();
  auto consumer = backend->Subscribe(Spec(), sink);
  ASSERT_TRUE(consumer.ok());
  const auto got = sink.WaitFor(5);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_GE(Clock::now() - start, 100ms);  // not before the entries were idle long enough
  for (const auto& d : got) {
    EXPECT_EQ(d.message.delivery_attempt, 1) << "delivered once before, to the crashed member";
    (*consumer)->Ack(d);
  }
  EXPECT_TRUE(Eventually([&] { return Pending(Stream(0), "g") == 0; }));
  EXPECT_EQ(backend->stats().claimed, 5);
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, SharedStreamsKeepWhatAMemberHoldsFromOthers) {
  auto backend =
      Backend({{"partitions", "1"}, {"claim_idle_ms", "300"}, {"stream_assignment", "shared"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  RecordingSink holder_sink;
  auto holder = backend->Subscribe(Spec(), holder_sink);
  ASSERT_TRUE(holder.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  ASSERT_EQ(holder_sink.WaitFor(3).size(), 3u);

  // A second member claims idle entries every 150 ms; the holder renews its entries.
  RecordingSink other_sink;
  auto other = backend->Subscribe(Spec(), other_sink);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(Eventually([&] { return !other_sink.deliveries().empty(); }, 800ms));
  EXPECT_EQ(Pending(Stream(0), "g"), 3);
  for (const auto& d : holder_sink.deliveries()) (*holder)->Ack(d);
  EXPECT_TRUE(Eventually([&] { return Pending(Stream(0), "g") == 0; }));
  EXPECT_TRUE((*other)->Close(Clock::now() + 5s).ok());
  EXPECT_TRUE((*holder)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, SharedStreamsCloseHandsUnacknowledgedEntriesBack) {
  // claim_idle_ms is long: only the hand-back makes the entries claimable at once.
  auto backend =
      Backend({{"partitions", "2"}, {"claim_idle_ms", "600000"}, {"stream_assignment", "shared"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  core::SubscriptionSpec first_spec = Spec();
  first_spec.member_id = "first";
  RecordingSink first_sink;
  auto first = backend->Subscribe(first_spec, first_sink);
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  const auto held = first_sink.WaitFor(4);
  ASSERT_EQ(held.size(), 4u);
  (*first)->Ack(held[0]);
  EXPECT_TRUE((*first)->Close(Clock::now() + 5s).ok());

  core::SubscriptionSpec second_spec = Spec();
  second_spec.member_id = "second";
  RecordingSink second_sink;
  auto second = backend->Subscribe(second_spec, second_sink);
  ASSERT_TRUE(second.ok());
  const auto got = second_sink.WaitFor(3, 5000ms);
  ASSERT_EQ(got.size(), 3u);
  std::set<std::string> expected = {held[1].receipt, held[2].receipt, held[3].receipt};
  for (const auto& d : got) {
    EXPECT_TRUE(expected.contains(d.receipt));
    EXPECT_EQ(d.message.delivery_attempt, 1);
    (*second)->Ack(d);
  }
  EXPECT_TRUE((*second)->Close(Clock::now() + 5s).ok());
  // A consumer with nothing pending leaves the group when it closes; "first" still had
  // entries pending when it closed.
  const auto consumers = Lines(Cli({"XINFO", "CONSUMERS", Stream(0), "g"}));
  EXPECT_THAT(consumers, Contains("first"));
  EXPECT_THAT(consumers, ::testing::Not(Contains("second")));
}

TEST_F(RedisBackendTest, RestartedInstanceRereadsItsOwnPendingEntries) {
  auto backend = Backend({{"partitions", "1"}, {"claim_idle_ms", "600000"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  Cli({"XGROUP", "CREATE", Stream(0), "g", "0", "MKSTREAM"});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  // The previous run of instance "worker-1" read the entries and was killed.
  Cli({"XREADGROUP", "GROUP", "g", "worker-1", "COUNT", "2", "STREAMS", Stream(0), ">"});

  core::SubscriptionSpec spec = Spec();
  spec.member_id = "worker-1";
  RecordingSink sink;
  auto consumer = backend->Subscribe(spec, sink);
  ASSERT_TRUE(consumer.ok());
  const auto got = sink.WaitFor(3);
  ASSERT_EQ(got.size(), 3u);
  // Its own two pending entries first (second delivery), then the new one.
  EXPECT_EQ(got[0].message.delivery_attempt, 1);
  EXPECT_EQ(got[1].message.delivery_attempt, 1);
  EXPECT_EQ(got[2].message.delivery_attempt, 0);
  for (const auto& d : got) (*consumer)->Ack(d);
  EXPECT_TRUE(Eventually([&] { return Pending(Stream(0), "g") == 0; }));
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, SubscriptionsInOneProcessGetDistinctConsumers) {
  auto backend = Backend({{"partitions", "1"}, {"stream_assignment", "shared"}});
  ASSERT_NE(backend, nullptr);
  core::SubscriptionSpec spec = Spec();
  spec.member_id = "same";
  RecordingSink a_sink;
  RecordingSink b_sink;
  auto a = backend->Subscribe(spec, a_sink);
  auto b = backend->Subscribe(spec, b_sink);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  EXPECT_TRUE(
      Eventually([&] { return a_sink.deliveries().size() + b_sink.deliveries().size() >= 50; }));
  // Clustering: each entry went to exactly one of them.
  std::set<std::string> seen;
  for (const auto* sink : {&a_sink, &b_sink}) {
    for (const auto& d : sink->deliveries()) EXPECT_TRUE(seen.insert(d.receipt).second);
  }
  EXPECT_EQ(seen.size(), 50u);
  const auto* a_consumer = dynamic_cast<RedisConsumer*>(a->get());
  const auto* b_consumer = dynamic_cast<RedisConsumer*>(b->get());
  ASSERT_NE(a_consumer, nullptr);
  ASSERT_NE(b_consumer, nullptr);
  EXPECT_EQ(a_consumer->consumer_name(), "same");
  EXPECT_EQ(b_consumer->consumer_name(), "same-2");
  for (const auto& d : a_sink.deliveries()) (*a)->Ack(d);
  for (const auto& d : b_sink.deliveries()) (*b)->Ack(d);
  EXPECT_TRUE((*a)->Close(Clock::now() + 5s).ok());
  EXPECT_TRUE((*b)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, BroadcastGivesEveryMemberEverything) {
  auto backend = Backend({{"partitions", "2"}});
  ASSERT_NE(backend, nullptr);
  core::SubscriptionSpec a_spec = Spec();
  a_spec.mode = SubscriptionMode::kBroadcast;
  a_spec.member_id = "member-a";
  core::SubscriptionSpec b_spec = a_spec;
  b_spec.member_id = "member-b";
  RecordingSink a_sink;
  RecordingSink b_sink;
  auto a = backend->Subscribe(a_spec, a_sink);
  auto b = backend->Subscribe(b_spec, b_sink);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  EXPECT_EQ(a_sink.WaitFor(10).size(), 10u);
  EXPECT_EQ(b_sink.WaitFor(10).size(), 10u);
  const auto groups = Lines(Cli({"XINFO", "GROUPS", Stream(0)}));
  EXPECT_THAT(groups, Contains("g@member-a"));
  EXPECT_THAT(groups, Contains("g@member-b"));
  EXPECT_TRUE((*a)->Close(Clock::now() + 5s).ok());
  EXPECT_TRUE((*b)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, StartFromLatestSkipsOlderEntries) {
  auto backend = Backend({{"partitions", "1"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE(SendSync(**producer, MakeMessage("old")).ok());
  core::SubscriptionSpec spec = Spec();
  spec.start_from = StartPosition::kLatest;
  RecordingSink sink;
  auto consumer = backend->Subscribe(spec, sink);
  ASSERT_TRUE(consumer.ok());
  ASSERT_TRUE(SendSync(**producer, MakeMessage("new")).ok());
  const auto got = sink.WaitFor(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.body, "new");
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, ResetOffsetsReplaysFromEarliestAndFromATimestamp) {
  auto backend = Backend({{"partitions", "2"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("before")).ok());
  {
    RecordingSink sink;
    auto consumer = backend->Subscribe(Spec(), sink);
    ASSERT_TRUE(consumer.ok());
    for (const auto& d : sink.WaitFor(4)) (*consumer)->Ack(d);
    EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
  }
  // Entry ids have millisecond resolution: make sure "after" is stored in a later ms.
  const auto before_done = std::chrono::system_clock::now();
  while (std::chrono::system_clock::now() < before_done + 3ms) std::this_thread::yield();
  const Timestamp boundary = std::chrono::system_clock::now();
  while (std::chrono::system_clock::now() < boundary + 3ms) std::this_thread::yield();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("after")).ok());

  ASSERT_TRUE(backend->ResetOffsets(topic_, "g", {ResetTarget::Kind::kEarliest, {}}).ok());
  {
    RecordingSink sink;
    auto consumer = backend->Subscribe(Spec(), sink);
    ASSERT_TRUE(consumer.ok());
    const auto got = sink.WaitFor(7);
    EXPECT_EQ(got.size(), 7u);
    for (const auto& d : got) (*consumer)->Ack(d);
    EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
  }
  ASSERT_TRUE(backend->ResetOffsets(topic_, "g", {ResetTarget::Kind::kTimestamp, boundary}).ok());
  {
    RecordingSink sink;
    auto consumer = backend->Subscribe(Spec(), sink);
    ASSERT_TRUE(consumer.ok());
    const auto got = sink.WaitFor(3);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& d : got) {
      EXPECT_EQ(d.message.body, "after");
      (*consumer)->Ack(d);
    }
    EXPECT_FALSE(Eventually([&] { return sink.deliveries().size() > 3; }, 300ms));
    EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
  }
  ASSERT_TRUE(backend->ResetOffsets(topic_, "g", {ResetTarget::Kind::kLatest, {}}).ok());
  EXPECT_THAT(Lines(Cli({"XINFO", "GROUPS", Stream(0)})), Contains("g"));
  // A group nobody subscribed yet is created at the reset position.
  ASSERT_TRUE(backend->ResetOffsets(topic_, "fresh", {ResetTarget::Kind::kLatest, {}}).ok());
  EXPECT_THAT(Lines(Cli({"XINFO", "GROUPS", Stream(1)})), Contains("fresh"));
}

TEST_F(RedisBackendTest, TimerMessagesAreRefusedNamingTheBackend) {
  auto backend = Backend();
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  Message m = MakeMessage("later");
  m.deliver_at = std::chrono::system_clock::now() + 1h;
  auto result = SendSync(**producer, m);
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_THAT(result.status().message(), HasSubstr("\"redis\""));
  EXPECT_THAT(result.status().message(), HasSubstr("timer_messages"));
  EXPECT_EQ(Cli({"EXISTS", Stream(0), Stream(1), Stream(2), Stream(3)}), "0\n");
}

TEST_F(RedisBackendTest, PipelinesManySends) {
  auto backend = Backend({{"pipeline_depth", "64"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  constexpr int kCount = 5000;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  const std::vector<std::string> keys = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
  for (int i = 0; i < kCount; ++i) {
    (*producer)->Send(MakeMessage(std::string(100, 'x'), keys[static_cast<size_t>(i) % 8]),
                      [&](const Result<core::StoredPosition>& r) {
                        if (r.ok()) ok.fetch_add(1);
                        done.fetch_add(1);
                      });
  }
  EXPECT_TRUE((*producer)->Close(Clock::now() + 20s).ok());
  EXPECT_EQ(done.load(), kCount);
  EXPECT_EQ(ok.load(), kCount);
  int64_t total = 0;
  for (int p = 0; p < 4; ++p) total += std::stoll(Cli({"XLEN", Stream(p)}));
  EXPECT_EQ(total, kCount);
}

TEST_F(RedisBackendTest, MaxlenTrimsStreams) {
  auto backend = Backend({{"partitions", "1"}, {"maxlen", "100"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  std::atomic<int> done{0};
  for (int i = 0; i < 2000; ++i) {
    (*producer)->Send(MakeMessage("m"),
                      [&](const Result<core::StoredPosition>&) { done.fetch_add(1); });
  }
  EXPECT_TRUE((*producer)->Close(Clock::now() + 20s).ok());
  const int64_t length = std::stoll(Cli({"XLEN", Stream(0)}));
  EXPECT_GE(length, 100);
  EXPECT_LT(length, 400);  // approximate trimming removes whole nodes of 100 entries
}

TEST_F(RedisBackendTest, WarnsWhenABacklogNearsMaxlen) {
  auto backend = Backend({{"partitions", "1"},
                          {"maxlen", "1000"},
                          {"backlog_warn_percent", "50"},
                          {"backlog_check_ms", "86400000"}});
  ASSERT_NE(backend, nullptr);
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  Cli({"XGROUP", "CREATE", Stream(0), "slow", "0", "MKSTREAM"});
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  ASSERT_TRUE(backend->CheckBacklog().ok());
  EXPECT_EQ(backend->stats().backlog_warnings, 0);
  EXPECT_EQ(backend->stats().max_backlog_percent, 30);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  // Half of it read and not acknowledged still counts: it can be trimmed away as well.
  Cli({"XREADGROUP", "GROUP", "slow", "c", "COUNT", "300", "STREAMS", Stream(0), ">"});
  ASSERT_TRUE(backend->CheckBacklog().ok());
  EXPECT_EQ(backend->stats().backlog_warnings, 1);
  EXPECT_EQ(backend->stats().max_backlog_percent, 60);
}

TEST_F(RedisBackendTest, KeyOfAnotherTypeGivesAClearStatus) {
  auto backend = Backend({{"partitions", "1"}});
  ASSERT_NE(backend, nullptr);
  Cli({"SET", Stream(0), "not a stream"});
  RecordingSink sink;
  auto consumer = backend->Subscribe(Spec(), sink);
  EXPECT_EQ(consumer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(consumer.status().message(), HasSubstr("key '" + Stream(0) + "'"));
  EXPECT_THAT(consumer.status().message(), HasSubstr("not a stream"));
  EXPECT_THAT(consumer.status().message(), HasSubstr("topic '" + topic_ + "'"));
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  auto sent = SendSync(**producer, MakeMessage("m"));
  EXPECT_EQ(sent.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(sent.status().message(), HasSubstr("key '" + Stream(0) + "'"));
  EXPECT_EQ(Cli({"GET", Stream(0)}), "not a stream\n");
}

TEST_F(RedisBackendTest, ServerDownIsUnavailableWithinTheTimeout) {
  auto dead = test::RedisServer::Start();
  ASSERT_TRUE(dead.ok());
  const std::string endpoint = (*dead)->endpoint();
  ASSERT_TRUE((*dead)->Stop().ok());
  auto backend = RedisBackend::Create(RedisConfigFor(endpoint, {{"command_timeout_ms", "300"}}));
  ASSERT_TRUE(backend.ok()) << "a server that is down is reported by the operations";
  auto producer = (*backend)->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  const auto start = Clock::now();
  auto sent = SendSync(**producer, MakeMessage("m"));
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_EQ(sent.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(sent.status().message(), HasSubstr(endpoint));
  EXPECT_THAT(sent.status().message(), HasSubstr("connection refused"));
  RecordingSink sink;
  auto consumer = (*backend)->Subscribe(Spec(), sink);
  EXPECT_EQ(consumer.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(consumer.status().message(), HasSubstr(endpoint));
}

TEST_F(RedisBackendTest, FallsBackToTheNextEndpoint) {
  auto dead = test::RedisServer::Start();
  ASSERT_TRUE(dead.ok());
  const std::string down = (*dead)->endpoint();
  ASSERT_TRUE((*dead)->Stop().ok());
  auto backend = RedisBackend::Create(
      RedisConfigFor(down, {{"endpoints", shared_server->endpoint()}, {"partitions", "1"}}));
  ASSERT_TRUE(backend.ok());
  auto producer = (*backend)->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  EXPECT_TRUE(SendSync(**producer, MakeMessage("m")).ok());
  EXPECT_EQ(Cli({"XLEN", Stream(0)}), "1\n");
}

// ---- Exclusive streams ---------------------------------------------------------------------

// Every partition is read by exactly one member, and each member reads its share.
bool Balanced(const std::vector<RedisConsumer*>& members, int32_t partitions) {
  std::set<int32_t> seen;
  const size_t fewest = static_cast<size_t>(partitions) / members.size();
  for (RedisConsumer* member : members) {
    const auto owned = member->owned_partitions();
    if (owned.size() < fewest || owned.size() > fewest + 1) return false;
    for (const int32_t p : owned) {
      if (!seen.insert(p).second) return false;
    }
  }
  return seen.size() == static_cast<size_t>(partitions);
}

TEST_F(RedisBackendTest, ExclusiveStreamsSplitAmongMembersAndKeepKeysTogether) {
  // A lease long enough that a loaded machine does not make members drop out mid-test.
  auto backend = Backend({{"partitions", "4"}, {"lease_ms", "2000"}});
  ASSERT_NE(backend, nullptr);
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  std::vector<std::unique_ptr<core::BackendConsumer>> consumers;
  std::vector<RedisConsumer*> members;
  for (int i = 0; i < 3; ++i) {
    sinks.push_back(std::make_unique<RecordingSink>());
    auto consumer = backend->Subscribe(Spec(), *sinks.back());
    ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
    members.push_back(dynamic_cast<RedisConsumer*>(consumer->get()));
    consumers.push_back(std::move(consumer).value());
  }
  ASSERT_TRUE(Eventually([&] { return Balanced(members, 4); }));
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  constexpr int kKeys = 12;
  constexpr int kPerKey = 10;
  for (int i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < kKeys; ++k) {
      ASSERT_TRUE(
          SendSync(**producer, MakeMessage(std::to_string(i), "key-" + std::to_string(k))).ok());
    }
  }
  ASSERT_TRUE(Eventually([&] {
    size_t total = 0;
    for (const auto& sink : sinks) total += sink->deliveries().size();
    return total >= static_cast<size_t>(kKeys * kPerKey);
  }));
  // Every key reached one member only, in send order.
  std::map<std::string, size_t> owner;
  for (size_t m = 0; m < sinks.size(); ++m) {
    std::map<std::string, int> last;
    for (const auto& d : sinks[m]->deliveries()) {
      const auto [it, fresh] = owner.try_emplace(d.message.key, m);
      EXPECT_EQ(it->second, m) << "key " << d.message.key << " reached two members";
      const int n = std::stoi(d.message.body);
      EXPECT_GT(n, last.contains(d.message.key) ? last[d.message.key] : -1);
      last[d.message.key] = n;
      consumers[m]->Ack(d);
    }
  }
  EXPECT_EQ(owner.size(), static_cast<size_t>(kKeys));
  for (auto& consumer : consumers) EXPECT_TRUE(consumer->Close(Clock::now() + 5s).ok());
  // Members leave the membership set and free their leases when they close.
  EXPECT_EQ(Cli({"EXISTS", "msgsdk:" + topic_ + ":0:lease:g", "msgsdk:" + topic_ + ":1:lease:g"}),
            "0\n");
  EXPECT_EQ(Cli({"ZCARD", "msgsdk:" + topic_ + ":members:g"}), "0\n");
}

TEST_F(RedisBackendTest, ExclusiveStreamsHandOverPendingEntriesFirst) {
  auto backend = Backend({{"partitions", "2"}, {"lease_ms", "1500"}, {"claim_idle_ms", "600000"}});
  ASSERT_NE(backend, nullptr);
  RecordingSink a_sink;
  auto a = backend->Subscribe(Spec(), a_sink);
  ASSERT_TRUE(a.ok());
  auto* a_member = dynamic_cast<RedisConsumer*>(a->get());
  ASSERT_TRUE(Eventually([&] { return a_member->owned_partitions().size() == 2; }));
  auto producer = backend->CreateProducer(topic_);
  ASSERT_TRUE(producer.ok());
  // Keys "k0" and "k1" land on different streams.
  std::string keys[2];
  for (int i = 0, found = 0; found < 2; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (PartitionForKey(key, 2) == found) keys[found++] = key;
  }
  for (int i = 0; i < 4; ++i) {
    for (const auto& key : keys)
      ASSERT_TRUE(SendSync(**producer, MakeMessage(std::to_string(i), key)).ok());
  }
  const auto held = a_sink.WaitFor(8);
  ASSERT_EQ(held.size(), 8u);
  // A finishes the first two of each key and still works on the rest.
  for (const auto& d : held) {
    if (std::stoi(d.message.body) < 2) (*a)->Ack(d);
  }

  RecordingSink b_sink;
  auto b = backend->Subscribe(Spec(), b_sink);
  ASSERT_TRUE(b.ok());
  auto* b_member = dynamic_cast<RedisConsumer*>(b->get());
  ASSERT_TRUE(Eventually([&] { return Balanced({a_member, b_member}, 2); }));
  const int32_t moved = b_member->owned_partitions().at(0);
  // A revoked the stream it gave up before B read it...
  EXPECT_THAT(a_sink.revoked(), Contains(ElementsAre(moved)));
  // ...and B first gets what A had not finished on it, in order, then the new entries.
  for (int i = 4; i < 6; ++i) {
    for (const auto& key : keys)
      ASSERT_TRUE(SendSync(**producer, MakeMessage(std::to_string(i), key)).ok());
  }
  const auto got = b_sink.WaitFor(4);
  ASSERT_EQ(got.size(), 4u);
  std::vector<std::string> bodies;
  for (const auto& d : got) {
    EXPECT_EQ(d.message.partition, moved);
    bodies.push_back(d.message.body);
  }
  EXPECT_THAT(bodies, ElementsAre("2", "3", "4", "5"));
  EXPECT_EQ(got[0].message.delivery_attempt, 1);
  EXPECT_EQ(got[2].message.delivery_attempt, 0);
  for (const auto& d : b_sink.deliveries()) (*b)->Ack(d);
  for (const auto& d : a_sink.deliveries()) (*a)->Ack(d);
  EXPECT_TRUE((*a)->Close(Clock::now() + 5s).ok());
  EXPECT_TRUE((*b)->Close(Clock::now() + 5s).ok());
}

TEST_F(RedisBackendTest, ExclusiveStreamsRevokeALostLease) {
  auto backend = Backend({{"partitions", "2"}, {"lease_ms", "1000"}});
  ASSERT_NE(backend, nullptr);
  RecordingSink sink;
  auto consumer = backend->Subscribe(Spec(), sink);
  ASSERT_TRUE(consumer.ok());
  auto* member = dynamic_cast<RedisConsumer*>(consumer->get());
  ASSERT_TRUE(Eventually([&] { return member->owned_partitions().size() == 2; }));
  // Another process took stream 1 over (as if this member had stalled past its lease).
  Cli({"SET", "msgsdk:" + topic_ + ":1:lease:g", "intruder", "PX", "1500"});
  ASSERT_TRUE(Eventually([&] {
    for (const auto& revoked : sink.revoked()) {
      if (revoked == std::vector<int32_t>{1}) return true;
    }
    return false;
  }));
  // Once the intruder's lease expires, the stream comes back.
  EXPECT_TRUE(Eventually([&] { return member->owned_partitions().size() == 2; }));
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
}

TEST(RedisAuthTest, WrongOrMissingPasswordIsUnauthenticated) {
  test::RedisServerOptions options;
  options.password = "s3cret";
  auto server = test::RedisServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto wrong = RedisBackend::Create(RedisConfig(**server, {{"password", "nope"}}));
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(wrong.status().message(), HasSubstr("rejected the credentials of user 'default'"));
  EXPECT_THAT(wrong.status().message(), HasSubstr((*server)->endpoint()));
  auto missing = RedisBackend::Create(RedisConfigFor((*server)->endpoint()));
  EXPECT_EQ(missing.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.status().message(), HasSubstr("requires authentication"));
  auto right = RedisBackend::Create(RedisConfig(**server));
  EXPECT_TRUE(right.ok()) << right.status().ToString();

  // An ACL user without the stream commands.
  ASSERT_TRUE((*server)
                  ->Cli({"ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read", "+ping", "+info"})
                  .ok());
  auto limited = RedisBackend::Create(
      RedisConfig(**server, {{"user", "reader"}, {"password", "pw"}, {"partitions", "1"}}));
  ASSERT_TRUE(limited.ok()) << limited.status().ToString();
  auto producer = (*limited)->CreateProducer("acl-topic");
  ASSERT_TRUE(producer.ok());
  auto sent = SendSync(**producer, MakeMessage("m"));
  EXPECT_EQ(sent.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(sent.status().message(), HasSubstr("ACL user 'reader'"));
}

// SIGKILL of redis-server under load (appendfsync always): every send the backend
// acknowledged is still there after the restart and reaches the consumer.
TEST(RedisRestartTest, NoAcknowledgedSendIsLostAcrossSigkill) {
  auto started = test::RedisServer::Start();
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  test::RedisServer& server = **started;
  auto backend = RedisBackend::Create(RedisConfig(
      server, {{"partitions", "2"}, {"command_timeout_ms", "1000"}, {"claim_idle_ms", "500"}}));
  ASSERT_TRUE(backend.ok());
  const std::string topic = TestTopic();
  auto producer = (*backend)->CreateProducer(topic);
  ASSERT_TRUE(producer.ok());
  RecordingSink sink;
  core::SubscriptionSpec spec;
  spec.topic = topic;
  spec.group = "g";
  auto consumer = (*backend)->Subscribe(spec, sink);
  ASSERT_TRUE(consumer.ok());

  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<int> failed{0};
  std::atomic<int> in_flight{0};
  std::atomic<bool> stop{false};
  std::thread load([&] {
    while (!stop.load()) {
      if (in_flight.load() > 500) {
        std::this_thread::yield();
        continue;
      }
      Message m = MakeMessage("payload");
      const std::string id = m.message_id;
      in_flight.fetch_add(1);
      (*producer)->Send(std::move(m), [&, id](const Result<core::StoredPosition>& r) {
        if (r.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(id);
        } else {
          failed.fetch_add(1);
        }
        in_flight.fetch_sub(1);
      });
    }
  });
  const auto acked = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  };
  const auto wait_acked = [&](size_t n) {
    const auto deadline = Clock::now() + 20s;
    while (acked() < n && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    return acked() >= n;
  };
  ASSERT_TRUE(wait_acked(2000));
  ASSERT_TRUE(server.Kill().ok());
  const size_t at_kill = acked();
  // Sends fail while the server is gone.
  const auto deadline = Clock::now() + 10s;
  while (failed.load() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_GT(failed.load(), 0);
  ASSERT_TRUE(server.Restart().ok()) << server.LogTail();
  ASSERT_TRUE(wait_acked(at_kill + 2000));
  stop.store(true);
  load.join();
  EXPECT_TRUE((*producer)->Close(Clock::now() + 10s).ok());

  std::set<std::string> expected;
  {
    std::lock_guard<std::mutex> lock(mu);
    expected = acknowledged;
  }
  // Every acknowledged send is stored...
  int64_t stored = 0;
  for (int p = 0; p < 2; ++p) {
    stored += std::stoll(*server.Cli({"XLEN", StreamKey("msgsdk", topic, p)}));
  }
  EXPECT_GE(stored, static_cast<int64_t>(expected.size()));
  // ...and delivered to the group that was reading through the crash.
  const auto all_seen = [&] {
    std::set<std::string> seen;
    for (const auto& d : sink.deliveries()) seen.insert(d.message.message_id);
    for (const auto& id : expected) {
      if (!seen.contains(id)) return false;
    }
    return true;
  };
  const auto seen_deadline = Clock::now() + 20s;
  while (!all_seen() && Clock::now() < seen_deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(all_seen());
  for (const auto& d : sink.deliveries()) (*consumer)->Ack(d);
  EXPECT_TRUE((*consumer)->Close(Clock::now() + 5s).ok());
  EXPECT_GT((*backend)->stats().connection_failures, 0);
}

}  // namespace
}  // namespace msgsdk::redis
