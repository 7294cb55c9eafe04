#pragma once

// The Kafka backend, over librdkafka: registered as "kafka" in a BackendRegistry.
// docs/backends/kafka.md describes its properties, the record mapping and its guarantees.

#include <memory>

#include "core/backend.h"
#include "core/cluster_config.h"
#include "msgsdk/status.h"

namespace msgsdk::kafka {

// The factory of "kafka" backends.
std::unique_ptr<core::BackendFactory> MakeKafkaBackendFactory();

// Checks a "kafka" cluster entry completely without connecting: the typed properties, and
// librdkafka's own verdict on every passed-through property (kInvalidArgument with its text
// and the cluster's name). Create() runs the same checks.
Status ValidateKafkaCluster(const core::ClusterConfig& config);

}  // namespace msgsdk::kafka
