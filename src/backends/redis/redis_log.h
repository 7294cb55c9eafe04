#pragma once

// Warnings of the redis backend go to stderr, one line each, and repeated failures are
// rate limited so that a server outage does not flood the log.

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

namespace msgsdk::redis {

// "2024-05-01T10:00:00.123Z msgsdk redis WARN: <text>" on stderr.
void LogWarning(std::string_view text);
void LogInfo(std::string_view text);

// Logs the first failure of a streak, then at most one line per interval (with the count of
// suppressed ones), and one line when the streak ends. Thread-safe.
class FailureLog {
 public:
  explicit FailureLog(std::chrono::milliseconds interval = std::chrono::seconds(10))
      : interval_(interval) {}

  void Failure(std::string_view text);
  // Ends a streak; logs "<what> recovered" if failures were logged.
  void Success(std::string_view what);

 private:
  std::mutex mu_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_logged_{};
  int64_t suppressed_ = 0;
  bool failing_ = false;
};

}  // namespace msgsdk::redis
