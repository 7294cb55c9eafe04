// Interop with a Kafka client nobody here wrote: kcat reads what the backend writes (headers
// included), and a record kcat writes is delivered by the backend.

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backends/kafka/kafka_backend.h"
#include "backends/kafka/kafka_mapping.h"
#include "fixtures/kafka_fixture.h"
#include "unit/kafka/test_sink.h"

namespace msgsdk::kafka {
namespace {

using namespace std::chrono_literals;

bool HaveKcat() { return std::system("command -v kcat >/dev/null 2>&1") == 0; }

// Runs `command` and returns its standard output.
std::string RunAndRead(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// Runs `command` with `input` on its standard input; returns its exit status.
int RunWithInput(const std::string& command, const std::string& input) {
  FILE* pipe = popen(command.c_str(), "w");
  if (pipe == nullptr) return -1;
  fwrite(input.data(), 1, input.size(), pipe);
  return pclose(pipe);
}

class KafkaInteropTest : public testing::KafkaClusterTest {
 protected:
  void SetUp() override {
    if (!HaveKcat()) GTEST_SKIP() << "kcat is not installed (Debian package kcat)";
    KafkaClusterTest::SetUp();
  }
  void TearDown() override {
    if (backend_) backend_->Close(std::chrono::steady_clock::now() + 5s).IgnoreError();
    KafkaClusterTest::TearDown();
  }
  core::Backend& Backend() {
    if (!backend_) {
      auto config = cluster().ClusterConfig();
      EXPECT_TRUE(config.ok()) << config.status().ToString();
      auto created = MakeKafkaBackendFactory()->Create(*config);
      EXPECT_TRUE(created.ok()) << created.status().ToString();
      backend_ = *created;
    }
    return *backend_;
  }

 private:
  core::BackendPtr backend_;
};

TEST_F(KafkaInteropTest, KcatReadsOurRecordsWithTheirHeaders) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  auto producer = Backend().CreateProducer(topic);
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  Message m;
  m.key = "order-42";
  m.tag = "created";
  m.body = "hello kcat";
  m.properties = {{"trace", "abc"}};
  m.message_id = "0123456789abcdef0123456789abcdef";
  m.born_at = FromEpochMicros(1700000000123456);
  std::promise<Result<core::StoredPosition>> done;
  (*producer)->Send(m, [&done](Result<core::StoredPosition> r) { done.set_value(std::move(r)); });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  ASSERT_TRUE(future.get().ok());
  ASSERT_TRUE((*producer)->Close(std::chrono::steady_clock::now() + 5s).ok());

  const std::string out = RunAndRead("kcat -b " + cluster().bootstrap() + " -C -t " + topic +
                                     " -e -q -f '%k|%T|%h|%s\\n' 2>/dev/null");
  EXPECT_EQ(out,
            "order-42|1700000000123|msgsdk-id=0123456789abcdef0123456789abcdef,"
            "msgsdk-tag=created,msgsdk-born-at=1700000000123456,trace=abc|hello kcat\n");
}

TEST_F(KafkaInteropTest, RecordWrittenByKcatIsDelivered) {
  const std::string topic = UniqueTopic();
  ASSERT_TRUE(cluster().CreateTopic(topic, 1).ok());
  ASSERT_EQ(RunWithInput("kcat -b " + cluster().bootstrap() + " -P -t " + topic +
                             " -k customer-7 -H trace=xyz -H msgsdk-tag=paid 2>/dev/null",
                         "from kcat\n"),
            0);
  testing::TestSink sink;
  core::SubscriptionSpec spec;
  spec.topic = topic;
  spec.group = "interop";
  auto consumer = Backend().Subscribe(spec, sink);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  sink.set_consumer(consumer->get());
  ASSERT_TRUE(sink.WaitForDeliveries(1));
  const Message m = sink.deliveries()[0].message;
  EXPECT_EQ(m.body, "from kcat");
  EXPECT_EQ(m.key, "customer-7");
  EXPECT_EQ(m.tag, "paid") << "a tag header set by any client counts";
  EXPECT_EQ(m.properties, (Properties{{"trace", "xyz"}}));
  EXPECT_EQ(m.message_id.size(), 32u);
  EXPECT_GT(m.born_at.time_since_epoch().count(), 0);
  EXPECT_TRUE((*consumer)->Close(std::chrono::steady_clock::now() + 10s).ok());
}

}  // namespace
}  // namespace msgsdk::kafka
