// The native backend's daemon client through the public API and against peers that misbehave:
// a broker that restarts under a running subscription, one that never answers, one that
// answers garbage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "backends/native/client/broker_client.h"
#include "backends/native/native_backend.h"
#include "backends/native/protocol/broker.pb.h"
#include "core/backend.h"
#include "core/cluster_config.h"
#include "fixtures/broker_fixture.h"
#include "msgsdk/msgsdk.h"
#include "testing/status_macros.h"
#include "testing/wait.h"

namespace msgsdk::native {
namespace {

using namespace std::chrono_literals;
using client::BrokerClient;
using client::CallAndWait;
using client::PendingCall;
using protocol::FrameType;

// A TCP listener on a free loopback port that accepts one connection and hands it to `serve`.
class FakePeer {
 public:
  explicit FakePeer(std::function<void(int fd)> serve) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, serve = std::move(serve)] {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      serve(fd);
      ::close(fd);
    });
  }
  ~FakePeer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// Reads one whole request frame from `fd`; its request id, or 0 at end of stream.
uint64_t ReadRequest(int fd) {
  std::string header(protocol::kFrameHeaderSize, '\0');
  size_t got = 0;
  while (got < header.size()) {
    const ssize_t n = ::read(fd, header.data() + got, header.size() - got);
    if (n <= 0) return 0;
    got += static_cast<size_t>(n);
  }
  auto parsed = protocol::DecodeFrameHeader(header.data(), protocol::FrameDirection::kRequest,
                                            protocol::kMaxFrameBodyLimit);
  if (!parsed.ok()) return 0;
  std::string body(parsed->body_size, '\0');
  got = 0;
  while (got < body.size()) {
    const ssize_t n = ::read(fd, body.data() + got, body.size() - got);
    if (n <= 0) return 0;
    got += static_cast<size_t>(n);
  }
  return parsed->request_id;
}

wire::GetOrCreateTopicRequest TopicRequest() {
  wire::GetOrCreateTopicRequest request;
  request.set_topic("t");
  return request;
}

TEST(DaemonClientTest, ABrokerThatNeverAnswersGivesDeadlineExceeded) {
  std::atomic<bool> done{false};
  FakePeer peer([&](int fd) {
    ReadRequest(fd);
    testing::WaitUntil([&] { return done.load(); }, 30s);
  });
  auto client = BrokerClient::Create({.endpoints = {peer.endpoint()}, .cluster = "silent"});
  ASSERT_TRUE(client.ok());
  auto response = CallAndWait<wire::GetOrCreateTopicResponse>(
      **client, FrameType::kGetOrCreateTopic, TopicRequest(), 1s);
  done = true;
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(response.status().message().find("native cluster 'silent'"), std::string::npos)
      << response.status().ToString();
  EXPECT_NE(response.status().message().find("within 1000 ms"), std::string::npos);
}

TEST(DaemonClientTest, AShortTimeoutEndsOnTimeBehindALongerOne) {
  std::atomic<bool> done{false};
  FakePeer peer([&](int fd) {
    ReadRequest(fd);
    ReadRequest(fd);
    testing::WaitUntil([&] { return done.load(); }, 60s);
  });
  auto client = BrokerClient::Create({.endpoints = {peer.endpoint()}, .cluster = "silent"});
  ASSERT_TRUE(client.ok());
  auto patient = std::make_shared<PendingCall>();
  (*client)->Call(FrameType::kGetOrCreateTopic, TopicRequest(), 60s,
                  PendingCall::Completer(patient));
  const auto start = std::chrono::steady_clock::now();
  auto response = CallAndWait<wire::GetOrCreateTopicResponse>(
      **client, FrameType::kGetOrCreateTopic, TopicRequest(), 500ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  done = true;
  EXPECT_EQ(response.status().code(), StatusCode::kDeadlineExceeded)
      << response.status().ToString();
  EXPECT_GE(waited, 500ms);
  EXPECT_LT(waited, 30s) << "the shorter timeout waited for the longer one";
  (*client)->Close();
  auto closed = patient->Wait();
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->status().code(), StatusCode::kFailedPrecondition);
}

TEST(DaemonClientTest, AGarbledAnswerCostsTheConnectionAndFailsWhatWasInFlight) {
  FakePeer peer([&](int fd) {
    const uint64_t id = ReadRequest(fd);
    // A request frame where a response belongs: the client must drop the connection.
    std::string bad(protocol::kFrameHeaderSize, '\0');
    protocol::EncodeFrameHeader({.body_size = 0,
                                 .type = static_cast<uint8_t>(FrameType::kGetOrCreateTopic),
                                 .request_id = id},
                                bad.data());
    ASSERT_EQ(::write(fd, bad.data(), bad.size()), static_cast<ssize_t>(bad.size()));
    char sink[256];
    while (::read(fd, sink, sizeof(sink)) > 0) {
    }
  });
  auto client = BrokerClient::Create({.endpoints = {peer.endpoint()}, .cluster = "garbled"});
  ASSERT_TRUE(client.ok());
  auto response = CallAndWait<wire::GetOrCreateTopicResponse>(
      **client, FrameType::kGetOrCreateTopic, TopicRequest(), 10s);
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable) << response.status().ToString();
  EXPECT_NE(response.status().message().find("protocol error"), std::string::npos)
      << response.status().ToString();
}

// The broker restarts (its group state is gone, its data and committed offsets are not)
// while a subscription runs: the subscription rejoins and nothing acknowledged is lost.
TEST(DaemonClientTest, SubscriptionSurvivesABrokerRestart) {
  auto broker = test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string yaml =
      "environments:\n"
      "  test:\n"
      "    clusters:\n"
      "      main: " +
      (*broker)->ClusterYaml(
          "poll_wait_ms: 100, heartbeat_interval_ms: 100, reconnect_backoff_ms: 10, "
          "reconnect_backoff_max_ms: 100") +
      "\n"
      "    default_cluster: main\n";
  auto client = Client::Create({.config_yaml = yaml, .environment = "test"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto producer = client->CreateProducer("restarts");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  testing::Collector collector;
  auto sub = client->Subscribe("restarts", "g", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();

  std::set<std::string> sent;
  for (int i = 0; i < 50; ++i) {
    auto receipt =
        producer->Send({.key = std::to_string(i % 5), .body = "before-" + std::to_string(i)});
    ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
    sent.insert(receipt->message_id);
  }
  ASSERT_TRUE(collector.WaitForDistinct(50));

  MSGSDK_ASSERT_OK((*broker)->Stop());
  MSGSDK_ASSERT_OK((*broker)->Restart());
  // Sends fail while the connection is being made again; the first that gets through
  // shows the client is back.
  for (int i = 0; i < 50; ++i) {
    Result<SendReceipt> receipt = UnavailableError("not sent");
    ASSERT_TRUE(testing::WaitUntil([&] {
      receipt =
          producer->Send({.key = std::to_string(i % 5), .body = "after-" + std::to_string(i)});
      return receipt.ok();
    })) << receipt.status().ToString();
    sent.insert(receipt->message_id);
  }
  ASSERT_TRUE(collector.WaitForDistinct(100)) << "received " << collector.distinct();
  auto counts = collector.count_by_id();
  for (const auto& id : sent) EXPECT_TRUE(counts.count(id)) << "lost " << id;
  MSGSDK_EXPECT_OK(sub->Close());
  MSGSDK_EXPECT_OK(client->Close());
  MSGSDK_EXPECT_OK((*broker)->Stop());
}

// Retention on the daemon deleted messages a group had not read: its subscription continues
// from the queue's start, with no error, and Positions counts what is left from there.
TEST(DaemonClientTest, AGroupBehindTheQueueStartContinuesFromIt) {
  auto broker = test::BrokerProcess::Start(
      {.binary = MSGSDK_BROKER_BINARY,
       .extra_args = {"--queues", "1", "--segment-bytes", "4096", "--retention-bytes", "8192",
                      "--retention-check-interval-ms", "10"}});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  auto raw = BrokerClient::Create({.endpoints = {(*broker)->endpoint()}, .cluster = "test"});
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  wire::GetOrCreateTopicRequest topic;
  topic.set_topic("behind");
  ASSERT_TRUE(
      CallAndWait<wire::GetOrCreateTopicResponse>(**raw, FrameType::kGetOrCreateTopic, topic, 10s)
          .ok());
  // The group read nothing yet: it committed offset 0.
  wire::CommitOffsetRequest commit;
  commit.set_topic("behind");
  commit.set_group("g");
  auto* entry = commit.add_offsets();
  entry->set_queue(0);
  entry->set_offset(0);
  ASSERT_TRUE(
      CallAndWait<wire::CommitOffsetResponse>(**raw, FrameType::kCommitOffset, commit, 10s).ok());

  const std::string cluster = (*broker)->ClusterYaml(
      "poll_wait_ms: 100, heartbeat_interval_ms: 100, reconnect_backoff_ms: 10, "
      "reconnect_backoff_max_ms: 100");
  const std::string yaml = "environments:\n  test:\n    clusters:\n      main: " + cluster +
                           "\n    default_cluster: main\n";
  auto client = Client::Create({.config_yaml = yaml, .environment = "test"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto producer = client->CreateProducer("behind");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(producer->Send({.body = std::string(100, 'r')}).ok());
  }
  // Retention deletes until the log is within its limit, then leaves it alone.
  const std::filesystem::path log_dir = (*broker)->data_dir() / "commitlog";
  ASSERT_TRUE(testing::WaitUntil([&] {
    uintmax_t bytes = 0;
    std::error_code ec;
    for (const auto& file : std::filesystem::directory_iterator(log_dir, ec)) {
      bytes += file.file_size(ec);
    }
    return bytes <= 8192;
  })) << (*broker)->LogTail();

  auto factory = MakeNativeBackendFactory();
  auto config = core::ValidateClusterConfig(
      "main", "native",
      {core::RawEntry{"endpoints", core::RawValue::Scalar((*broker)->endpoint(), "test"), ""}},
      factory->properties(), "environments.test.clusters.main", "test");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto backend = factory->Create(*config);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto positions = (*backend)->Positions({.topic = "behind", .group = "g"});
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  ASSERT_EQ(positions->size(), 1u);
  const int64_t start = (*positions)[0].start;
  EXPECT_GT(start, 0);
  EXPECT_EQ((*positions)[0].committed, 0);
  EXPECT_EQ((*positions)[0].end, kMessages);
  EXPECT_EQ((*positions)[0].Remaining(kMessages), kMessages - start);

  testing::Collector collector;
  auto sub = client->Subscribe("behind", "g", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  ASSERT_TRUE(collector.WaitForDistinct(static_cast<size_t>(kMessages - start)))
      << "received " << collector.distinct() << " of " << kMessages - start;
  std::set<int64_t> offsets;
  for (const Message& m : collector.messages()) offsets.insert(m.offset);
  ASSERT_FALSE(offsets.empty());
  EXPECT_EQ(*offsets.begin(), start);
  EXPECT_EQ(*offsets.rbegin(), kMessages - 1);
  EXPECT_EQ(static_cast<int64_t>(offsets.size()), kMessages - start);
  MSGSDK_EXPECT_OK(sub->Close());

  positions = (*backend)->Positions({.topic = "behind", .group = "g"});
  ASSERT_TRUE(positions.ok()) << positions.status().ToString();
  EXPECT_EQ((*positions)[0].committed, kMessages);
  EXPECT_EQ((*positions)[0].Remaining(kMessages), 0);
  EXPECT_TRUE((*backend)->Close(std::chrono::steady_clock::now()).ok());
  raw->reset();
  MSGSDK_EXPECT_OK(client->Close());
  MSGSDK_EXPECT_OK((*broker)->Stop());
}

}  // namespace
}  // namespace msgsdk::native
