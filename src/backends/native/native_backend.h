#pragma once

// The native backend: msgsdk's own broker, embedded in the process (a data directory, no
// server). Registered as "native".

#include <memory>

#include "core/backend.h"

namespace msgsdk::native {

std::unique_ptr<core::BackendFactory> MakeNativeBackendFactory();

}  // namespace msgsdk::native
