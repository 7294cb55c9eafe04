#pragma once

// What the benchmarks share: formatting, scratch directories, counting asynchronous
// completions, and latency samples.

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "msgsdk/msgsdk.h"

namespace msgsdk::bench {

using SteadyClock = std::chrono::steady_clock;

// ---- Formatting ---------------------------------------------------------------------------

inline std::string WithSeparators(uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

inline std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

// A text table: first column left-aligned, the others right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
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
        if (c > 0) line += "  ";
        line += c < 2 ? cell + pad : pad + cell;
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
  std::vector<std::vector<std::string>> rows_;
};

// A fresh directory, removed with its contents on destruction.
class TempDir {
 public:
  static msgsdk::Result<std::unique_ptr<TempDir>> Create(const std::string& parent) {
    std::error_code error;
    const std::filesystem::path base = parent.empty() ? std::filesystem::temp_directory_path(error)
                                                      : std::filesystem::path(parent);
    if (error) return msgsdk::UnavailableError("no temporary directory: " + error.message());
    std::string pattern = (base / "msgsdk-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return msgsdk::PermissionDeniedError("cannot create a directory like '" + pattern +
                                           "': " + std::system_category().message(errno));
    }
    return std::unique_ptr<TempDir>(new TempDir(std::move(pattern)));
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
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

struct Throughput {
  uint64_t messages = 0;  // acknowledged
  uint64_t failed = 0;
  double seconds = 0;
  std::string first_error;
  // CPU time of the whole process (every thread) while the case ran, when measured.
  double cpu_seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
  double cpu_us_per_message() const {
    return messages > 0 ? cpu_seconds * 1e6 / static_cast<double>(messages) : 0;
  }
};

// Bounds the sends a benchmark has in flight. A semaphore would do, but once the window is
// full its every release wakes the waiting sender: a futex call on the thread that completes
// sends and a context switch on the sender's, per message, which the benchmark would measure
// as the SDK's. Here a sender that finds the window full sleeps until a sixteenth of it is
// free again, so wake-ups come once per thousands of completions. Each sending thread may
// hold one slot beyond the window while it waits. A size of 0 or less bounds nothing.
class SendWindow {
 public:
  explicit SendWindow(int64_t size)
      : size_(size > 0 ? size : INT64_MAX), resume_at_(size_ - std::max<int64_t>(1, size_ / 16)) {}

  void Acquire() {
    if (in_flight_.fetch_add(1) < size_) return;
    std::unique_lock lock(mutex_);
    waiters_.fetch_add(1);
    // Sequentially consistent, as in Release: either this sees the window drained to
    // resume_at_, or the release that drained it sees this waiter.
    drained_.wait(lock, [this] { return in_flight_.load() <= resume_at_ + waiters_.load(); });
    waiters_.fetch_sub(1);
  }

  void Release() {
    const int64_t left = in_flight_.fetch_sub(1) - 1;
    if (waiters_.load() > 0 && left <= resume_at_ + waiters_.load()) {
      std::lock_guard lock(mutex_);
      drained_.notify_all();
    }
  }

 private:
  const int64_t size_;
  const int64_t resume_at_;  // in flight at most, besides the waiters' own, to wake them
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> waiters_{0};
  std::mutex mutex_;
  std::condition_variable drained_;
};

// Counts completions of asynchronous sends and remembers when the last one came. A completion
// costs two atomic increments: a clock read and a lock each would be measured too, on the
// thread that delivers completions, which may be the one that limits the rate. Only the
// completion that reaches the count WaitFor names reads the clock. WaitFor returns only after
// the last Done() has stopped touching the counter (its last step is the `exited_`
// increment): a producer's Close() does not wait for callbacks still queued on the SDK's
// callback pool, so the callbacks themselves must say when they are finished with the state
// they reference.
class CompletionCounter {
 public:
  void Done(bool ok, const msgsdk::Status& status) {
    if (!ok) {
      std::lock_guard lock(mutex_);
      if (failed_++ == 0) first_error_ = status.ToString();
    }
    // Sequentially consistent, as in WaitFor: either this completion sees the target, or
    // WaitFor sees this completion.
    if (done_.fetch_add(1) + 1 == target_.load()) RecordLast(SteadyClock::now());
    exited_.fetch_add(1);
  }

  // Waits (bounded) until `submitted` completions arrived.
  bool WaitFor(uint64_t submitted, std::chrono::seconds timeout) {
    target_.store(submitted);
    // Every completion came before the target was known: none of them read the clock.
    if (done_.load() >= submitted) RecordLast(SteadyClock::now());
    const auto deadline = SteadyClock::now() + timeout;
    // Polled rather than notified: a notification would have to touch the counter after the
    // exit count that allows it to be destroyed. The poll decides only when this returns,
    // not the time measured.
    while (exited_.load() < submitted) {
      if (SteadyClock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
  }

  Throughput Result(SteadyClock::time_point start) const {
    std::lock_guard lock(mutex_);
    const SteadyClock::time_point last{SteadyClock::duration(last_ns_.load())};
    const uint64_t done = done_.load();
    return Throughput{.messages = done - failed_,
                      .failed = failed_,
                      .seconds = std::chrono::duration<double>(last - start).count(),
                      .first_error = first_error_};
  }

 private:
  void RecordLast(SteadyClock::time_point when) {
    const int64_t ns = when.time_since_epoch().count();
    int64_t last = last_ns_.load();
    while (last < ns && !last_ns_.compare_exchange_weak(last, ns)) {
    }
  }

  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> exited_{0};
  std::atomic<uint64_t> target_{UINT64_MAX};
  std::atomic<int64_t> last_ns_{0};
  mutable std::mutex mutex_;  // guards the failures
  uint64_t failed_ = 0;
  std::string first_error_;
};

// Stops a sending loop at the message cap, the time cap or when `stop` is set (Ctrl-C).
class Budget {
 public:
  Budget(int64_t max_messages, double seconds, const std::atomic<bool>& stop)
      : max_messages_(max_messages),
        end_(SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                      std::chrono::duration<double>(seconds))),
        stop_(stop) {}

  // Claims `n` messages; returns how many may be sent (0: stop).
  int64_t Claim(int64_t n) {
    if (stop_.load(std::memory_order_relaxed) || SteadyClock::now() >= end_) return 0;
    const int64_t before = claimed_.fetch_add(n, std::memory_order_relaxed);
    return std::clamp<int64_t>(max_messages_ - before, 0, n);
  }

 private:
  const int64_t max_messages_;
  const SteadyClock::time_point end_;
  const std::atomic<bool>& stop_;
  std::atomic<int64_t> claimed_{0};
};

// Runs `body(thread_index)` on `threads` threads (the calling one included) and joins them.
template <typename Fn>
void OnThreads(int threads, Fn body) {
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(body, t);
  body(0);
  for (auto& worker : workers) worker.join();
}

// Counts completions (send callbacks, handler calls) that a thread waits for, and remembers
// when the last one came. Counting is lock-free, since handlers and callbacks run on several
// threads at once and the harness must cost next to nothing, or it would be charged to what
// is measured; only a failure (its first message is kept) or reaching the awaited count takes
// the lock. Like CompletionCounter, WaitFor returns once the count is reached, but the last
// Add may still be touching the counter: keep it alive until the SDK objects that call it are
// closed.
class Progress {
 public:
  void Add() {
    last_.store(SteadyClock::now().time_since_epoch().count(), std::memory_order_relaxed);
    // Sequentially consistent, with WaitFor's: either this sees the new target or WaitFor
    // sees this count.
    if (done_.fetch_add(1) + 1 >= target_.load()) {
      std::lock_guard lock(mutex_);
      reached_.notify_all();
    }
  }
  void Add(bool ok) {
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    Add();
  }
  // Counts a failure and keeps the first one's message.
  void AddFailure(const std::string& error) {
    {
      std::lock_guard lock(mutex_);
      if (first_error_.empty()) first_error_ = error;
    }
    Add(false);
  }

  // Waits (bounded) until `target` completions were counted.
  bool WaitFor(int64_t target, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    target_.store(target);
    return reached_.wait_for(lock, timeout, [&] { return done_.load() >= target; });
  }

  int64_t done() const { return done_.load(std::memory_order_acquire); }
  int64_t failed() const { return failed_.load(std::memory_order_acquire); }
  std::string first_error() const {
    std::lock_guard lock(mutex_);
    return first_error_;
  }
  // When the latest completion was counted. Several threads count at once: the latest store
  // may not be the latest time by a few nanoseconds, far below what the figures resolve.
  SteadyClock::time_point last() const {
    return SteadyClock::time_point(SteadyClock::duration(last_.load(std::memory_order_acquire)));
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable reached_;
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<int64_t> target_{INT64_MAX};
  std::atomic<SteadyClock::rep> last_{0};
  std::string first_error_;
};

// The q-quantile (nearest rank) of nanosecond samples sorted ascending, in microseconds.
inline double Quantile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::llround(q * static_cast<double>(sorted.size() - 1)));
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1000.0;
}

// What an fdatasync costs on the file system of `dir`: `count` rounds of appending 4 KiB to a
// scratch file there and syncing it, as a group commit does. Group commit acknowledges a send
// only after the fdatasync that covers it, so no group-commit latency can be lower than this;
// it is printed next to those figures (a shared disk's sync time moves from day to day).
struct SyncLatency {
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  std::string error;
};

inline SyncLatency MeasureFdatasync(const std::string& dir, int count = 1000) {
  const std::string path = dir + "/fdatasync-probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {.error = "cannot create '" + path + "': " + std::strerror(errno)};
  const std::string block(4096, 'x');
  std::vector<int64_t> samples;
  samples.reserve(static_cast<size_t>(count));
  std::string error;
  for (int i = 0; i < count && error.empty(); ++i) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      error = "cannot write '" + path + "': " + std::strerror(errno);
      break;
    }
    const auto start = SteadyClock::now();
    if (::fdatasync(fd) != 0) error = "cannot fdatasync '" + path + "': " + std::strerror(errno);
    samples.push_back((SteadyClock::now() - start).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (!error.empty()) return {.error = error};
  std::sort(samples.begin(), samples.end());
  return {.p50_us = Quantile(samples, 0.50),
          .p99_us = Quantile(samples, 0.99),
          .p999_us = Quantile(samples, 0.999)};
}

// Makes room for `count` values and touches it, so that recording a latency never grows the
// vector or faults its memory in: a reallocation of a few hundred KiB (on a VM whose host takes
// freed memory back, every page of it a fault) held a handler thread for milliseconds, and the
// threads queued behind it on that CPU made messages in flight look that much slower.
inline void ReserveTouched(std::vector<int64_t>& values, size_t count) {
  if (values.capacity() >= count) return;
  const size_t kept = values.size();
  values.resize(count);
  values.resize(kept);
}

// The schedule of a latency case at a fixed rate: message i is due at start + i * period; the
// first `warmup` messages are sent but not measured.
struct LatencySchedule {
  LatencySchedule(double rate, double warmup_seconds, double measured_seconds)
      : period(std::chrono::duration_cast<SteadyClock::duration>(
            std::chrono::duration<double>(1.0 / rate))),
        warmup(static_cast<int64_t>(warmup_seconds * rate)),
        total(warmup + static_cast<int64_t>(measured_seconds * rate)) {}
  const SteadyClock::duration period;
  const int64_t warmup;
  const int64_t total;
};

// The latency of the simplest group commit on the file system of `dir` at a fixed rate: the
// floor under any group-commit system's latency on that disk, at that rate and message size
// (a separate syncing thread, with or without starting the write-back early, did no better on
// this VM). Message i
// arrives at i * period (late ones at once, as the latency cases send); one thread takes every
// message that arrived, writes them with one write after the last ones and fdatasyncs, and each
// message's latency is from its arrival to the end of that sync. The file is filled with zeros
// and synced first, and the writes wrap around within it, so a sync carries no metadata: as in
// the broker's log, whose zero fill runs ahead of the appends. No network, no other thread in
// the path: the rest of a group-commit latency is the system's own.
struct GroupCommitFloor {
  std::vector<int64_t> sorted_ns;  // the measured messages' latencies, sorted
  double arrival_rate = 0;         // messages per second, as achieved by the schedule
  std::string error;
};

inline GroupCommitFloor MeasureGroupCommitFloor(const std::string& dir,
                                                const LatencySchedule& schedule, size_t size) {
  constexpr size_t kFileBytes = size_t{64} << 20;
  const std::string path = dir + "/group-commit-floor";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return {.error = "cannot create '" + path + "': " + std::strerror(errno)};
  std::string error;
  const auto fail = [&](const char* what) {
    if (error.empty())
      error = std::string("cannot ") + what + " '" + path + "': " + std::strerror(errno);
  };
  {
    const std::string zeros(size_t{1} << 20, '\0');
    for (size_t offset = 0; offset < kFileBytes && error.empty(); offset += zeros.size()) {
      if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(offset)) !=
          static_cast<ssize_t>(zeros.size())) {
        fail("write");
      }
    }
    if (error.empty() && ::fdatasync(fd) != 0) fail("fdatasync");
  }
  if (!error.empty()) {
    ::close(fd);
    ::unlink(path.c_str());
    return {.error = error};
  }
  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<int64_t> pending;  // arrival times (ns) not taken by the writer yet
  bool sent_all = false;
  std::vector<int64_t> latencies;
  ReserveTouched(latencies, static_cast<size_t>(schedule.total));
  std::thread writer([&] {
    const size_t capacity = kFileBytes / size * size;
    std::string records;
    std::vector<int64_t> batch;
    size_t offset = 0;
    int64_t taken = 0;
    std::unique_lock lock(mutex);
    while (true) {
      arrived.wait(lock, [&] { return !pending.empty() || sent_all; });
      if (pending.empty()) return;
      batch.swap(pending);
      lock.unlock();
      records.assign(batch.size() * size, 'x');
      for (size_t written = 0; written < records.size() && error.empty();) {
        if (offset == capacity) offset = 0;
        const size_t chunk = std::min(records.size() - written, capacity - offset);
        if (::pwrite(fd, records.data() + written, chunk, static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(chunk)) {
          fail("write");
        }
        written += chunk;
        offset += chunk;
      }
      if (::fdatasync(fd) != 0) fail("fdatasync");
      const int64_t durable = SteadyClock::now().time_since_epoch().count();
      for (const int64_t arrival : batch) {
        if (taken++ >= schedule.warmup) latencies.push_back(durable - arrival);
      }
      batch.clear();
      lock.lock();
    }
  });
  const auto start = SteadyClock::now();
  for (int64_t i = 0; i < schedule.total; ++i) {
    std::this_thread::sleep_until(start + i * schedule.period);
    std::lock_guard lock(mutex);
    pending.push_back(SteadyClock::now().time_since_epoch().count());
    arrived.notify_one();
  }
  const double sending_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  {
    std::lock_guard lock(mutex);
    sent_all = true;
  }
  arrived.notify_one();
  writer.join();
  ::close(fd);
  ::unlink(path.c_str());
  if (!error.empty()) return {.error = error};
  std::sort(latencies.begin(), latencies.end());
  return {.sorted_ns = std::move(latencies),
          .arrival_rate =
              sending_seconds > 0 ? static_cast<double>(schedule.total) / sending_seconds : 0};
}

// Latency samples in nanoseconds, filled from SDK threads.
class Samples {
 public:
  // See ReserveTouched: called with the number of values a measurement expects.
  void Reserve(size_t count) {
    std::lock_guard lock(mutex_);
    ReserveTouched(values_, count);
  }
  void Add(int64_t ns) {
    std::lock_guard lock(mutex_);
    values_.push_back(ns);
    changed_.notify_all();
  }
  bool WaitForCount(size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return values_.size() >= n; });
  }
  std::vector<int64_t> Sorted() {
    std::lock_guard lock(mutex_);
    std::vector<int64_t> sorted = values_;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int64_t> values_;
};

// The body of a latency message: a flag byte (1: measured, 0: warm-up), the steady-clock
// time of the send in nanoseconds, then padding up to the body size.
inline std::string LatencyBody(size_t size, bool measured, int64_t sent_ns) {
  std::string body(std::max<size_t>(size, 1 + sizeof(sent_ns)), 'x');
  body[0] = measured ? '\1' : '\0';
  std::memcpy(body.data() + 1, &sent_ns, sizeof(sent_ns));
  return body;
}

// A handler that records, for each measured LatencyBody message, the time from its send to now.
inline MessageHandler RecordLatency(Samples& samples) {
  return [&samples](const Message& m) {
    const int64_t now = SteadyClock::now().time_since_epoch().count();
    if (m.body.size() >= 1 + sizeof(int64_t) && m.body[0] == '\1') {
      int64_t sent_ns = 0;
      std::memcpy(&sent_ns, m.body.data() + 1, sizeof(sent_ns));
      samples.Add(now - sent_ns);
    }
    return ConsumeResult::kSuccess;
  };
}

inline double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The median of repeated runs (the upper one of an even count).
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// ---- CPU time ------------------------------------------------------------------------------

inline double TimevalSeconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// User + system CPU time of this process (every thread), in seconds.
inline double SelfCpuSeconds() {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  return TimevalSeconds(self.ru_utime) + TimevalSeconds(self.ru_stime);
}

// Voluntary and involuntary context switches of this process so far.
inline int64_t SelfContextSwitches() {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  return self.ru_nvcsw + self.ru_nivcsw;
}

// utime + stime of another process from /proc/<pid>/stat, in seconds (0 if unreadable).
inline double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // The command name is in parentheses and may hold spaces: count fields after the last ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size()) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  uint64_t ticks = 0;
  // Fields 3.. follow; utime and stime are fields 14 and 15.
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n >= 14) ticks += std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The machine's load average, printed next to figures measured on a shared machine.
inline std::string LoadAverage() {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) return "unknown";
  char text[64];
  std::snprintf(text, sizeof(text), "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return text;
}

}  // namespace msgsdk::bench
