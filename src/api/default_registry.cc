#include "api/default_registry.h"

#include "backends/native/native_backend.h"
#if defined(MSGSDK_KAFKA_ENABLED)
#include "backends/kafka/kafka_backend.h"
#endif
#if defined(MSGSDK_REDIS_ENABLED)
#include "backends/redis/redis_backend.h"
#endif

namespace msgsdk::internal {

std::shared_ptr<const core::BackendRegistry> DefaultBackendRegistry() {
  static const std::shared_ptr<const core::BackendRegistry> registry = [] {
    auto built = std::make_shared<core::BackendRegistry>();
    built->Register(native::MakeNativeBackendFactory()).IgnoreError();
#if defined(MSGSDK_KAFKA_ENABLED)
    built->Register(kafka::MakeKafkaBackendFactory()).IgnoreError();
#endif
#if defined(MSGSDK_REDIS_ENABLED)
    built->Register(redis::MakeRedisBackendFactory()).IgnoreError();
#endif
    return std::shared_ptr<const core::BackendRegistry>(std::move(built));
  }();
  return registry;
}

}  // namespace msgsdk::internal
