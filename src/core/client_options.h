#pragma once

// How a ClientOptions field resolves when it is empty: its environment variable, then its
// default. One place, so that the in-process client, the routing service's subscribers and
// msgsdk-sidecar read the same settings the same way.

#include <string>

#include "msgsdk/options.h"

namespace msgsdk::core {

// The environment asked for: ClientOptions::environment, else MSGSDK_ENV; empty lets the
// routing table choose (RoutingTable::ChooseEnvironment).
std::string RequestedEnvironment(const ClientOptions& options);

// The routing file: ClientOptions::config_path, else MSGSDK_CONFIG. Empty: none.
std::string ConfigPathOf(const ClientOptions& options);

// ClientOptions::client_id, else "<hostname>-<pid>".
std::string ClientIdOf(const ClientOptions& options);

// The data directory of the built-in default cluster: ClientOptions::data_dir, else
// MSGSDK_DATA_DIR, else "./msgsdk-data".
std::string DataDirOf(const ClientOptions& options);

// The routing push service to follow: ClientOptions::routing_service, else
// MSGSDK_ROUTING_SERVICE. Empty: none.
std::string RoutingServiceOf(const ClientOptions& options);

// The routing service's snapshot cache file: "snapshot.yaml" in ClientOptions::routing_cache_dir,
// else in MSGSDK_ROUTING_CACHE, else in "<DataDirOf(options)>/routing-cache".
std::string RoutingCachePathOf(const ClientOptions& options);

}  // namespace msgsdk::core
