#include <cstdlib>
#include <string>
#include <utility>

#include "api/default_registry.h"
#include "api/transport.h"
#include "core/client_options.h"
#include "core/routing/client_table.h"
#if defined(MSGSDK_SIDECAR_ENABLED)
#include "sidecar/client/routing_subscriber.h"
#include "sidecar/client/sidecar_transport.h"
#endif

namespace msgsdk::internal {

namespace {

// `transport.sidecar` of the routing table `options` name, if any. Read once, here: the
// transport of a running client does not change with the file.
Result<std::string> SidecarOfRoutingTable(const ClientOptions& options) {
  const core::RoutingTableOrigin origin = core::FindRoutingTable(options);
  if (origin.kind == core::RoutingTableOrigin::Kind::kBuiltInDefault) return std::string();
  MSGSDK_ASSIGN_OR_RETURN(auto table,
                          core::LoadRoutingTable(origin, options, *DefaultBackendRegistry()));
  return table->sidecar();
}

// An in-process client whose routing table comes from the routing service `options` name.
Result<std::shared_ptr<ClientTransport>> ConnectFollowingRoutingService(
    const ClientOptions& options) {
#if defined(MSGSDK_SIDECAR_ENABLED)
  MSGSDK_ASSIGN_OR_RETURN(auto engine,
                          sidecar::CreateEngineFromRoutingService(options, DefaultBackendRegistry(),
                                                                  sidecar::kTransportInProcess));
  return ConnectInProcess(std::move(engine));
#else
  return UnsupportedError(
      "ClientOptions.routing_service or MSGSDK_ROUTING_SERVICE names the "
      "routing service at " +
      core::RoutingServiceOf(options) +
      ", but this build has no gRPC (built with MSGSDK_WITH_SIDECAR=OFF)");
#endif
}

}  // namespace

Result<std::shared_ptr<ClientTransport>> Connect(ClientOptions options) {
  std::string sidecar = options.sidecar;
  if (sidecar.empty()) {
    const char* from_environment = std::getenv("MSGSDK_SIDECAR");
    if (from_environment != nullptr) sidecar = from_environment;
  }
  if (sidecar.empty()) {
    // A routing service decides the table, so the file's transport section is not consulted.
    if (!core::RoutingServiceOf(options).empty()) return ConnectFollowingRoutingService(options);
    MSGSDK_ASSIGN_OR_RETURN(sidecar, SidecarOfRoutingTable(options));
    if (sidecar.empty()) return ConnectInProcess(std::move(options));
    // The file sent this client to the sidecar, whose own table decides the rest.
    options.config_yaml.clear();
    options.config_path.clear();
  }
#if defined(MSGSDK_SIDECAR_ENABLED)
  return sidecar::ConnectSidecar(sidecar, options);
#else
  return UnsupportedError("ClientOptions.sidecar or MSGSDK_SIDECAR names msgsdk-sidecar at " +
                          sidecar +
                          ", but this build has no sidecar transport (built with "
                          "MSGSDK_WITH_SIDECAR=OFF)");
#endif
}

}  // namespace msgsdk::internal
