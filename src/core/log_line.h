#pragma once

// The backends' operator messages on stderr, one line each:
// "2024-05-01T10:00:00.123Z msgsdk <component> <level>: <text>".

#include <string_view>

namespace msgsdk::core {

void WriteLogLine(std::string_view component, std::string_view level, std::string_view text);

}  // namespace msgsdk::core
