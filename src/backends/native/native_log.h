#pragma once

// What the native backend's client side and embedded broker tell the operator goes to stderr,
// one line each: "2024-05-01T10:00:00.123Z msgsdk native WARN: <text>".

#include <cstdint>
#include <string>
#include <string_view>

namespace msgsdk::native {

void LogWarning(std::string_view text);
void LogInfo(std::string_view text);

// The warning of a consumer whose position `from` lies before its queue's start `to`:
// retention deleted messages [from, to) before the group read them, and it continues at `to`.
std::string RetentionSkipWarning(const std::string& group, const std::string& topic, int32_t queue,
                                 int64_t from, int64_t to);

}  // namespace msgsdk::native
