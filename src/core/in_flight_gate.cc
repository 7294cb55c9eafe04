#include "core/in_flight_gate.h"

namespace msgsdk::core {
namespace {

std::atomic<uint64_t> next_gate_id{1};
// The address that names this thread among the live ones.
thread_local char this_thread_tag;

}  // namespace

InFlightGate::InFlightGate() : id_(next_gate_id.fetch_add(1)) { EnableAsymmetricFences(); }

InFlightGate::~InFlightGate() = default;

InFlightGate::Slot& InFlightGate::FindSlot() {
  std::lock_guard lock(slots_mu_);
  std::unique_ptr<Slot>& slot = slots_[&this_thread_tag];
  if (!slot) slot = std::make_unique<Slot>();
  return *slot;
}

void InFlightGate::Close() {
  closed_.store(true);
  // Every entry published before a thread read closed_ as false is visible from here on.
  HeavyFence();
}

int64_t InFlightGate::InFlight() const {
  // Exits first: an exit read here comes after its entry, which the sum below then includes,
  // so the difference is never below zero.
  const int64_t exited = exited_.load();
  int64_t entered = 0;
  std::lock_guard lock(slots_mu_);
  for (const auto& [thread, slot] : slots_) {
    entered += slot->entered.load(std::memory_order_acquire);
  }
  return entered - exited;
}

}  // namespace msgsdk::core
