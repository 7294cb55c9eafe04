// msgsdk-bench-sidecar: what going through msgsdk-sidecar costs, against the same backend in
// process, in the same run.
//
// Two embedded native clusters with the same settings (each in its own scratch directory):
// one opened by an in-process client, one served by a real msgsdk-sidecar process that a
// sidecar-transport client talks to over loopback TCP. For each transport:
//  - latency: SendAsync at a fixed rate (--rate, 1000 msgs/s by default) to a subscription of
//    the same client; end to end = handler start minus the send time stamped in the body;
//    p50, p99, p99.9 after a warm-up;
//  - throughput: SendAsync with up to --window sends in flight, --messages messages, counted
//    when acknowledged (the sidecar batches them into Publish calls), and the CPU time each
//    message cost: this process (every thread: the client, and in process also the embedded
//    cluster) plus, through the sidecar, the sidecar process. On a shared machine the CPU per
//    message moves less with other load than the rate does, and it shows which side of the
//    call costs what;
// and the sidecar's resident memory (VmRSS) idle after start, and its peak (VmHWM) after the
// load. The table compares with the targets: added latency < 0.3 ms p50 and < 1 ms p99,
// throughput >= 0.5 of in-process, idle RSS < 30 MB. A benchmark, not a test: it prints
// figures and never fails on them.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench_util.h"
#include "fixtures/sidecar_fixture.h"
#include "msgsdk/msgsdk.h"

namespace {

using msgsdk::bench::CompletionCounter;
using msgsdk::bench::Fixed;
using msgsdk::bench::LatencyBody;
using msgsdk::bench::Quantile;
using msgsdk::bench::Samples;
using msgsdk::bench::SendWindow;
using msgsdk::bench::SteadyClock;
using msgsdk::bench::Table;
using msgsdk::bench::TempDir;
using msgsdk::bench::WithSeparators;

constexpr double kTargetAddedP50Ms = 0.3;
constexpr double kTargetAddedP99Ms = 1.0;
constexpr double kTargetThroughputRatio = 0.5;
constexpr double kTargetIdleRssMb = 30;

struct Flags {
  double rate = 1000;
  double latency_seconds = 5;
  double warmup_seconds = 1;
  int64_t messages = 200000;
  int64_t window = 65536;
  size_t size = 100;
  std::string flush_mode = "periodic";
  std::string data_dir;
};

std::string RoutingYaml(const std::string& data_dir, const std::string& flush_mode) {
  return "environments:\n"
         "  bench:\n"
         "    clusters:\n"
         "      local: { backend: native, data_dir: \"" +
         data_dir + "\", flush_mode: " + flush_mode +
         " }\n"
         "    default_cluster: local\n";
}

// A /proc/<pid>/status field in MiB ("VmRSS", "VmHWM", "RssAnon", "RssFile"), or -1.
double ProcessMemoryMb(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return -1;
}

struct Latency {
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
  uint64_t samples = 0;
  std::string error;
};

Latency MeasureLatency(msgsdk::Client& client, const std::string& topic, const Flags& flags) {
  Samples e2e;
  auto subscription = client.Subscribe(topic, "bench-latency", msgsdk::bench::RecordLatency(e2e));
  if (!subscription.ok()) return {.error = subscription.status().ToString()};
  auto producer = client.CreateProducer(topic);
  if (!producer.ok()) return {.error = producer.status().ToString()};
  const msgsdk::bench::LatencySchedule schedule(flags.rate, flags.warmup_seconds,
                                                flags.latency_seconds);
  const auto& [period, warmup, total] = schedule;
  e2e.Reserve(static_cast<size_t>(total));
  CompletionCounter completions;
  const auto start = SteadyClock::now();
  for (int64_t i = 0; i < total; ++i) {
    std::this_thread::sleep_until(start + i * period);
    const int64_t now_ns = SteadyClock::now().time_since_epoch().count();
    producer->SendAsync(msgsdk::Message{.body = LatencyBody(flags.size, i >= warmup, now_ns)},
                        [&completions](const msgsdk::Result<msgsdk::SendReceipt>& r) {
                          completions.Done(r.ok(), r.ok() ? msgsdk::OkStatus() : r.status());
                        });
  }
  const auto measured = static_cast<size_t>(total - warmup);
  e2e.WaitForCount(measured, std::chrono::seconds(60));
  completions.WaitFor(static_cast<uint64_t>(total), std::chrono::seconds(60));
  producer->Close().IgnoreError();
  subscription->Close().IgnoreError();
  const std::vector<int64_t> sorted = e2e.Sorted();
  return {.p50_ms = Quantile(sorted, 0.50) / 1000,
          .p99_ms = Quantile(sorted, 0.99) / 1000,
          .p999_ms = Quantile(sorted, 0.999) / 1000,
          .samples = sorted.size()};
}

struct Throughput {
  double rate = 0;            // acknowledged msgs/s
  double client_cpu_us = 0;   // CPU time of this process per message, microseconds
  double sidecar_cpu_us = 0;  // CPU time of the sidecar process per message (0 in process)
  double cpu_us() const { return client_cpu_us + sidecar_cpu_us; }
};

// Acknowledged SendAsync messages per second, and the CPU time they cost; `sidecar_pid` is the
// sidecar's when the client goes through it, else -1.
Throughput MeasureThroughput(msgsdk::Client& client, const std::string& topic, const Flags& flags,
                             pid_t sidecar_pid, std::string* error) {
  auto producer = client.CreateProducer(topic);
  if (!producer.ok()) {
    *error = producer.status().ToString();
    return {};
  }
  SendWindow window(flags.window);
  CompletionCounter completions;
  const std::string body(flags.size, 'x');
  const double client_cpu_start = msgsdk::bench::SelfCpuSeconds();
  const double sidecar_cpu_start =
      sidecar_pid > 0 ? msgsdk::bench::ProcessCpuSeconds(sidecar_pid) : 0;
  const auto start = SteadyClock::now();
  for (int64_t i = 0; i < flags.messages; ++i) {
    window.Acquire();
    producer->SendAsync(msgsdk::Message{.body = body},
                        [&](const msgsdk::Result<msgsdk::SendReceipt>& r) {
                          // Before Done: once every completion is done, the window goes.
                          window.Release();
                          completions.Done(r.ok(), r.ok() ? msgsdk::OkStatus() : r.status());
                        });
  }
  completions.WaitFor(static_cast<uint64_t>(flags.messages), std::chrono::seconds(300));
  const auto result = completions.Result(start);
  const auto messages = static_cast<double>(flags.messages);
  Throughput throughput{
      .rate = result.rate(),
      .client_cpu_us = (msgsdk::bench::SelfCpuSeconds() - client_cpu_start) * 1e6 / messages,
      .sidecar_cpu_us =
          sidecar_pid > 0
              ? (msgsdk::bench::ProcessCpuSeconds(sidecar_pid) - sidecar_cpu_start) * 1e6 / messages
              : 0};
  producer->Close().IgnoreError();
  if (!result.first_error.empty()) *error = result.first_error;
  return throughput;
}

// A new group reads the `messages` messages MeasureThroughput wrote to `topic`, with the
// SDK's default handler threads and a handler that only counts: messages handled per second
// from the Subscribe call to the last one, and the CPU time they cost (as MeasureThroughput).
Throughput MeasureConsume(msgsdk::Client& client, const std::string& topic, int64_t messages,
                          pid_t sidecar_pid, std::string* error) {
  const auto handled = std::make_shared<msgsdk::bench::Progress>();
  const double client_cpu_start = msgsdk::bench::SelfCpuSeconds();
  const double sidecar_cpu_start =
      sidecar_pid > 0 ? msgsdk::bench::ProcessCpuSeconds(sidecar_pid) : 0;
  const auto start = SteadyClock::now();
  auto subscription = client.Subscribe(topic, "bench-consume", [handled](const msgsdk::Message&) {
    handled->Add();
    return msgsdk::ConsumeResult::kSuccess;
  });
  if (!subscription.ok()) {
    *error = subscription.status().ToString();
    return {};
  }
  if (!handled->WaitFor(messages, std::chrono::seconds(300))) {
    *error = "consume: only " + WithSeparators(static_cast<uint64_t>(handled->done())) + " of " +
             WithSeparators(static_cast<uint64_t>(messages)) + " messages handled";
  }
  const double seconds = std::chrono::duration<double>(handled->last() - start).count();
  const auto count = static_cast<double>(std::max<int64_t>(handled->done(), 1));
  Throughput throughput{
      .rate = seconds > 0 ? static_cast<double>(handled->done()) / seconds : 0,
      .client_cpu_us = (msgsdk::bench::SelfCpuSeconds() - client_cpu_start) * 1e6 / count,
      .sidecar_cpu_us =
          sidecar_pid > 0
              ? (msgsdk::bench::ProcessCpuSeconds(sidecar_pid) - sidecar_cpu_start) * 1e6 / count
              : 0};
  if (const msgsdk::Status closed = subscription->Close(); !closed.ok() && error->empty()) {
    *error = "closing the subscription: " + closed.ToString();
  }
  return throughput;
}

// The rows of one throughput table: in process, and through the sidecar against it.
void PrintThroughput(const Throughput& local, const Throughput& remote) {
  Table table({"transport", "", "msgs/s", "vs in-process", "CPU us/msg", "client", "sidecar",
               "CPU vs in-process"});
  table.AddRow({"in-process", "", WithSeparators(static_cast<uint64_t>(local.rate)), "-",
                Fixed(local.cpu_us(), 2), Fixed(local.client_cpu_us, 2), "-", "-"});
  table.AddRow({"sidecar", "", WithSeparators(static_cast<uint64_t>(remote.rate)),
                Fixed(local.rate > 0 ? remote.rate / local.rate : 0, 2), Fixed(remote.cpu_us(), 2),
                Fixed(remote.client_cpu_us, 2), Fixed(remote.sidecar_cpu_us, 2),
                Fixed(remote.cpu_us() > 0 ? local.cpu_us() / remote.cpu_us() : 0, 2)});
  table.Print();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Benchmark of msgsdk-sidecar against the in-process transport (same backend, "
      "same run)"};
  Flags flags;
  app.add_option("--rate", flags.rate, "Send rate of the latency case, msgs/s")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--latency-seconds", flags.latency_seconds, "Measured seconds of the latency case")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup-seconds", flags.warmup_seconds, "Seconds sent before measuring")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--messages", flags.messages, "Messages of the throughput case")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--window", flags.window, "Sends in flight at most in the throughput case")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}));
  app.add_option("--size", flags.size, "Body bytes")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{4u << 20}));
  app.add_option("--flush-mode", flags.flush_mode, "Flush mode of both clusters")
      ->capture_default_str()
      ->check(CLI::IsMember({"periodic", "group_commit"}));
  app.add_option("--data-dir", flags.data_dir, "Where scratch directories go")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);

  auto in_process_dir = TempDir::Create(flags.data_dir);
  auto sidecar_dir = TempDir::Create(flags.data_dir);
  if (!in_process_dir.ok() || !sidecar_dir.ok()) {
    std::fprintf(stderr, "error: no scratch directory\n");
    return 1;
  }
  auto sidecar = msgsdk::testing::SidecarProcess::Start(
      {.routing_yaml = RoutingYaml((*sidecar_dir)->path(), flags.flush_mode),
       .environment = "bench"});
  if (!sidecar.ok()) {
    std::fprintf(stderr, "error: %s\n", sidecar.status().ToString().c_str());
    return 1;
  }
  const pid_t sidecar_pid = (*sidecar)->pid();
  const double idle_rss = ProcessMemoryMb(sidecar_pid, "VmRSS");

  auto in_process = msgsdk::Client::Create(
      {.config_yaml = RoutingYaml((*in_process_dir)->path(), flags.flush_mode),
       .environment = "bench"});
  auto through_sidecar = msgsdk::Client::Create({.sidecar = (*sidecar)->address()});
  if (!in_process.ok() || !through_sidecar.ok()) {
    std::fprintf(
        stderr, "error: %s\n",
        (!in_process.ok() ? in_process.status() : through_sidecar.status()).ToString().c_str());
    return 1;
  }

  std::printf("msgsdk-bench-sidecar: %zu B bodies, native embedded cluster (%s), load average %s\n",
              flags.size, flags.flush_mode.c_str(), msgsdk::bench::LoadAverage().c_str());
  std::fflush(stdout);
  const Latency local = MeasureLatency(*in_process, "bench-latency", flags);
  const Latency remote = MeasureLatency(*through_sidecar, "bench-latency", flags);
  std::string local_error, remote_error;
  const Throughput local_throughput =
      MeasureThroughput(*in_process, "bench-throughput", flags, -1, &local_error);
  const Throughput remote_throughput =
      MeasureThroughput(*through_sidecar, "bench-throughput", flags, sidecar_pid, &remote_error);
  std::string local_consume_error, remote_consume_error;
  const Throughput local_consume =
      MeasureConsume(*in_process, "bench-throughput", flags.messages, -1, &local_consume_error);
  const Throughput remote_consume = MeasureConsume(
      *through_sidecar, "bench-throughput", flags.messages, sidecar_pid, &remote_consume_error);
  const double local_rate = local_throughput.rate;
  const double remote_rate = remote_throughput.rate;
  const double loaded_rss = ProcessMemoryMb(sidecar_pid, "VmRSS");
  const double peak_rss = ProcessMemoryMb(sidecar_pid, "VmHWM");
  // The store's segments are read through mappings, whose pages count in the RSS: they grow
  // with the data read and written, and the kernel takes them back as it needs.
  const double loaded_anon = ProcessMemoryMb(sidecar_pid, "RssAnon");
  const double loaded_file = ProcessMemoryMb(sidecar_pid, "RssFile");
  for (const std::string& error : {local.error, remote.error, local_error, remote_error,
                                   local_consume_error, remote_consume_error}) {
    if (!error.empty()) std::fprintf(stderr, "error: %s\n", error.c_str());
  }

  std::printf("\nEnd-to-end latency at %s msgs/s (send to handler, ms; %s samples each)\n",
              WithSeparators(static_cast<uint64_t>(flags.rate)).c_str(),
              WithSeparators(remote.samples).c_str());
  Table latency({"transport", "", "p50", "p99", "p99.9"});
  latency.AddRow(
      {"in-process", "", Fixed(local.p50_ms, 3), Fixed(local.p99_ms, 3), Fixed(local.p999_ms, 3)});
  latency.AddRow(
      {"sidecar", "", Fixed(remote.p50_ms, 3), Fixed(remote.p99_ms, 3), Fixed(remote.p999_ms, 3)});
  latency.AddRow({"added by the sidecar", "", Fixed(remote.p50_ms - local.p50_ms, 3),
                  Fixed(remote.p99_ms - local.p99_ms, 3),
                  Fixed(remote.p999_ms - local.p999_ms, 3)});
  latency.Print();

  std::printf("\nThroughput: SendAsync, %s messages, up to %s in flight (acknowledged msgs/s)\n",
              WithSeparators(static_cast<uint64_t>(flags.messages)).c_str(),
              WithSeparators(static_cast<uint64_t>(flags.window)).c_str());
  PrintThroughput(local_throughput, remote_throughput);

  std::printf(
      "\nConsume: a new group reads those %s messages, default handler threads (messages "
      "handled per second)\n",
      WithSeparators(static_cast<uint64_t>(flags.messages)).c_str());
  PrintThroughput(local_consume, remote_consume);

  std::printf(
      "\nmsgsdk-sidecar memory (MiB): idle %s, after the load %s (%s of its own, %s of mapped "
      "files), peak %s\n",
      Fixed(idle_rss, 1).c_str(), Fixed(loaded_rss, 1).c_str(), Fixed(loaded_anon, 1).c_str(),
      Fixed(loaded_file, 1).c_str(), Fixed(peak_rss, 1).c_str());

  auto verdict = [](bool met) { return met ? "met" : "missed"; };
  std::printf("\nTargets\n");
  std::printf("  added p50 < %.1f ms: %.3f ms (%s)\n", kTargetAddedP50Ms,
              remote.p50_ms - local.p50_ms,
              verdict(remote.p50_ms - local.p50_ms < kTargetAddedP50Ms));
  std::printf("  added p99 < %.1f ms: %.3f ms (%s)\n", kTargetAddedP99Ms,
              remote.p99_ms - local.p99_ms,
              verdict(remote.p99_ms - local.p99_ms < kTargetAddedP99Ms));
  const double ratio = local_rate > 0 ? remote_rate / local_rate : 0;
  std::printf(
      "  throughput >= %.1f x in-process: %.2f (%s; CPU per message: %.2f x)\n",
      kTargetThroughputRatio, ratio, verdict(ratio >= kTargetThroughputRatio),
      remote_throughput.cpu_us() > 0 ? local_throughput.cpu_us() / remote_throughput.cpu_us() : 0);
  std::printf("  idle RSS < %.0f MB: %.1f MiB (%s)\n", kTargetIdleRssMb, idle_rss,
              verdict(idle_rss >= 0 && idle_rss < kTargetIdleRssMb));

  through_sidecar->Close().IgnoreError();
  in_process->Close().IgnoreError();
  return 0;
}
