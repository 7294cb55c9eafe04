#include "msgsdk/migration.h"

#include <utility>

#include "api/default_registry.h"
#include "core/migration/migration_controller.h"
#if defined(MSGSDK_SIDECAR_ENABLED)
#include "sidecar/client/routing_clients.h"
#endif

namespace msgsdk {

Result<std::vector<RoutingState>> RoutingServiceReports(const std::string& address) {
#if defined(MSGSDK_SIDECAR_ENABLED)
  return sidecar::ListRoutingClients(address);
#else
  return UnsupportedError("the routing service at " + address +
                          " cannot be asked: this build has no gRPC (MSGSDK_WITH_SIDECAR=OFF)");
#endif
}

struct MigrationController::Impl {
  core::MigrationSteps steps;
};

Result<MigrationController> MigrationController::Open(MigrationControllerOptions options) {
  if (options.routing_file.empty()) {
    return InvalidArgumentError(
        "MigrationControllerOptions.routing_file is empty: name the "
        "routing file the clients watch");
  }
  auto impl = std::make_unique<Impl>(
      Impl{core::MigrationSteps(std::move(options.routing_file), std::move(options.environment),
                                internal::DefaultBackendRegistry())});
  return MigrationController(std::move(impl));
}

MigrationController::MigrationController(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MigrationController::MigrationController(MigrationController&&) noexcept = default;
MigrationController& MigrationController::operator=(MigrationController&&) noexcept = default;
MigrationController::~MigrationController() = default;

Result<MigrationReport> MigrationController::Inspect(std::string_view topic,
                                                     const std::vector<RoutingState>& clients) {
  return impl_->steps.Inspect(std::string(topic), clients);
}

Result<MigrationReport> MigrationController::Advance(std::string_view topic,
                                                     const std::vector<RoutingState>& clients) {
  return impl_->steps.Advance(std::string(topic), clients);
}

Result<MigrationReport> MigrationController::Rollback(std::string_view topic,
                                                      const std::vector<RoutingState>& clients) {
  return impl_->steps.Rollback(std::string(topic), clients);
}

}  // namespace msgsdk
