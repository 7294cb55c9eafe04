// msgsdk-broker as a process, driven through the client's connection and through raw sockets:
// the protocol's requests, long polling, consumer groups across members, bad input that costs
// only its own connection, graceful shutdown and reconnection.

#include "backends/native/server/broker_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "backends/native/client/broker_client.h"
#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "backends/native/protocol/frame.h"
#include "backends/native/storage/message_codec.h"
#include "backends/native/storage/message_store.h"
#include "fixtures/broker_fixture.h"
#include "testing/status_macros.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk::native {
namespace {

using namespace std::chrono_literals;
using client::BrokerClient;
using client::CallAndWait;
using protocol::FrameType;

constexpr auto kTimeout = 10s;

class BrokerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = test::BrokerProcess::Start(
        {.binary = MSGSDK_BROKER_BINARY, .extra_args = {"--queues", "2"}});
    ASSERT_TRUE(broker.ok()) << broker.status().ToString();
    broker_ = std::move(broker).value();
    client_ = Connect();
  }

  void TearDown() override {
    client_.reset();
    if (broker_ && broker_->running()) MSGSDK_EXPECT_OK(broker_->Stop());
  }

  std::shared_ptr<BrokerClient> Connect(std::chrono::milliseconds backoff_max = 200ms) {
    auto client = BrokerClient::Create({.endpoints = {broker_->endpoint()},
                                        .reconnect_backoff_min = 10ms,
                                        .reconnect_backoff_max = backoff_max,
                                        .cluster = "test"});
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? *client : nullptr;
  }

  Result<wire::GetOrCreateTopicResponse> CreateTopic(const std::string& topic, int queues = 0) {
    wire::GetOrCreateTopicRequest request;
    request.set_topic(topic);
    request.set_queues(queues);
    return CallAndWait<wire::GetOrCreateTopicResponse>(*client_, FrameType::kGetOrCreateTopic,
                                                       request, kTimeout);
  }

  Result<wire::ProduceResponse> Produce(const std::string& topic, int count, int32_t queue = 0,
                                        const std::string& prefix = "m") {
    wire::ProduceRequest request;
    request.set_topic(topic);
    for (int i = 0; i < count; ++i) {
      auto* entry = request.add_entries();
      entry->set_queue(queue);
      Message message{
          .key = "k", .tag = i % 2 == 0 ? "even" : "odd", .body = prefix + std::to_string(i)};
      message.message_id = prefix + "-id-" + std::to_string(i);
      message.born_at = std::chrono::system_clock::now();
      protocol::ToWire(message, false, entry->mutable_message());
    }
    return CallAndWait<wire::ProduceResponse>(*client_, FrameType::kProduce, request, kTimeout);
  }

  static wire::FetchRequest FetchOf(const std::string& topic, int32_t queue, int64_t offset,
                                    uint32_t wait_ms) {
    wire::FetchRequest request;
    request.set_topic(topic);
    auto* position = request.add_positions();
    position->set_queue(queue);
    position->set_offset(offset);
    request.set_max_messages(1000);
    request.set_wait_ms(wait_ms);
    return request;
  }

  Result<wire::FetchResponse> Fetch(const wire::FetchRequest& request) {
    return CallAndWait<wire::FetchResponse>(
        *client_, FrameType::kFetch, request,
        kTimeout + std::chrono::milliseconds(request.wait_ms()));
  }

  Result<wire::GroupResponse> Group(FrameType type, const std::string& topic,
                                    const std::string& member, uint32_t session_ms = 10000,
                                    const std::vector<int32_t>& released = {}) {
    wire::GroupRequest request;
    request.set_topic(topic);
    request.set_group("g");
    request.set_member_id(member);
    request.set_session_timeout_ms(session_ms);
    for (int32_t queue : released) request.add_released(queue);
    return CallAndWait<wire::GroupResponse>(*client_, type, request, kTimeout);
  }

  // A raw TCP connection to the broker.
  int RawConnect() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(broker_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }

  // True if the broker closed `fd` within the deadline (read gives end of file or reset).
  static bool ClosedByPeer(int fd, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n <= 0) return true;
    }
    return false;
  }

  static std::string Header(uint32_t size, uint8_t version, uint8_t type, uint64_t id) {
    std::string out(protocol::kFrameHeaderSize, '\0');
    protocol::EncodeFrameHeader(
        {.body_size = size, .version = version, .type = type, .request_id = id}, out.data());
    return out;
  }

  std::unique_ptr<test::BrokerProcess> broker_;
  std::shared_ptr<BrokerClient> client_;
};

TEST_F(BrokerServerTest, ProducesFetchesAndCommitsOverTheWire) {
  auto topic = CreateTopic("orders", 3);
  ASSERT_TRUE(topic.ok()) << topic.status().ToString();
  EXPECT_EQ(topic->queues(), 3);
  auto again = CreateTopic("orders", 5);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->queues(), 3) << "an existing topic keeps its queue count";

  auto produced = Produce("orders", 100, 1);
  ASSERT_TRUE(produced.ok()) << produced.status().ToString();
  ASSERT_EQ(produced->results_size(), 100);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(protocol::FromWire(produced->results(i).status()).ok());
    EXPECT_EQ(produced->results(i).queue(), 1);
    EXPECT_EQ(produced->results(i).offset(), i);
  }
  // One bad entry fails alone.
  wire::ProduceRequest bad;
  bad.set_topic("orders");
  bad.add_entries()->set_queue(7);
  bad.mutable_entries(0)->mutable_message()->set_body("x");
  auto partial = CallAndWait<wire::ProduceResponse>(*client_, FrameType::kProduce, bad, kTimeout);
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  EXPECT_EQ(protocol::FromWire(partial->results(0).status()).code(), StatusCode::kInvalidArgument);

  auto fetched = Fetch(FetchOf("orders", 1, 10, 0));
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  ASSERT_EQ(fetched->queues_size(), 1);
  const wire::QueueData& data = fetched->queues(0);
  ASSERT_EQ(data.messages_size(), 90);
  EXPECT_EQ(data.next_offset(), 100);
  EXPECT_EQ(data.max_offset(), 100);
  Message first = protocol::FromWire(wire::Message(data.messages(0)), "orders");
  EXPECT_EQ(first.body, "m10");
  EXPECT_EQ(first.message_id, "m-id-10");
  EXPECT_EQ(first.partition, 1);
  EXPECT_EQ(first.offset, 10);
  EXPECT_NE(first.stored_at, Timestamp{});

  // Tag filter on the broker: only "even" bodies.
  auto request = FetchOf("orders", 1, 0, 0);
  request.add_tag_hashes(TagHash("even"));
  auto filtered = Fetch(request);
  ASSERT_TRUE(filtered.ok());
  EXPECT_EQ(filtered->queues(0).messages_size(), 50);

  wire::CommitOffsetRequest commit;
  commit.set_topic("orders");
  commit.set_group("billing");
  auto* entry = commit.add_offsets();
  entry->set_queue(1);
  entry->set_offset(42);
  MSGSDK_ASSERT_OK(
      CallAndWait<wire::CommitOffsetResponse>(*client_, FrameType::kCommitOffset, commit, kTimeout)
          .status());
  wire::QueryOffsetRequest query;
  query.set_topic("orders");
  query.set_group("billing");
  query.set_queue(1);
  auto offset =
      CallAndWait<wire::QueryOffsetResponse>(*client_, FrameType::kQueryOffset, query, kTimeout);
  ASSERT_TRUE(offset.ok()) << offset.status().ToString();
  EXPECT_TRUE(offset->has_committed());
  EXPECT_EQ(offset->committed(), 42);
  EXPECT_EQ(offset->min_offset(), 0);
  EXPECT_EQ(offset->max_offset(), 100);

  auto missing = Fetch(FetchOf("no-such-topic", 0, 0, 0));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no-such-topic"), std::string::npos);
}

TEST_F(BrokerServerTest, LongPollIsAnsweredWhenDataArrivesOrWhenItsWaitEnds) {
  ASSERT_TRUE(CreateTopic("polled", 1).ok());
  // A long poll of 60 s: it must come back with the message, long before its wait ends.
  auto call = std::make_shared<client::PendingCall>();
  client_->Call(FrameType::kFetch, FetchOf("polled", 0, 0, 60000), 70s,
                client::PendingCall::Completer(call));
  // Other requests on the same connection are not held up by the parked one (pipelining).
  auto empty = Fetch(FetchOf("polled", 0, 0, 50));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->queues(0).messages_size(), 0) << "a short poll ends empty";
  ASSERT_TRUE(Produce("polled", 1).ok());
  auto woken = client::ParseResponse<wire::FetchResponse>(std::move(*call->Wait()));
  ASSERT_TRUE(woken.ok()) << woken.status().ToString();
  ASSERT_EQ(woken->queues(0).messages_size(), 1);
  EXPECT_EQ(woken->queues(0).messages(0).body(), "m0");
}

TEST_F(BrokerServerTest, AWaitStillEndsAfterAnEarlierWaitWasCutShortByData) {
  ASSERT_TRUE(CreateTopic("waits", 1).ok());
  // The first poll's wait ends first; data answers it long before. The second poll, parked
  // after that, waits longer: its wait must still end on time, with nothing.
  auto first = std::make_shared<client::PendingCall>();
  client_->Call(FrameType::kFetch, FetchOf("waits", 0, 0, 2000), 10s,
                client::PendingCall::Completer(first));
  ASSERT_TRUE(Produce("waits", 1).ok());
  auto woken = client::ParseResponse<wire::FetchResponse>(std::move(*first->Wait()));
  ASSERT_TRUE(woken.ok()) << woken.status().ToString();
  ASSERT_EQ(woken->queues(0).messages_size(), 1);
  const auto start = std::chrono::steady_clock::now();
  auto later = Fetch(FetchOf("waits", 0, 1, 3000));
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_EQ(later->queues(0).messages_size(), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 2900ms) << "the wait ended early";
}

TEST_F(BrokerServerTest, GroupMembersShareQueuesAndAnExpiredMemberLosesThem) {
  ASSERT_TRUE(CreateTopic("shared", 4).ok());
  auto a = Group(FrameType::kJoinGroup, "shared", "a", /*session_ms=*/300);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->owned_size(), 4);
  EXPECT_EQ(a->queues(), 4);
  auto b = Group(FrameType::kJoinGroup, "shared", "b");
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b->generation(), a->generation());
  EXPECT_EQ(b->owned_size(), 0) << "b waits until a releases";
  // a learns it must release queues 1 and 3, and hands them back with its next heartbeat.
  a = Group(FrameType::kHeartbeat, "shared", "a", 300);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->to_release_size(), 2);
  a = Group(FrameType::kHeartbeat, "shared", "a", 300,
            {a->to_release().begin(), a->to_release().end()});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->owned_size(), 2);
  b = Group(FrameType::kHeartbeat, "shared", "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->owned_size(), 2);

  // a stops heartbeating: after its session timeout its queues go to b.
  ASSERT_TRUE(testing::WaitUntil([&] {
    b = Group(FrameType::kHeartbeat, "shared", "b");
    return b.ok() && b->owned_size() == 4;
  }));
  auto late = Group(FrameType::kHeartbeat, "shared", "a", 300);
  EXPECT_EQ(late.status().code(), StatusCode::kNotFound);
  EXPECT_NE(late.status().message().find("join again"), std::string::npos);
  // And its commits are refused: the queues are b's now.
  wire::CommitOffsetRequest commit;
  commit.set_topic("shared");
  commit.set_group("g");
  commit.set_member_id("a");
  commit.add_offsets()->set_queue(0);
  auto refused =
      CallAndWait<wire::CommitOffsetResponse>(*client_, FrameType::kCommitOffset, commit, kTimeout);
  EXPECT_EQ(refused.status().code(), StatusCode::kAborted);
  commit.set_member_id("b");
  MSGSDK_EXPECT_OK(
      CallAndWait<wire::CommitOffsetResponse>(*client_, FrameType::kCommitOffset, commit, kTimeout)
          .status());

  // A group with live members cannot be reset.
  wire::ResetOffsetsRequest reset;
  reset.set_topic("shared");
  reset.set_group("g");
  auto busy =
      CallAndWait<wire::ResetOffsetsResponse>(*client_, FrameType::kResetOffsets, reset, kTimeout);
  EXPECT_EQ(busy.status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Group(FrameType::kLeaveGroup, "shared", "b").ok());
  MSGSDK_EXPECT_OK(
      CallAndWait<wire::ResetOffsetsResponse>(*client_, FrameType::kResetOffsets, reset, kTimeout)
          .status());

  auto bad_session = Group(FrameType::kJoinGroup, "shared", "c", /*session_ms=*/1);
  EXPECT_EQ(bad_session.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BrokerServerTest, ResetToATimestampUsesTheTimeIndex) {
  ASSERT_TRUE(CreateTopic("replay", 1).ok());
  ASSERT_TRUE(Produce("replay", 10, 0, "old").ok());
  // Store times are whole milliseconds (truncated): a boundary on a whole millisecond, passed
  // before the second batch is sent, lies between the two batches' store times.
  const auto boundary =
      std::chrono::ceil<std::chrono::milliseconds>(std::chrono::system_clock::now() + 1ms);
  ASSERT_TRUE(testing::WaitUntil([&] { return std::chrono::system_clock::now() > boundary; }));
  ASSERT_TRUE(Produce("replay", 5, 0, "new").ok());
  wire::ResetOffsetsRequest reset;
  reset.set_topic("replay");
  reset.set_group("g");
  reset.set_kind(wire::ResetOffsetsRequest::TIMESTAMP);
  reset.set_timestamp_ns(ToUnixNanos(boundary));
  MSGSDK_ASSERT_OK(
      CallAndWait<wire::ResetOffsetsResponse>(*client_, FrameType::kResetOffsets, reset, kTimeout)
          .status());
  wire::QueryOffsetRequest query;
  query.set_topic("replay");
  query.set_group("g");
  query.set_queue(0);
  auto offset =
      CallAndWait<wire::QueryOffsetResponse>(*client_, FrameType::kQueryOffset, query, kTimeout);
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(offset->committed(), 10);
}

TEST_F(BrokerServerTest, BadFramesCostOnlyTheirOwnConnection) {
  ASSERT_TRUE(CreateTopic("safe", 1).ok());
  struct Case {
    std::string name;
    std::string bytes;
    bool close_after_send;  // the client ends the stream itself (a truncated frame)
    std::string logged;
  };
  const auto produce = static_cast<uint8_t>(FrameType::kProduce);
  std::vector<Case> cases = {
      {"bad version", Header(0, 9, produce, 1), false, "protocol version 9 is not supported"},
      {"unknown type", Header(0, protocol::kProtocolVersion, 0x42, 2), false,
       "is not a known request type"},
      {"oversized", Header(0xfffffff0u, protocol::kProtocolVersion, produce, 3), false,
       "exceeds the limit"},
      {"malformed body", Header(3, protocol::kProtocolVersion, produce, 4) + "\x0a\x7f\x01", false,
       "malformed Produce body"},
      {"truncated", Header(100, protocol::kProtocolVersion, produce, 5) + "abc", true,
       "truncated Produce frame"},
  };
  // A client that connects and sends nothing, held open throughout.
  const int silent = RawConnect();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int fd = RawConnect();
    ASSERT_EQ(::write(fd, c.bytes.data(), c.bytes.size()), static_cast<ssize_t>(c.bytes.size()));
    if (c.close_after_send) ::shutdown(fd, SHUT_WR);
    EXPECT_TRUE(ClosedByPeer(fd)) << "the broker kept a connection that sent " << c.name;
    ::close(fd);
    // The well-behaved client on its own connection notices nothing.
    auto produced = Produce("safe", 1);
    ASSERT_TRUE(produced.ok()) << produced.status().ToString();
    EXPECT_TRUE(testing::WaitUntil(
        [&] { return broker_->LogTail(100000).find(c.logged) != std::string::npos; }, 5s))
        << "log does not name the reason '" << c.logged << "':\n"
        << broker_->LogTail();
  }
  EXPECT_FALSE(ClosedByPeer(silent, 100ms)) << "a silent client is not disconnected";
  ::close(silent);
}

TEST_F(BrokerServerTest, AClientThatNeverReadsDoesNotStallOthers) {
  ASSERT_TRUE(CreateTopic("big", 1).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Produce("big", 1000).ok());
  // Hundreds of pipelined fetches of 4000 messages each, and never a read: their responses
  // (over 100 MiB, more than the broker queues for one connection) back up into its own
  // socket and its own queue only; the broker stops reading it.
  const int greedy = RawConnect();
  std::string requests;
  for (uint64_t id = 1; id <= 600; ++id) {
    auto fetch = FetchOf("big", 0, 0, 0);
    fetch.set_max_messages(4000);
    ASSERT_TRUE(
        protocol::AppendFrame(static_cast<uint8_t>(FrameType::kFetch), id, fetch, &requests).ok());
  }
  std::thread writer([&] {
    // Blocks once the broker stops reading this connection; unblocked by the close below.
    size_t sent = 0;
    while (sent < requests.size()) {
      const ssize_t n =
          ::send(greedy, requests.data() + sent, requests.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
  });
  for (int round = 0; round < 20; ++round) {
    auto produced = Produce("big", 10);
    ASSERT_TRUE(produced.ok()) << produced.status().ToString();
    auto fetched = Fetch(FetchOf("big", 0, 4000, 0));
    ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
    EXPECT_EQ(fetched->queues(0).messages_size(), 10 * (round + 1));
  }
  ::shutdown(greedy, SHUT_RDWR);
  writer.join();
  ::close(greedy);
}

TEST_F(BrokerServerTest, SigtermAnswersInFlightRequestsFlushesAndExitsCleanly) {
  ASSERT_TRUE(CreateTopic("durable", 1).ok());
  ASSERT_TRUE(Produce("durable", 50).ok());
  // A parked long poll at the time of SIGTERM gets an answer, not a broken connection.
  auto call = std::make_shared<client::PendingCall>();
  client_->Call(FrameType::kFetch, FetchOf("durable", 0, 50, 60000), 70s,
                client::PendingCall::Completer(call));
  // Make sure it reached the broker: a later request on the same connection was answered.
  ASSERT_TRUE(Fetch(FetchOf("durable", 0, 0, 0)).ok());
  MSGSDK_ASSERT_OK(broker_->Stop());
  auto answered = client::ParseResponse<wire::FetchResponse>(std::move(*call->Wait()));
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->queues(0).messages_size(), 0);
  EXPECT_NE(broker_->LogTail().find("shut down"), std::string::npos) << broker_->LogTail();

  // Restarted on the same port and data: the client reconnects and the messages are there.
  MSGSDK_ASSERT_OK(broker_->Restart());
  Result<wire::FetchResponse> fetched = UnavailableError("not tried");
  ASSERT_TRUE(testing::WaitUntil([&] {
    fetched = Fetch(FetchOf("durable", 0, 0, 0));
    return fetched.ok();
  })) << fetched.status().ToString();
  EXPECT_EQ(fetched->queues(0).messages_size(), 50);
}

// A CommitOffset is answered once durable: SIGKILL right after the answers takes none back,
// and QueryOffset never reports more than what survives. Commits pipelined on two
// connections share the broker's fdatasyncs.
TEST_F(BrokerServerTest, AnsweredCommitsSurviveSigkill) {
  ASSERT_TRUE(CreateTopic("kept", 2).ok());
  ASSERT_TRUE(Produce("kept", 100, 0).ok());
  ASSERT_TRUE(Produce("kept", 100, 1).ok());
  auto other = Connect();
  constexpr int kCommits = 100;
  std::vector<std::shared_ptr<client::PendingCall>> calls;
  for (int i = 1; i <= kCommits; ++i) {
    for (const auto& [client, group] : std::vector<std::pair<BrokerClient*, std::string>>{
             {client_.get(), "billing"}, {other.get(), "shipping"}}) {
      wire::CommitOffsetRequest commit;
      commit.set_topic("kept");
      commit.set_group(group);
      for (int32_t queue : {0, 1}) {
        auto* entry = commit.add_offsets();
        entry->set_queue(queue);
        entry->set_offset(i - queue);
      }
      calls.push_back(std::make_shared<client::PendingCall>());
      client->Call(FrameType::kCommitOffset, commit, kTimeout,
                   client::PendingCall::Completer(calls.back()));
    }
  }
  for (const auto& call : calls) {
    auto answer = client::ParseResponse<wire::CommitOffsetResponse>(std::move(*call->Wait()));
    MSGSDK_ASSERT_OK(answer.status());
  }
  // One commit of several queues is refused whole when one entry is invalid.
  wire::CommitOffsetRequest bad;
  bad.set_topic("kept");
  bad.set_group("billing");
  bad.add_offsets()->set_queue(0);
  bad.mutable_offsets(0)->set_offset(1);
  bad.add_offsets()->set_queue(1);
  bad.mutable_offsets(1)->set_offset(-5);
  EXPECT_EQ(
      CallAndWait<wire::CommitOffsetResponse>(*client_, FrameType::kCommitOffset, bad, kTimeout)
          .status()
          .code(),
      StatusCode::kInvalidArgument);

  MSGSDK_ASSERT_OK(broker_->Kill());
  MSGSDK_ASSERT_OK(broker_->Restart());
  for (const std::string group : {"billing", "shipping"}) {
    for (int32_t queue : {0, 1}) {
      wire::QueryOffsetRequest query;
      query.set_topic("kept");
      query.set_group(group);
      query.set_queue(queue);
      Result<wire::QueryOffsetResponse> offset = UnavailableError("not asked");
      ASSERT_TRUE(testing::WaitUntil([&] {
        offset = CallAndWait<wire::QueryOffsetResponse>(*client_, FrameType::kQueryOffset, query,
                                                        kTimeout);
        return offset.ok();
      })) << offset.status().ToString();
      EXPECT_TRUE(offset->has_committed());
      EXPECT_EQ(offset->committed(), kCommits - queue) << group << " queue " << queue;
    }
  }
}

TEST_F(BrokerServerTest, RequestsFailWithUnavailableWhileNoBrokerListensThenRecover) {
  ASSERT_TRUE(CreateTopic("gone", 1).ok());
  MSGSDK_ASSERT_OK(broker_->Kill());
  wire::GetOrCreateTopicRequest request;
  request.set_topic("gone");
  auto failed = CallAndWait<wire::GetOrCreateTopicResponse>(*client_, FrameType::kGetOrCreateTopic,
                                                            request, 2s);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("native cluster 'test'"), std::string::npos)
      << failed.status().ToString();
  MSGSDK_ASSERT_OK(broker_->Restart());
  // The client reconnects by itself (backoff capped at 200 ms here).
  auto recovered = CallAndWait<wire::GetOrCreateTopicResponse>(
      *client_, FrameType::kGetOrCreateTopic, request, kTimeout);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(recovered->queues(), 1);
}

// The server in this process, with small limits: a client that stops reading is cut once
// nothing could be written to it for the stall timeout.
TEST(BrokerServerInProcessTest, AClientThatStopsReadingIsDisconnectedAfterTheStallTimeout) {
  testing::TempDir dir("msgsdk-broker-server");
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.broker.store.data_dir = dir.path() / "data";
  options.broker.store.default_queues = 1;
  options.max_pending_output_bytes = 256 << 10;
  options.write_stall_timeout = 300ms;
  auto started = server::BrokerServer::Start(options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<server::BrokerServer> broker = std::move(started).value();
  auto client = BrokerClient::Create({.endpoints = {broker->endpoint()}, .cluster = "c"});
  ASSERT_TRUE(client.ok());
  wire::GetOrCreateTopicRequest topic;
  topic.set_topic("t");
  ASSERT_TRUE(CallAndWait<wire::GetOrCreateTopicResponse>(**client, FrameType::kGetOrCreateTopic,
                                                          topic, kTimeout)
                  .ok());
  wire::ProduceRequest produce;
  produce.set_topic("t");
  for (int i = 0; i < 2000; ++i) {
    auto* entry = produce.add_entries();
    entry->set_queue(0);
    entry->mutable_message()->set_body(std::string(100, 'x'));
  }
  ASSERT_TRUE(
      CallAndWait<wire::ProduceResponse>(**client, FrameType::kProduce, produce, kTimeout).ok());

  const uint16_t port = static_cast<uint16_t>(
      std::stoi(broker->endpoint().substr(broker->endpoint().rfind(':') + 1)));
  const int greedy = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(greedy, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  // More requests than the broker reads once it is paused, so that some stay unread in its
  // socket: its close then resets the connection, which this side sees without reading.
  std::string requests;
  for (uint64_t id = 1; id <= 100000; ++id) {
    wire::FetchRequest fetch;
    fetch.set_topic("t");
    fetch.add_positions()->set_queue(0);
    fetch.set_max_messages(2000);
    ASSERT_TRUE(
        protocol::AppendFrame(static_cast<uint8_t>(FrameType::kFetch), id, fetch, &requests).ok());
  }
  std::thread writer([&] {
    // Blocks once the broker stops reading; ends when the connection is reset.
    size_t sent = 0;
    while (sent < requests.size()) {
      const ssize_t n =
          ::send(greedy, requests.data() + sent, requests.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
  });
  // Never read; wait (without reading, which would let the broker make progress) for the
  // broker to hang up.
  bool hung_up = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!hung_up && std::chrono::steady_clock::now() < deadline) {
    pollfd p{greedy, POLLRDHUP, 0};
    if (::poll(&p, 1, 100) > 0) hung_up = (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  EXPECT_TRUE(hung_up) << "a client that never reads was not disconnected";
  ::shutdown(greedy, SHUT_RDWR);
  writer.join();
  ::close(greedy);
  // The well-behaved client still gets answers.
  EXPECT_TRUE(CallAndWait<wire::GetOrCreateTopicResponse>(**client, FrameType::kGetOrCreateTopic,
                                                          topic, kTimeout)
                  .ok());
  MSGSDK_EXPECT_OK(broker->Shutdown(5s));
}

TEST(BrokerConfigTest, SettingsComeFromAYamlFileAndFlagsWin) {
  testing::TempDir dir("msgsdk-broker-config");
  const std::string config = (dir.path() / "broker.yaml").string();
  {
    std::ofstream out(config);
    out << "# msgsdk-broker settings\n"
           "queues: 3\n"
           "flush_mode: periodic\n"  // the fixture's --flush-mode group_commit wins
           "flush_interval_ms: 50\n"
           "listen: 127.0.0.1:1\n"  // and so does its --listen
           "log_level: debug\n";
  }
  auto broker = test::BrokerProcess::Start(
      {.binary = MSGSDK_BROKER_BINARY, .extra_args = {"--config", config}});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  EXPECT_NE((*broker)->LogTail().find("flush mode group_commit, 3 queues per new topic"),
            std::string::npos)
      << (*broker)->LogTail();
  auto client = BrokerClient::Create({.endpoints = {(*broker)->endpoint()}, .cluster = "c"});
  ASSERT_TRUE(client.ok());
  wire::GetOrCreateTopicRequest request;
  request.set_topic("configured");
  auto topic = CallAndWait<wire::GetOrCreateTopicResponse>(**client, FrameType::kGetOrCreateTopic,
                                                           request, kTimeout);
  ASSERT_TRUE(topic.ok()) << topic.status().ToString();
  EXPECT_EQ(topic->queues(), 3);
  client->reset();
  MSGSDK_EXPECT_OK((*broker)->Stop());
}

TEST(BrokerConfigTest, BadSettingsStopTheStartWithTheirReason) {
  testing::TempDir dir("msgsdk-broker-config");
  const std::string config = (dir.path() / "broker.yaml").string();
  {
    std::ofstream out(config);
    out << "queues: 3\nflush_mod: periodic\n";
  }
  auto typo = test::BrokerProcess::Start(
      {.binary = MSGSDK_BROKER_BINARY, .extra_args = {"--config", config}});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("broker.yaml:2: unknown setting 'flush_mod'"),
            std::string::npos)
      << typo.status().ToString();
  auto bad_flag =
      test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY, .flush_mode = "sometimes"});
  ASSERT_FALSE(bad_flag.ok());
  EXPECT_NE(bad_flag.status().message().find("--flush-mode"), std::string::npos)
      << bad_flag.status().ToString();
}

TEST(BrokerConfigTest, RetentionSettingsAreCheckedOnTheCommandLineAndInTheFile) {
  struct Case {
    std::vector<std::string> args;
    std::string yaml;  // config file content, if any
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--retention-ms", "-1"}, "", "--retention-ms"},
      {{"--retention-bytes", "lots"}, "", "--retention-bytes"},
      {{"--retention-check-interval-ms", "0"}, "", "--retention-check-interval-ms"},
      {{}, "retention_bytes: -5\n", "retention_bytes (--retention-bytes) is -5, outside [0, "},
      {{},
       "retention_check_interval_ms: 5\n",
       "retention_check_interval_ms (--retention-check-interval-ms) is 5, outside [10, "},
      {{}, "retention_ms: a week\n", "broker.yaml:1: retention_ms"},
  };
  testing::TempDir dir("msgsdk-broker-config");
  const std::string config = (dir.path() / "broker.yaml").string();
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    if (!c.yaml.empty()) {
      std::ofstream(config, std::ios::trunc) << c.yaml;
      args.insert(args.end(), {"--config", config});
    }
    auto broker = test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY, .extra_args = args});
    ASSERT_FALSE(broker.ok()) << c.expected;
    EXPECT_NE(broker.status().message().find(c.expected), std::string::npos)
        << broker.status().ToString();
  }
  std::ofstream(config, std::ios::trunc) << "retention_ms: 3600000\nretention_bytes: 1073741824\n";
  auto broker = test::BrokerProcess::Start(
      {.binary = MSGSDK_BROKER_BINARY,
       .extra_args = {"--config", config, "--retention-check-interval-ms", "500"}});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  // Logged after the "serving" line the fixture waits for: wait for it too.
  EXPECT_TRUE(testing::WaitUntil([&] {
    return (*broker)->LogTail().find(
               "retention: 3600000 ms, 1073741824 bytes (0: unlimited), checked every 500 ms") !=
           std::string::npos;
  })) << (*broker)->LogTail();
  MSGSDK_EXPECT_OK((*broker)->Stop());
}

// The daemon deletes old segments on its own; fetches below a queue's start read from it,
// and the start survives a restart.
TEST(BrokerRetentionTest, DeletedMessagesAreSkippedAndTheStartSurvivesARestart) {
  auto broker = test::BrokerProcess::Start(
      {.binary = MSGSDK_BROKER_BINARY,
       .extra_args = {"--queues", "1", "--segment-bytes", "4096", "--retention-bytes", "8192",
                      "--retention-check-interval-ms", "10"}});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  auto client = BrokerClient::Create({.endpoints = {(*broker)->endpoint()},
                                      .reconnect_backoff_min = 10ms,
                                      .reconnect_backoff_max = 100ms,
                                      .cluster = "test"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  wire::GetOrCreateTopicRequest topic;
  topic.set_topic("kept");
  ASSERT_TRUE(CallAndWait<wire::GetOrCreateTopicResponse>(**client, FrameType::kGetOrCreateTopic,
                                                          topic, kTimeout)
                  .ok());
  constexpr int kMessages = 300;
  for (int batch = 0; batch < kMessages / 50; ++batch) {
    wire::ProduceRequest request;
    request.set_topic("kept");
    for (int i = 0; i < 50; ++i) {
      auto* entry = request.add_entries();
      entry->set_queue(0);
      Message message{.body = std::string(100, 'b')};
      message.message_id = "id-" + std::to_string(batch * 50 + i);
      protocol::ToWire(message, false, entry->mutable_message());
    }
    auto produced =
        CallAndWait<wire::ProduceResponse>(**client, FrameType::kProduce, request, kTimeout);
    ASSERT_TRUE(produced.ok()) << produced.status().ToString();
  }
  wire::QueryOffsetRequest query;
  query.set_topic("kept");
  query.set_group("g");
  query.set_queue(0);
  auto start_of = [&]() -> int64_t {
    auto response =
        CallAndWait<wire::QueryOffsetResponse>(**client, FrameType::kQueryOffset, query, kTimeout);
    return response.ok() ? response->min_offset() : -1;
  };
  ASSERT_TRUE(testing::WaitUntil([&] { return start_of() > 0; })) << (*broker)->LogTail();
  const int64_t start = start_of();
  // Logged once the deletion is done, after the new start is visible: wait for it.
  EXPECT_TRUE(testing::WaitUntil([&] {
    return (*broker)->LogTail().find("retention deleted") != std::string::npos;
  })) << (*broker)->LogTail();

  wire::FetchRequest fetch;
  fetch.set_topic("kept");
  auto* position = fetch.add_positions();
  position->set_queue(0);
  position->set_offset(0);
  fetch.set_max_messages(10);
  fetch.set_wait_ms(0);
  auto fetched = CallAndWait<wire::FetchResponse>(**client, FrameType::kFetch, fetch, kTimeout);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  ASSERT_EQ(fetched->queues_size(), 1);
  const wire::QueueData& data = fetched->queues(0);
  EXPECT_EQ(data.status().code(), 0) << data.status().message();
  EXPECT_GE(data.min_offset(), start);
  ASSERT_GT(data.messages_size(), 0);
  EXPECT_EQ(data.messages(0).offset(), data.min_offset());
  EXPECT_EQ(data.max_offset(), kMessages);

  client->reset();
  MSGSDK_ASSERT_OK((*broker)->Stop());
  MSGSDK_ASSERT_OK((*broker)->Restart());
  client = BrokerClient::Create({.endpoints = {(*broker)->endpoint()}, .cluster = "test"});
  ASSERT_TRUE(client.ok());
  auto after =
      CallAndWait<wire::QueryOffsetResponse>(**client, FrameType::kQueryOffset, query, kTimeout);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GE(after->min_offset(), start);
  EXPECT_EQ(after->max_offset(), kMessages);
  client->reset();
  MSGSDK_EXPECT_OK((*broker)->Stop());
}

TEST(BrokerClientTest, MalformedEndpointsAreRefusedByName) {
  auto client = BrokerClient::Create({.endpoints = {"localhost"}, .cluster = "c"});
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("'localhost'"), std::string::npos);
  client = BrokerClient::Create({.endpoints = {"h:99999"}, .cluster = "c"});
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  client = BrokerClient::Create({.endpoints = {}, .cluster = "c"});
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace msgsdk::native
