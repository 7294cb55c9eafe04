#include "core/names.h"

#include <string>

#include "msgsdk/message.h"

namespace msgsdk {

std::string DeadLetterTopic(const std::string& group) {
  return std::string(core::kSystemTopicPrefix) + "dlq." + group;
}

}  // namespace msgsdk

namespace msgsdk::core {

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty()) return InvalidArgumentError(std::string(what) + " name is empty");
  if (name.size() > kMaxNameLength) {
    return InvalidArgumentError(std::string(what) + " name '" + std::string(name.substr(0, 40)) +
                                "...' is " + std::to_string(name.size()) +
                                " characters long (at most " + std::to_string(kMaxNameLength) +
                                ")");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgumentError(std::string(what) + " name '" + std::string(name) +
                                  "' has an invalid character at position " + std::to_string(i) +
                                  " (allowed: letters, digits, '.', '_', '-')");
    }
  }
  if (name == "." || name == "..") {
    return InvalidArgumentError(std::string(what) + " name '" + std::string(name) +
                                "' is reserved");
  }
  return OkStatus();
}

Status ValidateProducerTopic(std::string_view topic) {
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  if (topic.starts_with(kSystemTopicPrefix)) {
    return InvalidArgumentError("topic '" + std::string(topic) + "': names starting with '" +
                                std::string(kSystemTopicPrefix) +
                                "' are reserved for the SDK's own topics (dead letters)");
  }
  return OkStatus();
}

}  // namespace msgsdk::core
