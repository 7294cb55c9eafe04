#pragma once

// A subscription as its owner holds it: the SubscriptionCore that serves it now. When the
// topic's route or the subscription's settings change, the engine starts a new core on the
// new target and then closes the old one, which hands back what it had not acknowledged and
// commits what it had: the owner's handle stays the same throughout.

#include <memory>
#include <mutex>
#include <string>

#include "core/subscription_core.h"
#include "core/tag_filter.h"
#include "msgsdk/subscription.h"

namespace msgsdk::core {

class RoutedSubscription {
 public:
  RoutedSubscription(SubscriptionSpec spec, AsyncHandler handler, TagFilter filter,
                     SubscribeOptions options);
  ~RoutedSubscription();  // Close()

  Status Close();

  const std::string& topic() const { return spec_.topic; }
  const std::string& group() const { return spec_.group; }
  // The cluster serving it now.
  std::string cluster() const;
  // Close was called (it may still be closing: a Close call waits for that).
  bool closed() const;

 private:
  friend class Engine;

  // What the engine needs to make a core like the current one.
  const SubscriptionSpec& spec() const { return spec_; }
  const AsyncHandler& handler() const { return handler_; }
  const TagFilter& filter() const { return filter_; }
  const SubscribeOptions& options() const { return options_; }
  // The backend and settings of the current core (null before the first one).
  const Backend* backend() const;
  SubscriptionSettings settings() const;

  // Makes `core` (started) the one serving this subscription and closes the one it replaces.
  // On a closed subscription `core` is closed instead.
  Status Install(std::shared_ptr<SubscriptionCore> core, SubscriptionSettings settings);

  const SubscriptionSpec spec_;
  const AsyncHandler handler_;
  const TagFilter filter_;
  const SubscribeOptions options_;

  // Serializes Install and Close (a replaced core closes under it, so a Close that comes
  // meanwhile waits for it and then closes the new one); a Close from the subscription's own
  // handler does not take it (see Close).
  std::mutex install_mutex_;
  mutable std::mutex mutex_;
  std::shared_ptr<SubscriptionCore> core_;
  SubscriptionSettings settings_;
  bool closed_ = false;
};

}  // namespace msgsdk::core
