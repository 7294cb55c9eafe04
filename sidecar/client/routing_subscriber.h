#pragma once

// Routing from a push service (msgsdk.v1.RoutingDiscovery, sidecar/proto/msgsdk/v1/routing.proto):
// a client whose ClientOptions::routing_service or MSGSDK_ROUTING_SERVICE names one takes its
// routing table from it instead of a file. Every snapshot the service pushes is parsed with the
// client's own backend registry, applied with Engine::Apply and answered: an ACK, or a NACK
// with the Status that refused it. The last snapshot applied is kept in an on-disk cache, which
// a client starts from when the service cannot be reached.
//
// This lives beside the sidecar transport because it speaks gRPC; the core stays free of it
// and sees only an Engine::Apply caller (core::RoutingSource).

#include <chrono>
#include <memory>
#include <string>

#include "core/backend_registry.h"
#include "core/engine.h"
#include "msgsdk/options.h"
#include "msgsdk/result.h"

namespace msgsdk::sidecar {

// How long creating a client waits for the service's first snapshot. When the service cannot
// be reached and a cached snapshot exists, the client starts from the cache sooner.
inline constexpr std::chrono::milliseconds kFirstSnapshotTimeout{5000};

// What a client tells the service it is (RoutingRequest.node.transport).
inline constexpr const char* kTransportInProcess = "in_process";
inline constexpr const char* kTransportSidecar = "sidecar";

// An engine that follows the routing service core::RoutingServiceOf(options) names (which must not
// be empty): it starts on the service's first snapshot, or on the cached one when the service
// cannot be reached, and applies every later snapshot while it runs (reconnecting with backoff
// when the stream breaks). kUnavailable naming the service and the cache path when there is
// neither; kInvalidArgument when `options` also name a routing table (config_path, config_yaml).
// `transport` is kTransportInProcess or kTransportSidecar.
Result<std::shared_ptr<core::Engine>> CreateEngineFromRoutingService(
    const ClientOptions& options, std::shared_ptr<const core::BackendRegistry> registry,
    const std::string& transport);

}  // namespace msgsdk::sidecar
