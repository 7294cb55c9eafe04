// msgsdk-bench-kafka: the Kafka backend through the public API, against raw librdkafka on the
// same cluster, with the same settings, in the same run.
//
// A librdkafka mock cluster is started in-process (or --bootstrap names a real one). For each
// repeat:
//  - produce: raw librdkafka producer (idempotent, acks=all, linger 5 ms, murmur2_random:
//    the backend's defaults) vs Producer::SendAsync with a bounded window;
//  - consume: a raw KafkaConsumer group vs a Subscription whose handler only counts, each
//    reading what its own producer wrote, timed from the first record to the last (the group
//    join is not part of the figure).
// The table shows medians and the SDK/raw ratio. A benchmark, not a test: it prints figures
// and never fails on them.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include "msgsdk/msgsdk.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int64_t messages = 500000;
  size_t size = 100;
  int partitions = 32;
  int linger_ms = 5;
  int64_t window = 65536;
  int repeat = 3;
  std::string bootstrap;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// A counter a thread can wait on.
class Progress {
 public:
  void Add(int64_t n = 1) {
    if (done_.fetch_add(n, std::memory_order_relaxed) + n >= target_) {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
  }
  void Reset(int64_t target) {
    target_ = target;
    done_ = 0;
  }
  bool Wait(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return done_.load() >= target_; });
  }
  int64_t done() const { return done_.load(); }

 private:
  std::atomic<int64_t> done_{0};
  int64_t target_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

std::unique_ptr<RdKafka::Conf> RawConf(const Flags& flags) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string errstr;
  conf->set("bootstrap.servers", flags.bootstrap, errstr);
  conf->set("log_level", "3", errstr);
  return conf;
}

class CountingReports : public RdKafka::DeliveryReportCb {
 public:
  explicit CountingReports(Progress& progress) : progress_(progress) {}
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) ++failed;
    progress_.Add();
  }
  std::atomic<int64_t> failed{0};

 private:
  Progress& progress_;
};

// Raw librdkafka with the backend's producer defaults.
double RawProduce(const Flags& flags, const std::string& topic) {
  Progress progress;
  progress.Reset(flags.messages);
  CountingReports reports(progress);
  auto conf = RawConf(flags);
  std::string errstr;
  conf->set("enable.idempotence", "true", errstr);
  conf->set("acks", "all", errstr);
  conf->set("linger.ms", std::to_string(flags.linger_ms), errstr);
  conf->set("partitioner", "murmur2_random", errstr);
  conf->set("queue.buffering.max.messages", "1000000", errstr);
  conf->set("dr_cb", &reports, errstr);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), errstr));
  const std::string body(flags.size, 'x');
  const auto start = Clock::now();
  for (int64_t i = 0; i < flags.messages; ++i) {
    while (i - progress.done() >= flags.window) producer->poll(1);
    while (producer->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                             const_cast<char*>(body.data()), body.size(), nullptr, 0, 0,
                             nullptr) == RdKafka::ERR__QUEUE_FULL) {
      producer->poll(1);
    }
    producer->poll(0);
  }
  producer->flush(60000);
  const double rate = flags.messages / Seconds(Clock::now() - start);
  if (reports.failed > 0)
    std::fprintf(stderr, "raw produce: %lld failed\n",
                 static_cast<long long>(reports.failed.load()));
  return rate;
}

double SdkProduce(const Flags& flags, msgsdk::Client& client, const std::string& topic) {
  auto producer = client.CreateProducer(topic);
  if (!producer.ok()) {
    std::fprintf(stderr, "CreateProducer: %s\n", producer.status().ToString().c_str());
    return 0;
  }
  Progress progress;
  progress.Reset(flags.messages);
  std::atomic<int64_t> failed{0};
  const std::string body(flags.size, 'x');
  const auto start = Clock::now();
  for (int64_t i = 0; i < flags.messages; ++i) {
    while (i - progress.done() >= flags.window) std::this_thread::yield();
    producer->SendAsync({.body = body}, [&](const msgsdk::Result<msgsdk::SendReceipt>& r) {
      if (!r.ok()) ++failed;
      progress.Add();
    });
  }
  progress.Wait(std::chrono::seconds(120));
  const double rate = flags.messages / Seconds(Clock::now() - start);
  if (failed > 0)
    std::fprintf(stderr, "sdk produce: %lld failed\n", static_cast<long long>(failed.load()));
  producer->Close().IgnoreError();
  return rate;
}

double RawConsume(const Flags& flags, const std::string& topic, const std::string& group) {
  auto conf = RawConf(flags);
  std::string errstr;
  conf->set("group.id", group, errstr);
  conf->set("auto.offset.reset", "earliest", errstr);
  conf->set("enable.auto.commit", "true", errstr);
  conf->set("partition.assignment.strategy", "cooperative-sticky", errstr);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), errstr));
  consumer->subscribe({topic});
  int64_t received = 0;
  Clock::time_point first;
  const auto give_up = Clock::now() + std::chrono::seconds(120);
  while (received < flags.messages && Clock::now() < give_up) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(100));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    if (received++ == 0) first = Clock::now();
  }
  const double rate = received / Seconds(Clock::now() - first);
  consumer->close();
  return rate;
}

double SdkConsume(const Flags& flags, msgsdk::Client& client, const std::string& topic,
                  const std::string& group) {
  Progress progress;
  progress.Reset(flags.messages);
  std::atomic<int64_t> first_ns{0};
  auto subscription = client.Subscribe(topic, group, [&](const msgsdk::Message&) {
    int64_t zero = 0;
    first_ns.compare_exchange_strong(zero, Clock::now().time_since_epoch().count());
    progress.Add();
    return msgsdk::ConsumeResult::kSuccess;
  });
  if (!subscription.ok()) {
    std::fprintf(stderr, "Subscribe: %s\n", subscription.status().ToString().c_str());
    return 0;
  }
  progress.Wait(std::chrono::seconds(120));
  const auto first = Clock::time_point(Clock::duration(first_ns.load()));
  const double rate = progress.done() / Seconds(Clock::now() - first);
  subscription->Close().IgnoreError();
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Kafka backend vs raw librdkafka on one cluster, in one run."};
  app.add_option("--messages", flags.messages, "Messages per case");
  app.add_option("--size", flags.size, "Body bytes");
  app.add_option("--partitions", flags.partitions, "Partitions of the benchmark topics");
  app.add_option("--linger-ms", flags.linger_ms, "Producer linger (both sides)");
  app.add_option("--window", flags.window, "Sends in flight at most (both sides)");
  app.add_option("--repeat", flags.repeat, "Repetitions; the table shows medians");
  app.add_option("--bootstrap", flags.bootstrap,
                 "A Kafka cluster to use instead of an in-process mock cluster");
  CLI11_PARSE(app, argc, argv);

  rd_kafka_t* owner = nullptr;
  rd_kafka_mock_cluster_t* mock = nullptr;
  if (flags.bootstrap.empty()) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    mock = rd_kafka_mock_cluster_new(owner, 1);
    flags.bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
  }

  std::string yaml = "environments:\n  bench:\n    clusters:\n      kafka:\n";
  yaml.append("        backend: kafka\n        bootstrap: \"").append(flags.bootstrap);
  yaml.append("\"\n        linger_ms: ").append(std::to_string(flags.linger_ms));
  yaml.append("\n        delivery_timeout_ms: 60000\n        partitions: ");
  yaml.append(std::to_string(flags.partitions));
  yaml.append(
      "\n    default_cluster: kafka\nclient:\n  send_timeout_ms: 60000\n"
      "  max_inflight: 20000\n");
  auto client = msgsdk::Client::Create({.config_yaml = yaml, .environment = "bench"});
  if (!client.ok()) {
    std::fprintf(stderr, "Client::Create: %s\n", client.status().ToString().c_str());
    return 1;
  }

  std::vector<double> raw_produce, sdk_produce, raw_consume, sdk_consume;
  for (int r = 0; r < flags.repeat; ++r) {
    std::string raw_topic = "bench-raw-";
    raw_topic.append(std::to_string(r));
    std::string sdk_topic = "bench-sdk-";
    sdk_topic.append(std::to_string(r));
    if (mock != nullptr) {
      rd_kafka_mock_topic_create(mock, raw_topic.c_str(), flags.partitions, 1);
      rd_kafka_mock_topic_create(mock, sdk_topic.c_str(), flags.partitions, 1);
    }
    raw_produce.push_back(RawProduce(flags, raw_topic));
    sdk_produce.push_back(SdkProduce(flags, *client, sdk_topic));
    raw_consume.push_back(RawConsume(flags, raw_topic, raw_topic));
    sdk_consume.push_back(SdkConsume(flags, *client, sdk_topic, sdk_topic));
    std::fprintf(stderr, "repeat %d: produce raw %.0f sdk %.0f, consume raw %.0f sdk %.0f\n", r,
                 raw_produce.back(), sdk_produce.back(), raw_consume.back(), sdk_consume.back());
  }
  client->Close().IgnoreError();

  std::printf(
      "Kafka backend vs raw librdkafka, %zu B bodies, %lld messages, %d partitions, "
      "linger %d ms, median of %d\n",
      flags.size, static_cast<long long>(flags.messages), flags.partitions, flags.linger_ms,
      flags.repeat);
  std::printf("%-10s %14s %14s %8s\n", "case", "raw msgs/s", "sdk msgs/s", "ratio");
  const double rp = Median(raw_produce), sp = Median(sdk_produce);
  const double rc = Median(raw_consume), sc = Median(sdk_consume);
  std::printf("%-10s %14.0f %14.0f %8.2f\n", "produce", rp, sp, rp > 0 ? sp / rp : 0);
  std::printf("%-10s %14.0f %14.0f %8.2f\n", "consume", rc, sc, rc > 0 ? sc / rc : 0);

  if (mock != nullptr) rd_kafka_mock_cluster_destroy(mock);
  if (owner != nullptr) rd_kafka_destroy(owner);
  return 0;
}
