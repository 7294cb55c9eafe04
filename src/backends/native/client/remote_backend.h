#pragma once

// The native backend's client side for a msgsdk-broker daemon (a cluster with `endpoints:`):
// producers that batch sends into Produce frames, consumers that join the broker's consumer
// group, heartbeat, long-poll and commit on the broker.

#include "core/backend.h"

namespace msgsdk::native::client {

// `config` has been validated against the native property table and has endpoints.
Result<core::BackendPtr> CreateRemoteBackend(const core::ClusterConfig& config);

}  // namespace msgsdk::native::client
