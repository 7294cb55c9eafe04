#pragma once

/// @file
/// What a backend can do. A feature a backend lacks is refused with kUnsupported.

#include <string>

namespace msgsdk {

/// The capabilities of the backend serving a topic (Client::Describe).
struct Capabilities {
  /// The backend's registry name: "native", "kafka" or "redis".
  std::string backend;
  /// Messages with `deliver_at` are held until that time.
  bool timer_messages = false;
  /// Transactional (half) messages with commit/rollback and check-back.
  bool transactions = false;
  /// SubscriptionMode::kBroadcast.
  bool broadcast = false;
  /// Tag filters are evaluated next to the storage (otherwise in the client after transfer).
  bool server_side_tag_filter = false;
  /// A group can be reset to a timestamp or to the earliest message.
  bool replay = false;
};

}  // namespace msgsdk
