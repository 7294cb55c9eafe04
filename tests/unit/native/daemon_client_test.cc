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
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

// A TCP listener on a free loopback port that accepts `connections` connections, one after
// the other, and hands each to `serve` (with its number, from 0).
class FakePeer {
 public:
  explicit FakePeer(std::function<void(int fd)> serve)
      : FakePeer(1, [serve = std::move(serve)](int fd, int) { serve(fd); }) {}
  FakePeer(int connections, std::function<void(int fd, int connection)> serve) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, connections, serve = std::move(serve)] {
      for (int i = 0; i < connections; ++i) {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serve(fd, i);
        ::close(fd);
      }
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

// Reads `size` bytes from `fd` into `out`; false at end of stream.
bool ReadAll(int fd, char* out, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, out + got, size - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

struct Request {
  uint64_t id = 0;  // 0 at end of stream, or if the header is not a request's
  std::string body;
};

// Reads one whole request frame from `fd`.
Request ReadWholeRequest(int fd) {
  std::string header(protocol::kFrameHeaderSize, '\0');
  if (!ReadAll(fd, header.data(), header.size())) return {};
  auto parsed = protocol::DecodeFrameHeader(header.data(), protocol::FrameDirection::kRequest,
                                            protocol::kMaxFrameBodyLimit);
  if (!parsed.ok()) return {};
  std::string body(parsed->body_size, '\0');
  if (!ReadAll(fd, body.data(), body.size())) return {};
  return {.id = parsed->request_id, .body = std::move(body)};
}

// Its request id, or 0.
uint64_t ReadRequest(int fd) { return ReadWholeRequest(fd).id; }

// Answers request `id` of `type` with an empty body.
void Answer(int fd, FrameType type, uint64_t id) {
  std::string frame(protocol::kFrameHeaderSize, '\0');
  protocol::EncodeFrameHeader(
      {.body_size = 0, .type = protocol::ResponseType(type), .request_id = id}, frame.data());
  ASSERT_EQ(::write(fd, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
}

// A request of `body_bytes` bytes (not a valid Produce: the fake peers do not parse it),
// larger than loopback's socket buffers take at once when that is more than a few MiB.
std::string LargeFrame(size_t body_bytes) {
  std::string frame(protocol::kFrameHeaderSize, '\0');
  frame.resize(frame.size() + body_bytes);
  for (size_t i = protocol::kFrameHeaderSize; i < frame.size(); ++i) {
    frame[i] = static_cast<char>('a' + i % 26);
  }
  return frame;
}

bool IsLargeBody(const std::string& body, size_t body_bytes) {
  if (body.size() != body_bytes) return false;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != static_cast<char>('a' + (i + protocol::kFrameHeaderSize) % 26)) return false;
  }
  return true;
}

wire::GetOrCreateTopicRequest TopicRequest() {
  wire::GetOrCreateTopicRequest request;
  request.set_topic("t");
  return request;
}

// The peer's side of the large-request tests: answers the first request (which made the
// connection), then waits until the client has made the large one.
void AnswerFirstThenWaitFor(int fd, const std::atomic<bool>& submitted) {
  Answer(fd, FrameType::kGetOrCreateTopic, ReadRequest(fd));
  ASSERT_TRUE(testing::WaitUntil([&] { return submitted.load(); }, 30s));
}

// The client's side: a first small request makes the connection, then a request of
// `body_bytes` is made while the connection is idle (so the calling thread writes it). Its
// call.
std::shared_ptr<PendingCall> ConnectThenCallLarge(BrokerClient& client, size_t body_bytes) {
  auto first = std::make_shared<PendingCall>();
  client.Call(FrameType::kGetOrCreateTopic, TopicRequest(), 30s, PendingCall::Completer(first));
  auto answered = first->Wait();
  EXPECT_TRUE(answered.has_value() && answered->ok());
  auto large = std::make_shared<PendingCall>();
  client.CallWithFrame(FrameType::kProduce, LargeFrame(body_bytes), 60s,
                       PendingCall::Completer(large));
  return large;
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

// A request made on an idle connection is written by the calling thread; one larger than the
// socket takes is written in part there, and the I/O thread writes the rest.
TEST(DaemonClientTest, ARequestTooLargeForTheSocketIsFinishedByTheIoThread) {
  constexpr size_t kBody = size_t{48} << 20;
  std::atomic<bool> submitted{false};
  std::atomic<bool> intact{false};
  FakePeer peer([&](int fd) {
    // The large request stops where the socket is full until this side reads.
    AnswerFirstThenWaitFor(fd, submitted);
    const Request large = ReadWholeRequest(fd);
    intact = IsLargeBody(large.body, kBody);
    Answer(fd, FrameType::kProduce, large.id);
    Answer(fd, FrameType::kGetOrCreateTopic, ReadRequest(fd));
  });
  auto client = BrokerClient::Create({.endpoints = {peer.endpoint()}, .cluster = "large"});
  ASSERT_TRUE(client.ok());
  auto large = ConnectThenCallLarge(**client, kBody);
  submitted = true;
  // Queued behind the rest of the large one, and written after it.
  auto after = std::make_shared<PendingCall>();
  (*client)->Call(FrameType::kGetOrCreateTopic, TopicRequest(), 60s, PendingCall::Completer(after));
  auto answered = large->Wait();
  ASSERT_TRUE(answered.has_value());
  EXPECT_TRUE(answered->ok()) << answered->status().ToString();
  EXPECT_TRUE(intact.load()) << "the large request arrived cut or garbled";
  answered = after->Wait();
  ASSERT_TRUE(answered.has_value());
  EXPECT_TRUE(answered->ok()) << answered->status().ToString();
}

// The connection breaks while the rest of a request written in part is still to go: the
// request fails (the broker may have seen its start), and the rest is never written to the
// next connection, where the next request arrives whole.
TEST(DaemonClientTest, TheRestOfARequestCutByALostConnectionIsDropped) {
  constexpr size_t kBody = size_t{48} << 20;
  std::atomic<bool> submitted{false};
  std::atomic<bool> whole{false};
  FakePeer peer(2, [&](int fd, int connection) {
    if (connection == 0) {
      AnswerFirstThenWaitFor(fd, submitted);
      std::string part(size_t{1} << 20, '\0');
      ReadAll(fd, part.data(), part.size());
      return;  // closes the connection with most of the large request unread
    }
    const Request next = ReadWholeRequest(fd);
    whole = next.id != 0;
    if (next.id != 0) Answer(fd, FrameType::kGetOrCreateTopic, next.id);
  });
  auto client = BrokerClient::Create(
      {.endpoints = {peer.endpoint()}, .reconnect_backoff_min = 10ms, .cluster = "cut"});
  ASSERT_TRUE(client.ok());
  auto large = ConnectThenCallLarge(**client, kBody);
  submitted = true;
  auto answered = large->Wait();
  ASSERT_TRUE(answered.has_value());
  EXPECT_EQ(answered->status().code(), StatusCode::kUnavailable) << answered->status().ToString();

  auto next = CallAndWait<wire::GetOrCreateTopicResponse>(**client, FrameType::kGetOrCreateTopic,
                                                          TopicRequest(), 30s);
  // The fake peer answers with an empty body, which parses as a response with an OK status.
  EXPECT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_TRUE(whole.load()) << "the next connection did not start with a whole request";
}

// Many threads make requests at once, some large enough to keep a write under way: whether a
// request goes from its caller's thread or through the I/O thread's queue, every one arrives
// whole, once, and is answered.
TEST(DaemonClientTest, ConcurrentCallersWriteWholeFramesThroughEitherPath) {
  constexpr int kThreads = 6;
  constexpr int kPerThread = 300;
  constexpr size_t kLarge = size_t{256} << 10;
  std::atomic<int> garbled{0};
  std::set<uint64_t> seen;
  FakePeer peer([&](int fd) {
    for (int i = 0; i < kThreads * kPerThread; ++i) {
      const Request request = ReadWholeRequest(fd);
      if (request.id == 0) {
        garbled.fetch_add(1);
        return;
      }
      if (!IsLargeBody(request.body, request.body.size()) || !seen.insert(request.id).second) {
        garbled.fetch_add(1);
      }
      Answer(fd, FrameType::kProduce, request.id);
    }
  });
  auto client = BrokerClient::Create({.endpoints = {peer.endpoint()}, .cluster = "busy"});
  ASSERT_TRUE(client.ok());
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::shared_ptr<PendingCall>> calls;
      for (int i = 0; i < kPerThread; ++i) {
        // Mostly small frames, every 16th a large one.
        const size_t body = (i + t) % 16 == 0 ? kLarge : 64 + static_cast<size_t>(i % 7) * 100;
        auto call = std::make_shared<PendingCall>();
        (*client)->CallWithFrame(FrameType::kProduce, LargeFrame(body), 60s,
                                 PendingCall::Completer(call));
        calls.push_back(std::move(call));
      }
      for (auto& call : calls) {
        auto result = call->Wait();
        if (result.has_value() && result->ok()) {
          answered.fetch_add(1);
        } else {
          failed.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(garbled.load(), 0) << "a frame arrived cut, garbled or twice";
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

// A periodic-mode broker writes a produce request that finds its store's writer idle on its
// I/O thread, and leaves the others to the writer: lone sends (each waits for its answer) and
// bursts from several producers at once, mixed, all arrive once and in per-key order, and
// are there after a restart.
TEST(DaemonClientTest, APeriodicBrokerKeepsOrderWhetherItsIoThreadOrItsWriterWrites) {
  auto broker =
      test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY, .flush_mode = "periodic"});
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string yaml = "environments:\n  test:\n    clusters:\n      main: " +
                           (*broker)->ClusterYaml("poll_wait_ms: 100") +
                           "\n    default_cluster: main\n";
  auto client = Client::Create({.config_yaml = yaml, .environment = "test"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  testing::Collector collector;
  auto sub = client->Subscribe("turns", "g", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();

  constexpr int kProducers = 4;
  constexpr int kPerProducer = 400;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      auto producer = client->CreateProducer("turns");
      if (!producer.ok()) {
        failed.fetch_add(kPerProducer);
        return;
      }
      for (int i = 0; i < kPerProducer; ++i) {
        Message message{.key = "p" + std::to_string(p), .body = std::to_string(i)};
        // Every tenth message waits for its answer; the others go in bursts.
        if (i % 10 == 9) {
          if (!producer->Send(std::move(message)).ok()) failed.fetch_add(1);
        } else {
          producer->SendAsync(std::move(message), [&](const Result<SendReceipt>& r) {
            if (!r.ok()) failed.fetch_add(1);
          });
        }
      }
      if (!producer->Close().ok()) failed.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failed.load(), 0);
  ASSERT_TRUE(collector.WaitForDistinct(kProducers * kPerProducer))
      << "received " << collector.distinct();
  // A key's messages share a queue: in its offset order they are in send order.
  std::map<std::string, std::map<int64_t, int>> by_key;
  for (const Message& m : collector.messages()) by_key[m.key][m.offset] = std::stoi(m.body);
  ASSERT_EQ(by_key.size(), static_cast<size_t>(kProducers));
  for (const auto& [key, bodies] : by_key) {
    ASSERT_EQ(bodies.size(), static_cast<size_t>(kPerProducer)) << key;
    int expected = 0;
    for (const auto& [offset, body] : bodies) ASSERT_EQ(body, expected++) << key << " @" << offset;
  }
  MSGSDK_EXPECT_OK(sub->Close());
  MSGSDK_EXPECT_OK(client->Close());

  // A graceful stop flushes: everything is there for a new group after the restart.
  MSGSDK_ASSERT_OK((*broker)->Stop());
  MSGSDK_ASSERT_OK((*broker)->Restart());
  auto again = Client::Create({.config_yaml = yaml, .environment = "test"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  testing::Collector replayed;
  auto replay = again->Subscribe("turns", "replay", [&](const Message& m) {
    replayed.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_TRUE(replayed.WaitForDistinct(kProducers * kPerProducer))
      << "received " << replayed.distinct();
  MSGSDK_EXPECT_OK(replay->Close());
  MSGSDK_EXPECT_OK(again->Close());
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
