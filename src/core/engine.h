#pragma once

// The engine behind a Client: the routing snapshot, one backend connection per cluster, the
// SDK's thread pools, and the producers and subscriptions made from it.
//
// Routing changes while it runs. A new version (from the watched routing file, or from a push
// source) is checked whole against what this client uses, swapped in atomically, and then
// every producer and subscription is brought to it make-before-break: the new cluster's
// backend and producer are made first; only then do sends move, and a subscription's new core
// is started before the old one is closed. What cannot move yet keeps its old route and is
// retried at every tick of the routing source.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/async_send.h"
#include "core/backend.h"
#include "core/backend_registry.h"
#include "core/client_options.h"
#include "core/executor.h"
#include "core/producer_core.h"
#include "core/routed_subscription.h"
#include "core/routing/routing_table.h"
#include "core/routing/routing_watcher.h"
#include "core/subscription_core.h"
#include "msgsdk/client.h"

namespace msgsdk::core {

// A source of routing versions other than the routing file (a push service's subscription):
// it offers versions with Engine::Apply and reports refusals with Engine::Reject. The engine
// owns it once attached and stops it first when it closes, so that no version is applied
// while (or after) everything closes.
class RoutingSource {
 public:
  virtual ~RoutingSource() = default;
  // No call into the engine starts after it returns. It may be called from one of the
  // source's own calls into the engine (the engine going away on the source's thread): it
  // must then not wait for that call.
  virtual void Stop() = 0;
};

// Thread-safety: every public method may be called concurrently.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  // How often a watched routing file is checked.
  static constexpr std::chrono::milliseconds kRoutingPollInterval{200};

  // The routing table `options` name (watched when it is a file).
  static Result<std::shared_ptr<Engine>> Create(ClientOptions options,
                                                std::shared_ptr<const BackendRegistry> registry);
  // Starts on `table`, in the environment `environment` asks for (see RequestedEnvironment);
  // later versions come from a source the caller attaches.
  static Result<std::shared_ptr<Engine>> Create(std::shared_ptr<const RoutingTable> table,
                                                const std::string& environment,
                                                std::string client_id,
                                                std::shared_ptr<const BackendRegistry> registry);
  ~Engine();

  Result<std::shared_ptr<ProducerCore>> CreateProducer(std::string_view topic,
                                                       const ProducerOptions& options);
  Result<std::shared_ptr<RoutedSubscription>> Subscribe(std::string_view topic,
                                                        std::string_view group,
                                                        MessageHandler handler,
                                                        const SubscribeOptions& options);
  // For handlers that settle deliveries later (the sidecar's streams).
  Result<std::shared_ptr<RoutedSubscription>> Subscribe(std::string_view topic,
                                                        std::string_view group,
                                                        AsyncHandler handler,
                                                        const SubscribeOptions& options);
  Result<TopicRoute> Describe(std::string_view topic);
  Status ResetOffsets(std::string_view topic, std::string_view group, const ResetTarget& target);
  // Closes every subscription and producer, then the backends. Idempotent: a later call
  // waits for a close under way (except on a callback thread, which that close may be waiting
  // for). Called from a handler of one of the client's subscriptions, it returns at once and
  // the close goes on on a thread of its own, once that handler returned.
  Status Close();

  // Offers a new routing version. Refused (and counted, with the reason kept) when it lacks
  // this client's environment or leaves a topic in use without a route; otherwise it becomes
  // the running version and every producer and subscription is moved to it.
  Status Apply(std::shared_ptr<const RoutingTable> table);
  // Records a refused version (one that did not parse, or that Apply refused) and logs it.
  void Reject(const Status& status);
  // Moves what a version could not move yet (a cluster that was unreachable, say).
  void Reconcile();
  RoutingState Routing() const;
  // Takes ownership of the (one) source of versions besides a routing file; stopped at once if
  // the engine is closed already.
  void Attach(std::unique_ptr<RoutingSource> source);

  // The topics this client's live producers and subscriptions use, each list sorted.
  struct TopicsInUse {
    std::vector<std::string> produces;
    std::vector<std::string> subscribes;
  };
  TopicsInUse Topics();

  const std::string& environment() const { return environment_; }
  const std::string& client_id() const { return client_id_; }
  // The running version's client settings.
  ClientSettings settings() const;
  // Spare SendAsync records.
  AsyncSendPool& async_sends() { return async_sends_; }
  // Queues a completed SendAsync for the callback pool, which runs its callback.
  void PostCallback(SendCompletion&& completion) { send_callbacks_.Post(std::move(completion)); }
  // The same for several, in order, with one hand-off to the pool; leaves `completions` empty.
  void PostCallbacks(std::vector<SendCompletion>& completions) {
    send_callbacks_.PostAll(completions);
  }
  // Retry backoffs.
  TimerQueue& timers() { return timers_; }

 private:
  // A cluster's backend.
  struct Binding {
    BackendPtr backend;
    std::string cluster;
  };
  // A topic's route in the running version (the table keeps `resolved`'s pointers valid).
  struct Route {
    std::shared_ptr<const RoutingTable> table;
    ResolvedRoute resolved;
  };
  // A cluster's backend, and the configuration it was made from.
  struct BackendEntry {
    ClusterConfig config;
    BackendPtr backend;
  };

  Engine(std::shared_ptr<const BackendRegistry> registry, std::shared_ptr<const RoutingTable> table,
         std::string environment, std::string client_id);
  std::shared_ptr<const RoutingTable> table() const;
  Result<Route> Resolve(const std::string& topic) const;
  // The cluster's backend, made on first use and made anew when its configuration changed.
  Result<BackendPtr> BackendFor(const ClusterConfig& cluster);
  Result<Binding> Bind(const ClusterConfig& cluster);
  // A producer's route to `route`'s primary (and shadow, during a migration).
  Result<ProducerRoute> MakeProducerRoute(const std::string& topic, const Route& route);
  // What a producer on `route` writes to (to compare with what it writes to now).
  RouteIdentity IdentityOf(const Route& route);
  // The cluster a subscription reading `current` (empty: none yet) reads now: where the route
  // reads, unless a migration has it drain the cluster it leaves first (then `waiting` says
  // what it waits for).
  Result<const ClusterConfig*> ReadTarget(const SubscriptionSpec& spec, const Route& route,
                                          const std::string& current, std::string& waiting);
  // A subscription core on `binding`, started (from the earliest message when the group moves
  // on from a cluster a migration leaves).
  Result<std::shared_ptr<SubscriptionCore>> StartCore(const RoutedSubscription& subscription,
                                                      const Binding& binding,
                                                      const SubscriptionSettings& settings,
                                                      bool from_earliest = false);
  static void AddShadowStats(MigrationProgress& progress,
                             const std::shared_ptr<ShadowStats>& stats);
  // Stops the attached source, if any (Close).
  void StopSource();
  // Closes replaced backends that no producer or subscription uses any more.
  void CloseUnusedBackends();

  const std::shared_ptr<const BackendRegistry> registry_;
  const std::string environment_;
  const std::string client_id_;
  // First, so it goes last: records come back from the threads that complete sends (the
  // backends') until those have stopped.
  AsyncSendPool async_sends_;
  ThreadPool callback_pool_;
  BatchingQueue<SendCompletion> send_callbacks_;
  TimerQueue timers_;
  std::unique_ptr<RoutingFileWatcher> watcher_;
  std::unique_ptr<RoutingSource> source_;  // guarded by mutex_

  // One version applied (and one reconciliation run) at a time.
  std::mutex apply_mutex_;

  mutable std::mutex mutex_;
  std::shared_ptr<const RoutingTable> table_;
  RoutingState routing_;
  bool closed_ = false;      // Close was called: nothing new starts
  bool close_done_ = false;  // and has finished
  std::condition_variable close_finished_;
  std::map<std::string, BackendEntry> backends_;  // by cluster name
  // Backends of clusters whose configuration changed, until their last user has moved.
  std::vector<BackendPtr> replaced_backends_;
  std::vector<std::weak_ptr<ProducerCore>> producers_;
  std::vector<std::weak_ptr<RoutedSubscription>> subscriptions_;
  uint64_t next_subscription_ = 0;
};

}  // namespace msgsdk::core
