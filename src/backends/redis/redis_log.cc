#include "backends/redis/redis_log.h"

#include <cstdio>
#include <ctime>

namespace msgsdk::redis {
namespace {

void Write(const char* level, std::string_view text) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line keeps concurrent lines whole.
  std::fprintf(stderr, "%s.%03dZ msgsdk redis %s: %.*s\n", stamp, static_cast<int>(millis), level,
               static_cast<int>(text.size()), text.data());
}

}  // namespace

void LogWarning(std::string_view text) { Write("WARN", text); }
void LogInfo(std::string_view text) { Write("INFO", text); }

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
