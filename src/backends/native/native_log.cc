#include "backends/native/native_log.h"

#include "core/log_line.h"

namespace msgsdk::native {

void LogWarning(std::string_view text) { core::WriteLogLine("native", "WARN", text); }
void LogInfo(std::string_view text) { core::WriteLogLine("native", "INFO", text); }

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
