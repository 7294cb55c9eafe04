#pragma once

// The Redis Streams backend over hiredis, registered as "redis" (docs/backends/redis.md).

#include <memory>

#include "core/backend.h"

namespace msgsdk::redis {

// The factory of the "redis" backend: its property table and Create().
std::unique_ptr<core::BackendFactory> MakeRedisBackendFactory();

}  // namespace msgsdk::redis
