#include "backends/redis/redis_log.h"

#include "core/log_line.h"

namespace msgsdk::redis {

void LogWarning(std::string_view text) { core::WriteLogLine("redis", "WARN", text); }
void LogInfo(std::string_view text) { core::WriteLogLine("redis", "INFO", text); }

void FailureLog::Failure(std::string_view text) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!failing_ || now - last_logged_ >= interval_) {
    std::string line(text);
    if (suppressed_ > 0) {
      line += " (" + std::to_string(suppressed_) + " similar failures not logged)";
    }
    LogWarning(line);
    last_logged_ = now;
    suppressed_ = 0;
    failing_ = true;
    return;
  }
  ++suppressed_;
}

void FailureLog::Success(std::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failing_) return;
  failing_ = false;
  suppressed_ = 0;
  LogInfo(std::string(what) + " recovered");
}

}  // namespace msgsdk::redis
