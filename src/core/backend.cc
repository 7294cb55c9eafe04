#include "core/backend.h"

namespace msgsdk::core {

Result<std::vector<PartitionPosition>> Backend::Positions(const SubscriptionSpec& spec) {
  return UnsupportedError("the " + capabilities().backend +
                          " backend cannot report the positions of group '" + spec.group +
                          "' on topic '" + spec.topic +
                          "' (needed to migrate a topic away from it, and by `msgsdk lag`)");
}

}  // namespace msgsdk::core
