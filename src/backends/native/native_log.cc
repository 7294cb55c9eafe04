#include "backends/native/native_log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace msgsdk::native {
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
  std::fprintf(stderr, "%s.%03dZ msgsdk native %s: %.*s\n", stamp, static_cast<int>(millis), level,
               static_cast<int>(text.size()), text.data());
}

}  // namespace

void LogWarning(std::string_view text) { Write("WARN", text); }
void LogInfo(std::string_view text) { Write("INFO", text); }

std::string RetentionSkipWarning(const std::string& group, const std::string& topic, int32_t queue,
                                 int64_t from, int64_t to) {
  const int64_t skipped = to - from;
  return "group '" + group + "' skips " + std::to_string(skipped) + " message" +
         (skipped == 1 ? "" : "s") + " of topic '" + topic + "' queue " + std::to_string(queue) +
         " (offsets " + std::to_string(from) + " to " + std::to_string(to - 1) +
         "): retention deleted them before the group read them; it continues at offset " +
         std::to_string(to);
}

}  // namespace msgsdk::native
