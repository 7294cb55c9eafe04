// msgsdk-bench-embedded: the embedded native path, measured through the public API.
//
// For each flush mode (group_commit, periodic) and body size (100 B, 1 KiB):
//  - send throughput: Send (sync), SendAsync (counting callback, many in flight) and SendBatch;
//  - the same appends made straight on the storage engine (MessageStore::Append), measured in
//    the same run: the raw figure the SDK's own cost is read against;
//  - end-to-end latency at a fixed send rate: SendAsync -> handler, p50/p99/p99.9; in group
//    commit with the disk's own floor next to it (the same schedule through nothing but one
//    thread's write and fdatasync, MeasureGroupCommitFloor);
//  - durable consumer-offset commits on the storage engine (MessageStore::CommitOffsets), one
//    committer and many: what a commit costs, and how concurrent commits share fdatasyncs.
// Each store's commit log is first filled past its page-cache window (--fill-mib), so the
// throughput cases measure a process in its steady state rather than its first 256 MiB.
// Every cell can be repeated; the table shows medians. A benchmark, not a test: it prints
// figures and never fails on them.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "backends/native/storage/message_store.h"
#include "bench_util.h"
#include "msgsdk/msgsdk.h"

namespace {

using msgsdk::bench::Budget;
using msgsdk::bench::CompletionCounter;
using msgsdk::bench::Fixed;
using msgsdk::bench::LatencyBody;
using msgsdk::bench::OnThreads;
using msgsdk::bench::Quantile;
using msgsdk::bench::Samples;
using msgsdk::bench::SelfCpuSeconds;
using msgsdk::bench::SendWindow;
using msgsdk::bench::SteadyClock;
using msgsdk::bench::Table;
using msgsdk::bench::TempDir;
using msgsdk::bench::Throughput;
using msgsdk::bench::WithSeparators;

// The target for the embedded path: async send of 100 B messages.
constexpr double kTargetAsync100B = 3'000'000;
constexpr size_t kTargetBodyBytes = 100;
// The latency rows of MeasureGroupCommitFloor.
constexpr const char* kFloorName = "disk group commit (floor)";

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
extern "C" void OnSignal(int /*signal*/) { interrupted.store(true); }

struct Flags {
  std::vector<std::string> modes = {"group_commit", "periodic"};
  std::vector<size_t> sizes = {100, 1024};
  std::vector<std::string> cases = {"sync", "async",   "batch", "consume",
                                    "raw",  "latency", "commit"};
  std::vector<int> committers = {1, 16};
  int64_t max_messages = 2'000'000;
  double case_seconds = 2.0;
  int64_t window = 65536;
  int batch = 256;
  int producers = 1;
  double rate = 10000;
  double latency_seconds = 2.0;
  double warmup_seconds = 0.5;
  int64_t fill_mib = 320;
  int repeat = 1;
  std::string data_dir;
};

bool Wants(const Flags& flags, const std::string& name) {
  return std::find(flags.cases.begin(), flags.cases.end(), name) != flags.cases.end();
}

// ---- Formatting ---------------------------------------------------------------------------

std::string SizeName(size_t bytes) {
  return bytes % 1024 == 0 ? std::to_string(bytes / 1024) + " KiB" : std::to_string(bytes) + " B";
}

// ---- Scratch directories ------------------------------------------------------------------

// The routing table of one benchmark client: one embedded native cluster in `data_dir`.
std::string RoutingTableYaml(const std::string& data_dir, const std::string& flush_mode) {
  return "environments:\n"
         "  bench:\n"
         "    clusters:\n"
         "      local: { backend: native, data_dir: \"" +
         data_dir + "\", flush_mode: " + flush_mode +
         " }\n"
         "    default_cluster: local\n";
}

// ---- Measurements -------------------------------------------------------------------------

msgsdk::Message BenchMessage(const std::string& body) {
  return msgsdk::Message{.tag = "bench", .body = body};
}

Throughput MeasureSync(msgsdk::Producer& producer, const std::string& body, const Flags& flags) {
  Budget budget(flags.max_messages, flags.case_seconds, interrupted);
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  std::mutex error_mutex;
  std::string first_error;
  const auto start = SteadyClock::now();
  OnThreads(flags.producers, [&](int) {
    while (budget.Claim(1) == 1) {
      auto receipt = producer.Send(BenchMessage(body));
      if (receipt.ok()) {
        ok.fetch_add(1, std::memory_order_relaxed);
      } else if (failed.fetch_add(1) == 0) {
        std::lock_guard lock(error_mutex);
        first_error = receipt.status().ToString();
      }
    }
  });
  return Throughput{.messages = ok.load(),
                    .failed = failed.load(),
                    .seconds = std::chrono::duration<double>(SteadyClock::now() - start).count(),
                    .first_error = first_error};
}

Throughput MeasureAsync(msgsdk::Producer& producer, const std::string& body, const Flags& flags) {
  Budget budget(flags.max_messages, flags.case_seconds, interrupted);
  CompletionCounter counter;
  SendWindow window(flags.window);
  std::atomic<uint64_t> submitted{0};
  const double cpu_start = SelfCpuSeconds();
  const auto start = SteadyClock::now();
  OnThreads(flags.producers, [&](int) {
    // Claim in slices so the shared budget is not touched per message.
    for (int64_t n; (n = budget.Claim(256)) > 0;) {
      for (int64_t i = 0; i < n; ++i) {
        window.Acquire();
        producer.SendAsync(BenchMessage(body),
                           [&counter, &window](const msgsdk::Result<msgsdk::SendReceipt>& r) {
                             window.Release();
                             counter.Done(r.ok(), r.ok() ? msgsdk::OkStatus() : r.status());
                           });
      }
      submitted.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
  });
  if (!counter.WaitFor(submitted.load(), std::chrono::seconds(60))) {
    std::fprintf(stderr, "warning: async sends still unanswered after 60 s\n");
  }
  Throughput result = counter.Result(start);
  result.cpu_seconds = SelfCpuSeconds() - cpu_start;
  return result;
}

Throughput MeasureBatch(msgsdk::Producer& producer, const std::string& body, const Flags& flags) {
  Budget budget(flags.max_messages, flags.case_seconds, interrupted);
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> failed{0};
  std::mutex error_mutex;
  std::string first_error;
  const auto start = SteadyClock::now();
  OnThreads(flags.producers, [&](int) {
    for (int64_t n; (n = budget.Claim(flags.batch)) > 0;) {
      std::vector<msgsdk::Message> batch;
      batch.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) batch.push_back(BenchMessage(body));
      auto receipts = producer.SendBatch(std::move(batch));
      if (receipts.ok()) {
        ok.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      } else if (failed.fetch_add(static_cast<uint64_t>(n)) == 0) {
        std::lock_guard lock(error_mutex);
        first_error = receipts.status().ToString();
      }
    }
  });
  return Throughput{.messages = ok.load(),
                    .failed = failed.load(),
                    .seconds = std::chrono::duration<double>(SteadyClock::now() - start).count(),
                    .first_error = first_error};
}

// Bodies the consume case reads at most: what the commit log keeps in the page cache
// (StoreOptions::log_cache_bytes), as a consumer keeping up with its producers reads it.
constexpr int64_t kConsumeBodyBytes = int64_t{256} << 20;

// A new group reads a topic that SendAsync filled first (untimed: --messages, at most
// kConsumeBodyBytes of bodies), with the SDK's default handler threads and a handler that only
// counts: from the Subscribe call to the last message handled.
Throughput MeasureConsume(msgsdk::Client& client, const std::string& topic, const std::string& body,
                          const Flags& flags) {
  auto producer = client.CreateProducer(topic);
  if (!producer.ok()) return Throughput{.first_error = producer.status().ToString()};
  Flags fill = flags;
  fill.max_messages =
      std::min(flags.max_messages, kConsumeBodyBytes / static_cast<int64_t>(body.size()));
  fill.case_seconds = 600;
  const Throughput filled = MeasureAsync(*producer, body, fill);
  const msgsdk::Status closed = producer->Close();
  if (!filled.first_error.empty() || !closed.ok()) {
    return Throughput{.first_error =
                          "filling the topic: " +
                          (filled.first_error.empty() ? closed.ToString() : filled.first_error)};
  }
  const auto handled = std::make_shared<msgsdk::bench::Progress>();
  const double cpu_start = SelfCpuSeconds();
  const auto start = SteadyClock::now();
  auto subscription = client.Subscribe(topic, "bench-consume", [handled](const msgsdk::Message&) {
    handled->Add();
    return msgsdk::ConsumeResult::kSuccess;
  });
  if (!subscription.ok()) return Throughput{.first_error = subscription.status().ToString()};
  const bool all =
      handled->WaitFor(static_cast<int64_t>(filled.messages), std::chrono::seconds(60));
  Throughput result{.messages = static_cast<uint64_t>(handled->done()),
                    .seconds = std::chrono::duration<double>(handled->last() - start).count(),
                    .cpu_seconds = SelfCpuSeconds() - cpu_start};
  if (!all) {
    result.first_error = "only " + WithSeparators(result.messages) + " of " +
                         WithSeparators(filled.messages) + " messages handled within 60 s";
  }
  if (const msgsdk::Status stopped = subscription->Close();
      !stopped.ok() && result.first_error.empty()) {
    result.first_error = "closing the subscription: " + stopped.ToString();
  }
  return result;
}

// Before the throughput cases, each store's commit log is filled past the part of it kept
// in the page cache (StoreOptions::log_cache_bytes, 256 MiB), so that they measure the log in
// the state of a process that has run for a while: the page-cache limit at work, writing back
// and dropping older pages while appends take new ones. A fresh store's first 256 MiB go
// faster (nothing to drop yet) and would flatter the figures of short runs. The SDK and the
// raw store are filled alike.
constexpr size_t kFillBodyBytes = 64 * 1024;

// Sends --fill-mib MiB of kFillBodyBytes bodies through `send(body, done)`, a window of them
// at a time, and waits until every `done(status)` has run.
template <typename Send>
msgsdk::Status Fill(const Flags& flags, Send send) {
  const std::string body(kFillBodyBytes, 'f');
  const int64_t messages = flags.fill_mib * (int64_t{1} << 20) / int64_t{kFillBodyBytes};
  CompletionCounter counter;
  SendWindow window(1024);
  const auto done = [&counter, &window](const msgsdk::Status& status) {
    window.Release();
    counter.Done(status.ok(), status);
  };
  int64_t sent = 0;
  for (; sent < messages && !interrupted.load(); ++sent) {
    window.Acquire();
    send(body, done);
  }
  if (!counter.WaitFor(static_cast<uint64_t>(sent), std::chrono::seconds(60))) {
    return msgsdk::DeadlineExceededError("filling the commit log: sends unanswered after 60 s");
  }
  const std::string error = counter.Result(SteadyClock::now()).first_error;
  return error.empty() ? msgsdk::OkStatus()
                       : msgsdk::InternalError("filling the commit log: " + error);
}

msgsdk::Status FillLog(msgsdk::Client& client, const Flags& flags) {
  auto producer = client.CreateProducer("bench-fill");
  if (!producer.ok()) return producer.status();
  msgsdk::Status filled = Fill(flags, [&](const std::string& body, auto done) {
    producer->SendAsync(msgsdk::Message{.body = body},
                        [done](const msgsdk::Result<msgsdk::SendReceipt>& r) {
                          done(r.ok() ? msgsdk::OkStatus() : r.status());
                        });
  });
  const msgsdk::Status closed = producer->Close();
  return filled.ok() ? closed : filled;
}

msgsdk::Status FillStore(msgsdk::native::MessageStore& store, const Flags& flags) {
  const std::string topic = "bench-fill";
  if (auto info = store.GetOrCreateTopic(topic); !info.ok()) return info.status();
  return Fill(flags, [&](const std::string& body, auto done) {
    msgsdk::Message message{.topic = topic, .body = body};
    message.message_id = std::string(32, '0');
    message.born_at = std::chrono::system_clock::now();
    store.Append(0, std::move(message),
                 [done](const msgsdk::Result<msgsdk::native::AppendResult>& r) {
                   done(r.ok() ? msgsdk::OkStatus() : r.status());
                 });
  });
}

// The storage engine alone: what the SDK's async send is built on, without routing, message
// ids, callbacks on the SDK pool or the broker. Same flush mode, same body, same window.
Throughput MeasureRawStore(const std::string& data_dir, msgsdk::native::FlushMode mode,
                           const std::string& body, const Flags& flags) {
  msgsdk::native::StoreOptions options;
  options.data_dir = data_dir;
  options.flush_mode = mode;
  auto store = msgsdk::native::MessageStore::Open(options);
  if (!store.ok()) return Throughput{.first_error = store.status().ToString()};
  const std::string topic = "bench-raw";
  auto info = (*store)->GetOrCreateTopic(topic);
  if (!info.ok()) return Throughput{.first_error = info.status().ToString()};
  const int32_t queues = info->queues;
  if (msgsdk::Status filled = FillStore(**store, flags); !filled.ok()) {
    return Throughput{.first_error = filled.ToString()};
  }
  // A fixed, well-formed id: the SDK's id generation is part of what the raw path leaves out.
  const std::string message_id(32, '0');

  Budget budget(flags.max_messages, flags.case_seconds, interrupted);
  CompletionCounter counter;
  SendWindow window(flags.window);
  std::atomic<uint64_t> submitted{0};
  const double cpu_start = SelfCpuSeconds();
  const auto start = SteadyClock::now();
  OnThreads(flags.producers, [&](int thread) {
    int32_t queue = thread % queues;
    for (int64_t n; (n = budget.Claim(256)) > 0;) {
      for (int64_t i = 0; i < n; ++i) {
        window.Acquire();
        msgsdk::Message message{.topic = topic, .tag = "bench", .body = body};
        message.message_id = message_id;
        message.born_at = std::chrono::system_clock::now();
        (*store)->Append(
            queue, std::move(message),
            [&counter, &window](const msgsdk::Result<msgsdk::native::AppendResult>& r) {
              window.Release();
              counter.Done(r.ok(), r.ok() ? msgsdk::OkStatus() : r.status());
            });
        queue = (queue + 1) % queues;
      }
      submitted.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
  });
  if (!counter.WaitFor(submitted.load(), std::chrono::seconds(60))) {
    std::fprintf(stderr, "warning: raw appends still unanswered after 60 s\n");
  }
  Throughput result = counter.Result(start);
  result.cpu_seconds = SelfCpuSeconds() - cpu_start;
  const msgsdk::Status closed = (*store)->Close();
  if (!closed.ok() && result.first_error.empty()) result.first_error = closed.ToString();
  return result;
}

// One latency case. Times in microseconds; e2e = send to handler, ack = send to callback.
struct Latency {
  double achieved_rate = 0;  // measured messages per second actually sent
  uint64_t measured = 0;
  uint64_t received = 0;
  double e2e_p50_us = 0;
  double e2e_p99_us = 0;
  double e2e_p999_us = 0;
  double e2e_max_us = 0;
  double ack_p50_us = 0;
  double ack_p99_us = 0;
  std::string first_error;
};

Latency MeasureLatency(msgsdk::Client& client, const std::string& topic, size_t size,
                       const Flags& flags) {
  Latency result;
  Samples e2e;
  Samples acks;
  auto subscription = client.Subscribe(topic, "bench-latency", msgsdk::bench::RecordLatency(e2e));
  if (!subscription.ok()) return Latency{.first_error = subscription.status().ToString()};
  auto producer = client.CreateProducer(topic);
  if (!producer.ok()) return Latency{.first_error = producer.status().ToString()};

  // Sends on a fixed schedule; a send that falls behind goes at once (no catch-up burst
  // beyond the schedule), so the achieved rate is reported next to the asked one.
  const msgsdk::bench::LatencySchedule schedule(flags.rate, flags.warmup_seconds,
                                                flags.latency_seconds);
  const auto& [period, warmup, total] = schedule;
  e2e.Reserve(static_cast<size_t>(total));
  acks.Reserve(static_cast<size_t>(total));
  const auto start = SteadyClock::now();
  SteadyClock::time_point measured_start{};
  CompletionCounter completions;
  uint64_t submitted = 0;
  for (int64_t i = 0; i < total && !interrupted.load(); ++i) {
    std::this_thread::sleep_until(start + i * period);
    const bool measured = i >= warmup;
    const auto now = SteadyClock::now();
    if (i == warmup) measured_start = now;
    const int64_t now_ns = now.time_since_epoch().count();
    producer->SendAsync(
        msgsdk::Message{.tag = "bench", .body = LatencyBody(size, measured, now_ns)},
        [&acks, &completions, measured, now_ns](const msgsdk::Result<msgsdk::SendReceipt>& r) {
          if (r.ok() && measured) acks.Add(SteadyClock::now().time_since_epoch().count() - now_ns);
          completions.Done(r.ok(), r.ok() ? msgsdk::OkStatus() : r.status());
        });
    ++submitted;
    if (measured) ++result.measured;
  }
  const double send_seconds =
      std::chrono::duration<double>(SteadyClock::now() - measured_start).count();
  result.achieved_rate = send_seconds > 0 ? static_cast<double>(result.measured) / send_seconds : 0;
  e2e.WaitForCount(result.measured, std::chrono::seconds(30));
  if (!completions.WaitFor(submitted, std::chrono::seconds(60))) {
    std::fprintf(stderr, "warning: latency sends still unanswered after 60 s\n");
  }
  const Throughput sends = completions.Result(start);
  const msgsdk::Status producer_closed = producer->Close();
  const msgsdk::Status subscription_closed = subscription->Close();
  std::vector<int64_t> e2e_sorted = e2e.Sorted();
  std::vector<int64_t> ack_sorted = acks.Sorted();
  result.received = e2e_sorted.size();
  result.e2e_p50_us = Quantile(e2e_sorted, 0.50);
  result.e2e_p99_us = Quantile(e2e_sorted, 0.99);
  result.e2e_p999_us = Quantile(e2e_sorted, 0.999);
  result.e2e_max_us = Quantile(e2e_sorted, 1.0);
  result.ack_p50_us = Quantile(ack_sorted, 0.50);
  result.ack_p99_us = Quantile(ack_sorted, 0.99);
  if (sends.failed > 0) {
    result.first_error = std::to_string(sends.failed) + " sends failed: " + sends.first_error;
  } else if (!producer_closed.ok()) {
    result.first_error = producer_closed.ToString();
  } else if (!subscription_closed.ok()) {
    result.first_error = subscription_closed.ToString();
  }
  return result;
}

// The latency case's schedule through nothing but one thread's write and fdatasync on the same
// disk (MeasureGroupCommitFloor): the floor of the group-commit row.
Latency MeasureFloor(const std::string& dir, size_t size, const Flags& flags) {
  const msgsdk::bench::LatencySchedule schedule(flags.rate, flags.warmup_seconds,
                                                flags.latency_seconds);
  msgsdk::bench::GroupCommitFloor floor =
      msgsdk::bench::MeasureGroupCommitFloor(dir, schedule, size);
  if (!floor.error.empty()) return Latency{.first_error = floor.error};
  const std::vector<int64_t>& sorted = floor.sorted_ns;
  return Latency{.achieved_rate = floor.arrival_rate,
                 .measured = static_cast<uint64_t>(schedule.total - schedule.warmup),
                 .received = sorted.size(),
                 .e2e_p50_us = Quantile(sorted, 0.50),
                 .e2e_p99_us = Quantile(sorted, 0.99),
                 .e2e_p999_us = Quantile(sorted, 0.999),
                 .e2e_max_us = Quantile(sorted, 1.0)};
}

// Offset commits on the storage engine alone: `committers` threads, each committing the
// offsets of 8 queues for a group of its own and waiting for each commit to be durable, as a
// broker does for the CommitOffset requests of that many consumers.
struct Commits {
  uint64_t commits = 0;
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::string first_error;
  double rate() const { return seconds > 0 ? static_cast<double>(commits) / seconds : 0; }
};

Commits MeasureCommits(const std::string& data_dir, msgsdk::native::FlushMode mode, int committers,
                       const Flags& flags) {
  constexpr int32_t kQueues = 8;
  msgsdk::native::StoreOptions options;
  options.data_dir = data_dir;
  options.flush_mode = mode;
  auto store = msgsdk::native::MessageStore::Open(options);
  if (!store.ok()) return Commits{.first_error = store.status().ToString()};
  Budget budget(flags.max_messages, flags.case_seconds, interrupted);
  Samples latencies;
  std::mutex error_mutex;
  std::string first_error;
  std::atomic<uint64_t> done{0};
  const auto start = SteadyClock::now();
  OnThreads(committers, [&](int thread) {
    const std::string group = "bench-group-" + std::to_string(thread);
    std::vector<msgsdk::native::QueueOffset> offsets(kQueues);
    for (int64_t position = 1; budget.Claim(1) == 1; ++position) {
      for (int32_t queue = 0; queue < kQueues; ++queue) offsets[queue] = {queue, position};
      const auto before = SteadyClock::now();
      const msgsdk::Status status = (*store)->CommitOffsetsAndWait(group, "bench-commit", offsets);
      latencies.Add((SteadyClock::now() - before).count());
      if (status.ok()) {
        done.fetch_add(1, std::memory_order_relaxed);
      } else {
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = status.ToString();
      }
    }
  });
  Commits result{.commits = done.load(),
                 .seconds = std::chrono::duration<double>(SteadyClock::now() - start).count(),
                 .first_error = first_error};
  const std::vector<int64_t> sorted = latencies.Sorted();
  result.p50_us = Quantile(sorted, 0.50);
  result.p99_us = Quantile(sorted, 0.99);
  const msgsdk::Status closed = (*store)->Close();
  if (!closed.ok() && result.first_error.empty()) result.first_error = closed.ToString();
  return result;
}

// ---- The matrix ---------------------------------------------------------------------------

struct CellKey {
  std::string mode;
  size_t size;
  std::string kind;
  bool operator<(const CellKey& other) const {
    return std::tie(mode, size, kind) < std::tie(other.mode, other.size, other.kind);
  }
};

struct Results {
  std::map<CellKey, std::vector<Throughput>> throughput;
  std::map<std::pair<std::string, size_t>, std::vector<Latency>> latency;
  std::map<std::pair<std::string, int>, std::vector<Commits>> commits;
  std::vector<std::string> errors;
};

void Progress(const std::string& what) { std::fprintf(stderr, "  running %s\n", what.c_str()); }

// One pass over every mode, size and case.
void RunOnce(const Flags& flags, int round, Results& results) {
  for (const std::string& mode : flags.modes) {
    auto dir = TempDir::Create(flags.data_dir);
    if (!dir.ok()) {
      results.errors.push_back(dir.status().ToString());
      return;
    }
    const std::string client_dir = (*dir)->path() + "/client";
    auto client = msgsdk::Client::Create(
        msgsdk::ClientOptions{.config_yaml = RoutingTableYaml(client_dir, mode)});
    if (!client.ok()) {
      results.errors.push_back("client (" + mode + "): " + client.status().ToString());
      return;
    }
    if (flags.fill_mib > 0 && !interrupted.load()) {
      Progress("round " + std::to_string(round) + ", " + mode + ": filling the commit log");
      if (msgsdk::Status filled = FillLog(*client, flags); !filled.ok()) {
        results.errors.push_back("client (" + mode + "): " + filled.ToString());
        return;
      }
    }
    for (const size_t size : flags.sizes) {
      const std::string body(size, 'm');
      const std::string label =
          "round " + std::to_string(round) + ", " + mode + ", " + SizeName(size) + ": ";
      const std::string suffix = "-" + std::to_string(size);
      const auto run = [&](const std::string& kind, auto&& measure) {
        if (!Wants(flags, kind) || interrupted.load()) return;
        Progress(label + kind);
        auto producer = client->CreateProducer(std::string("bench-").append(kind).append(suffix));
        if (!producer.ok()) {
          results.errors.push_back(label + kind + ": " + producer.status().ToString());
          return;
        }
        Throughput t = measure(*producer);
        if (const msgsdk::Status closed = producer->Close(); !closed.ok()) {
          t.first_error = closed.ToString();
        }
        if (!t.first_error.empty()) results.errors.push_back(label + kind + ": " + t.first_error);
        results.throughput[{mode, size, kind}].push_back(t);
      };
      run("sync", [&](msgsdk::Producer& p) { return MeasureSync(p, body, flags); });
      run("async", [&](msgsdk::Producer& p) { return MeasureAsync(p, body, flags); });
      run("batch", [&](msgsdk::Producer& p) { return MeasureBatch(p, body, flags); });
      if (Wants(flags, "consume") && !interrupted.load()) {
        Progress(label + "consume");
        Throughput t = MeasureConsume(*client, "bench-consume" + suffix, body, flags);
        if (!t.first_error.empty()) results.errors.push_back(label + "consume: " + t.first_error);
        results.throughput[{mode, size, "consume"}].push_back(t);
      }
      if (Wants(flags, "raw") && !interrupted.load()) {
        Progress(label + "raw");
        const std::string raw_dir = (*dir)->path() + "/raw" + suffix;
        Throughput t = MeasureRawStore(raw_dir,
                                       mode == "periodic" ? msgsdk::native::FlushMode::kPeriodic
                                                          : msgsdk::native::FlushMode::kGroupCommit,
                                       body, flags);
        if (!t.first_error.empty()) results.errors.push_back(label + "raw: " + t.first_error);
        results.throughput[{mode, size, "raw"}].push_back(t);
        std::error_code ignored;
        std::filesystem::remove_all(raw_dir, ignored);
      }
      if (Wants(flags, "latency") && !interrupted.load()) {
        Progress(label + "latency at " + WithSeparators(static_cast<uint64_t>(flags.rate)) +
                 " msgs/s");
        Latency l = MeasureLatency(*client, "bench-latency" + suffix, size, flags);
        if (!l.first_error.empty()) results.errors.push_back(label + "latency: " + l.first_error);
        if (l.received < l.measured) {
          results.errors.push_back(label + "latency: " + std::to_string(l.measured - l.received) +
                                   " measured messages not received");
        }
        results.latency[{mode, size}].push_back(l);
        if (mode == "group_commit" && !interrupted.load()) {
          Progress(label + "disk group commit floor");
          Latency floor = MeasureFloor((*dir)->path(), size, flags);
          if (!floor.first_error.empty()) {
            results.errors.push_back(label + "disk group commit floor: " + floor.first_error);
          } else {
            results.latency[{kFloorName, size}].push_back(floor);
          }
        }
      }
    }
    if (const msgsdk::Status closed = client->Close(); !closed.ok()) {
      results.errors.push_back("client (" + mode + ") close: " + closed.ToString());
    }
    for (const int committers : flags.committers) {
      if (!Wants(flags, "commit") || interrupted.load()) break;
      const std::string label = "round " + std::to_string(round) + ", " + mode + ", " +
                                std::to_string(committers) + " committers: ";
      Progress(label + "commit");
      const std::string commit_dir = (*dir)->path() + "/commit-" + std::to_string(committers);
      Commits c = MeasureCommits(commit_dir,
                                 mode == "periodic" ? msgsdk::native::FlushMode::kPeriodic
                                                    : msgsdk::native::FlushMode::kGroupCommit,
                                 committers, flags);
      if (!c.first_error.empty()) results.errors.push_back(label + "commit: " + c.first_error);
      results.commits[{mode, committers}].push_back(c);
      std::error_code ignored;
      std::filesystem::remove_all(commit_dir, ignored);
    }
  }
}

template <typename T, typename Key>
T MedianBy(std::vector<T> values, Key key) {
  std::sort(values.begin(), values.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
  return values[values.size() / 2];
}

double MedianOf(const std::vector<Latency>& runs, double Latency::*field) {
  std::vector<double> values;
  values.reserve(runs.size());
  for (const Latency& l : runs) values.push_back(l.*field);
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string CurrentDate() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::tm local{};
  localtime_r(&now, &local);
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d", &local);
  return buffer;
}

void Report(const Flags& flags, const Results& results) {
  const char* kinds[] = {"sync", "async", "batch", "raw"};
  const std::map<std::string, std::string> kind_names = {
      {"sync", "Send (sync)"},
      {"async", "SendAsync"},
      {"batch", "SendBatch(" + std::to_string(flags.batch) + ")"},
      {"raw", "store Append (raw)"}};
  std::printf("\nSend throughput (%s of %d run%s; messages acknowledged per second)\n",
              flags.repeat > 1 ? "median" : "one", flags.repeat, flags.repeat > 1 ? "s" : "");
  Table table({"flush mode", "size", "path", "messages", "seconds", "msgs/s", "MiB/s", "vs raw",
               "CPU us/msg"});
  std::map<std::pair<std::string, size_t>, double> async_rates;
  for (const std::string& mode : flags.modes) {
    for (const size_t size : flags.sizes) {
      const auto raw_it = results.throughput.find({mode, size, "raw"});
      const double raw_rate =
          raw_it == results.throughput.end()
              ? 0
              : MedianBy(raw_it->second, [](const Throughput& t) { return t.rate(); }).rate();
      for (const char* kind : kinds) {
        const auto it = results.throughput.find({mode, size, kind});
        if (it == results.throughput.end() || it->second.empty()) continue;
        const Throughput m = MedianBy(it->second, [](const Throughput& t) { return t.rate(); });
        if (std::string(kind) == "async") async_rates[{mode, size}] = m.rate();
        const double mib = m.rate() * static_cast<double>(size) / (1024.0 * 1024.0);
        std::string messages = WithSeparators(m.messages);
        if (m.failed > 0) messages += " (" + WithSeparators(m.failed) + " failed)";
        table.AddRow(
            {mode, SizeName(size), kind_names.at(kind), messages, Fixed(m.seconds, 2),
             WithSeparators(static_cast<uint64_t>(m.rate())), Fixed(mib, 1),
             raw_rate > 0 && std::string(kind) != "raw" ? Fixed(m.rate() / raw_rate, 2) : "-",
             m.cpu_seconds > 0 ? Fixed(m.cpu_us_per_message(), 2) : "-"});
      }
    }
  }
  table.Print();

  bool consumed = false;
  Table consume({"flush mode", "size", "messages", "seconds", "msgs/s", "MiB/s", "CPU us/msg"});
  for (const std::string& mode : flags.modes) {
    for (const size_t size : flags.sizes) {
      const auto it = results.throughput.find({mode, size, "consume"});
      if (it == results.throughput.end() || it->second.empty()) continue;
      consumed = true;
      const Throughput m = MedianBy(it->second, [](const Throughput& t) { return t.rate(); });
      consume.AddRow({mode, SizeName(size), WithSeparators(m.messages), Fixed(m.seconds, 2),
                      WithSeparators(static_cast<uint64_t>(m.rate())),
                      Fixed(m.rate() * static_cast<double>(size) / (1024.0 * 1024.0), 1),
                      Fixed(m.cpu_us_per_message(), 2)});
    }
  }
  if (consumed) {
    std::printf(
        "\nConsume throughput (%s of %d run%s; a new group reads what SendAsync wrote; messages "
        "handled per second)\n",
        flags.repeat > 1 ? "median" : "one", flags.repeat, flags.repeat > 1 ? "s" : "");
    consume.Print();
  }

  if (!results.latency.empty()) {
    std::printf(
        "\nEnd-to-end latency at a fixed rate (SendAsync -> handler; ack = SendAsync -> "
        "callback; microseconds)\n");
    Table latency({"flush mode", "size", "rate msgs/s", "samples", "p50", "p99", "p99.9", "max",
                   "ack p50", "ack p99"});
    std::vector<std::string> rows = flags.modes;
    if (std::find(rows.begin(), rows.end(), "group_commit") != rows.end()) {
      rows.push_back(kFloorName);
    }
    for (const std::string& mode : rows) {
      for (const size_t size : flags.sizes) {
        const auto it = results.latency.find({mode, size});
        if (it == results.latency.end() || it->second.empty()) continue;
        const auto& runs = it->second;
        const Latency median = MedianBy(runs, [](const Latency& l) { return l.e2e_p50_us; });
        latency.AddRow(
            {mode, SizeName(size),
             WithSeparators(static_cast<uint64_t>(MedianOf(runs, &Latency::achieved_rate))),
             WithSeparators(median.received), Fixed(MedianOf(runs, &Latency::e2e_p50_us), 0),
             Fixed(MedianOf(runs, &Latency::e2e_p99_us), 0),
             Fixed(MedianOf(runs, &Latency::e2e_p999_us), 0),
             Fixed(MedianOf(runs, &Latency::e2e_max_us), 0),
             mode == kFloorName ? "-" : Fixed(MedianOf(runs, &Latency::ack_p50_us), 0),
             mode == kFloorName ? "-" : Fixed(MedianOf(runs, &Latency::ack_p99_us), 0)});
      }
    }
    latency.Print();
  }

  if (!results.commits.empty()) {
    std::printf(
        "\nOffset commits (MessageStore::CommitOffsets of 8 queues, each waited for until "
        "durable; microseconds)\n");
    Table table({"flush mode", "committers", "commits", "seconds", "commits/s", "p50", "p99"});
    for (const std::string& mode : flags.modes) {
      for (const int committers : flags.committers) {
        const auto it = results.commits.find({mode, committers});
        if (it == results.commits.end() || it->second.empty()) continue;
        const Commits m = MedianBy(it->second, [](const Commits& c) { return c.rate(); });
        table.AddRow({mode, std::to_string(committers), WithSeparators(m.commits),
                      Fixed(m.seconds, 2), WithSeparators(static_cast<uint64_t>(m.rate())),
                      Fixed(m.p50_us, 0), Fixed(m.p99_us, 0)});
      }
    }
    table.Print();
  }

  std::printf("\nTarget: >= %s msgs/s SendAsync of %s messages\n",
              WithSeparators(static_cast<uint64_t>(kTargetAsync100B)).c_str(),
              SizeName(kTargetBodyBytes).c_str());
  for (const std::string& mode : flags.modes) {
    const auto it = async_rates.find({mode, kTargetBodyBytes});
    if (it == async_rates.end()) continue;
    std::printf("  %-13s %s msgs/s = %.3f of the target (%s)\n", mode.c_str(),
                WithSeparators(static_cast<uint64_t>(it->second)).c_str(),
                it->second / kTargetAsync100B, it->second >= kTargetAsync100B ? "met" : "missed");
  }
  if (!results.errors.empty()) {
    std::printf("\nErrors (%zu)\n", results.errors.size());
    for (const auto& error : results.errors) std::printf("  %s\n", error.c_str());
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "Benchmark of msgsdk's embedded native path: send throughput (sync, async, batched) "
      "next to the storage engine's own append rate, end-to-end latency at a fixed rate, "
      "for each flush mode and body size, and durable offset commits. Medians over --repeat "
      "runs."};
  app.add_option("--modes", flags.modes, "Flush modes to measure")
      ->check(CLI::IsMember({"group_commit", "periodic"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--sizes", flags.sizes, "Body sizes in bytes")
      ->check(CLI::Range(size_t{16}, size_t{4} << 20))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--cases", flags.cases, "Cases to run")
      ->check(CLI::IsMember({"sync", "async", "batch", "consume", "raw", "latency", "commit"}))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--committers", flags.committers,
                 "Threads committing offsets at once in the commit case, one row each")
      ->check(CLI::Range(1, 256))
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--messages", flags.max_messages, "Most messages per throughput case")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--seconds", flags.case_seconds,
                 "Most seconds of sending per throughput case (then in-flight sends drain)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--window", flags.window, "Async sends in flight at most (0: unbounded)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--batch", flags.batch, "Messages per SendBatch")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--producers", flags.producers,
                 "Threads sending through one Producer in the throughput cases")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--rate", flags.rate, "Send rate of the latency cases, messages per second")
      ->check(CLI::Range(1.0, 10'000'000.0))
      ->capture_default_str();
  app.add_option("--latency-seconds", flags.latency_seconds, "Measured seconds per latency case")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup-seconds", flags.warmup_seconds,
                 "Seconds sent before a latency case starts measuring")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--fill-mib", flags.fill_mib,
                 "MiB written to each store before its throughput cases, so they run past the "
                 "commit log's page-cache window (0: none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--repeat", flags.repeat, "Runs of the whole matrix; figures are medians")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir,
                 "Where scratch data directories are made (removed afterwards); default: the "
                 "system temporary directory")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  std::printf("msgsdk-bench-embedded  %s  %u hardware threads\n", CurrentDate().c_str(),
              std::thread::hardware_concurrency());
  std::printf(
      "  producers %d, async window %s, batch %d, up to %s messages or %.1f s per "
      "throughput case after a %s MiB fill of the log; latency at %s msgs/s for %.1f s after "
      "%.1f s warm-up\n",
      flags.producers,
      flags.window > 0 ? WithSeparators(static_cast<uint64_t>(flags.window)).c_str() : "unbounded",
      flags.batch, WithSeparators(static_cast<uint64_t>(flags.max_messages)).c_str(),
      flags.case_seconds, WithSeparators(static_cast<uint64_t>(flags.fill_mib)).c_str(),
      WithSeparators(static_cast<uint64_t>(flags.rate)).c_str(), flags.latency_seconds,
      flags.warmup_seconds);
  std::fflush(stdout);

  Results results;
  for (int round = 1; round <= flags.repeat && !interrupted.load(); ++round) {
    RunOnce(flags, round, results);
  }
  Report(flags, results);
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
