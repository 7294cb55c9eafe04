#pragma once

/// @file
/// Subscription: a running consumer of one topic in one group.

#include <memory>
#include <string>

#include "msgsdk/status.h"

namespace msgsdk {

namespace internal {
class SubscriptionTransport;
}

/// A subscription, created started by Client::Subscribe: its handler is being called
/// until Close(). Thread-safety: all methods may be called from any thread, its own handler
/// included (see Close).
/// Move-only handle; destroying it closes it.
class Subscription {
 public:
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();

  const std::string& topic() const;
  const std::string& group() const;

  /// Stops fetching, lets running handlers finish (bounded), commits what was acknowledged
  /// and returns the rest to the cluster for redelivery. Idempotent: a later call waits for a
  /// close under way. Called from a handler (this subscription's, or any other's, also one
  /// closing the client) or a SendAsync callback, it cannot wait for the handlers: it returns
  /// OK at once, no handler starts afterwards, and the close goes on once the running ones
  /// have returned, counting their results.
  Status Close();

 private:
  friend class Client;
  explicit Subscription(std::shared_ptr<internal::SubscriptionTransport> transport);
  std::shared_ptr<internal::SubscriptionTransport> transport_;
};

}  // namespace msgsdk
