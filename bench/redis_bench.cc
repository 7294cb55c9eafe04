// msgsdk-bench-redis: the Redis Streams backend through the public API, against raw hiredis on
// the same redis-server, with the same batch sizes, in the same run.
//
// A redis-server is started on a free loopback port with a scratch directory and no
// persistence (--save "" --appendonly no), and stopped at the end. For each stream count
// (--partitions, 1 and the backend's default 4) and each repeat:
//  - send: raw pipelined XADD in batches of --batch (one write, then every reply; arguments
//    passed to redisAppendCommandArgv as pointers, as a hand-written client would) vs
//    Producer::SendAsync with a bounded window, to a topic on a cluster with that many
//    partitions and pipeline_depth = --batch. Both write the fields the SDK writes (id, born,
//    body), round robin over the streams. Timed from the first send to the last reply.
//  - receive: each side reads back what its own send wrote. Raw: XREADGROUP COUNT
//    --read-count over every stream, then one XACK per stream with that batch's ids. SDK: a new
//    group subscribed with a handler that only counts (read_batch = --read-count, handler
//    threads --consumer-threads), timed from the Subscribe call to the last handler call
//    (group creation and stream assignment included).
// The tables show medians: the rates and the SDK/raw ratio next to the target (0.9), then per
// message the CPU time of this process (every thread) and of redis-server, and this process's
// context switches. A benchmark, not a test: it prints figures and never fails on them.

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <semaphore>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <hiredis/hiredis.h>

#include "bench_util.h"
#include "fixtures/redis_fixture.h"
#include "msgsdk/msgsdk.h"
#include "raw_redis.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTargetRatio = 0.9;
// Bounds every wait, so a broken run ends with a message instead of hanging.
constexpr auto kGiveUp = std::chrono::seconds(120);

struct Flags {
  int64_t messages = 200000;
  size_t size = 100;
  std::vector<int> partitions = {1, 4};
  int batch = 256;
  int read_count = 512;
  int64_t window = 65536;
  int repeat = 3;
  // Handler threads of the SDK's subscription; 0: the SDK's default.
  int consumer_threads = 0;
};

using msgsdk::bench::LoadAverage;
using msgsdk::bench::Median;
using msgsdk::bench::Seconds;
using msgsdk::bench::WithSeparators;

// ---- Raw hiredis ----------------------------------------------------------------------------

using msgsdk::bench::AckReadEntries;
using msgsdk::bench::AppendRedis;
using msgsdk::bench::ConnectRedis;
using msgsdk::bench::NextRedisReply;
using msgsdk::bench::RedisCommand;
using msgsdk::bench::StreamNames;
using ReplyPtr = msgsdk::bench::RedisReplyPtr;

std::string NowMillis() {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

// Pipelined XADD of the SDK's fields, round robin over `streams`, --batch commands per write.
msgsdk::Result<double> RawSend(redisContext* context, const std::vector<std::string>& streams,
                               const Flags& flags) {
  const std::string body(flags.size, 'x');
  // A fixed, well-formed id: the SDK's id generation is part of what the raw path leaves out.
  const std::string message_id(32, '0');
  size_t next_stream = 0;
  const auto start = Clock::now();
  for (int64_t sent = 0; sent < flags.messages;) {
    const int64_t n = std::min<int64_t>(flags.batch, flags.messages - sent);
    const std::string born = NowMillis();
    for (int64_t i = 0; i < n; ++i) {
      AppendRedis(context, {"XADD", streams[next_stream], "*", "id", message_id, "born", born,
                            "body", body});
      next_stream = (next_stream + 1) % streams.size();
    }
    for (int64_t i = 0; i < n; ++i) {
      MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply, NextRedisReply(context, "raw XADD"));
      if (reply->type != REDIS_REPLY_STRING) {
        return msgsdk::InternalError("raw XADD: unexpected reply type " +
                                     std::to_string(reply->type));
      }
    }
    sent += n;
  }
  return static_cast<double>(flags.messages) / Seconds(Clock::now() - start);
}

// A new group reads every stream from the start: XREADGROUP COUNT --read-count over all of
// them, then one XACK per stream with the ids just read, until --messages were read.
msgsdk::Result<double> RawReceive(redisContext* context, const std::vector<std::string>& streams,
                                  const std::string& group, const Flags& flags) {
  const auto start = Clock::now();
  for (const std::string& stream : streams) {
    MSGSDK_RETURN_IF_ERROR(
        RedisCommand(context, {"XGROUP", "CREATE", stream, group, "0"}).status());
  }
  std::vector<std::string> read = {"XREADGROUP", "GROUP", group,
                                   "bench-raw",  "COUNT", std::to_string(flags.read_count),
                                   "STREAMS"};
  read.insert(read.end(), streams.begin(), streams.end());
  read.insert(read.end(), streams.size(), ">");
  int64_t received = 0;
  uint64_t body_bytes = 0;
  while (received < flags.messages) {
    if (Clock::now() - start > kGiveUp) {
      return msgsdk::DeadlineExceededError("raw receive: only " + std::to_string(received) +
                                           " of " + std::to_string(flags.messages) + " read");
    }
    MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply, RedisCommand(context, read));
    if (reply->type != REDIS_REPLY_ARRAY) {
      return msgsdk::InternalError("raw receive: the streams ran out after " +
                                   std::to_string(received) + " of " +
                                   std::to_string(flags.messages) + " messages");
    }
    // Find the body, as any reader would.
    MSGSDK_ASSIGN_OR_RETURN(
        size_t acked, AckReadEntries(context, *reply, group,
                                     [&](std::string_view body) { body_bytes += body.size(); }));
    received += static_cast<int64_t>(acked);
  }
  const double seconds = Seconds(Clock::now() - start);
  if (body_bytes != static_cast<uint64_t>(received) * flags.size) {
    return msgsdk::InternalError("raw receive: read " + std::to_string(body_bytes) +
                                 " body bytes for " + std::to_string(received) + " messages");
  }
  return static_cast<double>(received) / seconds;
}

// ---- The SDK --------------------------------------------------------------------------------

using msgsdk::bench::Progress;

msgsdk::Result<double> SdkSend(msgsdk::Client& client, const std::string& topic,
                               const Flags& flags) {
  MSGSDK_ASSIGN_OR_RETURN(msgsdk::Producer producer, client.CreateProducer(topic));
  const std::string body(flags.size, 'x');
  Progress progress;
  std::counting_semaphore<> window(static_cast<std::ptrdiff_t>(flags.window));
  const auto start = Clock::now();
  for (int64_t i = 0; i < flags.messages; ++i) {
    window.acquire();
    producer.SendAsync({.body = body},
                       [&progress, &window](const msgsdk::Result<msgsdk::SendReceipt>& r) {
                         window.release();
                         progress.Add(r.ok());
                       });
  }
  const bool all = progress.WaitFor(flags.messages, kGiveUp);
  MSGSDK_RETURN_IF_ERROR(producer.Close());
  if (!all || progress.failed() > 0) {
    return msgsdk::InternalError("sdk send to " + topic + ": " +
                                 std::to_string(progress.done() - progress.failed()) + " of " +
                                 std::to_string(flags.messages) + " acknowledged");
  }
  return static_cast<double>(flags.messages) / Seconds(progress.last() - start);
}

msgsdk::Result<double> SdkReceive(msgsdk::Client& client, const std::string& topic,
                                  const std::string& group, const Flags& flags) {
  Progress progress;
  std::atomic<uint64_t> body_bytes{0};
  const auto start = Clock::now();
  MSGSDK_ASSIGN_OR_RETURN(msgsdk::Subscription subscription,
                          client.Subscribe(topic, group,
                                           [&](const msgsdk::Message& message) {
                                             body_bytes.fetch_add(message.body.size(),
                                                                  std::memory_order_relaxed);
                                             progress.Add(true);
                                             return msgsdk::ConsumeResult::kSuccess;
                                           },
                                           {.consumer_threads = flags.consumer_threads}));
  const bool all = progress.WaitFor(flags.messages, kGiveUp);
  const Clock::time_point last = progress.last();
  MSGSDK_RETURN_IF_ERROR(subscription.Close());
  if (!all) {
    return msgsdk::DeadlineExceededError("sdk receive from " + topic + ": only " +
                                         std::to_string(progress.done()) + " of " +
                                         std::to_string(flags.messages) + " handled");
  }
  if (body_bytes.load() != static_cast<uint64_t>(progress.done()) * flags.size) {
    return msgsdk::InternalError("sdk receive from " + topic + ": unexpected body sizes");
  }
  return static_cast<double>(progress.done()) / Seconds(last - start);
}

// One cluster per stream count, all on the same server; topic "p<N>-..." goes to "redis-p<N>".
std::string RoutingYaml(const std::string& endpoint, const Flags& flags) {
  std::string yaml = "environments:\n  bench:\n    clusters:\n";
  for (int partitions : flags.partitions) {
    const std::string n = std::to_string(partitions);
    yaml += "      redis-p" + n + ": { backend: redis, endpoint: \"" + endpoint +
            "\", partitions: " + n + ", pipeline_depth: " + std::to_string(flags.batch) +
            ", read_batch: " + std::to_string(flags.read_count) + " }\n";
  }
  yaml += "    topics:\n";
  for (int partitions : flags.partitions) {
    const std::string n = std::to_string(partitions);
    yaml += "      \"p" + n + "-*\": redis-p" + n + "\n";
  }
  yaml += "client:\n  send_timeout_ms: 60000\n";
  return yaml;
}

// What one case cost: its rate, and per message the CPU time of this process (every thread)
// and of redis-server, and this process's context switches (each one a thread that went to
// sleep or was preempted). CPU per message barely moves with the machine's load where the
// rates do, and it says where the time goes.
struct Cost {
  double rate = 0;
  double client_us = 0;
  double server_us = 0;
  double switches = 0;
};

struct Usage {
  double client_s = 0;
  double server_s = 0;
  int64_t switches = 0;
};

Usage Sample(pid_t server) {
  return {.client_s = msgsdk::bench::SelfCpuSeconds(),
          .server_s = msgsdk::bench::ProcessCpuSeconds(server),
          .switches = msgsdk::bench::SelfContextSwitches()};
}

template <typename Case>
msgsdk::Result<Cost> Measure(pid_t server, int64_t messages, Case run) {
  const Usage before = Sample(server);
  MSGSDK_ASSIGN_OR_RETURN(double rate, run());
  const Usage after = Sample(server);
  const auto n = static_cast<double>(messages);
  return Cost{.rate = rate,
              .client_us = (after.client_s - before.client_s) * 1e6 / n,
              .server_us = (after.server_s - before.server_s) * 1e6 / n,
              .switches = static_cast<double>(after.switches - before.switches) / n};
}

struct Figures {
  std::vector<Cost> raw_send, sdk_send, raw_receive, sdk_receive;
};

Cost Median(const std::vector<Cost>& costs) {
  std::vector<double> rate, client, server, switches;
  for (const Cost& cost : costs) {
    rate.push_back(cost.rate);
    client.push_back(cost.client_us);
    server.push_back(cost.server_us);
    switches.push_back(cost.switches);
  }
  return {.rate = Median(rate),
          .client_us = Median(client),
          .server_us = Median(server),
          .switches = Median(switches)};
}

// Deletes the streams of one repeat, so the server's memory stays flat across repeats.
msgsdk::Status DropStreams(redisContext* context, const std::vector<std::string>& keys) {
  std::vector<std::string> unlink = {"UNLINK"};
  unlink.insert(unlink.end(), keys.begin(), keys.end());
  return RedisCommand(context, unlink).status();
}

msgsdk::Status RunOnce(redisContext* context, msgsdk::Client& client, pid_t server, int partitions,
                       int round, const Flags& flags, Figures& figures) {
  const std::string name = "p" + std::to_string(partitions) + "-bench-" + std::to_string(round);
  const std::vector<std::string> raw_streams = StreamNames("bench-raw:" + name, partitions);
  // The backend's keys for this topic (default key_prefix "msgsdk").
  const std::vector<std::string> sdk_streams = StreamNames("msgsdk:" + name, partitions);
  const int64_t n = flags.messages;

  MSGSDK_ASSIGN_OR_RETURN(Cost raw_send,
                          Measure(server, n, [&] { return RawSend(context, raw_streams, flags); }));
  MSGSDK_ASSIGN_OR_RETURN(Cost sdk_send,
                          Measure(server, n, [&] { return SdkSend(client, name, flags); }));
  MSGSDK_ASSIGN_OR_RETURN(Cost raw_receive, Measure(server, n, [&] {
                            return RawReceive(context, raw_streams, "raw", flags);
                          }));
  MSGSDK_ASSIGN_OR_RETURN(
      Cost sdk_receive, Measure(server, n, [&] { return SdkReceive(client, name, "sdk", flags); }));
  figures.raw_send.push_back(raw_send);
  figures.sdk_send.push_back(sdk_send);
  figures.raw_receive.push_back(raw_receive);
  figures.sdk_receive.push_back(sdk_receive);
  std::fprintf(stderr,
               "partitions %d, repeat %d: send raw %.0f sdk %.0f, receive raw %.0f sdk %.0f "
               "(load %s)\n",
               partitions, round, raw_send.rate, sdk_send.rate, raw_receive.rate, sdk_receive.rate,
               LoadAverage().c_str());
  std::vector<std::string> keys = raw_streams;
  keys.insert(keys.end(), sdk_streams.begin(), sdk_streams.end());
  return DropStreams(context, keys);
}

std::string Ratio(double sdk, double raw) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", raw > 0 ? sdk / raw : 0.0);
  return text;
}

int Run(const Flags& flags) {
  // No persistence: the figures are about the client side, not the server's disk.
  msgsdk::test::RedisServerOptions options;
  options.append_only = false;
  auto server = msgsdk::test::RedisServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "starting redis-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  auto context = ConnectRedis((*server)->port());
  if (!context.ok()) {
    std::fprintf(stderr, "%s\n", context.status().ToString().c_str());
    return 1;
  }
  auto client = msgsdk::Client::Create(
      {.config_yaml = RoutingYaml((*server)->endpoint(), flags), .environment = "bench"});
  if (!client.ok()) {
    std::fprintf(stderr, "Client::Create: %s\n", client.status().ToString().c_str());
    return 1;
  }
  const std::string load_before = LoadAverage();

  std::vector<Figures> figures(flags.partitions.size());
  for (int round = 0; round < flags.repeat; ++round) {
    for (size_t i = 0; i < flags.partitions.size(); ++i) {
      const msgsdk::Status status = RunOnce(context->get(), *client, (*server)->pid(),
                                            flags.partitions[i], round, flags, figures[i]);
      if (!status.ok()) {
        std::fprintf(stderr, "%s\n", status.ToString().c_str());
        client->Close().IgnoreError();
        return 1;
      }
    }
  }
  const msgsdk::Status closed = client->Close();
  if (!closed.ok()) std::fprintf(stderr, "Client::Close: %s\n", closed.ToString().c_str());

  std::printf(
      "Redis Streams backend vs raw hiredis, one redis-server on loopback, %zu B bodies, "
      "%s messages per case, XADD batches of %d, XREADGROUP COUNT %d, median of %d\n",
      flags.size, WithSeparators(static_cast<uint64_t>(flags.messages)).c_str(), flags.batch,
      flags.read_count, flags.repeat);
  std::printf("load average before %s, after %s\n\n", load_before.c_str(), LoadAverage().c_str());
  std::printf("  %-28s %10s %12s %12s %8s %7s\n", "case", "partitions", "raw msgs/s", "sdk msgs/s",
              "sdk/raw", "target");
  std::printf("  %s\n", std::string(82, '-').c_str());
  const auto rates = [&](const char* label, const std::vector<Cost>& raw_costs,
                         const std::vector<Cost>& sdk_costs, int partitions) {
    const double raw = Median(raw_costs).rate;
    const double sdk = Median(sdk_costs).rate;
    std::printf("  %-28s %10d %12s %12s %8s %7.2f\n", label, partitions,
                WithSeparators(static_cast<uint64_t>(raw)).c_str(),
                WithSeparators(static_cast<uint64_t>(sdk)).c_str(), Ratio(sdk, raw).c_str(),
                kTargetRatio);
  };
  for (size_t i = 0; i < flags.partitions.size(); ++i) {
    rates("send: XADD vs SendAsync", figures[i].raw_send, figures[i].sdk_send, flags.partitions[i]);
  }
  for (size_t i = 0; i < flags.partitions.size(); ++i) {
    rates("receive: XREADGROUP vs SDK", figures[i].raw_receive, figures[i].sdk_receive,
          flags.partitions[i]);
  }

  std::printf(
      "\n  CPU microseconds per message (client: this process, every thread; server: "
      "redis-server)\n  and context switches of this process per message, medians\n\n");
  std::printf("  %-10s %10s %11s %11s %11s %11s %8s %8s\n", "case", "partitions", "raw client",
              "raw server", "sdk client", "sdk server", "raw cs", "sdk cs");
  std::printf("  %s\n", std::string(88, '-').c_str());
  const auto costs = [&](const char* label, const std::vector<Cost>& raw_costs,
                         const std::vector<Cost>& sdk_costs, int partitions) {
    const Cost raw = Median(raw_costs);
    const Cost sdk = Median(sdk_costs);
    std::printf("  %-10s %10d %11.2f %11.2f %11.2f %11.2f %8.3f %8.3f\n", label, partitions,
                raw.client_us, raw.server_us, sdk.client_us, sdk.server_us, raw.switches,
                sdk.switches);
  };
  for (size_t i = 0; i < flags.partitions.size(); ++i) {
    costs("send", figures[i].raw_send, figures[i].sdk_send, flags.partitions[i]);
  }
  for (size_t i = 0; i < flags.partitions.size(); ++i) {
    costs("receive", figures[i].raw_receive, figures[i].sdk_receive, flags.partitions[i]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"Redis Streams backend vs raw hiredis on one redis-server, in one run."};
  app.add_option("--messages", flags.messages, "Messages per case")->check(CLI::PositiveNumber);
  app.add_option("--size", flags.size, "Body bytes")->check(CLI::PositiveNumber);
  app.add_option("--partitions", flags.partitions,
                 "Stream counts to measure (the backend's default is 4)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--batch", flags.batch,
                 "XADD commands per round trip (raw) and pipeline_depth (SDK)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--read-count", flags.read_count, "XREADGROUP COUNT (raw) and read_batch (SDK)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--window", flags.window, "SDK sends in flight at most")
      ->check(CLI::PositiveNumber);
  app.add_option("--consumer-threads", flags.consumer_threads,
                 "Handler threads of the SDK subscription (0: the SDK's default)")
      ->check(CLI::Range(0, 64));
  app.add_option("--repeat", flags.repeat, "Repetitions; the table shows medians")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  return Run(flags);
}
