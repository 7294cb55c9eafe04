// msgsdk-bench-kafka: the Kafka backend through the public API, against raw librdkafka on the
// same mock cluster, with the same settings, in the same run.
//
// A librdkafka mock cluster (one broker, the test fixture's) is started in this process and
// destroyed at the end. Both sides get their librdkafka configuration from the same place: the
// backend's own cluster settings (the fixture's properties with the backend's defaults, plus
// delivery_timeout_ms = --delivery-timeout-ms so a loaded machine does not fail sends), turned
// into librdkafka properties by the backend's MakeProducerConf / MakeConsumerConf. So the raw
// side runs with exactly the SDK's producer defaults (enable.idempotence, acks=all, linger.ms,
// batch.size, batch.num.messages, partitioner, queue.buffering.max.messages) and consumer
// defaults (assignment strategy, no auto commit, queued.min.messages, session and heartbeat
// timings).
//
// For each repeat, on topics of --partitions partitions created up front:
//  - produce: --messages records of --size bytes, no key, each with the headers the SDK writes
//    (msgsdk-id: 32 characters, msgsdk-born-at: microseconds) and the creation timestamp.
//    Raw: rd_kafka_produceva with a topic handle (as the backend) from one thread, which
//    serves delivery reports with rd_kafka_poll(rk, 0) every --poll-every records and then
//    until the last report, one delivery report callback per record
//    (rd_kafka_conf_set_dr_msg_cb). The raw side uses one fixed message id: generating ids is
//    part of what the SDK adds. SDK: Producer::SendAsync with a callback per message that
//    counts. Both timed from the first send to the last delivery report (raw) or callback
//    (SDK). Producer handles and topic metadata are warmed up before the clock starts, on
//    both sides. The order of the two sides alternates between repeats.
//  - consume: --consume-messages records are written through the SDK first, keyed so they
//    spread evenly over the partitions (the mock cluster keeps 5 MiB per partition), then read
//    back in full by a new group on each side. Raw: a KafkaConsumer (rd_kafka_consumer_poll)
//    that reads what the SDK hands its handlers (value, timestamp, the msgsdk-id and
//    msgsdk-born-at headers) and, like the backend, commits the next offset of every
//    partition it read asynchronously every commit_interval_ms. SDK: Client::Subscribe with a
//    handler that only counts (the core acknowledges each message and the backend commits
//    the contiguous acknowledged prefix). Both timed from the first record handed out to the
//    last one: joining a group on the mock cluster takes about 3 s whoever joins, and that
//    wait would otherwise hide both figures. The order of the two sides alternates between
//    repeats.
// --cases produce or --cases consume runs one half only. --cpu-by-thread prints, for every
// case and repeat, each side's CPU per message by thread name and, for produce, the shares of
// the sends' time the sending thread spent on a CPU and waiting for one.
// The table shows medians and the SDK/raw ratio next to the target (0.9). A benchmark, not a
// test: it prints figures and never fails on them.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>

#include "backends/kafka/kafka_config.h"
#include "backends/kafka/kafka_mapping.h"
#include "bench_util.h"
#include "fixtures/kafka_fixture.h"
#include "msgsdk/msgsdk.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTargetRatio = 0.9;
// Bounds every wait, so a broken run ends with a message instead of hanging.
constexpr auto kGiveUp = std::chrono::seconds(120);
constexpr char kClusterName[] = "kafka-bench";
constexpr char kEnvironment[] = "bench";

struct Flags {
  int64_t messages = 500000;
  int64_t consume_messages = 200000;
  size_t size = 100;
  int partitions = 32;
  int poll_every = 1000;
  int64_t delivery_timeout_ms = 60000;
  int repeat = 3;
  std::vector<std::string> cases = {"produce", "consume"};
  bool cpu_by_thread = false;
  int consumer_threads = 0;  // 0: the SDK's default
  bool Runs(const std::string& name) const {
    return std::find(cases.begin(), cases.end(), name) != cases.end();
  }
};

using msgsdk::bench::LoadAverage;
using msgsdk::bench::Median;
using msgsdk::bench::Seconds;
using msgsdk::bench::SelfCpuSeconds;
using msgsdk::bench::WithSeparators;

// Counts completions from any thread without a lock (a mutex here would be measured too);
// remembers when the first and the last one came.
class Progress {
 public:
  explicit Progress(int64_t target) : target_(target) {}
  void Add(bool ok) {
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    const int64_t n = done_.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n == 1) {
      first_.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
      first_cpu_.store(SelfCpuSeconds(), std::memory_order_release);
    }
    if (n == target_) {
      last_.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
      last_cpu_.store(SelfCpuSeconds(), std::memory_order_release);
      std::lock_guard lock(mutex_);
      reached_.notify_all();
    }
  }
  bool Wait() {
    std::unique_lock lock(mutex_);
    return reached_.wait_for(lock, kGiveUp, [this] { return done() >= target_; });
  }
  int64_t done() const { return done_.load(std::memory_order_acquire); }
  int64_t failed() const { return failed_.load(std::memory_order_acquire); }
  Clock::time_point first() const { return Clock::time_point(Clock::duration(first_.load())); }
  Clock::time_point last() const { return Clock::time_point(Clock::duration(last_.load())); }
  // The process's CPU time (every thread) from the first completion to the last.
  double cpu_seconds() const { return last_cpu_.load() - first_cpu_.load(); }

 private:
  const int64_t target_;
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<Clock::rep> first_{0};
  std::atomic<Clock::rep> last_{0};
  std::atomic<double> first_cpu_{0};
  std::atomic<double> last_cpu_{0};
  std::mutex mutex_;
  std::condition_variable reached_;
};

// What a case measured.
struct CaseRate {
  double msgs_per_second = 0;
  // CPU time of the whole process (the client's threads, librdkafka's, the mock cluster's:
  // the same on both sides) per message while the case ran, in microseconds: less noisy than
  // the rate when other work shares the cores. Produce: from the first send to the last
  // report; consume: from the first record handed out to the last.
  double cpu_us_per_message = 0;
  // Consume with --cpu-by-thread: CPU time per record by thread name, in microseconds, from
  // before subscribing to the last record (joining the group costs next to nothing).
  std::map<std::string, double> cpu_us_by_thread;
  // Produce with --cpu-by-thread: the shares of the sends' wall time (first send to last)
  // the sending thread spent on a CPU and runnable but waiting for one.
  double sender_on_cpu = 0;
  double sender_waiting = 0;
};

// ---- Raw librdkafka -------------------------------------------------------------------------

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

msgsdk::Status KafkaError(rd_kafka_resp_err_t err, const std::string& what) {
  return msgsdk::InternalError(what + ": " + rd_kafka_err2str(err));
}

// A raw handle of `type`; takes `conf` either way.
msgsdk::Result<HandlePtr> NewHandle(rd_kafka_type_t type, rd_kafka_conf_t* conf,
                                    const std::string& what) {
  char errstr[512] = {0};
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return msgsdk::InternalError(what + ": rd_kafka_new: " + errstr);
  }
  return HandlePtr(rk);
}

// Waits until `topic` has a leader for every partition in `rk`'s view, so the clock never
// includes the first metadata round trip.
msgsdk::Status WarmUpTopic(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  msgsdk::Status status = msgsdk::DeadlineExceededError("no metadata for topic '" + topic + "'");
  while (Clock::now() < deadline) {
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &metadata, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const bool ready = metadata->topic_cnt == 1 && metadata->topics[0].err == 0 &&
                         metadata->topics[0].partition_cnt > 0;
      rd_kafka_metadata_destroy(metadata);
      if (ready) {
        status = msgsdk::OkStatus();
        break;
      }
    }
  }
  rd_kafka_topic_destroy(rkt);
  return status;
}

// CPU time of every live thread of this process so far, in nanoseconds, by thread id, with
// the thread's name (/proc/self/task/<tid>/schedstat and comm).
struct ThreadCpu {
  std::string name;
  uint64_t ns = 0;
};
std::map<long, ThreadCpu> ThreadCpuSnapshot() {
  std::map<long, ThreadCpu> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const long tid = std::strtol(entry.path().filename().c_str(), nullptr, 10);
    std::ifstream comm(entry.path() / "comm");
    std::ifstream schedstat(entry.path() / "schedstat");
    ThreadCpu thread;
    if (std::getline(comm, thread.name) && schedstat >> thread.ns) out[tid] = thread;
  }
  return out;
}

// The calling thread's time so far on a CPU and runnable but waiting for one, in nanoseconds
// (/proc/thread-self/schedstat). On two cores shared by the sending thread, librdkafka's
// broker thread, the mock cluster and (for the SDK) its callback thread, a thread that wakes
// up may take its turn from the sending thread: the wait shows what the other threads cost
// the sends beyond their CPU.
struct SchedTimes {
  uint64_t on_cpu_ns = 0;
  uint64_t waiting_ns = 0;
};
SchedTimes ThisThreadSchedTimes() {
  SchedTimes times;
  std::ifstream schedstat("/proc/thread-self/schedstat");
  schedstat >> times.on_cpu_ns >> times.waiting_ns;
  return times;
}

// Sets `rate`'s sender shares for the sends made between `before` and now.
void SetSenderShares(CaseRate& rate, const SchedTimes& before, Clock::time_point start) {
  const SchedTimes after = ThisThreadSchedTimes();
  const double wall_ns = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  rate.sender_on_cpu = static_cast<double>(after.on_cpu_ns - before.on_cpu_ns) / wall_ns;
  rate.sender_waiting = static_cast<double>(after.waiting_ns - before.waiting_ns) / wall_ns;
}

// Microseconds per record by thread name between two snapshots (a thread missing from
// `before` started after it).
std::map<std::string, double> CpuByThreadName(const std::map<long, ThreadCpu>& before,
                                              const std::map<long, ThreadCpu>& after,
                                              int64_t records) {
  std::map<std::string, double> out;
  for (const auto& [tid, thread] : after) {
    auto it = before.find(tid);
    const uint64_t start = it != before.end() && it->second.name == thread.name ? it->second.ns : 0;
    out[thread.name] += static_cast<double>(thread.ns - start) / 1e3 / static_cast<double>(records);
  }
  return out;
}

struct RawProducer {
  HandlePtr rk;
  Progress* progress = nullptr;  // the measurement under way

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<RawProducer*>(opaque)->progress->Add(message->err == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
};

msgsdk::Result<std::unique_ptr<RawProducer>> StartRawProducer(
    const msgsdk::kafka::KafkaSettings& settings) {
  MSGSDK_ASSIGN_OR_RETURN(auto cpp_conf, msgsdk::kafka::MakeProducerConf(settings));
  auto producer = std::make_unique<RawProducer>();
  rd_kafka_conf_t* conf = rd_kafka_conf_dup(cpp_conf->c_ptr_global());
  rd_kafka_conf_set_dr_msg_cb(conf, &RawProducer::OnDelivery);
  rd_kafka_conf_set_opaque(conf, producer.get());
  MSGSDK_ASSIGN_OR_RETURN(producer->rk, NewHandle(RD_KAFKA_PRODUCER, conf, "raw producer"));
  return producer;
}

msgsdk::Result<CaseRate> RawProduce(RawProducer& producer, const std::string& topic,
                                    const Flags& flags) {
  rd_kafka_t* rk = producer.rk.get();
  MSGSDK_RETURN_IF_ERROR(WarmUpTopic(rk, topic));
  const std::string body(flags.size, 'x');
  const std::string message_id(32, '0');
  Progress progress(flags.messages);
  producer.progress = &progress;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const auto threads_before =
      flags.cpu_by_thread ? ThreadCpuSnapshot() : decltype(ThreadCpuSnapshot()){};
  const double cpu_start = SelfCpuSeconds();
  const SchedTimes sender_before = ThisThreadSchedTimes();
  const auto start = Clock::now();
  for (int64_t i = 0; i < flags.messages; ++i) {
    const msgsdk::Timestamp born_at = std::chrono::system_clock::now();
    char micros[24];
    const auto [end, ec] =
        std::to_chars(micros, micros + sizeof(micros), msgsdk::kafka::ToEpochMicros(born_at));
    rd_kafka_headers_t* headers = rd_kafka_headers_new(2);
    rd_kafka_header_add(headers, "msgsdk-id", -1, message_id.data(),
                        static_cast<ssize_t>(message_id.size()));
    rd_kafka_header_add(headers, "msgsdk-born-at", -1, micros, end - micros);
    // The call the backend makes (rd_kafka_producev's arguments as an array).
    rd_kafka_vu_t fields[5];
    fields[0].vtype = RD_KAFKA_VTYPE_RKT;
    fields[0].u.rkt = rkt;
    fields[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    fields[1].u.i = RD_KAFKA_MSG_F_COPY;
    fields[2].vtype = RD_KAFKA_VTYPE_VALUE;
    fields[2].u.mem.ptr = const_cast<char*>(body.data());
    fields[2].u.mem.size = body.size();
    fields[3].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    fields[3].u.i64 = msgsdk::kafka::ToEpochMillis(born_at);
    fields[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    fields[4].u.headers = headers;
    if (rd_kafka_error_t* error = rd_kafka_produceva(rk, fields, 5)) {
      const rd_kafka_resp_err_t err = rd_kafka_error_code(error);
      rd_kafka_error_destroy(error);
      rd_kafka_headers_destroy(headers);
      rd_kafka_topic_destroy(rkt);
      producer.progress = nullptr;
      return KafkaError(err, "raw produce to '" + topic + "'");
    }
    if ((i + 1) % flags.poll_every == 0) rd_kafka_poll(rk, 0);
  }
  CaseRate rate;
  if (flags.cpu_by_thread) SetSenderShares(rate, sender_before, start);
  const auto deadline = Clock::now() + kGiveUp;
  while (progress.done() < flags.messages && Clock::now() < deadline) rd_kafka_poll(rk, 100);
  const double cpu_seconds = SelfCpuSeconds() - cpu_start;
  rd_kafka_topic_destroy(rkt);
  producer.progress = nullptr;
  if (progress.done() < flags.messages || progress.failed() > 0) {
    return msgsdk::InternalError("raw produce to '" + topic +
                                 "': " + std::to_string(progress.done() - progress.failed()) +
                                 " of " + std::to_string(flags.messages) + " acknowledged");
  }
  const auto count = static_cast<double>(flags.messages);
  rate.msgs_per_second = count / Seconds(progress.last() - start);
  rate.cpu_us_per_message = cpu_seconds * 1e6 / count;
  if (flags.cpu_by_thread) {
    rate.cpu_us_by_thread = CpuByThreadName(threads_before, ThreadCpuSnapshot(), flags.messages);
  }
  return rate;
}

// Reads `count` records of `topic` as a new member of `group`, committing like the backend.
msgsdk::Result<CaseRate> RawConsume(const msgsdk::kafka::KafkaSettings& settings,
                                    const std::string& topic, const std::string& group,
                                    int64_t count, const Flags& flags) {
  const auto threads_before =
      flags.cpu_by_thread ? ThreadCpuSnapshot() : decltype(ThreadCpuSnapshot()){};
  MSGSDK_ASSIGN_OR_RETURN(auto cpp_conf, msgsdk::kafka::MakeConsumerConf(
                                             settings, group, msgsdk::StartPosition::kEarliest));
  MSGSDK_ASSIGN_OR_RETURN(
      HandlePtr rk,
      NewHandle(RD_KAFKA_CONSUMER, rd_kafka_conf_dup(cpp_conf->c_ptr_global()), "raw consumer"));
  rd_kafka_poll_set_consumer(rk.get());
  rd_kafka_topic_partition_list_t* subscription = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(subscription, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk.get(), subscription);
  rd_kafka_topic_partition_list_destroy(subscription);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(err, "raw subscribe to " + topic);

  // Next offset to commit per partition (-1: nothing read), and what was last committed.
  std::vector<int64_t> next(static_cast<size_t>(flags.partitions), -1);
  std::vector<int64_t> committed(next);
  auto commit = [&](int async) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(flags.partitions);
    for (int p = 0; p < flags.partitions; ++p) {
      if (next[p] < 0 || next[p] == committed[p]) continue;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = next[p];
      committed[p] = next[p];
    }
    if (list->cnt > 0) rd_kafka_commit(rk.get(), list, async);
    rd_kafka_topic_partition_list_destroy(list);
  };

  int64_t received = 0;
  uint64_t body_bytes = 0;
  int64_t with_headers = 0;
  int64_t timestamp_sum = 0;
  Clock::time_point first;
  Clock::time_point last;
  double first_cpu = 0;
  double last_cpu = 0;
  CaseRate rate;
  const auto give_up = Clock::now() + kGiveUp;
  auto next_commit = Clock::now() + settings.commit_interval;
  while (received < count && Clock::now() < give_up) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(rk.get(), 100);
    if (message != nullptr) {
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (received == 0) {
          first = Clock::now();
          first_cpu = SelfCpuSeconds();
        }
        ++received;
        body_bytes += message->len;
        // Look at what the SDK hands its handlers: the timestamp and the SDK's headers.
        rd_kafka_timestamp_type_t timestamp_type;
        timestamp_sum += rd_kafka_message_timestamp(message, &timestamp_type);
        rd_kafka_headers_t* headers = nullptr;
        const void* id = nullptr;
        const void* born_at = nullptr;
        size_t id_size = 0;
        size_t born_at_size = 0;
        if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(headers, "msgsdk-id", &id, &id_size) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(headers, "msgsdk-born-at", &born_at, &born_at_size) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            id_size == 32 && born_at_size > 0) {
          ++with_headers;
        }
        if (message->partition >= 0 && message->partition < flags.partitions) {
          next[static_cast<size_t>(message->partition)] = message->offset + 1;
        }
        if (received == count) {
          last = Clock::now();
          last_cpu = SelfCpuSeconds();
          if (flags.cpu_by_thread) {
            rate.cpu_us_by_thread = CpuByThreadName(threads_before, ThreadCpuSnapshot(), count);
          }
        }
      }
      rd_kafka_message_destroy(message);
    }
    if (Clock::now() >= next_commit) {
      commit(1);
      next_commit = Clock::now() + settings.commit_interval;
    }
  }
  commit(0);
  rd_kafka_consumer_close(rk.get());
  if (received < count) {
    return msgsdk::DeadlineExceededError("raw consume of " + topic + ": only " +
                                         std::to_string(received) + " of " + std::to_string(count) +
                                         " read");
  }
  if (body_bytes != static_cast<uint64_t>(count) * flags.size || with_headers != count ||
      timestamp_sum <= 0) {
    return msgsdk::InternalError("raw consume of " + topic +
                                 ": unexpected bodies, headers or timestamps");
  }
  rate.msgs_per_second = static_cast<double>(count - 1) / Seconds(last - first);
  rate.cpu_us_per_message = (last_cpu - first_cpu) * 1e6 / static_cast<double>(count - 1);
  return rate;
}

// ---- The SDK --------------------------------------------------------------------------------

// With `keyed`, record i gets key "i mod 4096", which spreads records evenly over partitions
// (keyless records stick to one partition for a while: librdkafka's sticky partitioning).
msgsdk::Result<CaseRate> SdkProduce(msgsdk::Client& client, const std::string& topic, int64_t count,
                                    bool keyed, const Flags& flags) {
  MSGSDK_ASSIGN_OR_RETURN(msgsdk::Producer producer, client.CreateProducer(topic));
  const std::string body(flags.size, 'x');
  Progress progress(count);
  const auto threads_before =
      flags.cpu_by_thread ? ThreadCpuSnapshot() : decltype(ThreadCpuSnapshot()){};
  const double cpu_start = SelfCpuSeconds();
  const SchedTimes sender_before = ThisThreadSchedTimes();
  const auto start = Clock::now();
  for (int64_t i = 0; i < count; ++i) {
    producer.SendAsync(
        {.key = keyed ? std::to_string(i % 4096) : std::string(), .body = body},
        [&progress](const msgsdk::Result<msgsdk::SendReceipt>& r) { progress.Add(r.ok()); });
  }
  CaseRate rate;
  if (flags.cpu_by_thread) SetSenderShares(rate, sender_before, start);
  const bool all = progress.Wait();
  const double cpu_seconds = SelfCpuSeconds() - cpu_start;
  rate.msgs_per_second = static_cast<double>(count) / Seconds(progress.last() - start);
  rate.cpu_us_per_message = cpu_seconds * 1e6 / static_cast<double>(count);
  if (flags.cpu_by_thread) {
    rate.cpu_us_by_thread = CpuByThreadName(threads_before, ThreadCpuSnapshot(), count);
  }
  MSGSDK_RETURN_IF_ERROR(producer.Close());
  if (!all || progress.failed() > 0) {
    return msgsdk::InternalError("sdk produce to " + topic + ": " +
                                 std::to_string(progress.done() - progress.failed()) + " of " +
                                 std::to_string(count) + " acknowledged");
  }
  return rate;
}

msgsdk::Result<CaseRate> SdkConsume(msgsdk::Client& client, const std::string& topic,
                                    const std::string& group, int64_t count, const Flags& flags) {
  const auto threads_before =
      flags.cpu_by_thread ? ThreadCpuSnapshot() : decltype(ThreadCpuSnapshot()){};
  Progress progress(count);
  std::atomic<uint64_t> body_bytes{0};
  MSGSDK_ASSIGN_OR_RETURN(msgsdk::Subscription subscription,
                          client.Subscribe(topic, group, [&](const msgsdk::Message& message) {
                            body_bytes.fetch_add(message.body.size(), std::memory_order_relaxed);
                            progress.Add(true);
                            return msgsdk::ConsumeResult::kSuccess;
                          }));
  const bool all = progress.Wait();
  CaseRate rate;
  if (flags.cpu_by_thread) {
    rate.cpu_us_by_thread = CpuByThreadName(threads_before, ThreadCpuSnapshot(), count);
  }
  MSGSDK_RETURN_IF_ERROR(subscription.Close());
  if (!all) {
    return msgsdk::DeadlineExceededError("sdk consume of " + topic + ": only " +
                                         std::to_string(progress.done()) + " of " +
                                         std::to_string(count) + " handled");
  }
  if (body_bytes.load() != static_cast<uint64_t>(count) * flags.size) {
    return msgsdk::InternalError("sdk consume of " + topic + ": unexpected body sizes");
  }
  rate.msgs_per_second =
      static_cast<double>(count - 1) / Seconds(progress.last() - progress.first());
  rate.cpu_us_per_message = progress.cpu_seconds() * 1e6 / static_cast<double>(count - 1);
  return rate;
}

// Every record written to `topic` is still on the mock cluster (it keeps at most 5 MiB or
// 100,000 message sets per partition and silently drops older ones).
msgsdk::Status CheckRetained(rd_kafka_t* rk, const std::string& topic, const Flags& flags) {
  for (int p = 0; p < flags.partitions; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    const rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return KafkaError(err, "watermarks of " + topic + " [" + std::to_string(p) + "]");
    }
    if (low != 0) {
      return msgsdk::FailedPreconditionError(
          "the mock cluster dropped the oldest records of " + topic + " [" + std::to_string(p) +
          "] (it keeps 5 MiB per partition): use more --partitions or fewer --consume-messages");
    }
  }
  return msgsdk::OkStatus();
}

// ---- The run --------------------------------------------------------------------------------

std::string Ratio(double sdk, double raw) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", raw > 0 ? sdk / raw : 0.0);
  return text;
}

struct Figures {
  std::vector<double> raw_produce, sdk_produce, raw_consume, sdk_consume;
  std::vector<double> raw_produce_cpu, sdk_produce_cpu;
  // CPU microseconds per consumed record.
  std::vector<double> raw_consume_cpu, sdk_consume_cpu;
};

void PrintCpuByThread(const char* side, const char* what, int round, const CaseRate& rate) {
  std::string line;
  double total = 0;
  for (const auto& [name, us] : rate.cpu_us_by_thread) {
    if (us < 0.005) continue;
    char part[64];
    std::snprintf(part, sizeof(part), " %s %.3f", name.c_str(), us);
    line += part;
    total += us;
  }
  if (rate.sender_on_cpu > 0) {
    char shares[128];
    std::snprintf(shares, sizeof(shares),
                  "; sending thread during the sends: on a CPU %.0f%%, waiting for one %.0f%%",
                  rate.sender_on_cpu * 100, rate.sender_waiting * 100);
    line += shares;
  }
  std::fprintf(stderr, "repeat %d: %s %s CPU us/msg by thread (total %.3f):%s\n", round, side, what,
               total, line.c_str());
}

std::map<std::string, std::string> Overrides(const Flags& flags) {
  // The backend's defaults but for delivery_timeout_ms, and commit_interval_ms back from the
  // fixture's short test value to the backend's default.
  return {{"partitions", std::to_string(flags.partitions)},
          {"commit_interval_ms", "1000"},
          {"delivery_timeout_ms", std::to_string(flags.delivery_timeout_ms)}};
}

class Bench {
 public:
  Bench(msgsdk::testing::KafkaMockCluster& cluster, msgsdk::kafka::KafkaSettings settings,
        msgsdk::Client& client, RawProducer& raw, const Flags& flags)
      : cluster_(cluster),
        settings_(std::move(settings)),
        client_(client),
        raw_(raw),
        flags_(flags) {}

  msgsdk::Status RunOnce(int round, Figures& figures) {
    const std::string suffix = std::to_string(round);
    const std::string raw_topic = "produce-raw-" + suffix;
    const std::string sdk_topic = "produce-sdk-" + suffix;
    const std::string consume_topic = "consume-" + suffix;
    for (const std::string& topic : {raw_topic, sdk_topic, consume_topic}) {
      MSGSDK_RETURN_IF_ERROR(cluster_.CreateTopic(topic, flags_.partitions));
    }
    double raw_produce = 0;
    double sdk_produce = 0;
    if (flags_.Runs("produce")) {
      CaseRate raw;
      CaseRate sdk;
      auto run_raw = [&]() -> msgsdk::Status {
        MSGSDK_ASSIGN_OR_RETURN(raw, RawProduce(raw_, raw_topic, flags_));
        return msgsdk::OkStatus();
      };
      auto run_sdk = [&]() -> msgsdk::Status {
        MSGSDK_ASSIGN_OR_RETURN(sdk,
                                SdkProduce(client_, sdk_topic, flags_.messages, false, flags_));
        return msgsdk::OkStatus();
      };
      MSGSDK_RETURN_IF_ERROR(InTurn(round, run_raw, run_sdk));
      if (flags_.cpu_by_thread) {
        PrintCpuByThread("raw", "produce", round, raw);
        PrintCpuByThread("sdk", "produce", round, sdk);
      }
      raw_produce = raw.msgs_per_second;
      sdk_produce = sdk.msgs_per_second;
      figures.raw_produce.push_back(raw_produce);
      figures.sdk_produce.push_back(sdk_produce);
      figures.raw_produce_cpu.push_back(raw.cpu_us_per_message);
      figures.sdk_produce_cpu.push_back(sdk.cpu_us_per_message);
    }
    if (!flags_.Runs("consume")) {
      std::fprintf(stderr, "repeat %d: produce raw %.0f sdk %.0f (%s) (load %s)\n", round,
                   raw_produce, sdk_produce, Ratio(sdk_produce, raw_produce).c_str(),
                   LoadAverage().c_str());
      return msgsdk::OkStatus();
    }

    MSGSDK_RETURN_IF_ERROR(
        SdkProduce(client_, consume_topic, flags_.consume_messages, true, flags_).status());
    MSGSDK_RETURN_IF_ERROR(CheckRetained(raw_.rk.get(), consume_topic, flags_));
    CaseRate raw_consume;
    CaseRate sdk_consume;
    auto raw = [&]() -> msgsdk::Status {
      MSGSDK_ASSIGN_OR_RETURN(raw_consume, RawConsume(settings_, consume_topic, "raw-" + suffix,
                                                      flags_.consume_messages, flags_));
      return msgsdk::OkStatus();
    };
    auto sdk = [&]() -> msgsdk::Status {
      MSGSDK_ASSIGN_OR_RETURN(sdk_consume, SdkConsume(client_, consume_topic, "sdk-" + suffix,
                                                      flags_.consume_messages, flags_));
      return msgsdk::OkStatus();
    };
    MSGSDK_RETURN_IF_ERROR(InTurn(round, raw, sdk));
    figures.raw_consume.push_back(raw_consume.msgs_per_second);
    figures.sdk_consume.push_back(sdk_consume.msgs_per_second);
    figures.raw_consume_cpu.push_back(raw_consume.cpu_us_per_message);
    figures.sdk_consume_cpu.push_back(sdk_consume.cpu_us_per_message);
    std::fprintf(stderr,
                 "repeat %d: produce raw %.0f sdk %.0f (%s), consume raw %.0f sdk %.0f (%s), "
                 "CPU us/msg raw %.3f sdk %.3f (load %s)\n",
                 round, raw_produce, sdk_produce, Ratio(sdk_produce, raw_produce).c_str(),
                 raw_consume.msgs_per_second, sdk_consume.msgs_per_second,
                 Ratio(sdk_consume.msgs_per_second, raw_consume.msgs_per_second).c_str(),
                 raw_consume.cpu_us_per_message, sdk_consume.cpu_us_per_message,
                 LoadAverage().c_str());
    if (flags_.cpu_by_thread) {
      PrintCpuByThread("raw", "consume", round, raw_consume);
      PrintCpuByThread("sdk", "consume", round, sdk_consume);
    }
    return msgsdk::OkStatus();
  }

 private:
  // Runs both sides, raw first in even rounds and the SDK first in odd ones, so that neither
  // always runs on the heap and cluster state the other left.
  template <typename Raw, typename Sdk>
  static msgsdk::Status InTurn(int round, Raw& raw, Sdk& sdk) {
    MSGSDK_RETURN_IF_ERROR(round % 2 == 0 ? raw() : sdk());
    return round % 2 == 0 ? sdk() : raw();
  }

  msgsdk::testing::KafkaMockCluster& cluster_;
  const msgsdk::kafka::KafkaSettings settings_;
  msgsdk::Client& client_;
  RawProducer& raw_;
  const Flags& flags_;
};

void PrintRow(const char* name, const std::vector<double>& raw_figures,
              const std::vector<double>& sdk_figures) {
  const double raw = Median(raw_figures);
  const double sdk = Median(sdk_figures);
  std::printf(
      "  %-38s %12s %12s %8s %7.2f\n", name, WithSeparators(static_cast<uint64_t>(raw)).c_str(),
      WithSeparators(static_cast<uint64_t>(sdk)).c_str(), Ratio(sdk, raw).c_str(), kTargetRatio);
  // The two sides of a repeat run back to back, so the ratio within each repeat shows how far
  // the machine moves a single figure.
  std::vector<double> ratios;
  for (size_t i = 0; i < raw_figures.size() && i < sdk_figures.size(); ++i) {
    if (raw_figures[i] > 0) ratios.push_back(sdk_figures[i] / raw_figures[i]);
  }
  if (ratios.size() > 1) {
    const auto [lowest, highest] = std::minmax_element(ratios.begin(), ratios.end());
    std::printf("  %-38s %12s %12s %8.2f   %.2f to %.2f\n", "  ratio per repeat: median, range", "",
                "", Median(ratios), *lowest, *highest);
  }
}

// Under a case's row: the medians of CaseRate::cpu_us_per_message.
void PrintCpuRow(const std::vector<double>& raw, const std::vector<double>& sdk) {
  std::printf("  %-38s %12.3f %12.3f\n", "  CPU us per message (process)", Median(raw),
              Median(sdk));
}

int Run(const Flags& flags) {
  auto cluster = msgsdk::testing::KafkaMockCluster::Start(1);
  if (!cluster.ok()) {
    std::fprintf(stderr, "starting the mock cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  auto config = (*cluster)->ClusterConfig(kClusterName, Overrides(flags));
  auto settings = config.ok() ? msgsdk::kafka::ParseSettings(*config)
                              : msgsdk::Result<msgsdk::kafka::KafkaSettings>(config.status());
  if (!settings.ok()) {
    std::fprintf(stderr, "cluster settings: %s\n", settings.status().ToString().c_str());
    return 1;
  }
  auto raw = StartRawProducer(*settings);
  if (!raw.ok()) {
    std::fprintf(stderr, "%s\n", raw.status().ToString().c_str());
    return 1;
  }
  const std::string yaml =
      (*cluster)->RoutingYaml(kEnvironment, kClusterName, Overrides(flags)) +
      "client:\n  send_timeout_ms: " + std::to_string(flags.delivery_timeout_ms) + "\n" +
      (flags.consumer_threads > 0
           ? "  consumer_threads: " + std::to_string(flags.consumer_threads) + "\n"
           : std::string());
  auto client = msgsdk::Client::Create({.config_yaml = yaml, .environment = kEnvironment});
  if (!client.ok()) {
    std::fprintf(stderr, "Client::Create: %s\n", client.status().ToString().c_str());
    return 1;
  }
  const std::string load_before = LoadAverage();

  Figures figures;
  Bench bench(**cluster, *settings, *client, **raw, flags);
  for (int round = 0; round < flags.repeat; ++round) {
    const msgsdk::Status status = bench.RunOnce(round, figures);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      client->Close().IgnoreError();
      return 1;
    }
  }
  const msgsdk::Status closed = client->Close();
  if (!closed.ok()) std::fprintf(stderr, "Client::Close: %s\n", closed.ToString().c_str());

  std::printf(
      "Kafka backend vs raw librdkafka %s, in-process mock cluster (1 broker), %d partitions, "
      "%zu B bodies, %s messages produced and %s consumed per case, median of %d\n",
      rd_kafka_version_str(), flags.partitions, flags.size,
      WithSeparators(static_cast<uint64_t>(flags.messages)).c_str(),
      WithSeparators(static_cast<uint64_t>(flags.consume_messages)).c_str(), flags.repeat);
  std::printf(
      "producer: enable.idempotence=%s acks=%s linger.ms=%lld batch.size=%lld "
      "batch.num.messages=%lld compression=%s\n",
      settings->idempotence ? "true" : "false", settings->acks.c_str(),
      static_cast<long long>(settings->linger.count()),
      static_cast<long long>(settings->batch_size),
      static_cast<long long>(settings->batch_num_messages), settings->compression.c_str());
  std::printf("load average before %s, after %s\n\n", load_before.c_str(), LoadAverage().c_str());
  std::printf("  %-38s %12s %12s %8s %7s\n", "case", "raw msgs/s", "sdk msgs/s", "sdk/raw",
              "target");
  std::printf("  %s\n", std::string(81, '-').c_str());
  if (flags.Runs("produce")) {
    PrintRow("produce: produceva vs SendAsync", figures.raw_produce, figures.sdk_produce);
    PrintCpuRow(figures.raw_produce_cpu, figures.sdk_produce_cpu);
  }
  if (flags.Runs("consume")) {
    PrintRow("consume: consumer_poll vs subscription", figures.raw_consume, figures.sdk_consume);
    PrintCpuRow(figures.raw_consume_cpu, figures.sdk_consume_cpu);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Kafka backend vs raw librdkafka on one in-process mock cluster, in one run."};
  app.add_option("--messages", flags.messages, "Messages per produce case")
      ->check(CLI::PositiveNumber);
  app.add_option("--consume-messages", flags.consume_messages,
                 "Messages written beforehand and read back per consume case")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  app.add_option("--size", flags.size, "Body bytes")->check(CLI::PositiveNumber);
  app.add_option("--partitions", flags.partitions, "Partitions of every topic")
      ->check(CLI::Range(1, 10000));
  app.add_option("--poll-every", flags.poll_every,
                 "Raw producer: rd_kafka_poll(rk, 0) after this many records")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--delivery-timeout-ms", flags.delivery_timeout_ms,
                 "delivery_timeout_ms of both producers, and the SDK's send timeout")
      ->check(CLI::Range(1000, 600000));
  app.add_option("--repeat", flags.repeat, "Repetitions; the table shows medians")
      ->check(CLI::PositiveNumber);
  app.add_option("--consumer-threads", flags.consumer_threads,
                 "Handler threads of the SDK's subscription (0: the SDK's default)")
      ->check(CLI::Range(0, 256));
  app.add_flag("--cpu-by-thread", flags.cpu_by_thread,
               "Also print CPU per message by thread name for every case and repeat");
  app.add_option("--cases", flags.cases, "Cases to run, among produce and consume")
      ->check(CLI::IsMember({"produce", "consume"}));
  CLI11_PARSE(app, argc, argv);
  return Run(flags);
}
