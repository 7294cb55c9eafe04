#pragma once

// Counts a producer's sends in flight, so Close can wait for them. Completions hold this, never
// the producer: the last reference to a producer must not be dropped on a backend thread,
// which would then have to tear down the backend that runs it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "core/in_flight_gate.h"

namespace msgsdk::core {

struct SendCounter {
  SendCounter(std::string topic, std::string cluster)
      : topic(std::move(topic)), cluster(std::move(cluster)) {}

  // Counts sends out; once closed, wakes Close (which checks whether any is left).
  void EndSend(int64_t count = 1) {
    in_flight.Exit(count);
    if (in_flight.closed()) WakeClose();
  }
  // Close waits for the count to reach zero: the count changed.
  void WakeClose() {
    std::lock_guard lock(mutex);
    drained.notify_all();
  }

  const std::string topic;
  const std::string cluster;
  // The sends under way; closed by Close, which then waits until none is left. A SendAsync
  // counts until its callback has run, so Close also waits for callbacks.
  InFlightGate in_flight;
  std::mutex mutex;
  std::condition_variable drained;
};

}  // namespace msgsdk::core
