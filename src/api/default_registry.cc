#include "api/default_registry.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "backends/native/native_backend.h"
#if defined(MSGSDK_KAFKA_ENABLED)
#include "backends/kafka/kafka_backend.h"
#endif
#if defined(MSGSDK_REDIS_ENABLED)
#include "backends/redis/redis_backend.h"
#endif

namespace msgsdk::internal {
namespace {

// A backend compiled in must register: a failure is a defect of this build (an invalid
// property table), not something a user can act on, so it stops the process loudly instead
// of leaving the backend silently missing.
void MustRegister(core::BackendRegistry& registry, std::unique_ptr<core::BackendFactory> factory) {
  const std::string name = factory ? factory->name() : "(null)";
  Status status = registry.Register(std::move(factory));
  if (!status.ok()) {
    std::fprintf(stderr, "msgsdk: backend '%s' failed to register: %s\n", name.c_str(),
                 status.ToString().c_str());
    std::abort();
  }
}

}  // namespace

std::shared_ptr<const core::BackendRegistry> DefaultBackendRegistry() {
  static const std::shared_ptr<const core::BackendRegistry> registry = [] {
    auto built = std::make_shared<core::BackendRegistry>();
    MustRegister(*built, native::MakeNativeBackendFactory());
#if defined(MSGSDK_KAFKA_ENABLED)
    MustRegister(*built, kafka::MakeKafkaBackendFactory());
#endif
#if defined(MSGSDK_REDIS_ENABLED)
    MustRegister(*built, redis::MakeRedisBackendFactory());
#endif
    return std::shared_ptr<const core::BackendRegistry>(std::move(built));
  }();
  return registry;
}

}  // namespace msgsdk::internal
