// The public API's answers to bad input and its lifecycle rules, on the embedded default.

#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "msgsdk/msgsdk.h"
#include "testing/dropped_client.h"
#include "testing/status_macros.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk {
namespace {

std::string NativeYaml(const std::string& data_dir, const std::string& extra_topics = "") {
  return "environments:\n"
         "  dev:\n"
         "    clusters:\n"
         "      local: { backend: native, data_dir: " +
         data_dir + " }\n" + extra_topics;
}

TEST(ClientTest, NoConfigurationUsesTheEmbeddedDefault) {
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto route = client->Describe("anything");
  ASSERT_TRUE(route.ok()) << route.status().ToString();
  EXPECT_EQ(route->environment, "local");
  EXPECT_EQ(route->cluster, "embedded");
  EXPECT_EQ(route->matched_by, "default_cluster");
  EXPECT_EQ(route->capabilities.backend, "native");
  auto producer = client->CreateProducer("hello");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  ASSERT_TRUE(producer->Send({.body = "world"}).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "LOCK"));
}

TEST(ClientTest, UnknownTopicWithoutDefaultClusterIsNotFound) {
  testing::TempDir dir;
  auto client = Client::Create(
      {.config_yaml = NativeYaml(dir.str(), "    topics:\n      orders: { cluster: local }\n")});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE(client->CreateProducer("orders").ok());
  auto missing = client->CreateProducer("payments");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("payments"), std::string::npos);
  EXPECT_NE(missing.status().message().find("dev"), std::string::npos);
}

TEST(ClientTest, InvalidConfigNamesFileLineAndField) {
  testing::TempDir dir;
  const auto path = dir.path() / "routing.yaml";
  std::ofstream(path) << "environments:\n"
                         "  dev:\n"
                         "    clusters:\n"
                         "      local: { backend: native, flush_mode: sometimes }\n";
  auto client = Client::Create({.config_path = path.string()});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  const std::string message = client.status().message();
  EXPECT_NE(message.find("routing.yaml:4:"), std::string::npos) << message;
  EXPECT_NE(message.find("flush_mode"), std::string::npos) << message;
}

TEST(ClientTest, UnreadableConfigIsAClearError) {
  auto client = Client::Create({.config_path = "/nonexistent/msgsdk/routing.yaml"});
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.status().message().find("/nonexistent/msgsdk/routing.yaml"), std::string::npos);
}

TEST(ClientTest, EnvironmentComesFromMsgsdkEnv) {
  testing::TempDir dir;
  const std::string yaml =
      "environments:\n"
      "  prod:\n"
      "    clusters: { a: { backend: native, data_dir: " +
      dir.str() +
      "/a } }\n"
      "    default_cluster: a\n"
      "  test:\n"
      "    clusters: { b: { backend: native, data_dir: " +
      dir.str() +
      "/b } }\n"
      "    default_cluster: b\n";
  setenv("MSGSDK_ENV", "test", 1);
  auto client = Client::Create({.config_yaml = yaml});
  unsetenv("MSGSDK_ENV");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ(client->environment(), "test");
  EXPECT_EQ(client->Describe("x")->cluster, "b");
  auto prod = Client::Create({.config_yaml = yaml, .environment = "prod"});
  ASSERT_TRUE(prod.ok());
  EXPECT_EQ(prod->Describe("x")->cluster, "a");
  auto missing = Client::Create({.config_yaml = yaml, .environment = "staging"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("staging"), std::string::npos);
}

TEST(ClientTest, DataDirectoryThatCannotBeCreated) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "file") << "not a directory";
  auto client = Client::Create({.data_dir = (dir.path() / "file" / "data").string()});
  ASSERT_TRUE(client.ok());
  auto producer = client->CreateProducer("t");
  ASSERT_FALSE(producer.ok());
  EXPECT_NE(producer.status().message().find("file/data"), std::string::npos)
      << producer.status().ToString();
}

TEST(ClientTest, DataDirectoryLockedByAnotherProcess) {
  testing::TempDir dir;
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto client = Client::Create({.data_dir = dir.str()});
    auto producer = client.ok() ? client->CreateProducer("t") : Result<Producer>(client.status());
    char byte = producer.ok() ? 'y' : 'n';
    (void)!write(ready[1], &byte, 1);
    (void)!read(release[0], &byte, 1);
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  auto producer = client->CreateProducer("t");
  EXPECT_EQ(producer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(producer.status().message().find("locked"), std::string::npos)
      << producer.status().ToString();
  (void)!write(release[1], &byte, 1);
  int status = 0;
  waitpid(child, &status, 0);
}

TEST(ClientTest, ClientsOfOneProcessShareADataDirectory) {
  testing::TempDir dir;
  auto a = Client::Create({.data_dir = dir.str()});
  auto b = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(a.ok() && b.ok());
  auto producer = a->CreateProducer("shared");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  ASSERT_TRUE(producer->Send({.body = "one"}).ok());
  testing::Collector collector;
  auto sub = b->Subscribe("shared", "g", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  EXPECT_TRUE(collector.WaitForDistinct(1));
}

TEST(ClientTest, ClosedClientRefusesWorkAndCloseIsIdempotent) {
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  auto producer = client->CreateProducer("t");
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE(client->Close().ok());
  ASSERT_TRUE(client->Close().ok());
  EXPECT_EQ(client->CreateProducer("t").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(producer->Send({.body = "x"}).status().code(), StatusCode::kFailedPrecondition);
  std::atomic<bool> called{false};
  producer->SendAsync({.body = "x"}, [&](const Result<SendReceipt>& r) {
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
    called = true;
  });
  EXPECT_TRUE(called);  // no pool any more: the callback ran inline
}

// A callback may let go of everything, the client included: its callback thread then ends
// once the callback returns, and nothing waits for itself.
TEST(ClientTest, ASendCallbackMayDropTheLastHandlesOfItsClient) {
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  auto producer = client->CreateProducer("t");
  ASSERT_TRUE(producer.ok());
  MSGSDK_EXPECT_OK(testing::SendFromACallbackThatDropsItsClient(std::move(client).value(),
                                                                std::move(producer).value()));
}

// A send callback that drops the last handle of its producer while more of that producer's
// callbacks wait behind it, then sends through another producer (which reuses the first
// producer's send records): the waiting callbacks still run, each with its receipt.
TEST(ClientTest, ACallbackMayDropItsProducerWhileItsOtherCallbacksWait) {
  constexpr int kSends = 1000;
  // Declared before the client, so that they outlive its callbacks should the test fail.
  std::promise<void> all_sent;
  const std::shared_future<void> sent = all_sent.get_future().share();
  std::atomic<bool> dropping{false};
  std::mutex mutex;
  std::condition_variable changed;
  int first_done = 0;
  int other_done = 0;
  std::vector<std::string> failures;
  auto check = [&](const Result<SendReceipt>& r, int& done) {
    std::lock_guard lock(mutex);
    if (!r.ok()) {
      failures.push_back(r.status().ToString());
    } else if (r->cluster != "embedded" || r->message_id.empty()) {
      failures.push_back("receipt of cluster '" + r->cluster + "', id '" + r->message_id + "'");
    }
    ++done;
    changed.notify_all();
  };
  std::optional<Producer> dropped;
  std::optional<Producer> other;
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  auto first = client->CreateProducer("first");
  ASSERT_TRUE(first.ok());
  dropped.emplace(std::move(first).value());
  auto second = client->CreateProducer("other");
  ASSERT_TRUE(second.ok());
  other.emplace(std::move(second).value());
  for (int i = 0; i < kSends; ++i) {
    dropped->SendAsync({.body = "m" + std::to_string(i)}, [&](const Result<SendReceipt>& r) {
      if (!dropping.exchange(true)) {
        // Once every send is out, so that more callbacks wait behind this one.
        EXPECT_EQ(sent.wait_for(std::chrono::seconds(20)), std::future_status::ready);
        dropped.reset();
        for (int j = 0; j < 2 * kSends; ++j) {
          other->SendAsync({.body = "o"},
                           [&](const Result<SendReceipt>& o) { check(o, other_done); });
        }
      }
      check(r, first_done);
    });
  }
  all_sent.set_value();
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(30),
                               [&] { return first_done == kSends && other_done == 2 * kSends; }))
      << first_done << " and " << other_done << " callbacks ran";
  EXPECT_TRUE(failures.empty()) << failures.front();
}

TEST(ClientTest, MovedFromHandlesSayWhy) {
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  Client moved = std::move(client).value();
  auto producer = moved.CreateProducer("t");
  ASSERT_TRUE(producer.ok());
  Producer p = std::move(producer).value();
  Producer q = std::move(p);
  EXPECT_EQ(p.Send({.body = "x"}).status().code(), StatusCode::kFailedPrecondition);  // NOLINT
  EXPECT_TRUE(q.Send({.body = "x"}).ok());
}

TEST(ClientTest, SendBatchReturnsReceiptsInOrder) {
  testing::TempDir dir;
  auto client = Client::Create({.data_dir = dir.str()});
  ASSERT_TRUE(client.ok());
  auto producer = client->CreateProducer("batch");
  ASSERT_TRUE(producer.ok());
  std::vector<Message> batch;
  for (int i = 0; i < 100; ++i) batch.push_back({.key = "k", .body = std::to_string(i)});
  auto receipts = producer->SendBatch(std::move(batch));
  ASSERT_TRUE(receipts.ok()) << receipts.status().ToString();
  ASSERT_EQ(receipts->size(), 100u);
  for (size_t i = 1; i < receipts->size(); ++i) {
    EXPECT_LT((*receipts)[i - 1].message_id, (*receipts)[i].message_id);
    EXPECT_EQ((*receipts)[i].partition, (*receipts)[0].partition);  // one key, one queue
    EXPECT_EQ((*receipts)[i].offset, (*receipts)[i - 1].offset + 1);
  }
  std::vector<Message> with_bad = {{.body = "fine"}, {.body = ""}};
  EXPECT_EQ(producer->SendBatch(std::move(with_bad)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace msgsdk
