// msgsdk-bench-broker: the native broker daemon (msgsdk-broker) through the public API, and
// the same workload against Redis Streams in the same run.
//
// Every round starts its own servers on free loopback ports, each with a scratch directory:
// one msgsdk-broker per flush mode (--modes: group_commit, periodic) and one redis-server per
// AOF setting (--redis-aof: "no" is appendonly no, "everysec" is appendonly yes with
// appendfsync everysec). The systems measured (--systems):
//  - broker:    a Client whose routing table names the daemon by its endpoint;
//  - redis-sdk: a Client on the Redis Streams backend (pipeline_depth --redis-batch,
//               read_batch --redis-read-count, --redis-partitions streams per topic);
//  - redis-raw: raw hiredis, as msgsdk-bench-redis does it: pipelined XADD in batches of
//               --redis-batch, XREADGROUP COUNT --redis-read-count then one XACK per stream.
// The cases (--cases), for each body size (--sizes):
//  - produce: --producers threads (one row per count), each with its own producer sending
//    asynchronously, with up to --window sends in flight in all (raw: its own connection
//    and pipeline), until --messages or --seconds; counted when acknowledged;
//  - consume: a topic filled first (--consume-messages, at most --case-mib of bodies; not
//    timed), then a new group reads it all: from the Subscribe call (raw: XGROUP CREATE) to
//    the last message handled;
//  - both:    one producer as above and a subscription of a new group on the same topic at
//    once: from the first send to the last message handled (and the producer's own rate);
//  - latency: one producer sending at a fixed rate (--rates) to a subscription; end to end =
//    handler start minus the send time stamped in the body, p50/p99/p99.9 after a warm-up,
//    with the rate actually achieved. With a group-commit broker, each rate and size also gets
//    a "disk group commit (floor)" row: the same schedule on the same disk through nothing but
//    one thread's write and fdatasync (MeasureGroupCommitFloor), the latency no group-commit
//    system on that disk gets under.
// Throughput rows show the CPU time per message of this process (every thread) and of the
// server. The ratio table divides the broker's figures by each Redis system's (latency: the
// Redis p99 by the broker's, so above 1 is better for the broker everywhere), and the last
// section says which targets are met. With --repeat N every figure is the median of N rounds.
// A benchmark, not a test: it prints figures and never fails on them (it exits 1 when a case
// failed to run).

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <hiredis/hiredis.h>

#include "bench_util.h"
#include "fixtures/broker_fixture.h"
#include "fixtures/redis_fixture.h"
#include "msgsdk/msgsdk.h"
#include "raw_redis.h"

namespace {

using msgsdk::bench::AckReadEntries;
using msgsdk::bench::AppendRedis;
using msgsdk::bench::Budget;
using msgsdk::bench::ConnectRedis;
using msgsdk::bench::Fixed;
using msgsdk::bench::LatencyBody;
using msgsdk::bench::LatencySchedule;
using msgsdk::bench::LoadAverage;
using msgsdk::bench::NextRedisReply;
using msgsdk::bench::OnThreads;
using msgsdk::bench::Progress;
using msgsdk::bench::Quantile;
using msgsdk::bench::RedisCommand;
using msgsdk::bench::RedisContextPtr;
using msgsdk::bench::RedisReplyPtr;
using msgsdk::bench::Samples;
using msgsdk::bench::SteadyClock;
using msgsdk::bench::StreamNames;
using msgsdk::bench::Table;
using msgsdk::bench::WithSeparators;

// The targets, on a 2-core machine.
constexpr double kTargetPeriodicRate = 1'000'000;  // produce and consume, periodic flush
constexpr double kTargetGroupCommitRate = 200'000;
constexpr int kTargetGroupCommitProducers = 64;
constexpr double kTargetLatencyRate = 10'000;
// The latency rows of MeasureGroupCommitFloor.
constexpr const char* kFloorName = "disk group commit (floor)";
constexpr double kTargetP99Us = 1'000;
constexpr double kTargetP999Us = 5'000;
constexpr double kTargetRedisRatio = 2.0;
constexpr size_t kTargetBodyBytes = 100;

// Bounds every wait, so a broken run ends with a message instead of hanging.
constexpr auto kGiveUp = std::chrono::seconds(120);
// A fixed, well-formed message id for the raw Redis client (the SDK makes its own).
const std::string kRawMessageId(32, '0');

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
extern "C" void OnSignal(int /*signal*/) { interrupted.store(true); }

struct Flags {
  std::vector<std::string> modes = {"group_commit", "periodic"};
  std::vector<std::string> redis_aof = {"no", "everysec"};
  std::vector<std::string> systems = {"broker", "redis-sdk", "redis-raw"};
  std::vector<std::string> cases = {"produce", "consume", "both", "latency"};
  std::vector<size_t> sizes = {100, 1024};
  std::vector<int> producers = {1, 64};
  std::vector<double> rates = {1'000, 10'000, 100'000};
  int64_t max_messages = 2'000'000;
  double case_seconds = 2.0;
  int64_t consume_messages = 1'000'000;
  int64_t case_mib = 256;
  int64_t window = 65536;
  int redis_partitions = 4;
  int redis_batch = 256;
  int redis_read_count = 512;
  int consumer_threads = 0;
  double latency_seconds = 3.0;
  double warmup_seconds = 0.5;
  int repeat = 1;
  std::string broker_binary = MSGSDK_BROKER_BINARY;
};

bool Wants(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

std::string SizeName(size_t bytes) {
  return bytes % 1024 == 0 ? std::to_string(bytes / 1024) + " KiB" : std::to_string(bytes) + " B";
}

std::string RateName(double rate) {
  return rate >= 1000 && static_cast<int64_t>(rate) % 1000 == 0
             ? std::to_string(static_cast<int64_t>(rate) / 1000) + "k"
             : std::to_string(static_cast<int64_t>(rate));
}

std::string CurrentDate() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::tm local{};
  localtime_r(&now, &local);
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d", &local);
  return buffer;
}

std::string NowMillis() {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

// ---- What a case measured -------------------------------------------------------------------

struct CaseResult {
  // Acknowledged (produce) or handled (consume, both) messages, over `seconds`.
  uint64_t messages = 0;
  double seconds = 0;
  // "both": the producer's acknowledged rate next to the consumer's.
  double produce_rate = 0;
  // CPU seconds of this process (every thread) and of the server during the timed part.
  double client_cpu = 0;
  double server_cpu = 0;
  std::string error;

  double rate() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
  double client_us() const {
    return messages > 0 ? client_cpu * 1e6 / static_cast<double>(messages) : 0;
  }
  double server_us() const {
    return messages > 0 ? server_cpu * 1e6 / static_cast<double>(messages) : 0;
  }
};

struct LatencyResult {
  double achieved_rate = 0;
  uint64_t measured = 0;  // measured messages sent
  uint64_t received = 0;  // of which handled
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
  std::string error;
};

LatencyResult LatencyFrom(const std::vector<int64_t>& sorted, LatencyResult result) {
  result.received = sorted.size();
  result.p50_us = Quantile(sorted, 0.50);
  result.p99_us = Quantile(sorted, 0.99);
  result.p999_us = Quantile(sorted, 0.999);
  result.max_us = Quantile(sorted, 1.0);
  return result;
}

// CPU time of this process and of a server, sampled around the timed part of a case.
class CpuMeter {
 public:
  explicit CpuMeter(pid_t server)
      : server_(server),
        client_start_(msgsdk::bench::SelfCpuSeconds()),
        server_start_(msgsdk::bench::ProcessCpuSeconds(server)) {}
  void Stop(CaseResult& result) const {
    result.client_cpu = msgsdk::bench::SelfCpuSeconds() - client_start_;
    result.server_cpu = msgsdk::bench::ProcessCpuSeconds(server_) - server_start_;
  }

 private:
  const pid_t server_;
  const double client_start_;
  const double server_start_;
};

// ---- Systems --------------------------------------------------------------------------------

// One client of one server, measured case by case. Cases return their failures in the
// result's `error`.
class System {
 public:
  System(std::string family, std::string setting, pid_t server)
      : family_(std::move(family)), setting_(std::move(setting)), server_(server) {}
  virtual ~System() = default;

  // "broker", "redis-sdk" or "redis-raw".
  const std::string& family() const { return family_; }
  // The flush mode or AOF setting of its server.
  const std::string& setting() const { return setting_; }
  std::string name() const {
    return family_ == "broker" ? "broker " + setting_ : family_ + " aof=" + setting_;
  }

  virtual CaseResult Produce(const std::string& topic, size_t size, int producers,
                             const Flags& flags) = 0;
  virtual CaseResult Consume(const std::string& topic, size_t size, int64_t messages,
                             const Flags& flags) = 0;
  virtual CaseResult ProduceAndConsume(const std::string& topic, size_t size,
                                       const Flags& flags) = 0;
  virtual LatencyResult Latency(const std::string& topic, size_t size, double rate,
                                const Flags& flags) = 0;
  // Frees what a case stored (Redis keeps streams in memory; the broker's scratch directory
  // goes with its process at the end of the round).
  virtual void Cleanup(const std::string& /*topic*/) {}

 protected:
  pid_t server() const { return server_; }

 private:
  const std::string family_;
  const std::string setting_;
  const pid_t server_;
};

// ---- Through the SDK (the broker, and Redis through its backend) ----------------------------

// What the callbacks of one sending loop share. The loop owns it and closes its producers
// before it returns; a producer's Close returns once every callback of its sends has run, so
// a callback holds a plain pointer. (Each one holding a shared_ptr cost a reference count
// bumped by the sending thread and dropped by the callback thread for every message: with 64
// producers about 0.13 µs of client CPU per message, in the benchmark's own bookkeeping.)
struct SendState {
  explicit SendState(int64_t window) : window(window) {}
  // Sends in flight, over all the loop's producers.
  msgsdk::bench::SendWindow window;
  Progress progress;
};

struct SendOutcome {
  uint64_t acknowledged = 0;
  SteadyClock::time_point last{};
  std::string error;
};

void CloseAll(std::vector<msgsdk::Producer>& handles, std::string& error) {
  for (msgsdk::Producer& producer : handles) {
    const msgsdk::Status closed = producer.Close();
    if (!closed.ok() && error.empty()) error = "closing a producer: " + closed.ToString();
  }
}

// `producers.size()` threads each send bodies of `size` bytes through their own producer, with
// up to `window` sends in flight in all, until the budget ends; then waits for every answer
// and closes the producers.
SendOutcome SdkSendLoop(std::vector<msgsdk::Producer>& producers, size_t size, Budget& budget,
                        int64_t window) {
  const int threads = static_cast<int>(producers.size());
  SendState state(window);
  const std::string body(size, 'x');
  std::atomic<int64_t> submitted{0};
  OnThreads(threads, [&](int t) {
    // Claim in slices so the shared budget is not touched per message.
    for (int64_t n; (n = budget.Claim(256)) > 0;) {
      for (int64_t i = 0; i < n; ++i) {
        state.window.Acquire();
        producers[static_cast<size_t>(t)].SendAsync(
            msgsdk::Message{.body = body}, [&state](const msgsdk::Result<msgsdk::SendReceipt>& r) {
              state.window.Release();
              if (r.ok()) {
                state.progress.Add();
              } else {
                state.progress.AddFailure(r.status().ToString());
              }
            });
      }
      submitted.fetch_add(n, std::memory_order_relaxed);
    }
  });
  SendOutcome outcome;
  if (!state.progress.WaitFor(submitted.load(), kGiveUp)) {
    outcome.error = "only " + std::to_string(state.progress.done()) + " of " +
                    std::to_string(submitted.load()) + " sends answered";
  }
  outcome.acknowledged = static_cast<uint64_t>(state.progress.done() - state.progress.failed());
  outcome.last = state.progress.last();
  if (state.progress.failed() > 0 && outcome.error.empty()) {
    outcome.error = std::to_string(state.progress.failed()) +
                    " sends failed, the first: " + state.progress.first_error();
  }
  // Before `state` goes: after this no callback of these sends runs.
  CloseAll(producers, outcome.error);
  return outcome;
}

// A subscription's handler that counts messages and body bytes.
struct ReceiveState {
  Progress progress;
  std::atomic<uint64_t> body_bytes{0};
};

msgsdk::MessageHandler CountingHandler(const std::shared_ptr<ReceiveState>& state) {
  return [state](const msgsdk::Message& message) {
    state->body_bytes.fetch_add(message.body.size(), std::memory_order_relaxed);
    state->progress.Add();
    return msgsdk::ConsumeResult::kSuccess;
  };
}

class SdkSystem : public System {
 public:
  SdkSystem(std::string family, std::string setting, pid_t server, msgsdk::Client client)
      : System(std::move(family), std::move(setting), server), client_(std::move(client)) {}
  ~SdkSystem() override { client_.Close().IgnoreError(); }

  CaseResult Produce(const std::string& topic, size_t size, int producers,
                     const Flags& flags) override {
    CaseResult result;
    auto handles = MakeProducers(topic, producers, result.error);
    if (!result.error.empty()) return result;
    Budget budget(flags.max_messages, flags.case_seconds, interrupted);
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    SendOutcome sent = SdkSendLoop(handles, size, budget, flags.window);
    cpu.Stop(result);
    result.messages = sent.acknowledged;
    result.seconds = msgsdk::bench::Seconds(sent.last - start);
    result.error = sent.error;
    return result;
  }

  CaseResult Consume(const std::string& topic, size_t size, int64_t messages,
                     const Flags& flags) override {
    CaseResult result;
    result.error = Fill(topic, size, messages, flags);
    if (!result.error.empty()) return result;
    auto state = std::make_shared<ReceiveState>();
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    auto subscription = client_.Subscribe(topic, "bench-consume", CountingHandler(state),
                                          {.consumer_threads = flags.consumer_threads});
    if (!subscription.ok()) return CaseResult{.error = subscription.status().ToString()};
    const bool all = state->progress.WaitFor(messages, kGiveUp);
    cpu.Stop(result);
    result.messages = static_cast<uint64_t>(state->progress.done());
    result.seconds = msgsdk::bench::Seconds(state->progress.last() - start);
    if (!all) {
      result.error = "only " + std::to_string(result.messages) + " of " + std::to_string(messages) +
                     " messages handled";
    } else if (state->body_bytes.load() != result.messages * size) {
      result.error = "unexpected body sizes";
    }
    if (const msgsdk::Status closed = subscription->Close(); !closed.ok() && result.error.empty()) {
      result.error = "closing the subscription: " + closed.ToString();
    }
    return result;
  }

  CaseResult ProduceAndConsume(const std::string& topic, size_t size, const Flags& flags) override {
    CaseResult result;
    auto handles = MakeProducers(topic, 1, result.error);
    if (!result.error.empty()) return result;
    auto state = std::make_shared<ReceiveState>();
    auto subscription = client_.Subscribe(topic, "bench-both", CountingHandler(state),
                                          {.consumer_threads = flags.consumer_threads});
    if (!subscription.ok()) return CaseResult{.error = subscription.status().ToString()};
    Budget budget(flags.max_messages, flags.case_seconds, interrupted);
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    SendOutcome sent = SdkSendLoop(handles, size, budget, flags.window);
    result.error = sent.error;
    const bool all = state->progress.WaitFor(static_cast<int64_t>(sent.acknowledged), kGiveUp);
    cpu.Stop(result);
    result.messages = static_cast<uint64_t>(state->progress.done());
    result.seconds = msgsdk::bench::Seconds(state->progress.last() - start);
    result.produce_rate =
        static_cast<double>(sent.acknowledged) / msgsdk::bench::Seconds(sent.last - start);
    if (!all && result.error.empty()) {
      result.error = "only " + std::to_string(result.messages) + " of " +
                     std::to_string(sent.acknowledged) + " acknowledged messages handled";
    }
    if (const msgsdk::Status closed = subscription->Close(); !closed.ok() && result.error.empty()) {
      result.error = "closing the subscription: " + closed.ToString();
    }
    return result;
  }

  LatencyResult Latency(const std::string& topic, size_t size, double rate,
                        const Flags& flags) override {
    LatencyResult result;
    Samples e2e;
    auto subscription = client_.Subscribe(topic, "bench-latency", msgsdk::bench::RecordLatency(e2e),
                                          {.consumer_threads = flags.consumer_threads});
    if (!subscription.ok()) return {.error = subscription.status().ToString()};
    auto producer = client_.CreateProducer(topic);
    if (!producer.ok()) return {.error = producer.status().ToString()};
    auto state = std::make_shared<Progress>();
    const LatencySchedule schedule(rate, flags.warmup_seconds, flags.latency_seconds);
    e2e.Reserve(static_cast<size_t>(schedule.total));
    const auto start = SteadyClock::now();
    SteadyClock::time_point measured_start{};
    int64_t submitted = 0;
    // A send that falls behind its time goes at once (no burst beyond the schedule), so the
    // achieved rate is reported next to the asked one.
    for (int64_t i = 0; i < schedule.total && !interrupted.load(); ++i) {
      std::this_thread::sleep_until(start + i * schedule.period);
      const auto now = SteadyClock::now();
      const bool measured = i >= schedule.warmup;
      if (i == schedule.warmup) measured_start = now;
      producer->SendAsync(
          msgsdk::Message{.body = LatencyBody(size, measured, now.time_since_epoch().count())},
          [state](const msgsdk::Result<msgsdk::SendReceipt>& r) {
            if (r.ok()) {
              state->Add();
            } else {
              state->AddFailure(r.status().ToString());
            }
          });
      ++submitted;
      if (measured) ++result.measured;
    }
    const double seconds = msgsdk::bench::Seconds(SteadyClock::now() - measured_start);
    result.achieved_rate = seconds > 0 ? static_cast<double>(result.measured) / seconds : 0;
    e2e.WaitForCount(result.measured, std::chrono::seconds(30));
    if (!state->WaitFor(submitted, kGiveUp)) {
      result.error = "sends still unanswered after " + std::to_string(kGiveUp.count()) + " s";
    } else if (state->failed() > 0) {
      result.error = std::to_string(state->failed()) + " sends failed: " + state->first_error();
    }
    const msgsdk::Status producer_closed = producer->Close();
    const msgsdk::Status subscription_closed = subscription->Close();
    if (result.error.empty() && !producer_closed.ok()) result.error = producer_closed.ToString();
    if (result.error.empty() && !subscription_closed.ok()) {
      result.error = subscription_closed.ToString();
    }
    return LatencyFrom(e2e.Sorted(), std::move(result));
  }

 protected:
  // Sends `messages` bodies of `size` bytes to `topic` (not timed). Empty, or the failure.
  std::string Fill(const std::string& topic, size_t size, int64_t messages, const Flags& flags) {
    std::string error;
    auto handles = MakeProducers(topic, 1, error);
    if (!error.empty()) return error;
    Budget budget(messages, 1e9, interrupted);
    SendOutcome sent = SdkSendLoop(handles, size, budget, flags.window);
    if (sent.error.empty() && sent.acknowledged != static_cast<uint64_t>(messages)) {
      sent.error = "filling '" + topic + "': " + std::to_string(sent.acknowledged) + " of " +
                   std::to_string(messages) + " acknowledged";
    }
    return sent.error;
  }

  msgsdk::Client& client() { return client_; }

 private:
  std::vector<msgsdk::Producer> MakeProducers(const std::string& topic, int n, std::string& error) {
    std::vector<msgsdk::Producer> handles;
    for (int p = 0; p < n; ++p) {
      auto producer = client_.CreateProducer(topic);
      if (!producer.ok()) {
        error = "creating a producer: " + producer.status().ToString();
        break;
      }
      handles.push_back(std::move(*producer));
    }
    return handles;
  }

  msgsdk::Client client_;
};

// ---- Redis servers --------------------------------------------------------------------------

// A redis-server of one AOF setting, with a connection for housekeeping.
struct RedisHost {
  std::string aof;
  std::unique_ptr<msgsdk::test::RedisServer> server;
  RedisContextPtr control;

  // Deletes the streams of `topic`, the SDK's and the raw client's.
  void Drop(const std::string& topic, const Flags& flags) const {
    std::vector<std::string> unlink = {"UNLINK"};
    for (const std::string& prefix : {"msgsdk:" + topic, "bench-raw:" + topic}) {
      for (std::string& key : StreamNames(prefix, flags.redis_partitions)) {
        unlink.push_back(std::move(key));
      }
    }
    const auto reply = RedisCommand(control.get(), unlink);
    if (!reply.ok()) {
      std::fprintf(stderr, "warning: %s\n", reply.status().ToString().c_str());
    }
  }
};

msgsdk::Result<std::unique_ptr<RedisHost>> StartRedis(const std::string& aof) {
  msgsdk::test::RedisServerOptions options;
  options.append_only = aof != "no";
  // The fixture asks for appendfsync always; a later argument wins.
  if (aof == "everysec") options.extra_args = {"--appendfsync", "everysec"};
  auto host = std::make_unique<RedisHost>();
  host->aof = aof;
  MSGSDK_ASSIGN_OR_RETURN(host->server, msgsdk::test::RedisServer::Start(options));
  MSGSDK_ASSIGN_OR_RETURN(host->control, ConnectRedis(host->server->port()));
  // Make sure the server runs with the setting asked for.
  MSGSDK_ASSIGN_OR_RETURN(RedisReplyPtr reply,
                          RedisCommand(host->control.get(), {"CONFIG", "GET", "appendfsync"}));
  const std::string want = aof == "no" ? "" : aof;
  if (!want.empty() && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                        std::string(reply->element[1]->str, reply->element[1]->len) != want)) {
    return msgsdk::InternalError("redis-server did not take appendfsync " + want);
  }
  return host;
}

class RedisSdkSystem : public SdkSystem {
 public:
  RedisSdkSystem(const RedisHost& host, msgsdk::Client client, const Flags& flags)
      : SdkSystem("redis-sdk", host.aof, host.server->pid(), std::move(client)),
        host_(host),
        flags_(flags) {}
  void Cleanup(const std::string& topic) override { host_.Drop(topic, flags_); }

 private:
  const RedisHost& host_;
  const Flags& flags_;
};

// ---- Raw hiredis ----------------------------------------------------------------------------

// One connection's pipelined XADDs of the SDK's fields (id, born, body), --redis-batch per
// write, round robin over `streams` from `first`, until the budget ends. Strict turns: one
// write, then every reply.
SendOutcome RawSendLoop(redisContext* context, const std::vector<std::string>& streams,
                        size_t first, size_t size, Budget& budget, int batch) {
  const std::string body(size, 'x');
  size_t next = first % streams.size();
  SendOutcome outcome;
  for (int64_t n; (n = budget.Claim(batch)) > 0;) {
    const std::string born = NowMillis();
    for (int64_t i = 0; i < n; ++i) {
      AppendRedis(context,
                  {"XADD", streams[next], "*", "id", kRawMessageId, "born", born, "body", body});
      next = (next + 1) % streams.size();
    }
    for (int64_t i = 0; i < n; ++i) {
      auto reply = NextRedisReply(context, "raw XADD");
      if (!reply.ok()) {
        outcome.error = reply.status().ToString();
        return outcome;
      }
    }
    outcome.acknowledged += static_cast<uint64_t>(n);
    outcome.last = SteadyClock::now();
  }
  return outcome;
}

// Reads `streams` as a member of `group` (created beforehand): XREADGROUP COUNT
// --redis-read-count over all of them, then one XACK per stream with the ids just read, and
// again, until `done(received)` says so. `on_body` sees every body. With block_ms 0 the streams
// running dry before `done` is an error; otherwise each read waits up to block_ms.
struct ReadOutcome {
  uint64_t received = 0;
  SteadyClock::time_point last{};
  std::string error;
};

template <typename Done, typename OnBody>
ReadOutcome RawReadLoop(redisContext* context, const std::vector<std::string>& streams,
                        const std::string& group, int read_count, int block_ms, Done done,
                        OnBody on_body) {
  std::vector<std::string> read = {"XREADGROUP", "GROUP", group,
                                   "bench-raw",  "COUNT", std::to_string(read_count)};
  if (block_ms > 0) read.insert(read.end(), {"BLOCK", std::to_string(block_ms)});
  read.emplace_back("STREAMS");
  read.insert(read.end(), streams.begin(), streams.end());
  read.insert(read.end(), streams.size(), ">");
  ReadOutcome outcome;
  const auto give_up = SteadyClock::now() + kGiveUp;
  while (!done(outcome.received)) {
    if (SteadyClock::now() > give_up || interrupted.load()) {
      outcome.error = "raw read: gave up after " + std::to_string(outcome.received) + " messages";
      return outcome;
    }
    auto reply = RedisCommand(context, read);
    if (!reply.ok()) {
      outcome.error = reply.status().ToString();
      return outcome;
    }
    if ((*reply)->type != REDIS_REPLY_ARRAY) {
      if (block_ms > 0) continue;
      outcome.error =
          "raw read: the streams ran out after " + std::to_string(outcome.received) + " messages";
      return outcome;
    }
    auto acked = AckReadEntries(context, **reply, group, on_body);
    if (!acked.ok()) {
      outcome.error = acked.status().ToString();
      return outcome;
    }
    outcome.received += *acked;
    if (*acked > 0) outcome.last = SteadyClock::now();
  }
  return outcome;
}

class RedisRawSystem : public System {
 public:
  RedisRawSystem(const RedisHost& host, const Flags& flags)
      : System("redis-raw", host.aof, host.server->pid()), host_(host), flags_(flags) {}

  void Cleanup(const std::string& topic) override { host_.Drop(topic, flags_); }

  CaseResult Produce(const std::string& topic, size_t size, int producers,
                     const Flags& flags) override {
    CaseResult result;
    auto contexts = Connect(producers, result.error);
    if (!result.error.empty()) return result;
    const std::vector<std::string> streams = Streams(topic);
    Budget budget(flags.max_messages, flags.case_seconds, interrupted);
    std::vector<SendOutcome> outcomes(static_cast<size_t>(producers));
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    OnThreads(producers, [&](int t) {
      const auto index = static_cast<size_t>(t);
      outcomes[index] =
          RawSendLoop(contexts[index].get(), streams, index, size, budget, flags.redis_batch);
    });
    cpu.Stop(result);
    SteadyClock::time_point last = start;
    for (const SendOutcome& outcome : outcomes) {
      result.messages += outcome.acknowledged;
      last = std::max(last, outcome.last);
      if (result.error.empty()) result.error = outcome.error;
    }
    result.seconds = msgsdk::bench::Seconds(last - start);
    return result;
  }

  CaseResult Consume(const std::string& topic, size_t size, int64_t messages,
                     const Flags& flags) override {
    CaseResult result;
    auto contexts = Connect(1, result.error);
    if (!result.error.empty()) return result;
    redisContext* context = contexts[0].get();
    const std::vector<std::string> streams = Streams(topic);
    Budget fill(messages, 1e9, interrupted);
    SendOutcome filled = RawSendLoop(context, streams, 0, size, fill, flags.redis_batch);
    if (!filled.error.empty()) return CaseResult{.error = "filling: " + filled.error};
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    for (const std::string& stream : streams) {
      auto created = RedisCommand(context, {"XGROUP", "CREATE", stream, "bench-consume", "0"});
      if (!created.ok()) return CaseResult{.error = created.status().ToString()};
    }
    uint64_t body_bytes = 0;
    const ReadOutcome read = RawReadLoop(
        context, streams, "bench-consume", flags.redis_read_count, /*block_ms=*/0,
        [messages](uint64_t received) { return received >= static_cast<uint64_t>(messages); },
        [&body_bytes](std::string_view body) { body_bytes += body.size(); });
    cpu.Stop(result);
    result.messages = read.received;
    result.seconds = msgsdk::bench::Seconds(read.last - start);
    result.error = read.error;
    if (result.error.empty() && body_bytes != read.received * size) {
      result.error = "unexpected body sizes";
    }
    return result;
  }

  CaseResult ProduceAndConsume(const std::string& topic, size_t size, const Flags& flags) override {
    CaseResult result;
    auto contexts = Connect(2, result.error);
    if (!result.error.empty()) return result;
    const std::vector<std::string> streams = Streams(topic);
    for (const std::string& stream : streams) {
      auto created = RedisCommand(contexts[1].get(),
                                  {"XGROUP", "CREATE", stream, "bench-both", "0", "MKSTREAM"});
      if (!created.ok()) return CaseResult{.error = created.status().ToString()};
    }
    Budget budget(flags.max_messages, flags.case_seconds, interrupted);
    SendOutcome sent;
    std::atomic<bool> sending{true};
    std::atomic<uint64_t> acknowledged{0};
    const CpuMeter cpu(server());
    const auto start = SteadyClock::now();
    std::thread producer([&] {
      sent = RawSendLoop(contexts[0].get(), streams, 0, size, budget, flags.redis_batch);
      acknowledged.store(sent.acknowledged);
      sending.store(false);
    });
    const ReadOutcome read = RawReadLoop(
        contexts[1].get(), streams, "bench-both", flags.redis_read_count, /*block_ms=*/100,
        [&](uint64_t received) { return !sending.load() && received >= acknowledged.load(); },
        [](std::string_view) {});
    producer.join();
    cpu.Stop(result);
    result.messages = read.received;
    result.seconds = msgsdk::bench::Seconds(read.last - start);
    result.produce_rate =
        static_cast<double>(sent.acknowledged) / msgsdk::bench::Seconds(sent.last - start);
    result.error = !sent.error.empty() ? sent.error : read.error;
    return result;
  }

  LatencyResult Latency(const std::string& topic, size_t size, double rate,
                        const Flags& flags) override {
    LatencyResult result;
    std::string error;
    auto contexts = Connect(2, error);
    if (!error.empty()) return {.error = error};
    const std::vector<std::string> streams = Streams(topic);
    for (const std::string& stream : streams) {
      auto created = RedisCommand(contexts[1].get(),
                                  {"XGROUP", "CREATE", stream, "bench-latency", "$", "MKSTREAM"});
      if (!created.ok()) return {.error = created.status().ToString()};
    }
    const LatencySchedule schedule(rate, flags.warmup_seconds, flags.latency_seconds);
    std::atomic<bool> sending{true};
    std::atomic<uint64_t> sent_count{0};
    std::vector<int64_t> samples;
    msgsdk::bench::ReserveTouched(samples, static_cast<size_t>(schedule.total));
    ReadOutcome read;
    std::thread consumer([&] {
      read = RawReadLoop(
          contexts[1].get(), streams, "bench-latency", flags.redis_read_count, /*block_ms=*/100,
          [&](uint64_t received) { return !sending.load() && received >= sent_count.load(); },
          [&samples](std::string_view body) {
            const int64_t now = SteadyClock::now().time_since_epoch().count();
            if (body.size() >= 1 + sizeof(int64_t) && body[0] == '\1') {
              int64_t sent_ns = 0;
              std::memcpy(&sent_ns, body.data() + 1, sizeof(sent_ns));
              samples.push_back(now - sent_ns);
            }
          });
    });
    // Every message due by now goes in one pipelined write (at most --redis-batch), stamped
    // with the time of that write; then the replies are read.
    redisContext* context = contexts[0].get();
    const auto start = SteadyClock::now();
    SteadyClock::time_point measured_start{};
    int64_t sent = 0;
    while (sent < schedule.total && !interrupted.load() && error.empty()) {
      std::this_thread::sleep_until(start + sent * schedule.period);
      const auto now = SteadyClock::now();
      const auto due = std::min<int64_t>(
          {schedule.total, (now - start) / schedule.period + 1, sent + flags.redis_batch});
      const int64_t now_ns = now.time_since_epoch().count();
      const std::string born = NowMillis();
      for (int64_t i = sent; i < due; ++i) {
        const bool measured = i >= schedule.warmup;
        if (i == schedule.warmup) measured_start = now;
        if (measured) ++result.measured;
        const std::string body = LatencyBody(size, measured, now_ns);
        AppendRedis(context, {"XADD", streams[static_cast<size_t>(i) % streams.size()], "*", "id",
                              kRawMessageId, "born", born, "body", body});
      }
      for (int64_t i = sent; i < due; ++i) {
        auto reply = NextRedisReply(context, "raw XADD");
        if (!reply.ok()) {
          error = reply.status().ToString();
          break;
        }
      }
      sent = due;
      sent_count.store(static_cast<uint64_t>(sent));
    }
    const double seconds = msgsdk::bench::Seconds(SteadyClock::now() - measured_start);
    result.achieved_rate = seconds > 0 ? static_cast<double>(result.measured) / seconds : 0;
    sending.store(false);
    consumer.join();
    result.error = !error.empty() ? error : read.error;
    std::sort(samples.begin(), samples.end());
    return LatencyFrom(std::move(samples), std::move(result));
  }

 private:
  std::vector<std::string> Streams(const std::string& topic) const {
    return StreamNames("bench-raw:" + topic, flags_.redis_partitions);
  }

  std::vector<RedisContextPtr> Connect(int n, std::string& error) const {
    std::vector<RedisContextPtr> contexts;
    for (int i = 0; i < n; ++i) {
      auto context = ConnectRedis(host_.server->port());
      if (!context.ok()) {
        error = context.status().ToString();
        break;
      }
      contexts.push_back(std::move(*context));
    }
    return contexts;
  }

  const RedisHost& host_;
  const Flags& flags_;
};

// ---- Setting up a round ---------------------------------------------------------------------

std::string ClientYaml(const std::string& cluster_entry) {
  return "environments:\n"
         "  bench:\n"
         "    clusters:\n"
         "      main: " +
         cluster_entry +
         "\n"
         "    default_cluster: main\n"
         "client:\n"
         "  send_timeout_ms: 60000\n";
}

msgsdk::Result<msgsdk::Client> MakeClient(const std::string& cluster_entry) {
  return msgsdk::Client::Create({.config_yaml = ClientYaml(cluster_entry), .environment = "bench"});
}

// The servers and systems of one round, stopped and removed at its end.
struct Round {
  std::vector<std::unique_ptr<msgsdk::test::BrokerProcess>> brokers;
  std::vector<std::unique_ptr<RedisHost>> redis;
  std::vector<std::unique_ptr<System>> systems;

  ~Round() {
    // Clients before their servers.
    systems.clear();
    for (auto& broker : brokers) {
      const msgsdk::Status stopped = broker->Stop();
      if (!stopped.ok()) std::fprintf(stderr, "warning: %s\n", stopped.ToString().c_str());
    }
  }
};

msgsdk::Status StartRound(const Flags& flags, Round& round) {
  if (Wants(flags.systems, "broker")) {
    for (const std::string& mode : flags.modes) {
      MSGSDK_ASSIGN_OR_RETURN(
          auto broker,
          msgsdk::test::BrokerProcess::Start({.binary = flags.broker_binary, .flush_mode = mode}));
      MSGSDK_ASSIGN_OR_RETURN(msgsdk::Client client, MakeClient(broker->ClusterYaml()));
      round.systems.push_back(
          std::make_unique<SdkSystem>("broker", mode, broker->pid(), std::move(client)));
      round.brokers.push_back(std::move(broker));
    }
  }
  const bool redis_sdk = Wants(flags.systems, "redis-sdk");
  const bool redis_raw = Wants(flags.systems, "redis-raw");
  if (redis_sdk || redis_raw) {
    for (const std::string& aof : flags.redis_aof) {
      MSGSDK_ASSIGN_OR_RETURN(auto host, StartRedis(aof));
      if (redis_sdk) {
        MSGSDK_ASSIGN_OR_RETURN(msgsdk::Client client,
                                MakeClient(host->server->ClusterYaml(
                                    "partitions: " + std::to_string(flags.redis_partitions) +
                                    ", pipeline_depth: " + std::to_string(flags.redis_batch) +
                                    ", read_batch: " + std::to_string(flags.redis_read_count))));
        round.systems.push_back(std::make_unique<RedisSdkSystem>(*host, std::move(client), flags));
      }
      if (redis_raw) round.systems.push_back(std::make_unique<RedisRawSystem>(*host, flags));
      round.redis.push_back(std::move(host));
    }
  }
  return msgsdk::OkStatus();
}

// ---- The matrix -----------------------------------------------------------------------------

// A case: its kind ("produce", "consume", "both", "latency") and parameter (producers, or
// the latency rate), the body size and the system.
struct CaseKey {
  std::string kind;
  int64_t parameter = 0;
  size_t size = 0;
  std::string system;
  bool operator<(const CaseKey& other) const {
    return std::tie(kind, parameter, size, system) <
           std::tie(other.kind, other.parameter, other.size, other.system);
  }
};

struct Results {
  std::vector<std::string> systems;  // row order
  std::map<CaseKey, std::vector<CaseResult>> throughput;
  std::map<CaseKey, std::vector<LatencyResult>> latency;
  // The disk's fdatasync, probed at the start of each round: the floor of group commit.
  std::vector<msgsdk::bench::SyncLatency> syncs;
  // The simplest group commit on the same disk at each latency case's rate and body size
  // (MeasureGroupCommitFloor), per round: the floor of the group-commit latency rows.
  std::map<std::pair<int64_t, size_t>, std::vector<LatencyResult>> floors;
  std::vector<std::string> errors;
};

void Note(const std::string& what) {
  std::fprintf(stderr, "  %s (load %s)\n", what.c_str(), LoadAverage().c_str());
}

// MeasureGroupCommitFloor on the latency case's schedule, in $TMPDIR (where the brokers keep
// their data). Failures in the result's `error`.
LatencyResult MeasureFloor(double rate, size_t size, const Flags& flags) {
  const LatencySchedule schedule(rate, flags.warmup_seconds, flags.latency_seconds);
  auto scratch = msgsdk::bench::TempDir::Create("");
  if (!scratch.ok()) return {.error = scratch.status().ToString()};
  msgsdk::bench::GroupCommitFloor floor =
      msgsdk::bench::MeasureGroupCommitFloor((*scratch)->path(), schedule, size);
  if (!floor.error.empty()) return {.error = floor.error};
  LatencyResult result;
  result.measured = schedule.total - schedule.warmup;
  result.achieved_rate = floor.arrival_rate;
  return LatencyFrom(floor.sorted_ns, std::move(result));
}

void RunRound(const Flags& flags, int round_number, Results& results) {
  if (Wants(flags.modes, "group_commit") && Wants(flags.systems, "broker")) {
    // In $TMPDIR, where the brokers keep their data.
    auto scratch = msgsdk::bench::TempDir::Create("");
    msgsdk::bench::SyncLatency sync =
        scratch.ok() ? msgsdk::bench::MeasureFdatasync((*scratch)->path())
                     : msgsdk::bench::SyncLatency{.error = scratch.status().ToString()};
    if (sync.error.empty()) {
      results.syncs.push_back(sync);
    } else {
      results.errors.push_back("round " + std::to_string(round_number) + ": " + sync.error);
    }
  }
  Round round;
  if (const msgsdk::Status started = StartRound(flags, round); !started.ok()) {
    results.errors.push_back("round " + std::to_string(round_number) +
                             ": starting the servers: " + started.ToString());
    return;
  }
  if (results.systems.empty()) {
    for (const auto& system : round.systems) results.systems.push_back(system->name());
  }
  const std::string suffix = "-r" + std::to_string(round_number);
  const auto record_error = [&](const std::string& label, const std::string& error) {
    if (!error.empty()) results.errors.push_back(label + ": " + error);
  };
  for (const size_t size : flags.sizes) {
    const std::string size_tag = "-" + std::to_string(size);
    if (Wants(flags.cases, "latency") && Wants(flags.modes, "group_commit") &&
        Wants(flags.systems, "broker")) {
      for (const double rate : flags.rates) {
        if (interrupted.load()) return;
        const std::string label = "round " + std::to_string(round_number) + ", " + SizeName(size) +
                                  ", disk group commit floor at " +
                                  WithSeparators(static_cast<uint64_t>(rate)) + " msgs/s";
        Note(label);
        LatencyResult floor = MeasureFloor(rate, size, flags);
        if (floor.error.empty()) {
          results.floors[{static_cast<int64_t>(rate), size}].push_back(std::move(floor));
        } else {
          results.errors.push_back(label + ": " + floor.error);
        }
      }
    }
    for (const auto& system : round.systems) {
      const std::string label = "round " + std::to_string(round_number) + ", " + SizeName(size) +
                                ", " + system->name() + ", ";
      if (Wants(flags.cases, "produce")) {
        for (const int producers : flags.producers) {
          if (interrupted.load()) return;
          const std::string name = "produce x" + std::to_string(producers);
          Note(label + name);
          const std::string topic = "produce-p" + std::to_string(producers) + size_tag + suffix;
          CaseResult r = system->Produce(topic, size, producers, flags);
          system->Cleanup(topic);
          record_error(label + name, r.error);
          results.throughput[{"produce", producers, size, system->name()}].push_back(r);
        }
      }
      if (Wants(flags.cases, "consume") && !interrupted.load()) {
        const int64_t cap = flags.case_mib * 1024 * 1024 / static_cast<int64_t>(size);
        const int64_t messages = std::max<int64_t>(1, std::min(flags.consume_messages, cap));
        Note(label + "consume " + WithSeparators(static_cast<uint64_t>(messages)));
        const std::string topic = "consume" + size_tag + suffix;
        CaseResult r = system->Consume(topic, size, messages, flags);
        system->Cleanup(topic);
        record_error(label + "consume", r.error);
        results.throughput[{"consume", 0, size, system->name()}].push_back(r);
      }
      if (Wants(flags.cases, "both") && !interrupted.load()) {
        Note(label + "produce and consume");
        const std::string topic = "both" + size_tag + suffix;
        CaseResult r = system->ProduceAndConsume(topic, size, flags);
        system->Cleanup(topic);
        record_error(label + "both", r.error);
        results.throughput[{"both", 0, size, system->name()}].push_back(r);
      }
      if (Wants(flags.cases, "latency")) {
        for (const double rate : flags.rates) {
          if (interrupted.load()) return;
          Note(label + "latency at " + WithSeparators(static_cast<uint64_t>(rate)) + " msgs/s");
          const std::string topic = "latency-" + RateName(rate) + size_tag + suffix;
          LatencyResult r = system->Latency(topic, size, rate, flags);
          system->Cleanup(topic);
          record_error(label + "latency " + RateName(rate), r.error);
          if (r.received < r.measured && r.error.empty()) {
            results.errors.push_back(label + "latency " + RateName(rate) + ": " +
                                     std::to_string(r.measured - r.received) +
                                     " measured messages not received");
          }
          results.latency[{"latency", static_cast<int64_t>(rate), size, system->name()}].push_back(
              r);
        }
      }
    }
  }
}

// ---- Report ---------------------------------------------------------------------------------

template <typename T, typename Field>
double MedianOf(const std::vector<T>& runs, Field field) {
  std::vector<double> values;
  values.reserve(runs.size());
  for (const T& run : runs) values.push_back(field(run));
  return msgsdk::bench::Median(std::move(values));
}

std::string CaseName(const std::string& kind, int64_t parameter) {
  if (kind == "produce") {
    return "produce, " + std::to_string(parameter) + " producer" + (parameter == 1 ? "" : "s");
  }
  if (kind == "consume") return "consume (pre-filled)";
  if (kind == "both") return "produce + consume";
  return "latency p99 at " + RateName(static_cast<double>(parameter));
}

// The throughput of a case in one system (median rate), or 0 if it was not measured.
double MedianRate(const Results& results, const CaseKey& key) {
  auto it = results.throughput.find(key);
  if (it == results.throughput.end() || it->second.empty()) return 0;
  return MedianOf(it->second, [](const CaseResult& r) { return r.rate(); });
}

double MedianLatency(const std::vector<LatencyResult>& runs, double LatencyResult::*field) {
  return MedianOf(runs, [field](const LatencyResult& r) { return r.*field; });
}

double MedianLatency(const Results& results, const CaseKey& key, double LatencyResult::*field) {
  auto it = results.latency.find(key);
  if (it == results.latency.end() || it->second.empty()) return 0;
  return MedianLatency(it->second, field);
}

std::vector<CaseKey> ThroughputCases(const Flags& flags) {
  std::vector<CaseKey> cases;
  for (const size_t size : flags.sizes) {
    if (Wants(flags.cases, "produce")) {
      for (const int producers : flags.producers) cases.push_back({"produce", producers, size, ""});
    }
    if (Wants(flags.cases, "consume")) cases.push_back({"consume", 0, size, ""});
    if (Wants(flags.cases, "both")) cases.push_back({"both", 0, size, ""});
  }
  return cases;
}

std::string Verdict(bool met) { return met ? "met" : "MISSED"; }

void Report(const Flags& flags, const Results& results) {
  const bool medians = flags.repeat > 1;
  std::printf(
      "\nThroughput (%s; messages acknowledged or handled per second; CPU per message)\n",
      medians ? ("medians of " + std::to_string(flags.repeat) + " rounds").c_str() : "one round");
  Table table({"case", "size", "system", "messages", "seconds", "msgs/s", "MiB/s", "client us",
               "server us", "produce msgs/s"});
  for (CaseKey key : ThroughputCases(flags)) {
    for (const std::string& system : results.systems) {
      key.system = system;
      auto it = results.throughput.find(key);
      if (it == results.throughput.end() || it->second.empty()) continue;
      const auto& runs = it->second;
      const double rate = MedianOf(runs, [](const CaseResult& r) { return r.rate(); });
      table.AddRow({CaseName(key.kind, key.parameter), SizeName(key.size), system,
                    WithSeparators(static_cast<uint64_t>(
                        MedianOf(runs, [](const CaseResult& r) { return double(r.messages); }))),
                    Fixed(MedianOf(runs, [](const CaseResult& r) { return r.seconds; }), 2),
                    WithSeparators(static_cast<uint64_t>(rate)),
                    Fixed(rate * static_cast<double>(key.size) / (1024.0 * 1024.0), 1),
                    Fixed(MedianOf(runs, [](const CaseResult& r) { return r.client_us(); }), 2),
                    Fixed(MedianOf(runs, [](const CaseResult& r) { return r.server_us(); }), 2),
                    key.kind == "both"
                        ? WithSeparators(static_cast<uint64_t>(
                              MedianOf(runs, [](const CaseResult& r) { return r.produce_rate; })))
                        : "-"});
    }
  }
  table.Print();

  if (!results.latency.empty()) {
    std::printf(
        "\nEnd-to-end latency at fixed rates (send -> handler, microseconds; rate = achieved)\n");
    Table latency(
        {"system", "size", "asked", "rate msgs/s", "samples", "p50", "p99", "p99.9", "max"});
    const auto add_row = [&](const std::string& system, size_t size, double rate,
                             const std::vector<LatencyResult>& runs) {
      const auto median = [&](double LatencyResult::*field) { return MedianLatency(runs, field); };
      latency.AddRow(
          {system, SizeName(size), RateName(rate),
           WithSeparators(static_cast<uint64_t>(median(&LatencyResult::achieved_rate))),
           WithSeparators(static_cast<uint64_t>(
               MedianOf(runs, [](const LatencyResult& r) { return double(r.received); }))),
           Fixed(median(&LatencyResult::p50_us), 0), Fixed(median(&LatencyResult::p99_us), 0),
           Fixed(median(&LatencyResult::p999_us), 0), Fixed(median(&LatencyResult::max_us), 0)});
    };
    for (const size_t size : flags.sizes) {
      for (const double rate : flags.rates) {
        for (const std::string& system : results.systems) {
          auto it = results.latency.find({"latency", static_cast<int64_t>(rate), size, system});
          if (it != results.latency.end() && !it->second.empty()) {
            add_row(system, size, rate, it->second);
          }
        }
        auto floor = results.floors.find({static_cast<int64_t>(rate), size});
        if (floor != results.floors.end() && !floor->second.empty()) {
          add_row(kFloorName, size, rate, floor->second);
        }
      }
    }
    latency.Print();
  }

  // Broker / Redis, per broker mode and Redis system.
  std::vector<std::string> brokers;
  std::vector<std::string> redis;
  for (const std::string& system : results.systems) {
    (system.rfind("broker", 0) == 0 ? brokers : redis).push_back(system);
  }
  // The smallest ratio per broker mode and Redis system, at the target's body size.
  std::map<std::pair<std::string, std::string>, std::pair<double, std::string>> worst;
  if (!brokers.empty() && !redis.empty()) {
    std::printf(
        "\nBroker vs Redis Streams (throughput: broker / redis; latency: redis p99 / broker p99;"
        " above 1: the broker is better)\n");
    std::vector<std::string> header = {"case", "size", "broker"};
    for (const std::string& r : redis) header.push_back("vs " + r);
    Table ratios(header);
    std::vector<CaseKey> cases = ThroughputCases(flags);
    if (Wants(flags.cases, "latency")) {
      for (const size_t size : flags.sizes) {
        for (const double rate : flags.rates) {
          cases.push_back({"latency", static_cast<int64_t>(rate), size, ""});
        }
      }
    }
    for (const CaseKey& base : cases) {
      for (const std::string& broker : brokers) {
        std::vector<std::string> row = {CaseName(base.kind, base.parameter), SizeName(base.size),
                                        broker};
        bool any = false;
        for (const std::string& r : redis) {
          CaseKey b = base;
          b.system = broker;
          CaseKey o = base;
          o.system = r;
          double ratio = 0;
          if (base.kind == "latency") {
            const double broker_p99 = MedianLatency(results, b, &LatencyResult::p99_us);
            const double redis_p99 = MedianLatency(results, o, &LatencyResult::p99_us);
            ratio = broker_p99 > 0 ? redis_p99 / broker_p99 : 0;
          } else {
            const double redis_rate = MedianRate(results, o);
            ratio = redis_rate > 0 ? MedianRate(results, b) / redis_rate : 0;
          }
          row.push_back(ratio > 0 ? Fixed(ratio, 2) : "-");
          if (ratio > 0) {
            any = true;
            if (base.kind != "latency" && base.size == kTargetBodyBytes) {
              auto& slot = worst[{broker, r}];
              if (slot.second.empty() || ratio < slot.first) {
                slot = {ratio, CaseName(base.kind, base.parameter)};
              }
            }
          }
        }
        if (any) ratios.AddRow(std::move(row));
      }
    }
    ratios.Print();
  }

  std::printf("\nTargets (%s messages)\n", SizeName(kTargetBodyBytes).c_str());
  const auto rate_target = [&](const std::string& what, const CaseKey& key, double target) {
    const double rate = MedianRate(results, key);
    if (rate <= 0) return;
    std::printf("  %-52s %12s msgs/s  >= %s: %s\n", what.c_str(),
                WithSeparators(static_cast<uint64_t>(rate)).c_str(),
                WithSeparators(static_cast<uint64_t>(target)).c_str(),
                Verdict(rate >= target).c_str());
  };
  for (const int producers : flags.producers) {
    rate_target("periodic, produce, " + std::to_string(producers) + " producer(s)",
                {"produce", producers, kTargetBodyBytes, "broker periodic"}, kTargetPeriodicRate);
  }
  rate_target("periodic, consume (pre-filled)", {"consume", 0, kTargetBodyBytes, "broker periodic"},
              kTargetPeriodicRate);
  rate_target("periodic, produce + consume (consumed)",
              {"both", 0, kTargetBodyBytes, "broker periodic"}, kTargetPeriodicRate);
  rate_target(
      "group_commit, produce, " + std::to_string(kTargetGroupCommitProducers) + " producers",
      {"produce", kTargetGroupCommitProducers, kTargetBodyBytes, "broker group_commit"},
      kTargetGroupCommitRate);
  for (const std::string& broker : brokers) {
    for (const size_t size : flags.sizes) {
      const CaseKey key{"latency", static_cast<int64_t>(kTargetLatencyRate), size, broker};
      const double p99 = MedianLatency(results, key, &LatencyResult::p99_us);
      const double p999 = MedianLatency(results, key, &LatencyResult::p999_us);
      if (p99 <= 0) continue;
      std::printf(
          "  %-52s p99 %s us < %s: %s, p99.9 %s us < %s: %s\n",
          (broker + ", latency at " + RateName(kTargetLatencyRate) + ", " + SizeName(size)).c_str(),
          Fixed(p99, 0).c_str(), Fixed(kTargetP99Us, 0).c_str(),
          Verdict(p99 < kTargetP99Us).c_str(), Fixed(p999, 0).c_str(),
          Fixed(kTargetP999Us, 0).c_str(), Verdict(p999 < kTargetP999Us).c_str());
    }
  }
  if (!results.syncs.empty()) {
    using msgsdk::bench::SyncLatency;
    // A group-commit send is acknowledged, and readable, only after its fdatasync.
    std::printf(
        "  %-52s p50 %s us, p99 %s us, p99.9 %s us\n",
        "(group commit's floor: this disk's fdatasync)",
        Fixed(MedianOf(results.syncs, [](const SyncLatency& r) { return r.p50_us; }), 0).c_str(),
        Fixed(MedianOf(results.syncs, [](const SyncLatency& r) { return r.p99_us; }), 0).c_str(),
        Fixed(MedianOf(results.syncs, [](const SyncLatency& r) { return r.p999_us; }), 0).c_str());
  }
  for (const size_t size : flags.sizes) {
    auto floor = results.floors.find({static_cast<int64_t>(kTargetLatencyRate), size});
    if (floor == results.floors.end() || floor->second.empty()) continue;
    // The same latency case on the same disk with nothing but a write and an fdatasync.
    std::printf("  %-52s p99 %s us, p99.9 %s us\n",
                ("(the disk's own group commit at " + RateName(kTargetLatencyRate) + ", " +
                 SizeName(size) + ")")
                    .c_str(),
                Fixed(MedianLatency(floor->second, &LatencyResult::p99_us), 0).c_str(),
                Fixed(MedianLatency(floor->second, &LatencyResult::p999_us), 0).c_str());
  }
  for (const auto& [pair, value] : worst) {
    std::printf("  %-52s lowest ratio %s (%s)  >= %s: %s\n",
                (pair.first + " vs " + pair.second).c_str(), Fixed(value.first, 2).c_str(),
                value.second.c_str(), Fixed(kTargetRedisRatio, 1).c_str(),
                Verdict(value.first >= kTargetRedisRatio).c_str());
  }

  if (!results.errors.empty()) {
    std::printf("\nErrors (%zu)\n", results.errors.size());
    for (const std::string& error : results.errors) std::printf("  %s\n", error.c_str());
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "Benchmark of the msgsdk-broker daemon through the public API: produce, consume, both "
      "at once, and end-to-end latency at fixed rates, for each flush mode and body size, "
      "against Redis Streams (through the SDK and raw hiredis) in the same run."};
  app.add_option("--modes", flags.modes, "Flush modes of the brokers")
      ->check(CLI::IsMember({"group_commit", "periodic"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--redis-aof", flags.redis_aof,
                 "AOF settings of the redis-servers: no (appendonly no), everysec (appendonly "
                 "yes, appendfsync everysec), always")
      ->check(CLI::IsMember({"no", "everysec", "always"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--systems", flags.systems, "Systems to measure")
      ->check(CLI::IsMember({"broker", "redis-sdk", "redis-raw"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--cases", flags.cases, "Cases to run")
      ->check(CLI::IsMember({"produce", "consume", "both", "latency"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--sizes", flags.sizes, "Body sizes in bytes")
      ->check(CLI::Range(size_t{16}, size_t{4} << 20))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--producers", flags.producers,
                 "Concurrent producers of the produce case, one row per count")
      ->check(CLI::Range(1, 1024))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rates", flags.rates, "Send rates of the latency case, messages per second")
      ->check(CLI::Range(1.0, 10'000'000.0))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--messages", flags.max_messages, "Most messages per produce or both case")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--seconds", flags.case_seconds,
                 "Most seconds of sending per produce or both case (then in-flight sends drain)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--consume-messages", flags.consume_messages,
                 "Messages the consume case reads (written first, untimed)")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--case-mib", flags.case_mib,
                 "Caps the consume case's messages at this many MiB of bodies")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--window", flags.window,
                 "SDK sends in flight at most, shared by the producers of a case")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--redis-partitions", flags.redis_partitions, "Streams per topic on Redis")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--redis-batch", flags.redis_batch,
                 "XADD commands per round trip (raw) and pipeline_depth (SDK)")
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  app.add_option("--redis-read-count", flags.redis_read_count,
                 "XREADGROUP COUNT (raw) and read_batch (SDK)")
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  app.add_option("--consumer-threads", flags.consumer_threads,
                 "Handler threads of the SDK's subscriptions (0: the SDK's default)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--latency-seconds", flags.latency_seconds, "Measured seconds per latency case")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup-seconds", flags.warmup_seconds,
                 "Seconds sent before a latency case starts measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--repeat", flags.repeat, "Rounds (fresh servers each); figures are medians")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--broker-binary", flags.broker_binary, "The msgsdk-broker executable")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // A server that goes away must end a case with an error, not the benchmark.
  std::signal(SIGPIPE, SIG_IGN);

  std::printf("msgsdk-bench-broker  %s  %u hardware threads  load average %s\n",
              CurrentDate().c_str(), std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::printf(
      "  produce/both: up to %s messages or %.1f s, window %s; consume: %s messages (at most "
      "%lld MiB); latency: %.1f s after %.1f s warm-up; redis: %d streams, batch %d, read "
      "count %d\n",
      WithSeparators(static_cast<uint64_t>(flags.max_messages)).c_str(), flags.case_seconds,
      WithSeparators(static_cast<uint64_t>(flags.window)).c_str(),
      WithSeparators(static_cast<uint64_t>(flags.consume_messages)).c_str(),
      static_cast<long long>(flags.case_mib), flags.latency_seconds, flags.warmup_seconds,
      flags.redis_partitions, flags.redis_batch, flags.redis_read_count);
  std::fflush(stdout);

  Results results;
  for (int round = 1; round <= flags.repeat && !interrupted.load(); ++round) {
    RunRound(flags, round, results);
  }
  Report(flags, results);
  std::printf("\nload average at the end %s\n", LoadAverage().c_str());
  return results.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
