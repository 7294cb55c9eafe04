#pragma once

#include <memory>

#include "core/backend_registry.h"

namespace msgsdk::internal {

// A registry holding every backend compiled into this build (native always; kafka and redis
// when built). Made once and shared.
std::shared_ptr<const core::BackendRegistry> DefaultBackendRegistry();

}  // namespace msgsdk::internal
