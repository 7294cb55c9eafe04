#pragma once

// The one place where librdkafka error codes become msgsdk Status codes.

#include <string_view>

#include <librdkafka/rdkafkacpp.h>

#include "msgsdk/status.h"

namespace msgsdk::kafka {

// Maps `code` to a Status whose message is `context` followed by librdkafka's own text and
// the code's name ("topic 'orders' on cluster 'main': Broker: Unknown topic or partition
// (UNKNOWN_TOPIC_OR_PART)"). NO_ERROR gives OK.
Status KafkaStatus(RdKafka::ErrorCode code, std::string_view context);

// Same, with `detail` (librdkafka's message for this occurrence, often more precise than the
// generic text of the code) used instead of the generic text when not empty.
Status KafkaStatus(RdKafka::ErrorCode code, std::string_view context, std::string_view detail);

}  // namespace msgsdk::kafka
