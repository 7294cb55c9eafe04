#include "core/routed_subscription.h"

#include <utility>

namespace msgsdk::core {

RoutedSubscription::RoutedSubscription(SubscriptionSpec spec, AsyncHandler handler,
                                       TagFilter filter, SubscribeOptions options)
    : spec_(std::move(spec)),
      handler_(std::move(handler)),
      filter_(std::move(filter)),
      options_(std::move(options)) {}

RoutedSubscription::~RoutedSubscription() { Close().IgnoreError(); }

std::string RoutedSubscription::cluster() const {
  std::lock_guard lock(mutex_);
  return core_ ? core_->cluster() : std::string();
}

bool RoutedSubscription::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

const Backend* RoutedSubscription::backend() const {
  std::lock_guard lock(mutex_);
  return core_ ? core_->backend() : nullptr;
}

SubscriptionSettings RoutedSubscription::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

Status RoutedSubscription::Install(std::shared_ptr<SubscriptionCore> core,
                                   SubscriptionSettings settings) {
  std::lock_guard install(install_mutex_);
  std::shared_ptr<SubscriptionCore> old;
  bool installed = false;
  {
    std::lock_guard lock(mutex_);
    if (!closed_) {
      old = std::exchange(core_, core);
      settings_ = settings;
      installed = true;
    }
  }
  if (!installed) return core->Close();  // closed meanwhile
  return old ? old->Close() : OkStatus();
}

Status RoutedSubscription::Close() {
  // From one of its own handlers, Close must not wait for install_mutex_: an Install holding
  // it may be closing the core that runs this very handler, waiting for it to return. It then
  // closes the current core (at once, or in the background if that core runs this handler),
  // and an Install under way finds the subscription closed or closes its old core itself.
  const SubscriptionCore* running = SubscriptionCore::Running();
  std::unique_lock install(install_mutex_, std::defer_lock);
  if (running == nullptr || running->owner() != this) install.lock();
  std::shared_ptr<SubscriptionCore> core;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    core = core_;
  }
  // Also when closed already: a core's Close waits for a close still under way.
  return core ? core->Close() : OkStatus();
}

}  // namespace msgsdk::core
