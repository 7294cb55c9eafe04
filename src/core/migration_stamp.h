#pragma once

// The stamps a migrating topic's copies carry (docs/migration.md). While a topic moves between
// clusters, every message is written twice: a primary copy to the cluster whose ack completes
// the send, and a shadow copy to the other. Both carry the role and the generation of the
// phase they were written in; subscriptions hand only primary (or unstamped) copies to
// handlers, so a message is handled once whichever cluster a group reads it from.

#include <string>
#include <string_view>

#include "msgsdk/message.h"

namespace msgsdk::core {

inline constexpr char kMigrationRole[] = "msgsdk.migration.role";
inline constexpr char kMigrationGeneration[] = "msgsdk.migration.generation";
inline constexpr char kRolePrimary[] = "primary";
inline constexpr char kRoleShadow[] = "shadow";

inline void StampCopy(Message& message, const char* role, const std::string& generation) {
  message.properties[kMigrationRole] = role;
  message.properties[kMigrationGeneration] = generation;
}

// True for a shadow copy (to be skipped). Removes the stamps of any other copy, so handlers see
// the message as it was sent.
inline bool IsShadowCopy(Message& message) {
  if (message.properties.empty()) return false;
  auto role = message.properties.find(kMigrationRole);
  if (role == message.properties.end()) return false;
  if (role->second == kRoleShadow) return true;
  message.properties.erase(role);
  message.properties.erase(kMigrationGeneration);
  return false;
}

}  // namespace msgsdk::core
