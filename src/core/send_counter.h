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

namespace msgsdk::core {

struct SendCounter {
  SendCounter(std::string topic, std::string cluster)
      : topic(std::move(topic)), cluster(std::move(cluster)) {}

  // Counts sends out; wakes Close when the last one is done.
  void EndSend(int64_t count = 1) {
    if (in_flight.fetch_sub(count) == count && closed.load()) {
      std::lock_guard lock(mutex);
      drained.notify_all();
    }
  }

  const std::string topic;
  const std::string cluster;
  // Sends are counted before `closed` is checked and Close sets `closed` before it waits for
  // the count, so no send slips past a Close (both sequentially consistent). A SendAsync
  // counts until its callback has run, so Close also waits for callbacks.
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> closed{false};
  std::mutex mutex;
  std::condition_variable drained;
};

}  // namespace msgsdk::core
