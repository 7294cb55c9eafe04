// msgsdk-demo: an order-events scenario on whatever the routing table says.
//
// A producer sends each order's lifecycle (created -> paid -> shipped) keyed by order id, and
// two consumer groups read the topic: "billing" (ordered: checks that every order's events
// arrive in send order) and "analytics" (unordered: counts by tag). The demo then verifies
// that every acknowledged message reached each group, that billing saw no order out of order,
// and reports duplicates and throughput. It never names a cluster or a backend: with no
// configuration it runs on an embedded native cluster, and MSGSDK_CONFIG / MSGSDK_ENV point
// the same binary at any other cluster.
//
// Without a configuration it also moves the topic while it runs: from the embedded cluster to
// a second one and back (docs/migration.md), as an operator would with `msgsdk migrate`,
// through a routing file it writes for itself. The verification covers that too.

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "msgsdk/msgsdk.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kTopic = "order-events";
constexpr std::string_view kBillingGroup = "billing";
constexpr std::string_view kAnalyticsGroup = "analytics";
constexpr std::array<std::string_view, 3> kSteps = {"created", "paid", "shipped"};
constexpr size_t kStepCount = kSteps.size();
// Bounds the memory held by unacknowledged sends; far more than one round trip needs.
constexpr std::ptrdiff_t kMaxInFlight = 4096;
// How often waits wake up to notice Ctrl-C.
constexpr auto kInterruptCheck = std::chrono::milliseconds(100);

// Exit codes.
constexpr int kExitPassed = 0;
constexpr int kExitVerificationFailed = 1;
constexpr int kExitSetupFailed = 2;
constexpr int kExitInterrupted = 130;  // the shell's convention for SIGINT

std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void OnSignal(int /*signal*/) { interrupted.store(true); }

struct Flags {
  int64_t orders = 20000;
  int64_t keys = 500;
  std::string data_dir;
  double timeout_seconds = 60;
  int consumer_threads = 0;
  std::string analytics_filter = "*";
  bool migrate = true;
};

// ---- Formatting ---------------------------------------------------------------------------

// 1234567 -> "1,234,567".
std::string WithSeparators(uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

// A small text table with a rule under its header. The first column is left-aligned; the
// others are right-aligned (numbers) unless the table is built with Align::kLeft (words).
class Table {
 public:
  enum class Align { kRight, kLeft };

  explicit Table(std::vector<std::string> header, Align align = Align::kRight) : align_(align) {
    rows_.push_back(std::move(header));
  }

  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  void Print() const {
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()), 0);
      for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
    }
    for (size_t r = 0; r < rows_.size(); ++r) {
      std::string line = "  ";
      for (size_t c = 0; c < rows_[r].size(); ++c) {
        const std::string& cell = rows_[r][c];
        const std::string pad(widths[c] - cell.size(), ' ');
        const bool left = c == 0 || align_ == Align::kLeft;
        if (c > 0) line += "  ";
        line += left ? cell + pad : pad + cell;
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::printf("%s\n", line.c_str());
      if (r == 0) {
        size_t total = 0;
        for (size_t w : widths) total += w + 2;
        std::printf("  %s\n", std::string(total - 2, '-').c_str());
      }
    }
  }

 private:
  const Align align_;
  std::vector<std::vector<std::string>> rows_;
};

// ---- Workload -----------------------------------------------------------------------------

int StepIndex(std::string_view tag) {
  for (size_t i = 0; i < kStepCount; ++i) {
    if (kSteps[i] == tag) return static_cast<int>(i);
  }
  return -1;
}

std::string OrderId(int64_t order) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "order-%05lld", static_cast<long long>(order));
  return buffer;
}

// The tags a filter expression ("created || paid", or "*") selects.
std::array<bool, kStepCount> TagsSelected(const std::string& filter) {
  std::array<bool, kStepCount> selected{};
  size_t begin = 0;
  while (begin <= filter.size()) {
    size_t end = filter.find("||", begin);
    if (end == std::string::npos) end = filter.size();
    std::string_view word(filter.data() + begin, end - begin);
    while (!word.empty() && word.front() == ' ') word.remove_prefix(1);
    while (!word.empty() && word.back() == ' ') word.remove_suffix(1);
    if (word == "*") selected.fill(true);
    if (const int step = StepIndex(word); step >= 0) selected[static_cast<size_t>(step)] = true;
    begin = end + 2;
  }
  return selected;
}

// What the producer's acknowledgements said. Filled from SendAsync callbacks (SDK threads).
class SendLedger {
 public:
  struct Event {
    int step = 0;
  };

  void OnResult(const msgsdk::Result<msgsdk::SendReceipt>& result, int step) {
    const auto now = SteadyClock::now();
    std::lock_guard lock(mutex_);
    if (result.ok()) {
      acked_.emplace(result->message_id, Event{.step = step});
      ++acked_by_step_[static_cast<size_t>(step)];
    } else {
      ++failed_by_step_[static_cast<size_t>(step)];
      if (!first_failure_) first_failure_ = result.status();
    }
    last_completion_ = now;
    ++completed_;
    changed_.notify_all();
  }

  // Waits until `submitted` sends completed; false on timeout or interrupt.
  bool WaitForCompletions(uint64_t submitted, SteadyClock::time_point deadline) {
    std::unique_lock lock(mutex_);
    while (completed_ < submitted) {
      if (interrupted.load() || SteadyClock::now() >= deadline) return false;
      changed_.wait_for(lock, kInterruptCheck);
    }
    return true;
  }

  // Accessors for after the sends completed.
  const std::unordered_map<std::string, Event>& acked() const { return acked_; }
  uint64_t acked_count(size_t step) const { return acked_by_step_[step]; }
  uint64_t failed_count(size_t step) const { return failed_by_step_[step]; }
  uint64_t completed() const {
    std::lock_guard lock(mutex_);
    return completed_;
  }
  const std::optional<msgsdk::Status>& first_failure() const { return first_failure_; }
  SteadyClock::time_point last_completion() const { return last_completion_; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, Event> acked_;
  std::array<uint64_t, kStepCount> acked_by_step_{};
  std::array<uint64_t, kStepCount> failed_by_step_{};
  std::optional<msgsdk::Status> first_failure_;
  uint64_t completed_ = 0;
  SteadyClock::time_point last_completion_{};
};

// What one consumer group received. Handle() runs on the subscription's handler threads.
class GroupLedger {
 public:
  GroupLedger(std::string run_id, bool check_order, std::array<bool, kStepCount> selected)
      : run_id_(std::move(run_id)), check_order_(check_order), selected_(selected) {}

  msgsdk::ConsumeResult Handle(const msgsdk::Message& message) {
    const auto now_steady = SteadyClock::now();
    const auto now_wall = std::chrono::system_clock::now();
    const auto run = message.properties.find("run");
    std::lock_guard lock(mutex_);
    if (run == message.properties.end() || run->second != run_id_) {
      // Left on the topic by an earlier run (a reused data directory or a shared cluster).
      ++other_runs_;
      return msgsdk::ConsumeResult::kSuccess;
    }
    int64_t seq = -1;
    const auto seq_property = message.properties.find("step");
    if (seq_property != message.properties.end()) {
      const std::string& text = seq_property->second;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seq);
      if (error != std::errc() || end != text.data() + text.size()) seq = -1;
    }
    const int step = StepIndex(message.tag);
    if (seq < 0 || step < 0 || message.key.empty()) {
      ++malformed_;
      return msgsdk::ConsumeResult::kSuccess;
    }
    uint32_t& deliveries = deliveries_[message.message_id];
    if (++deliveries > 1) {
      // At-least-once: a redelivery is acknowledged again and otherwise ignored.
      ++duplicates_;
      return msgsdk::ConsumeResult::kSuccess;
    }
    ++received_by_step_[static_cast<size_t>(step)];
    ++by_cluster_[message.cluster];
    if (!selected_[static_cast<size_t>(step)]) ++outside_filter_;
    if (check_order_) {
      auto [it, inserted] = last_seq_.try_emplace(message.key, seq);
      if (!inserted) {
        if (seq < it->second) {
          ++reordered_;
          if (first_reorder_.empty()) {
            first_reorder_ = message.key + ": step " + std::to_string(seq) + " after step " +
                             std::to_string(it->second);
          }
        } else {
          it->second = seq;
        }
      }
    }
    latencies_us_.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(now_wall - message.born_at).count());
    last_first_delivery_ = now_steady;
    changed_.notify_all();
    return msgsdk::ConsumeResult::kSuccess;
  }

  // Waits until `expected` distinct messages of this run arrived; false on timeout/interrupt.
  bool WaitForUnique(uint64_t expected, SteadyClock::time_point deadline) {
    std::unique_lock lock(mutex_);
    while (deliveries_.size() < expected) {
      if (interrupted.load() || SteadyClock::now() >= deadline) return false;
      changed_.wait_for(lock, kInterruptCheck);
    }
    return true;
  }

  struct Summary {
    std::array<uint64_t, kStepCount> received_by_step{};
    uint64_t unique = 0;
    uint64_t duplicates = 0;
    uint64_t reordered = 0;
    uint64_t other_runs = 0;
    uint64_t malformed = 0;
    uint64_t outside_filter = 0;
    std::string first_reorder;
    SteadyClock::time_point last_first_delivery{};
    std::vector<int64_t> latencies_us;
    std::map<std::string, uint64_t> by_cluster;  // where the first delivery came from
  };

  // A consistent copy (handlers may still run for messages of other runs).
  Summary Snapshot() const {
    std::lock_guard lock(mutex_);
    return Summary{.received_by_step = received_by_step_,
                   .unique = deliveries_.size(),
                   .duplicates = duplicates_,
                   .reordered = reordered_,
                   .other_runs = other_runs_,
                   .malformed = malformed_,
                   .outside_filter = outside_filter_,
                   .first_reorder = first_reorder_,
                   .last_first_delivery = last_first_delivery_,
                   .latencies_us = latencies_us_,
                   .by_cluster = by_cluster_};
  }

  bool Received(const std::string& message_id) const {
    std::lock_guard lock(mutex_);
    return deliveries_.contains(message_id);
  }

 private:
  const std::string run_id_;
  const bool check_order_;
  const std::array<bool, kStepCount> selected_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, uint32_t> deliveries_;  // message id -> times delivered
  std::unordered_map<std::string, int64_t> last_seq_;     // order id -> last step number seen
  std::array<uint64_t, kStepCount> received_by_step_{};
  uint64_t duplicates_ = 0;
  uint64_t reordered_ = 0;
  uint64_t other_runs_ = 0;
  uint64_t malformed_ = 0;
  uint64_t outside_filter_ = 0;
  std::string first_reorder_;
  SteadyClock::time_point last_first_delivery_{};
  std::vector<int64_t> latencies_us_;
  std::map<std::string, uint64_t> by_cluster_;
};

// ---- Data directory -----------------------------------------------------------------------

// A fresh directory under the system temp dir, removed (with its contents) on destruction.
class TempDir {
 public:
  static msgsdk::Result<TempDir> Create() {
    std::error_code error;
    const std::filesystem::path base = std::filesystem::temp_directory_path(error);
    if (error) {
      return msgsdk::UnavailableError("no temporary directory: " + error.message());
    }
    std::string pattern = (base / "msgsdk-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return msgsdk::PermissionDeniedError("cannot create a temporary directory like '" + pattern +
                                           "': " + std::system_category().message(errno));
    }
    return TempDir(pattern);
  }

  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code error;
    std::filesystem::remove_all(path_, error);
    if (error) {
      std::fprintf(stderr, "warning: could not remove '%s': %s\n", path_.c_str(),
                   error.message().c_str());
    }
  }

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// ---- Reporting ----------------------------------------------------------------------------

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string RateCell(uint64_t count, SteadyClock::duration elapsed) {
  const double seconds = Seconds(elapsed);
  if (count == 0 || seconds <= 0) return "-";
  return WithSeparators(static_cast<uint64_t>(static_cast<double>(count) / seconds));
}

std::string PercentileMs(std::vector<int64_t>& sorted_us, double quantile) {
  if (sorted_us.empty()) return "-";
  const auto rank = static_cast<size_t>(quantile * static_cast<double>(sorted_us.size() - 1));
  return Fixed(static_cast<double>(sorted_us[rank]) / 1000.0, 2);
}

std::string Verdict(bool ok, const std::string& detail) {
  const std::string word = ok ? "ok" : "FAIL";
  return detail.empty() ? word : word + " " + detail;
}

struct Verification {
  uint64_t expected = 0;
  uint64_t lost = 0;
  std::string first_lost;
};

Verification CheckNothingLost(const SendLedger& sent, const GroupLedger& group,
                              const std::array<bool, kStepCount>& selected) {
  Verification v;
  for (const auto& [message_id, event] : sent.acked()) {
    if (!selected[static_cast<size_t>(event.step)]) continue;
    ++v.expected;
    if (!group.Received(message_id)) {
      ++v.lost;
      if (v.first_lost.empty()) v.first_lost = message_id;
    }
  }
  return v;
}

// ---- Live migration -------------------------------------------------------------------------

// The routing file of a run without configuration: two embedded clusters, the topic on the
// first, and its migration entry in phase A.
std::string MigrationRoutingYaml(const std::string& dir) {
  return "version: 1\n"
         "environments:\n"
         "  demo:\n"
         "    clusters:\n"
         "      embedded: { backend: native, data_dir: " +
         dir +
         "/embedded }\n"
         "      embedded-b: { backend: native, data_dir: " +
         dir +
         "/embedded-b }\n"
         "    default_cluster: embedded\n"
         "migrations:\n"
         "  " +
         std::string(kTopic) + ": { from: embedded, to: embedded-b, phase: A }\n";
}

// Moves the topic to embedded-b and back while the demo sends: every step is taken as soon as
// the controller allows it (the client runs the file's version and has settled), the way an
// operator runs `msgsdk migrate advance` and `rollback`.
class MigrationDriver {
 public:
  struct Step {
    bool rollback;
    std::string what;
    // What the controller must report it wrote.
    std::string expected;
  };

  MigrationDriver(msgsdk::MigrationController controller, const msgsdk::Client& client)
      : controller_(std::move(controller)), client_(client) {}
  ~MigrationDriver() { Join(); }

  void Start(SteadyClock::time_point start, SteadyClock::time_point deadline) {
    thread_ = std::thread([this, start, deadline] { Run(start, deadline); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_.load(); }

  struct Entry {
    double at_seconds;
    std::string what;
  };
  std::vector<Entry> timeline() const {
    std::lock_guard lock(mutex_);
    return timeline_;
  }
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }
  static const std::vector<Step>& Steps() {
    static const std::vector<Step> steps = {
        {false, "dual_write: writes to both, embedded primary", "in dual_write"},
        {false, "cutover: embedded-b primary, groups drain embedded", "in cutover"},
        {false, "drain offsets of embedded written: groups move on", "drain: {"},
        {true, "rolled back to dual_write: embedded primary again", "in dual_write"},
        {false, "drain offsets of embedded-b written: groups move back", "drain: {"},
        {true, "rolled back to A: embedded only", " in A,"},
    };
    return steps;
  }

 private:
  void Run(SteadyClock::time_point start, SteadyClock::time_point deadline) {
    for (const Step& step : Steps()) {
      while (true) {
        if (interrupted.load() || SteadyClock::now() >= deadline) {
          Fail("stopped before: " + step.what);
          return;
        }
        std::vector<msgsdk::RoutingState> clients;
        if (auto state = client_.Routing(); state.ok()) clients.push_back(*state);
        auto report = step.rollback ? controller_.Rollback(kTopic, clients)
                                    : controller_.Advance(kTopic, clients);
        if (report.ok()) {
          if (report->done.find(step.expected) == std::string::npos) {
            Fail("expected \"" + step.what + "\", the controller did: " + report->done);
            return;
          }
          break;
        }
        if (report.status().code() != msgsdk::StatusCode::kFailedPrecondition) {
          Fail(report.status().ToString());
          return;
        }
        // Waiting for the client to run the last version: it looks every 200 ms.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::lock_guard lock(mutex_);
      timeline_.push_back({Seconds(SteadyClock::now() - start), step.what});
    }
    done_.store(true);
  }
  void Fail(const std::string& why) {
    std::lock_guard lock(mutex_);
    failure_ = why;
  }
  static double Seconds(SteadyClock::duration d) {
    return std::chrono::duration<double>(d).count();
  }

  msgsdk::MigrationController controller_;
  const msgsdk::Client& client_;
  std::atomic<bool> done_{false};
  mutable std::mutex mutex_;
  std::vector<Entry> timeline_;
  std::string failure_;
  std::thread thread_;
};

int Run(const Flags& flags) {
  // ---- Client -------------------------------------------------------------------------
  // Read before any thread starts (getenv is not safe against concurrent setenv).
  const char* config_env = std::getenv("MSGSDK_CONFIG");  // NOLINT(concurrency-mt-unsafe)
  const bool configured = config_env != nullptr && *config_env != '\0';
  const char* data_dir_env = std::getenv("MSGSDK_DATA_DIR");  // NOLINT(concurrency-mt-unsafe)
  // Through a sidecar, its routing table decides, and the client may name none of its own.
  const char* sidecar_env = std::getenv("MSGSDK_SIDECAR");  // NOLINT(concurrency-mt-unsafe)
  const bool through_sidecar = sidecar_env != nullptr && *sidecar_env != '\0';
  msgsdk::ClientOptions options;
  std::optional<TempDir> temp_dir;
  std::string data_dir_note;
  if (through_sidecar) {
    data_dir_note = "the sidecar's (MSGSDK_SIDECAR=" + std::string(sidecar_env) + ")";
    if (!flags.data_dir.empty()) data_dir_note += "; --data-dir is ignored";
  } else if (configured) {
    data_dir_note = "as the routing table says (MSGSDK_CONFIG=" + std::string(config_env) + ")";
    if (!flags.data_dir.empty()) data_dir_note += "; --data-dir is ignored";
  } else if (!flags.data_dir.empty()) {
    options.data_dir = flags.data_dir;
    data_dir_note = flags.data_dir + " (kept)";
  } else if (data_dir_env != nullptr && *data_dir_env != '\0') {
    data_dir_note = std::string(data_dir_env) + " (MSGSDK_DATA_DIR, kept)";
  } else {
    auto created = TempDir::Create();
    if (!created.ok()) {
      std::fprintf(stderr, "error: %s\n", created.status().ToString().c_str());
      return kExitSetupFailed;
    }
    temp_dir.emplace(std::move(created).value());
    options.data_dir = temp_dir->path();
    data_dir_note = temp_dir->path() + " (temporary, removed at exit)";
  }

  // Run id: tells this run's messages from those an earlier run left on the topic.
  const std::string run_id =
      std::to_string(getpid()) + "-" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  const std::array<bool, kStepCount> all_tags = {true, true, true};
  const std::array<bool, kStepCount> analytics_tags = TagsSelected(flags.analytics_filter);

  // Declared before the client so that they outlive every callback and handler it runs.
  SendLedger sent;
  GroupLedger billing(run_id, /*check_order=*/true, all_tags);
  GroupLedger analytics(run_id, /*check_order=*/false, analytics_tags);
  std::counting_semaphore<kMaxInFlight> window(kMaxInFlight);

  // Without a configuration the demo writes its own routing file, so that it can move the
  // topic while it runs.
  // Only in a fresh data directory: the migration starts from phase A on empty clusters.
  const bool migrating = flags.migrate && temp_dir.has_value();
  std::string migration_note = !flags.migrate    ? "off (--no-migration)"
                               : through_sidecar ? "off (the routing table is the sidecar's)"
                               : configured      ? "off (the routing table is MSGSDK_CONFIG's)"
                               : !migrating      ? "off (only with a temporary data directory)"
                                                 : "";
  std::string routing_file;
  if (migrating) {
    const std::string dir = temp_dir->path();
    routing_file = dir + "/routing.yaml";
    std::FILE* file = std::fopen(routing_file.c_str(), "w");
    const std::string yaml = MigrationRoutingYaml(dir);
    if (file == nullptr || std::fwrite(yaml.data(), 1, yaml.size(), file) != yaml.size() ||
        std::fclose(file) != 0) {
      std::fprintf(stderr, "error: cannot write %s\n", routing_file.c_str());
      return kExitSetupFailed;
    }
    options.config_path = routing_file;
    options.data_dir.clear();
  }

  auto client = msgsdk::Client::Create(std::move(options));
  if (!client.ok()) {
    std::fprintf(stderr, "error: cannot create the client: %s\n",
                 client.status().ToString().c_str());
    return kExitSetupFailed;
  }
  auto route = client->Describe(kTopic);
  if (!route.ok()) {
    std::fprintf(stderr, "error: %s\n", route.status().ToString().c_str());
    return kExitSetupFailed;
  }

  const uint64_t events = static_cast<uint64_t>(flags.orders) * kStepCount;
  std::printf("msgsdk demo: order events\n\n");
  std::printf("  route      topic '%s' -> cluster '%s' (backend %s, environment '%s', via %s)\n",
              route->topic.c_str(), route->cluster.c_str(), route->capabilities.backend.c_str(),
              route->environment.c_str(), route->matched_by.c_str());
  std::printf("  data dir   %s\n", data_dir_note.c_str());
  if (migrating) {
    std::printf(
        "  migration  while it runs, the topic moves embedded -> embedded-b -> embedded\n"
        "             (routing file %s, driven like `msgsdk migrate`)\n",
        routing_file.c_str());
  } else {
    std::printf("  migration  %s\n", migration_note.c_str());
  }
  std::printf(
      "  workload   %s orders over %s order ids, %zu events each = %s events,\n"
      "             SendAsync with up to %td in flight\n",
      WithSeparators(static_cast<uint64_t>(flags.orders)).c_str(),
      WithSeparators(static_cast<uint64_t>(flags.keys)).c_str(), kStepCount,
      WithSeparators(events).c_str(), kMaxInFlight);
  std::printf(
      "  groups     billing (ordered by order id), analytics (unordered, filter \"%s\")\n\n",
      flags.analytics_filter.c_str());
  std::fflush(stdout);

  // ---- Subscriptions, then the producer -----------------------------------------------
  auto billing_sub = client->Subscribe(
      kTopic, kBillingGroup, [&billing](const msgsdk::Message& m) { return billing.Handle(m); },
      msgsdk::SubscribeOptions{.ordered = true, .consumer_threads = flags.consumer_threads});
  if (!billing_sub.ok()) {
    std::fprintf(stderr, "error: %s\n", billing_sub.status().ToString().c_str());
    return kExitSetupFailed;
  }
  auto analytics_sub = client->Subscribe(
      kTopic, kAnalyticsGroup,
      [&analytics](const msgsdk::Message& m) { return analytics.Handle(m); },
      msgsdk::SubscribeOptions{.ordered = false,
                               .tag_filter = flags.analytics_filter,
                               .consumer_threads = flags.consumer_threads});
  if (!analytics_sub.ok()) {
    std::fprintf(stderr, "error: %s\n", analytics_sub.status().ToString().c_str());
    return kExitSetupFailed;
  }
  auto producer = client->CreateProducer(kTopic);
  if (!producer.ok()) {
    std::fprintf(stderr, "error: %s\n", producer.status().ToString().c_str());
    return kExitSetupFailed;
  }

  std::optional<MigrationDriver> migration;
  if (migrating) {
    auto controller = msgsdk::MigrationController::Open({.routing_file = routing_file});
    if (!controller.ok()) {
      std::fprintf(stderr, "error: %s\n", controller.status().ToString().c_str());
      return kExitSetupFailed;
    }
    migration.emplace(std::move(controller).value(), *client);
  }
  // The send loop goes on past --orders until the migration is through, so that it always
  // happens under load.
  auto migration_running = [&migration] {
    return migration && !migration->done() && migration->failure().empty();
  };

  // ---- Send ---------------------------------------------------------------------------
  // Orders go in blocks of `keys`: every order of a block is created, then paid, then
  // shipped, so events of many orders interleave and each order id gets several lifecycles.
  // The "step" property numbers the events of one order id: 0, 1, 2, ... in send order.
  const auto start = SteadyClock::now();
  const auto deadline = start + std::chrono::duration_cast<SteadyClock::duration>(
                                    std::chrono::duration<double>(flags.timeout_seconds));
  std::vector<int64_t> next_seq(static_cast<size_t>(flags.keys), 0);
  uint64_t submitted = 0;
  bool stopped_early = false;
  if (migration) migration->Start(start, deadline);
  for (int64_t block = 0; (block < flags.orders || migration_running()) && !stopped_early;
       block += flags.keys) {
    const int64_t block_end =
        block < flags.orders ? std::min(flags.orders, block + flags.keys) : block + flags.keys;
    for (size_t step = 0; step < kStepCount && !stopped_early; ++step) {
      for (int64_t order = block; order < block_end; ++order) {
        while (!window.try_acquire_for(kInterruptCheck)) {
          if (interrupted.load() || SteadyClock::now() >= deadline) break;
        }
        if (interrupted.load() || SteadyClock::now() >= deadline) {
          stopped_early = true;
          break;
        }
        const int64_t key_index = order % flags.keys;
        const std::string order_id = OrderId(key_index);
        const int64_t seq = next_seq[static_cast<size_t>(key_index)]++;
        std::string body = R"({"order_id":")" + order_id + R"(","event":")" +
                           std::string(kSteps[step]) + R"(","seq":)" + std::to_string(seq) + "}";
        msgsdk::Message message{.key = order_id,
                                .tag = std::string(kSteps[step]),
                                .properties = {{"step", std::to_string(seq)}, {"run", run_id}},
                                .body = std::move(body)};
        const int step_index = static_cast<int>(step);
        producer->SendAsync(std::move(message), [&sent, &window, step_index](
                                                    const msgsdk::Result<msgsdk::SendReceipt>& r) {
          sent.OnResult(r, step_index);
          window.release();
        });
        ++submitted;
      }
    }
  }
  const auto submit_end = SteadyClock::now();
  if (migration) migration->Join();
  const bool all_completed = sent.WaitForCompletions(submitted, deadline);

  // ---- Receive ------------------------------------------------------------------------
  bool all_delivered = false;
  if (all_completed) {
    uint64_t expected_billing = 0;
    uint64_t expected_analytics = 0;
    for (size_t step = 0; step < kStepCount; ++step) {
      expected_billing += sent.acked_count(step);
      if (analytics_tags[step]) expected_analytics += sent.acked_count(step);
    }
    all_delivered = billing.WaitForUnique(expected_billing, deadline) &&
                    analytics.WaitForUnique(expected_analytics, deadline);
  }
  const bool timed_out = !interrupted.load() && (stopped_early || !all_delivered);

  // ---- Shutdown -----------------------------------------------------------------------
  // Subscriptions first (their handlers stop and offsets are committed), then the producer
  // and the client. Counts are taken afterwards, so late handlers are included.
  std::vector<std::pair<std::string, msgsdk::Status>> close_results;
  close_results.emplace_back("subscription billing", billing_sub->Close());
  close_results.emplace_back("subscription analytics", analytics_sub->Close());
  close_results.emplace_back("producer", producer->Close());
  close_results.emplace_back("client", client->Close());

  GroupLedger::Summary b = billing.Snapshot();
  GroupLedger::Summary a = analytics.Snapshot();

  // ---- Report -------------------------------------------------------------------------
  std::printf("Sent (producer acknowledgements)\n");
  Table sent_table({"tag", "acked", "failed"});
  uint64_t acked_total = 0;
  uint64_t failed_total = 0;
  for (size_t step = 0; step < kStepCount; ++step) {
    sent_table.AddRow({std::string(kSteps[step]), WithSeparators(sent.acked_count(step)),
                       WithSeparators(sent.failed_count(step))});
    acked_total += sent.acked_count(step);
    failed_total += sent.failed_count(step);
  }
  sent_table.AddRow({"total", WithSeparators(acked_total), WithSeparators(failed_total)});
  sent_table.Print();
  if (sent.first_failure()) {
    std::printf("  first failure: %s\n", sent.first_failure()->ToString().c_str());
  }
  const uint64_t unanswered = submitted - sent.completed();
  if (unanswered > 0) {
    std::printf("  %s sends were not answered before the deadline\n",
                WithSeparators(unanswered).c_str());
  }
  if (stopped_early) {
    std::printf("  stopped after %s of %s events (%s)\n", WithSeparators(submitted).c_str(),
                WithSeparators(events).c_str(), interrupted.load() ? "interrupted" : "timeout");
  }

  std::printf("\nReceived (distinct messages of this run)\n");
  Table received_table({"tag", "billing", "analytics"});
  for (size_t step = 0; step < kStepCount; ++step) {
    received_table.AddRow({std::string(kSteps[step]), WithSeparators(b.received_by_step[step]),
                           WithSeparators(a.received_by_step[step])});
  }
  received_table.AddRow({"total", WithSeparators(b.unique), WithSeparators(a.unique)});
  received_table.AddRow(
      {"redelivered (duplicates)", WithSeparators(b.duplicates), WithSeparators(a.duplicates)});
  if (b.other_runs + a.other_runs > 0) {
    received_table.AddRow({"left by earlier runs (skipped)", WithSeparators(b.other_runs),
                           WithSeparators(a.other_runs)});
  }
  if (b.malformed + a.malformed > 0) {
    received_table.AddRow({"malformed", WithSeparators(b.malformed), WithSeparators(a.malformed)});
  }
  received_table.Print();

  const Verification billing_check = CheckNothingLost(sent, billing, all_tags);
  const Verification analytics_check = CheckNothingLost(sent, analytics, analytics_tags);
  const bool was_interrupted = interrupted.load();
  const auto lost_cell = [was_interrupted](const Verification& v) {
    const std::string counts =
        WithSeparators(v.expected - v.lost) + " of " + WithSeparators(v.expected);
    // Ctrl-C stops the wait for deliveries: what is missing then was not lost, only not waited for.
    if (was_interrupted && v.lost > 0) return "- " + counts + " (interrupted)";
    return Verdict(v.lost == 0, counts);
  };
  const bool sends_ok = failed_total == 0 && unanswered == 0 && !stopped_early;
  const bool billing_ok =
      billing_check.lost == 0 && b.reordered == 0 && b.malformed == 0 && b.outside_filter == 0;
  const bool analytics_ok = analytics_check.lost == 0 && a.malformed == 0 && a.outside_filter == 0;
  bool closes_ok = true;
  for (const auto& [what, status] : close_results) closes_ok = closes_ok && status.ok();
  const bool migration_ok = !migration || migration->done();

  if (migration) {
    std::printf("\nLive migration (seconds from the first send)\n");
    Table steps({"at", "step"}, Table::Align::kLeft);
    for (const auto& entry : migration->timeline())
      steps.AddRow({Fixed(entry.at_seconds, 2), entry.what});
    steps.Print();
    if (!migration->failure().empty()) {
      std::printf("  the migration did not finish: %s\n", migration->failure().c_str());
    }
    auto cluster_cell = [](const GroupLedger::Summary& summary, const std::string& cluster) {
      auto it = summary.by_cluster.find(cluster);
      return WithSeparators(it == summary.by_cluster.end() ? 0 : it->second);
    };
    Table read({"read from", "billing", "analytics"});
    for (const std::string cluster : {"embedded", "embedded-b"}) {
      read.AddRow({cluster, cluster_cell(b, cluster), cluster_cell(a, cluster)});
    }
    read.Print();
  }

  std::printf("\nVerification\n");
  Table verify_table({"check", "billing", "analytics"}, Table::Align::kLeft);
  verify_table.AddRow({"nothing lost: acknowledged messages received", lost_cell(billing_check),
                       lost_cell(analytics_check)});
  verify_table.AddRow(
      {"nothing reordered: each order's steps in order",
       Verdict(b.reordered == 0, b.reordered == 0 ? "" : WithSeparators(b.reordered) + " late"),
       "- (unordered)"});
  verify_table.AddRow(
      {"tag filter respected", Verdict(b.outside_filter == 0, ""),
       Verdict(a.outside_filter == 0,
               a.outside_filter == 0 ? "" : WithSeparators(a.outside_filter) + " outside")});
  verify_table.AddRow({"duplicates (0 expected without failures)", WithSeparators(b.duplicates),
                       WithSeparators(a.duplicates)});
  if (migration) {
    const std::string moved = Verdict(migration_ok, migration_ok ? "there and back" : "unfinished");
    verify_table.AddRow({"live migration, no send failed", moved, moved});
  }
  verify_table.Print();
  if (!billing_check.first_lost.empty()) {
    std::printf("  billing never received message %s\n", billing_check.first_lost.c_str());
  }
  if (!analytics_check.first_lost.empty()) {
    std::printf("  analytics never received message %s\n", analytics_check.first_lost.c_str());
  }
  if (!b.first_reorder.empty()) std::printf("  first reorder: %s\n", b.first_reorder.c_str());
  for (const auto& [what, status] : close_results) {
    if (!status.ok())
      std::printf("  closing the %s failed: %s\n", what.c_str(), status.ToString().c_str());
  }

  std::printf("\nThroughput (from the first send)\n");
  Table rate_table({"stage", "messages", "seconds", "msgs/s"});
  rate_table.AddRow({"SendAsync calls returned", WithSeparators(submitted),
                     Fixed(Seconds(submit_end - start), 3),
                     RateCell(submitted, submit_end - start)});
  rate_table.AddRow({"sends acknowledged", WithSeparators(acked_total),
                     Fixed(Seconds(sent.last_completion() - start), 3),
                     RateCell(acked_total, sent.last_completion() - start)});
  rate_table.AddRow({"end to end, billing", WithSeparators(b.unique),
                     Fixed(Seconds(b.last_first_delivery - start), 3),
                     RateCell(b.unique, b.last_first_delivery - start)});
  rate_table.AddRow({"end to end, analytics", WithSeparators(a.unique),
                     Fixed(Seconds(a.last_first_delivery - start), 3),
                     RateCell(a.unique, a.last_first_delivery - start)});
  rate_table.Print();

  std::printf(
      "\nLatency, send (born_at) to handler, milliseconds (under full load, with up to "
      "%td sends in flight:\nmostly queueing; msgsdk-bench-embedded measures latency at a "
      "fixed rate)\n",
      kMaxInFlight);
  Table latency_table({"group", "p50", "p99", "max"});
  for (auto* summary : {&b, &a}) {
    std::sort(summary->latencies_us.begin(), summary->latencies_us.end());
    latency_table.AddRow(
        {summary == &b ? "billing" : "analytics", PercentileMs(summary->latencies_us, 0.50),
         PercentileMs(summary->latencies_us, 0.99), PercentileMs(summary->latencies_us, 1.0)});
  }
  latency_table.Print();

  if (was_interrupted) {
    std::printf("\nResult: INTERRUPTED (verification incomplete)\n");
    return kExitInterrupted;
  }
  const bool passed =
      sends_ok && billing_ok && analytics_ok && closes_ok && migration_ok && !timed_out;
  std::printf("\nResult: %s\n",
              passed ? "PASSED (nothing lost, nothing reordered)"
                     : (timed_out ? "FAILED (timed out; see above)" : "FAILED (see above)"));
  return passed ? kExitPassed : kExitVerificationFailed;
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "msgsdk order-events demo: one producer, two consumer groups (billing ordered by order "
      "id, analytics unordered), then a verification that nothing was lost or reordered.\n"
      "The routing table decides where topic 'order-events' lives: MSGSDK_CONFIG and "
      "MSGSDK_ENV as for any msgsdk client; without them, an embedded native cluster."};
  app.add_option("--orders", flags.orders, "Orders to run through created -> paid -> shipped")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--keys", flags.keys, "Distinct order ids (message keys) the orders use")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir,
                 "Data directory of the built-in embedded cluster (only without MSGSDK_CONFIG); "
                 "default: a fresh temporary directory, removed at exit");
  app.add_option("--timeout", flags.timeout_seconds,
                 "Seconds the whole run may take before it is reported as failed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--consumer-threads", flags.consumer_threads,
                 "Handler threads per group (0: the routing table's consumer_threads)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_flag("!--no-migration", flags.migrate,
               "Do not move the topic to a second embedded cluster and back while running "
               "(it does only without MSGSDK_CONFIG and --data-dir)");
  app.add_option("--analytics-filter", flags.analytics_filter,
                 "Tag filter of the analytics group, e.g. \"created || shipped\"")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  return Run(flags);
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing is expected to throw here (msgsdk reports errors as Status); this only turns an
  // unexpected std::exception (out of memory, ...) into a message and an exit code.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitSetupFailed;
  }
}
