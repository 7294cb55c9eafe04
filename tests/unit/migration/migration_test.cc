// A topic moving between two clusters while producers send and ordered consumers read, with the
// routing file as the only lever: dual writes, the cutover with its drain, the move to B, and a
// rollback. Nothing acknowledged is lost, nothing reaches a handler twice, per-key order holds.
// The test plays the migration controller: it advances a phase only once every client reports
// the previous one settled, and computes the drain offsets from the cluster being left.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "api/default_registry.h"
#include "core/routing/routing_table.h"
#include "msgsdk/msgsdk.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"
#if defined(MSGSDK_MIGRATION_KAFKA)
#include "fixtures/kafka_fixture.h"
#endif
#if defined(MSGSDK_MIGRATION_REDIS)
#include "fixtures/redis_fixture.h"
#endif

namespace msgsdk {
namespace {

using namespace std::chrono_literals;

constexpr char kTopic[] = "orders";
constexpr int kKeys = 8;

// What a handler saw, checked for loss, duplicates and per-key order.
class OrderedLedger {
 public:
  void Add(const Message& message) {
    std::lock_guard lock(mutex_);
    ++count_by_id_[message.message_id];
    ++by_cluster_[message.cluster];
    const int seq = std::stoi(message.body);
    auto [last, inserted] = last_seq_.try_emplace(message.key, seq);
    if (!inserted) {
      if (seq <= last->second) {
        order_violations_.push_back(message.key + ": " + std::to_string(seq) + " after " +
                                    std::to_string(last->second));
      }
      last->second = seq;
    }
    changed_.notify_all();
  }
  bool WaitFor(const std::set<std::string>& ids, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const auto& id : ids) {
        if (count_by_id_.count(id) == 0) return false;
      }
      return true;
    });
  }
  std::map<std::string, int> counts() const {
    std::lock_guard lock(mutex_);
    return count_by_id_;
  }
  std::vector<std::string> order_violations() const {
    std::lock_guard lock(mutex_);
    return order_violations_;
  }
  std::map<std::string, int> by_cluster() const {
    std::lock_guard lock(mutex_);
    return by_cluster_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, int> count_by_id_;
  std::map<std::string, int> last_seq_;
  std::map<std::string, int> by_cluster_;
  std::vector<std::string> order_violations_;
};

// A cluster of one backend for the test, started by its fixture.
class TestCluster {
 public:
  virtual ~TestCluster() = default;
  // The lines of its entry in an environment's `clusters:` map, named `name`.
  virtual std::string Entry(const std::string& name) const = 0;
};

class NativeCluster : public TestCluster {
 public:
  std::string Entry(const std::string& name) const override {
    return "      " + name + ": { backend: native, data_dir: " + dir_.str() + " }\n";
  }

 private:
  testing::TempDir dir_{"msgsdk-migration"};
};

#if defined(MSGSDK_MIGRATION_KAFKA)
class KafkaCluster : public TestCluster {
 public:
  KafkaCluster() {
    auto cluster = testing::KafkaMockCluster::Start(1);
    EXPECT_TRUE(cluster.ok()) << cluster.status().ToString();
    if (cluster.ok()) cluster_ = std::move(cluster).value();
  }
  std::string Entry(const std::string& name) const override {
    return cluster_ ? cluster_->ClusterYaml(name) : "";
  }

 private:
  std::unique_ptr<testing::KafkaMockCluster> cluster_;
};
#endif

#if defined(MSGSDK_MIGRATION_REDIS)
class RedisCluster : public TestCluster {
 public:
  RedisCluster() {
    auto server = test::RedisServer::Start();
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (server.ok()) server_ = std::move(server).value();
  }
  std::string Entry(const std::string& name) const override {
    return server_ ? "      " + name + ": " + server_->ClusterYaml() + "\n" : "";
  }

 private:
  std::unique_ptr<test::RedisServer> server_;
};
#endif

std::unique_ptr<TestCluster> MakeCluster(const std::string& backend) {
#if defined(MSGSDK_MIGRATION_KAFKA)
  if (backend == "kafka") return std::make_unique<KafkaCluster>();
#endif
#if defined(MSGSDK_MIGRATION_REDIS)
  if (backend == "redis") return std::make_unique<RedisCluster>();
#endif
  return std::make_unique<NativeCluster>();
}

// The parameter: the backends of `from` and `to`, "native_to_kafka".
struct Pair {
  std::string from;
  std::string to;
};

class MigrationTest : public ::testing::TestWithParam<Pair> {
 protected:
  void SetUp() override {
    a_ = MakeCluster(GetParam().from);
    b_ = MakeCluster(GetParam().to);
  }

  std::string Clusters() const {
    return "environments:\n"
           "  prod:\n"
           "    clusters:\n" +
           a_->Entry("a") + b_->Entry("b") +
           "    topics:\n"
           "      orders: { cluster: a }\n"
           "client: { retry_backoff_ms: 10, retry_backoff_max_ms: 100 }\n";
  }

  // Writes version `version` with the topic in `phase` (and `drain`, if any).
  void Write(const std::string& phase, int64_t generation,
             const std::map<int32_t, int64_t>& drain = {}) {
    ++version_;
    std::string entry = "  orders: { from: a, to: b, phase: " + phase +
                        ", generation: " + std::to_string(generation);
    if (!drain.empty()) {
      entry += ", drain: {";
      for (const auto& [partition, offset] : drain) {
        entry += " " + std::to_string(partition) + ": " + std::to_string(offset) + ",";
      }
      entry.back() = ' ';
      entry += "}";
    }
    entry += " }\n";
    const auto staged = dir_.path() / "routing.yaml.new";
    std::ofstream(staged) << "version: " << version_ << "\n"
                          << Clusters() << "migrations:\n"
                          << entry;
    ASSERT_EQ(std::rename(staged.c_str(), path().c_str()), 0);
  }

  std::string path() const { return (dir_.path() / "routing.yaml").string(); }

  // Waits until every client runs the latest version and reports the topic in `phase` with
  // its producers settled: what the controller waits for before it computes the drain or
  // takes the next step.
  void WaitUntilSettled(std::vector<Client*> clients, const std::string& phase) {
    for (Client* client : clients) {
      ASSERT_TRUE(testing::WaitUntil(
          [&] {
            auto state = client->Routing();
            if (!state.ok() || state->version != version_) return false;
            for (const auto& migration : state->migrations) {
              if (migration.topic == kTopic) {
                return migration.phase == phase && migration.producers_settled;
              }
            }
            return true;  // a client without producers or subscriptions of the topic
          },
          20s))
          << "a client did not settle in " << phase;
    }
  }

  // Where consumers may leave `cluster`: the end of each of its partitions now that no
  // producer writes primary copies there any more.
  std::map<int32_t, int64_t> EndOffsets(const std::string& cluster) {
    const auto registry = internal::DefaultBackendRegistry();
    auto table = core::RoutingTable::Parse(Clusters(), "clusters", *registry);
    EXPECT_TRUE(table.ok()) << table.status().ToString();
    const core::ClusterConfig& config = (*table)->environments().at("prod").clusters.at(cluster);
    auto factory = registry->Find(config.backend);
    auto backend = (*factory)->Create(config);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    auto positions = (*backend)->Positions({.topic = kTopic, .group = "controller"});
    EXPECT_TRUE(positions.ok()) << positions.status().ToString();
    std::map<int32_t, int64_t> drain;
    for (const auto& position : *positions) drain[position.partition] = position.end;
    (*backend)->Close(std::chrono::steady_clock::now() + 5s).IgnoreError();
    return drain;
  }

  // Draining subscriptions reported by `client`.
  static std::string Draining(const Client& client) {
    auto state = client.Routing();
    std::string text;
    if (!state.ok()) return state.status().ToString();
    for (const auto& migration : state->migrations) {
      for (const auto& line : migration.draining) text += line + "\n";
    }
    return text;
  }

  testing::TempDir dir_;
  std::unique_ptr<TestCluster> a_;
  std::unique_ptr<TestCluster> b_;
  int64_t version_ = 0;
};

// Sends keyed, numbered messages until stopped; records what was acknowledged.
class Sender {
 public:
  explicit Sender(Producer& producer) : producer_(producer) {
    thread_ = std::thread([this] {
      for (int seq = 0; running_.load(); ++seq) {
        auto receipt =
            producer_.Send({.key = "k" + std::to_string(seq % kKeys), .body = std::to_string(seq)});
        std::lock_guard lock(mutex_);
        if (receipt.ok()) {
          acknowledged_.insert(receipt->message_id);
        } else {
          failures_.push_back(receipt.status().ToString());
        }
      }
    });
  }
  ~Sender() { Stop(); }
  void Stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  // Waits until `n` more sends were acknowledged.
  bool Progress(size_t n) {
    size_t start;
    {
      std::lock_guard lock(mutex_);
      start = acknowledged_.size();
    }
    return testing::WaitUntil([&] {
      std::lock_guard lock(mutex_);
      return acknowledged_.size() >= start + n;
    });
  }
  std::set<std::string> acknowledged() const {
    std::lock_guard lock(mutex_);
    return acknowledged_;
  }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  Producer& producer_;
  std::atomic<bool> running_{true};
  mutable std::mutex mutex_;
  std::set<std::string> acknowledged_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

void ExpectExactlyOnceInOrder(const OrderedLedger& ledger, const std::set<std::string>& sent) {
  const auto counts = ledger.counts();
  size_t lost = 0;
  size_t duplicated = 0;
  for (const auto& id : sent) {
    auto it = counts.find(id);
    if (it == counts.end()) {
      ++lost;
    } else if (it->second > 1) {
      ++duplicated;
    }
  }
  const auto violations = ledger.order_violations();
  std::printf("%zu acknowledged, %zu handled, %zu lost, %zu handled twice, %zu order violations\n",
              sent.size(), counts.size(), lost, duplicated, violations.size());
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(counts.size(), sent.size()) << "handled messages nobody acknowledged";
  EXPECT_TRUE(violations.empty()) << violations.front();
}

TEST_P(MigrationTest, TopicMovesToBUnderLoadWithoutLossDuplicatesOrReordering) {
  Write("A", 0);
  auto producer_client = Client::Create({.config_path = path(), .client_id = "producer"});
  auto consumer_client = Client::Create({.config_path = path(), .client_id = "consumer"});
  ASSERT_TRUE(producer_client.ok()) << producer_client.status().ToString();
  ASSERT_TRUE(consumer_client.ok()) << consumer_client.status().ToString();
  OrderedLedger ordered;
  auto subscription = consumer_client->Subscribe(kTopic, "billing",
                                                 [&](const Message& m) {
                                                   ordered.Add(m);
                                                   return ConsumeResult::kSuccess;
                                                 },
                                                 {.ordered = true});
  ASSERT_TRUE(subscription.ok()) << subscription.status().ToString();
  auto producer = producer_client->CreateProducer(kTopic);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  Sender sender(*producer);
  ASSERT_TRUE(sender.Progress(100));
  std::vector<Client*> clients = {&*producer_client, &*consumer_client};

  Write("dual_write", 1);
  WaitUntilSettled(clients, "dual_write");
  ASSERT_TRUE(sender.Progress(100));

  Write("cutover", 2);
  WaitUntilSettled(clients, "cutover");
  ASSERT_TRUE(sender.Progress(100));
  // The consumers stay on `a` until the drain offsets are known.
  EXPECT_NE(Draining(*consumer_client).find("reads 'a'"), std::string::npos)
      << Draining(*consumer_client);
  Write("cutover", 2, EndOffsets("a"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Draining(*consumer_client).empty(); }, 20s))
      << Draining(*consumer_client);
  ASSERT_TRUE(sender.Progress(100));

  Write("B", 3);
  WaitUntilSettled(clients, "B");
  ASSERT_TRUE(sender.Progress(100));
  sender.Stop();
  EXPECT_TRUE(sender.failures().empty()) << sender.failures().front();

  const std::set<std::string> sent = sender.acknowledged();
  ASSERT_TRUE(ordered.WaitFor(sent, 30s)) << Draining(*consumer_client);
  ExpectExactlyOnceInOrder(ordered, sent);
  EXPECT_GT(ordered.by_cluster()["a"], 0);
  EXPECT_GT(ordered.by_cluster()["b"], 0);
}

TEST_P(MigrationTest, CutoverRolledBackDrainsBAndReturnsToA) {
  Write("A", 0);
  auto client = Client::Create({.config_path = path(), .client_id = "both"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  OrderedLedger ordered;
  OrderedLedger plain;
  auto billing = client->Subscribe(kTopic, "billing",
                                   [&](const Message& m) {
                                     ordered.Add(m);
                                     return ConsumeResult::kSuccess;
                                   },
                                   {.ordered = true});
  ASSERT_TRUE(billing.ok()) << billing.status().ToString();
  auto audit = client->Subscribe(kTopic, "audit", [&](const Message& m) {
    plain.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  auto producer = client->CreateProducer(kTopic);
  ASSERT_TRUE(producer.ok());
  Sender sender(*producer);
  std::vector<Client*> clients = {&*client};

  Write("dual_write", 1);
  WaitUntilSettled(clients, "dual_write");
  ASSERT_TRUE(sender.Progress(100));
  Write("cutover", 2);
  WaitUntilSettled(clients, "cutover");
  Write("cutover", 2, EndOffsets("a"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Draining(*client).empty(); }, 20s))
      << Draining(*client);
  ASSERT_TRUE(sender.Progress(100));

  // Back: primary copies go to `a` again; the groups drain `b` first.
  Write("dual_write", 3);
  WaitUntilSettled(clients, "dual_write");
  ASSERT_TRUE(sender.Progress(100));
  EXPECT_NE(Draining(*client).find("reads 'b'"), std::string::npos) << Draining(*client);
  Write("dual_write", 3, EndOffsets("b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Draining(*client).empty(); }, 20s))
      << Draining(*client);
  ASSERT_TRUE(sender.Progress(100));
  Write("A", 4);
  WaitUntilSettled(clients, "A");
  ASSERT_TRUE(sender.Progress(100));
  sender.Stop();
  EXPECT_TRUE(sender.failures().empty()) << sender.failures().front();

  const std::set<std::string> sent = sender.acknowledged();
  ASSERT_TRUE(ordered.WaitFor(sent, 30s)) << Draining(*client);
  ASSERT_TRUE(plain.WaitFor(sent, 30s)) << Draining(*client);
  ExpectExactlyOnceInOrder(ordered, sent);
  const auto counts = plain.counts();
  for (const auto& id : sent) EXPECT_EQ(counts.count(id) ? counts.at(id) : 0, 1) << id;
  EXPECT_GT(ordered.by_cluster()["b"], 0);
}

std::vector<Pair> Pairs() {
  std::vector<Pair> pairs = {{"native", "native"}};
#if defined(MSGSDK_MIGRATION_KAFKA)
  pairs.push_back({"native", "kafka"});
#endif
#if defined(MSGSDK_MIGRATION_KAFKA) && defined(MSGSDK_MIGRATION_REDIS)
  pairs.push_back({"kafka", "redis"});
#endif
#if defined(MSGSDK_MIGRATION_REDIS)
  pairs.push_back({"redis", "native"});
#endif
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(Pairs, MigrationTest, ::testing::ValuesIn(Pairs()),
                         [](const ::testing::TestParamInfo<Pair>& info) {
                           return info.param.from + "_to_" + info.param.to;
                         });

}  // namespace
}  // namespace msgsdk
