#include <cstdlib>
#include <string>
#include <utility>

#include "api/transport.h"
#if defined(MSGSDK_SIDECAR_ENABLED)
#include "sidecar/client/sidecar_transport.h"
#endif

namespace msgsdk::internal {

Result<std::shared_ptr<ClientTransport>> Connect(ClientOptions options) {
  std::string sidecar = options.sidecar;
  if (sidecar.empty()) {
    const char* from_environment = std::getenv("MSGSDK_SIDECAR");
    if (from_environment != nullptr) sidecar = from_environment;
  }
  if (sidecar.empty()) return ConnectInProcess(std::move(options));
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
