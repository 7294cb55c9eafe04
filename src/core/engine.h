#pragma once

// The engine behind a Client: the routing snapshot, one backend connection per cluster, the
// SDK's thread pools, and the producers and subscriptions made from it.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/async_send.h"
#include "core/backend.h"
#include "core/backend_registry.h"
#include "core/executor.h"
#include "core/routing/routing_table.h"
#include "core/subscription_core.h"
#include "msgsdk/client.h"

namespace msgsdk::core {

class ProducerCore;

// Thread-safety: every public method may be called concurrently.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  static Result<std::shared_ptr<Engine>> Create(ClientOptions options,
                                                std::shared_ptr<const BackendRegistry> registry);
  ~Engine();

  Result<std::shared_ptr<ProducerCore>> CreateProducer(std::string_view topic,
                                                       const ProducerOptions& options);
  Result<std::shared_ptr<SubscriptionCore>> Subscribe(std::string_view topic,
                                                      std::string_view group,
                                                      MessageHandler handler,
                                                      const SubscribeOptions& options);
  // For handlers that settle deliveries later (the sidecar's streams).
  Result<std::shared_ptr<SubscriptionCore>> Subscribe(std::string_view topic,
                                                      std::string_view group,
                                                      AsyncHandler handler,
                                                      const SubscribeOptions& options);
  Result<TopicRoute> Describe(std::string_view topic);
  Status ResetOffsets(std::string_view topic, std::string_view group, const ResetTarget& target);
  Status Close();

  const std::string& environment() const { return environment_; }
  const std::string& client_id() const { return client_id_; }
  const ClientSettings& settings() const { return table_->client_settings(); }
  // Queues a completed SendAsync for the callback pool, which runs its callback and frees it.
  void PostCallback(AsyncSend* send) { send_callbacks_.Post(send); }
  bool OnCallbackThread() const { return callback_pool_.IsPoolThread(); }
  // Retry backoffs.
  TimerQueue& timers() { return timers_; }

 private:
  struct Binding {
    BackendPtr backend;
    std::string cluster;
    std::string matched_by;
  };

  Engine(std::shared_ptr<const BackendRegistry> registry,
         std::shared_ptr<const RoutingTable> table, std::string environment,
         std::string client_id);
  // Resolves `topic` and returns its cluster's backend, connecting on first use.
  Result<Binding> Bind(const std::string& topic);

  const std::shared_ptr<const BackendRegistry> registry_;
  const std::shared_ptr<const RoutingTable> table_;
  const std::string environment_;
  const std::string client_id_;
  ThreadPool callback_pool_;
  BatchingQueue<AsyncSend*> send_callbacks_;
  TimerQueue timers_;

  std::mutex mutex_;
  bool closed_ = false;
  std::map<std::string, BackendPtr> backends_;  // by cluster name
  std::vector<std::weak_ptr<ProducerCore>> producers_;
  std::vector<std::weak_ptr<SubscriptionCore>> subscriptions_;
  uint64_t next_subscription_ = 0;
};

}  // namespace msgsdk::core
