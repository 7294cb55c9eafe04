#pragma once

// The redis Backend object. Internal to the backend and its tests; the rest of the SDK
// only sees core::Backend through MakeRedisBackendFactory().

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backends/redis/redis_consumer.h"
#include "backends/redis/redis_producer.h"
#include "backends/redis/redis_state.h"
#include "core/backend.h"

namespace msgsdk::redis {

class RedisBackend final : public core::Backend {
 public:
  // Checks the configuration and, when the server answers, the credentials and the server
  // version (authentication, permission and configuration errors fail here). A server that
  // is down is not an error yet: sends and subscriptions report it.
  static Result<std::shared_ptr<RedisBackend>> Create(const core::ClusterConfig& config);
  ~RedisBackend() override;

  const Capabilities& capabilities() const override { return capabilities_; }
  Result<std::unique_ptr<core::BackendProducer>> CreateProducer(const std::string& topic) override;
  Result<std::unique_ptr<core::BackendConsumer>> Subscribe(const core::SubscriptionSpec& spec,
                                                           core::DeliverySink& sink) override;
  // Earliest: SETID 0; latest: SETID $; timestamp: SETID to the last id before it. Applies
  // to the group and to its broadcast groups ("<group>@<member>") on every stream.
  Status ResetOffsets(const std::string& topic, const std::string& group,
                      const ResetTarget& target) override;
  // Per stream: `end` after its last generated id; `committed` at the group's first pending
  // entry, or after its last delivered id when nothing is pending (offsets as Message.offset).
  Result<std::vector<core::PartitionPosition>> Positions(
      const core::SubscriptionSpec& spec) override;
  Status Close(core::Deadline deadline) override;

  RedisBackendStats stats() const { return state_->Snapshot(); }
  const RedisOptions& options() const { return state_->options; }

  // Compares every group's backlog on the streams in use with maxlen now (the monitor
  // thread does it every backlog_check_ms); warns and counts groups above the threshold.
  Status CheckBacklog();

 private:
  explicit RedisBackend(std::shared_ptr<BackendState> state);
  Status Probe();
  void MonitorLoop();
  Status CheckStreamBacklog(const std::string& stream, int64_t& max_percent);

  std::shared_ptr<BackendState> state_;
  Capabilities capabilities_;
  std::shared_ptr<Writer> writer_;

  // For ResetOffsets, Positions and the backlog check.
  std::mutex admin_mu_;
  Connection admin_connection_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  std::thread monitor_;
  // Last warning per "stream/group", so a lasting backlog is logged once a minute.
  std::map<std::string, std::chrono::steady_clock::time_point> last_warned_;
};

}  // namespace msgsdk::redis
