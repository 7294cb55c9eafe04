#pragma once

// State shared by a redis backend and every producer and consumer made from it. Held by
// shared_ptr so that a producer or consumer outliving its backend stays valid.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backends/redis/redis_connection.h"
#include "backends/redis/redis_options.h"
#include "core/backend.h"

namespace msgsdk::redis {

// Counters of one backend, for tests and metrics.
struct RedisBackendStats {
  int64_t sends_ok = 0;
  int64_t sends_failed = 0;
  int64_t connection_failures = 0;
  int64_t delivered = 0;
  int64_t acked = 0;
  // Entries taken over from other (crashed) consumers with XAUTOCLAIM.
  int64_t claimed = 0;
  // Pending entries found deleted (trimmed by MAXLEN before they were acknowledged).
  int64_t trimmed_pending = 0;
  // Backlog checks that found a group at or above backlog_warn_percent of maxlen.
  int64_t backlog_warnings = 0;
  // The highest backlog seen by the last check, in percent of maxlen.
  int64_t max_backlog_percent = 0;
};

struct BackendState {
  explicit BackendState(RedisOptions opts);

  RedisOptions options;
  // "<host>-<pid>": default consumer name and base of CLIENT SETNAME names.
  std::string instance_name;

  std::atomic<int64_t> sends_ok{0};
  std::atomic<int64_t> sends_failed{0};
  std::atomic<int64_t> connection_failures{0};
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> claimed{0};
  std::atomic<int64_t> trimmed_pending{0};
  std::atomic<int64_t> backlog_warnings{0};
  std::atomic<int64_t> max_backlog_percent{0};

  RedisBackendStats Snapshot() const;

  // Connection settings for one connection of this backend; `role` ends up in CLIENT SETNAME.
  ConnectionSettings Settings(std::string_view role) const;

  // Topics with a producer or subscription, for the backlog check.
  void NoteTopic(const std::string& topic);
  std::vector<std::string> Topics() const;

  std::string StreamOf(const std::string& topic, int32_t partition) const;

  // Consumers that are running, so that closing the backend closes them too. A consumer
  // removes itself (under the mutex) before it is destroyed.
  std::mutex consumers_mu;
  std::set<core::BackendConsumer*> consumers;

 private:
  mutable std::mutex topics_mu_;
  std::set<std::string> topics_;
};

// Exponential backoff between reconnect attempts: 50 ms doubling to 2 s, with jitter.
class Backoff {
 public:
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }

 private:
  int attempt_ = 0;
  std::minstd_rand random_{std::random_device{}()};
};

// Characters Redis accepts in CLIENT SETNAME and that read well in consumer names.
std::string SanitizeName(std::string_view name);

}  // namespace msgsdk::redis
