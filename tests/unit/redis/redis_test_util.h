#pragma once

// Helpers for the redis backend tests: a recording DeliverySink, cluster configs pointing at
// a RedisServer fixture, messages as the core would hand them over, synchronous sends.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "fixtures/redis_fixture.h"

namespace msgsdk::redis::testing {

using namespace std::chrono_literals;

// Records deliveries and revocations; capacity is unlimited unless limited with
// set_capacity (then WaitForCapacity refuses while more than that are held un-released).
class RecordingSink final : public core::DeliverySink {
 public:
  void Deliver(std::vector<core::Delivery> batch) override;
  bool WaitForCapacity(core::Deadline deadline) override;
  void Revoke(const std::vector<int32_t>& partitions) override;

  // Waits until `count` deliveries arrived in total; returns all of them so far.
  std::vector<core::Delivery> WaitFor(size_t count, std::chrono::milliseconds timeout = 10000ms);
  std::vector<core::Delivery> deliveries() const;
  std::vector<std::vector<int32_t>> revoked() const;
  // Deliveries in the order Deliver got them, batch by batch (partition of each batch).
  std::vector<int32_t> batch_partitions() const;
  void set_capacity(size_t capacity);
  // Lets `count` more deliveries be held (as if the core finished them).
  void Release(size_t count);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<core::Delivery> deliveries_;
  std::vector<int32_t> batch_partitions_;
  std::vector<std::vector<int32_t>> revoked_;
  size_t capacity_ = SIZE_MAX;
  size_t released_ = 0;
};

// A validated-looking cluster entry for `server` (every default filled in) plus `extra`.
core::ClusterConfig RedisConfig(const test::RedisServer& server,
                                const std::map<std::string, std::string>& extra = {});
core::ClusterConfig RedisConfigFor(const std::string& endpoint,
                                   const std::map<std::string, std::string>& extra = {});

// A message as the core hands it to a backend: message_id and born_at set.
Message MakeMessage(std::string body, std::string key = {}, std::string tag = {},
                    Properties properties = {});

// Sends and waits for the completion.
Result<core::StoredPosition> SendSync(core::BackendProducer& producer, Message message,
                                      std::chrono::milliseconds timeout = 10000ms);

// A topic name unique to the running test.
std::string TestTopic();

// `redis-cli` output split into lines (without the trailing empty line).
std::vector<std::string> Lines(const std::string& text);

}  // namespace msgsdk::redis::testing
