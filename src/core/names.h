#pragma once

// Which topic and group names are valid, and the names the SDK reserves for itself.

#include <string>
#include <string_view>

#include "msgsdk/result.h"

namespace msgsdk::core {

// Longest topic or group name (Kafka's limit, so every backend can hold every name).
inline constexpr size_t kMaxNameLength = 249;

// Topics starting with this prefix belong to the SDK (dead-letter topics); producers may
// not send to them, subscriptions may read them.
inline constexpr std::string_view kSystemTopicPrefix = "__";

// 1..249 characters of [A-Za-z0-9._-]. `what` is "topic" or "group" for the message.
Status ValidateName(std::string_view what, std::string_view name);

// ValidateName plus: not a system topic.
Status ValidateProducerTopic(std::string_view topic);

}  // namespace msgsdk::core
