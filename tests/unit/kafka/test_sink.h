#pragma once

// A DeliverySink for driving a Kafka backend consumer directly, without the core: it records
// deliveries and revocations, holds back the consumer while "full", and can acknowledge
// deliveries itself.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "core/backend.h"

namespace msgsdk::testing {

class TestSink : public core::DeliverySink {
 public:
  // Decides whether a delivery is acknowledged right away (default: yes).
  using AckPolicy = std::function<bool(const core::Delivery&)>;

  void set_consumer(core::BackendConsumer* consumer) {
    std::lock_guard lock(mu_);
    consumer_ = consumer;
  }
  void set_ack_policy(AckPolicy policy) {
    std::lock_guard lock(mu_);
    ack_policy_ = std::move(policy);
  }
  // While false, WaitForCapacity reports the core as full.
  void set_capacity(bool has_capacity) {
    {
      std::lock_guard lock(mu_);
      has_capacity_ = has_capacity;
    }
    cv_.notify_all();
  }

  void Deliver(std::vector<core::Delivery> batch) override {
    std::vector<core::Delivery> to_ack;
    core::BackendConsumer* consumer = nullptr;
    {
      std::lock_guard lock(mu_);
      ++batches_;
      for (core::Delivery& delivery : batch) {
        if (consumer_ != nullptr && (!ack_policy_ || ack_policy_(delivery))) {
          to_ack.push_back(delivery);
        }
        deliveries_.push_back(std::move(delivery));
      }
      consumer = consumer_;
    }
    for (const core::Delivery& delivery : to_ack) consumer->Ack(delivery);
    cv_.notify_all();
  }

  // As the core does, leaves the deliveries in place after taking them (here: copies), so the
  // backend decodes its next records over what they held: every field must be overwritten.
  void DeliverSwapping(std::span<core::DeliveryPtr> batch) override {
    std::vector<core::Delivery> copies;
    for (const core::DeliveryPtr& delivery : batch) copies.push_back(*delivery);
    Deliver(std::move(copies));
  }

  bool WaitForCapacity(core::Deadline deadline) override {
    std::unique_lock lock(mu_);
    ++capacity_checks_;
    cv_.notify_all();
    return cv_.wait_until(lock, deadline, [this] { return has_capacity_; });
  }

  void Revoke(const std::vector<int32_t>& partitions) override {
    {
      std::lock_guard lock(mu_);
      revoked_.insert(revoked_.end(), partitions.begin(), partitions.end());
    }
    cv_.notify_all();
  }

  bool WaitForDeliveries(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return deliveries_.size() >= n; });
  }
  bool WaitForCapacityChecks(size_t n,
                             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return capacity_checks_ >= n; });
  }

  std::vector<core::Delivery> deliveries() const {
    std::lock_guard lock(mu_);
    return deliveries_;
  }
  std::vector<int32_t> revoked() const {
    std::lock_guard lock(mu_);
    return revoked_;
  }
  size_t capacity_checks() const {
    std::lock_guard lock(mu_);
    return capacity_checks_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  core::BackendConsumer* consumer_ = nullptr;
  AckPolicy ack_policy_;
  bool has_capacity_ = true;
  size_t batches_ = 0;
  size_t capacity_checks_ = 0;
  std::vector<core::Delivery> deliveries_;
  std::vector<int32_t> revoked_;
};

}  // namespace msgsdk::testing
