#pragma once

// What the benchmarks share: formatting, scratch directories, counting asynchronous
// completions, and latency samples.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
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
  double rate() const { return seconds > 0 ? static_cast<double>(messages) / seconds : 0; }
};


// Counts completions of asynchronous sends and remembers when the last one came. WaitFor
// returns only after the last Done() has stopped touching the counter: a producer's Close()
// does not wait for callbacks still queued on the SDK's callback pool, so the callbacks
// themselves must say when they are finished with the state they reference.
class CompletionCounter {
 public:
  void Done(bool ok, const msgsdk::Status& status) {
    const int64_t now_ns = SteadyClock::now().time_since_epoch().count();
    std::lock_guard lock(mutex_);
    if (ok) {
      ++ok_;
    } else if (failed_++ == 0) {
      first_error_ = status.ToString();
    }
    last_ns_ = std::max(last_ns_, now_ns);
    if (++done_ >= target_) all_done_.notify_all();
  }

  // Waits (bounded) until `submitted` completions arrived.
  bool WaitFor(uint64_t submitted, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    target_ = submitted;
    return all_done_.wait_for(lock, timeout, [&] { return done_ >= submitted; });
  }

  Throughput Result(SteadyClock::time_point start) const {
    std::lock_guard lock(mutex_);
    const SteadyClock::time_point last{SteadyClock::duration(last_ns_)};
    return Throughput{.messages = ok_,
                      .failed = failed_,
                      .seconds = std::chrono::duration<double>(last - start).count(),
                      .first_error = first_error_};
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable all_done_;
  uint64_t ok_ = 0;
  uint64_t failed_ = 0;
  uint64_t done_ = 0;
  uint64_t target_ = UINT64_MAX;
  int64_t last_ns_ = 0;
  std::string first_error_;
};

// The q-quantile (nearest rank) of nanosecond samples sorted ascending, in microseconds.
inline double Quantile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::llround(q * static_cast<double>(sorted.size() - 1)));
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]) / 1000.0;
}

// Latency samples in nanoseconds, filled from SDK threads.
class Samples {
 public:
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

// The machine's load average, printed next to figures measured on a shared machine.
inline std::string LoadAverage() {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) return "unknown";
  char text[64];
  std::snprintf(text, sizeof(text), "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return text;
}

}  // namespace msgsdk::bench
