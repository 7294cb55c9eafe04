// msgsdk send / tail / reset: messages through the public msgsdk::Client API, configured like
// any client (--config, --env, ... or the MSGSDK_* environment variables, MSGSDK_SIDECAR
// included).

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/cli.h"
#include "cli/formatting.h"
#include <fmt/format.h>

#include "msgsdk/client.h"

namespace msgsdk::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Sends at most this many messages at once (send --count).
constexpr size_t kSendWindow = 256;

// Writes `line` and a newline to standard output and flushes, so that a reader of a pipe sees
// each message as it comes. False if the output is gone (a closed pipe, a full disk).
bool WriteLine(const std::string& line) {
  return std::fwrite(line.data(), 1, line.size(), stdout) == line.size() &&
         std::fputc('\n', stdout) != EOF && std::fflush(stdout) == 0;
}

// All of standard input, as bytes.
Result<std::string> ReadStandardInput() {
  std::string data;
  char buffer[65536];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) data.append(buffer, n);
  if (std::ferror(stdin) != 0) {
    return UnavailableError("cannot read the body from standard input");
  }
  return data;
}

Result<Client> Connect(const GlobalOptions& globals) {
  return Client::Create(globals.ToClientOptions());
}

// ---- send ---------------------------------------------------------------------------------

struct SendFlags {
  std::string topic;
  std::string body;
  std::string key;
  std::string tag;
  std::vector<std::string> properties;
  std::string deliver_at;
  int64_t count = 1;
  int64_t timeout_ms = 0;
};

int Send(const GlobalOptions& globals, const SendFlags& flags) {
  Message message{.key = flags.key, .tag = flags.tag};
  for (const std::string& property : flags.properties) {
    auto parsed = ParseProperty(property);  // validated by the option's check already
    if (!parsed.ok()) return UsageError("--property: " + parsed.status().message());
    message.properties[parsed->first] = parsed->second;
  }
  if (!flags.deliver_at.empty()) {
    auto when = ParseTimestamp(flags.deliver_at);
    if (!when.ok()) return UsageError("--deliver-at: " + when.status().message());
    message.deliver_at = *when;
  }
  if (flags.body == "-") {
    auto body = ReadStandardInput();
    if (!body.ok()) return Fail("send", body.status());
    message.body = std::move(body).value();
  } else {
    message.body = flags.body;
  }

  auto client = Connect(globals);
  if (!client.ok()) return Fail("send", client.status());
  auto producer = client->CreateProducer(
      flags.topic, ProducerOptions{.send_timeout = std::chrono::milliseconds(flags.timeout_ms)});
  if (!producer.ok()) return Fail("send", producer.status());

  // Up to kSendWindow sends in flight; receipts are printed in send order as they complete
  // (`completed` holds those that finished ahead of an earlier one, so at most the window).
  const auto count = static_cast<size_t>(flags.count);
  std::mutex mutex;
  std::condition_variable done;
  std::map<size_t, Result<SendReceipt>> completed;
  size_t in_flight = 0;
  bool failed = false;
  size_t printed = 0;
  size_t started = 0;
  bool output_ok = true;
  int exit_code = kExitOk;
  // Prints the completed prefix; called with `lock` held, writes without it.
  auto print_ready = [&](std::unique_lock<std::mutex>& lock) {
    for (auto next = completed.find(printed); next != completed.end();
         next = completed.find(printed)) {
      const Result<SendReceipt> result = std::move(next->second);
      completed.erase(next);
      const size_t index = printed++;
      lock.unlock();
      if (result.ok()) {
        output_ok = WriteLine(FormatReceipt(*result)) && output_ok;
      } else {
        exit_code = Fail(fmt::format("send #{} of {} to topic '{}'", index + 1, count, flags.topic),
                         result.status());
      }
      lock.lock();
    }
  };
  std::unique_lock lock(mutex);
  while (started < count && !failed) {
    done.wait(lock, [&] { return in_flight < kSendWindow || failed; });
    print_ready(lock);
    if (failed) break;
    const size_t index = started++;
    ++in_flight;
    lock.unlock();
    producer->SendAsync(message, [&, index](const Result<SendReceipt>& result) {
      std::lock_guard guard(mutex);
      completed.emplace(index, result);
      if (!result.ok()) failed = true;  // no new sends; those in flight finish
      --in_flight;
      done.notify_all();
    });
    lock.lock();
  }
  done.wait(lock, [&] { return in_flight == 0; });
  print_ready(lock);
  lock.unlock();

  if (Status closed = producer->Close(); !closed.ok()) exit_code = Fail("send: closing", closed);
  if (Status closed = client->Close(); !closed.ok()) exit_code = Fail("send: closing", closed);
  if (!output_ok) {
    return Fail("send", UnavailableError("cannot write the receipts to standard output"));
  }
  return exit_code;
}

// ---- tail ---------------------------------------------------------------------------------

struct TailFlags {
  std::string topic;
  std::string group;
  std::string from = "earliest";
  std::string tag_filter = "*";
  int64_t count = 0;
  int64_t timeout_ms = 0;
  bool broadcast = false;
};

// SIGINT and SIGTERM, taken by a thread of their own (sigwait) instead of ending the process,
// so that tail can close its subscription and commit what it printed. Construct it before any
// other thread starts: threads inherit the blocked signals.
class StopSignals {
 public:
  explicit StopSignals(std::function<void()> on_signal) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
    thread_ = std::thread([this, on_signal = std::move(on_signal)] {
      int signal = 0;
      while (sigwait(&signals_, &signal) == 0) {
        if (finished_.load()) return;
        on_signal();
      }
    });
  }
  ~StopSignals() {
    finished_.store(true);
    // Blocked everywhere, the signal only ends the thread's sigwait, which sees finished_.
    pthread_kill(thread_.native_handle(), SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  sigset_t signals_{};
  sigset_t previous_{};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// What the handler and the waiting main thread share.
class TailState {
 public:
  TailState(int64_t count, std::chrono::milliseconds idle_timeout)
      : count_(count), idle_timeout_(idle_timeout) {}

  // The subscription's handler (one consumer thread): prints, then acknowledges. Messages
  // arriving after the count was reached (or after a stop) are handed back unacknowledged
  // (kRetryLater), and the cluster delivers them again to the group once tail has closed.
  ConsumeResult Handle(const Message& message) {
    std::lock_guard lock(mutex_);
    if (stop_ != Stop::kNone) return ConsumeResult::kRetryLater;
    if (!WriteLine(FormatMessage(message))) {
      Finish(Stop::kOutputFailed);
      return ConsumeResult::kRetryLater;
    }
    ++received_;
    last_activity_ = Clock::now();
    if (count_ > 0 && received_ >= count_) Finish(Stop::kCountReached);
    return ConsumeResult::kSuccess;
  }

  void Interrupt() {
    std::lock_guard lock(mutex_);
    if (stop_ == Stop::kNone) Finish(Stop::kSignal);
  }

  enum class Stop { kNone, kCountReached, kIdle, kSignal, kOutputFailed };

  // Waits until the count is reached, a signal arrives, the output fails, or (with an idle
  // timeout) no message came for that long. Called once subscribed: the idle time counts from
  // then, since connecting and subscribing may take longer than the timeout.
  Stop Wait() {
    std::unique_lock lock(mutex_);
    last_activity_ = Clock::now();
    while (stop_ == Stop::kNone) {
      if (idle_timeout_.count() <= 0) {
        changed_.wait(lock);
        continue;
      }
      const auto deadline = last_activity_ + idle_timeout_;
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && stop_ == Stop::kNone &&
          Clock::now() >= last_activity_ + idle_timeout_) {
        stop_ = Stop::kIdle;
      }
    }
    return stop_;
  }

  int64_t received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void Finish(Stop why) {
    stop_ = why;
    changed_.notify_all();
  }

  const int64_t count_;
  const std::chrono::milliseconds idle_timeout_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Clock::time_point last_activity_;  // the last message, or when Wait began
  int64_t received_ = 0;
  Stop stop_ = Stop::kNone;
};

int Tail(const GlobalOptions& globals, const TailFlags& flags) {
  auto state =
      std::make_shared<TailState>(flags.count, std::chrono::milliseconds(flags.timeout_ms));
  StopSignals signals([state] { state->Interrupt(); });
  auto client = Connect(globals);
  if (!client.ok()) return Fail("tail", client.status());
  SubscribeOptions options{
      .mode = flags.broadcast ? SubscriptionMode::kBroadcast : SubscriptionMode::kClustering,
      .tag_filter = flags.tag_filter,
      .start_from = flags.from == "latest" ? StartPosition::kLatest : StartPosition::kEarliest,
      // One handler thread: lines come out whole and in delivery order.
      .consumer_threads = 1,
      // Tail itself never fails a message; it only hands back those beyond --count. However
      // low the table's max_attempts, such a message must not be dead-lettered, nor retried
      // here before the subscription closes and returns it to the cluster.
      .max_attempts = 1'000'000,
      .retry_backoff = std::chrono::hours(1),
      .retry_backoff_max = std::chrono::hours(1),
  };
  auto subscription = client->Subscribe(
      flags.topic, flags.group, [state](const Message& m) { return state->Handle(m); }, options);
  if (!subscription.ok()) return Fail("tail", subscription.status());

  const TailState::Stop stop = state->Wait();
  int exit_code = kExitOk;
  if (Status closed = subscription->Close(); !closed.ok())
    exit_code = Fail("tail: closing", closed);
  if (Status closed = client->Close(); !closed.ok()) exit_code = Fail("tail: closing", closed);
  const int64_t received = state->received();
  const std::string summary =
      fmt::format("{} from topic '{}' (group '{}')",
                  received == 1 ? std::string("1 message") : fmt::format("{} messages", received),
                  flags.topic, flags.group);
  switch (stop) {
    case TailState::Stop::kOutputFailed:
      return Fail("tail", UnavailableError("cannot write to standard output after " + summary));
    case TailState::Stop::kIdle:
      if (flags.count > 0) {
        return Fail("tail",
                    DeadlineExceededError(fmt::format("no message for {} ms: {}, {} expected",
                                                      flags.timeout_ms, summary, flags.count)));
      }
      fmt::print(stderr, "msgsdk: no message for {} ms: {}\n", flags.timeout_ms, summary);
      break;
    case TailState::Stop::kSignal:
      fmt::print(stderr, "msgsdk: interrupted: {}\n", summary);
      break;
    case TailState::Stop::kCountReached:
    case TailState::Stop::kNone:
      break;
  }
  return exit_code;
}

// ---- reset --------------------------------------------------------------------------------

struct ResetFlags {
  std::string topic;
  std::string group;
  std::string to;
};

int Reset(const GlobalOptions& globals, const ResetFlags& flags) {
  auto target = ParseResetTarget(flags.to);  // validated by the option's check already
  if (!target.ok()) return UsageError("--to: " + target.status().message());
  auto client = Connect(globals);
  if (!client.ok()) return Fail("reset", client.status());
  if (Status status = client->ResetOffsets(flags.topic, flags.group, *target); !status.ok()) {
    return Fail(fmt::format("reset group '{}' on topic '{}'", flags.group, flags.topic), status);
  }
  if (Status closed = client->Close(); !closed.ok()) return Fail("reset: closing", closed);
  fmt::print("group '{}' on topic '{}' reset to {}\n", flags.group, flags.topic,
             target->kind == ResetTarget::Kind::kTimestamp ? FormatTimestamp(target->timestamp)
                                                           : flags.to);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace

void AddMessageCommands(CLI::App& app, const GlobalOptions& globals, Action* action) {
  {
    auto flags = std::make_shared<SendFlags>();
    CLI::App* send = app.add_subcommand(
        "send", "Send a message (or --count copies of it); print each one's id and position");
    send->add_option("TOPIC", flags->topic, "The topic")->required();
    send->add_option("BODY", flags->body, "The body; - reads it from standard input")->required();
    send->add_option("--key", flags->key, "Sharding and ordering key");
    send->add_option("--tag", flags->tag, "Tag (one word, for subscription filters)");
    send->add_option("--property", flags->properties, "A user property NAME=VALUE (repeatable)")
        ->check(ParsedBy("NAME=VALUE", [](const std::string& text) { return ParseProperty(text); }))
        // One value per --property, so that `--property a=1 x=y` leaves x=y to BODY.
        ->allow_extra_args(false);
    send->add_option("--deliver-at", flags->deliver_at,
                     "Timer message: deliver no earlier than this time (ISO-8601 UTC or Unix "
                     "milliseconds)")
        ->check(ParsedBy("TIME", [](const std::string& text) { return ParseTimestamp(text); }));
    send->add_option("--count", flags->count, "How many copies to send")
        ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}))
        ->capture_default_str();
    send->add_option("--timeout-ms", flags->timeout_ms,
                     "How long each send may wait for the cluster (0: the table's "
                     "send_timeout_ms)")
        ->check(CLI::Range(int64_t{0}, int64_t{600'000}))
        ->capture_default_str();
    send->callback([&globals, flags, action] {
      *action = [&globals, flags] { return Send(globals, *flags); };
    });
  }
  {
    auto flags = std::make_shared<TailFlags>();
    CLI::App* tail = app.add_subcommand(
        "tail",
        "Subscribe and print each message as one line; acknowledges what it prints, so use a "
        "group of its own");
    tail->add_option("TOPIC", flags->topic, "The topic")->required();
    tail->add_option("--group", flags->group, "Consumer group")->required();
    tail->add_option("--from", flags->from, "Where a group without a committed position starts")
        ->check(CLI::IsMember({"earliest", "latest"}))
        ->capture_default_str();
    tail->add_option("--count", flags->count,
                     "Stop after this many messages (0: no limit); exit 1 if the idle timeout "
                     "comes first")
        ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}))
        ->capture_default_str();
    tail->add_option("--timeout-ms", flags->timeout_ms,
                     "Stop after this long without a message (0: wait until --count or a "
                     "signal)")
        ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}))
        ->capture_default_str();
    tail->add_option("--tag-filter", flags->tag_filter, "Tags to receive, e.g. \"created || paid\"")
        ->capture_default_str();
    tail->add_flag("--broadcast", flags->broadcast,
                   "Broadcast mode: this member receives every message (member id: --client-id)");
    tail->callback([&globals, flags, action] {
      *action = [&globals, flags] { return Tail(globals, *flags); };
    });
  }
  {
    auto flags = std::make_shared<ResetFlags>();
    CLI::App* reset = app.add_subcommand(
        "reset", "Move a group's committed position (replay); close its subscriptions first");
    reset->add_option("TOPIC", flags->topic, "The topic")->required();
    reset->add_option("GROUP", flags->group, "Consumer group")->required();
    reset
        ->add_option("--to", flags->to,
                     "earliest, latest, an ISO-8601 UTC time (2026-11-23T10:00:00Z, fractional "
                     "seconds allowed) or Unix milliseconds")
        ->required()
        ->check(
            ParsedBy("POSITION", [](const std::string& text) { return ParseResetTarget(text); }));
    reset->callback([&globals, flags, action] {
      *action = [&globals, flags] { return Reset(globals, *flags); };
    });
  }
}

}  // namespace msgsdk::cli
