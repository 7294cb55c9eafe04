#include "core/log_line.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace msgsdk::core {

void WriteLogLine(std::string_view component, std::string_view level, std::string_view text) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line keeps concurrent lines whole.
  std::fprintf(stderr, "%s.%03dZ msgsdk %.*s %.*s: %.*s\n", stamp, static_cast<int>(millis),
               static_cast<int>(component.size()), component.data(), static_cast<int>(level.size()),
               level.data(), static_cast<int>(text.size()), text.data());
}

}  // namespace msgsdk::core
