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
  std::lock_guard install(install_mutex_);
  std::shared_ptr<SubscriptionCore> core;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return OkStatus();
    closed_ = true;
    core = core_;
  }
  return core ? core->Close() : OkStatus();
}

}  // namespace msgsdk::core
