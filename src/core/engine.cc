#include "core/engine.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>
#include <utility>

#include "core/names.h"
#include "core/producer_core.h"
#include "core/routing/client_table.h"
#include "core/subscription_core.h"
#include "core/tag_filter.h"

namespace msgsdk::core {
namespace {

// The routing table `options` name, and the path and text of the file it came from (empty
// when it did not come from a file, and then nothing is watched).
struct LoadedTable {
  std::shared_ptr<const RoutingTable> table;
  std::string path;
  std::string text;
};

Result<LoadedTable> LoadTable(const ClientOptions& options, const BackendRegistry& registry) {
  const RoutingTableOrigin origin = FindRoutingTable(options);
  if (origin.kind != RoutingTableOrigin::Kind::kOptionsPath &&
      origin.kind != RoutingTableOrigin::Kind::kConfigVariable) {
    MSGSDK_ASSIGN_OR_RETURN(auto table, LoadRoutingTable(origin, options, registry));
    return LoadedTable{.table = std::move(table)};
  }
  MSGSDK_ASSIGN_OR_RETURN(std::string text, RoutingTable::ReadFile(origin.path));
  MSGSDK_ASSIGN_OR_RETURN(auto table, RoutingTable::Parse(text, origin.path, registry));
  return LoadedTable{.table = std::move(table), .path = origin.path, .text = std::move(text)};
}

// Whether two versions of a cluster need different backends. Where an entry was written
// ("file:line:col") does not count: editing another part of the file moves it.
bool SameCluster(const ClusterConfig& a, const ClusterConfig& b) {
  return a.name == b.name && a.backend == b.backend && a.properties == b.properties;
}

// A subscription's settings: its options where given, the client settings otherwise.
Result<SubscriptionSettings> ResolveSettings(const std::string& topic,
                                             const SubscribeOptions& options,
                                             const ClientSettings& defaults) {
  if (options.consumer_threads < 0 || options.max_attempts < 0 || options.max_inflight < 0 ||
      options.retry_backoff.count() < 0 || options.retry_backoff_max.count() < 0) {
    return InvalidArgumentError("SubscribeOptions for topic '" + topic +
                                "': counts and durations must not be negative (0 means the "
                                "routing table's client setting)");
  }
  auto positive_or = [](auto value, auto fallback) { return value > 0 ? value : fallback; };
  auto positive_duration_or = [](auto value, auto fallback) {
    return value.count() > 0 ? value : fallback;
  };
  return SubscriptionSettings{
      .threads = positive_or(options.consumer_threads, defaults.consumer_threads),
      .max_attempts = positive_or(options.max_attempts, defaults.max_attempts),
      .retry_backoff = positive_duration_or(options.retry_backoff, defaults.retry_backoff),
      .retry_backoff_max =
          positive_duration_or(options.retry_backoff_max, defaults.retry_backoff_max),
      .max_inflight = positive_or(options.max_inflight, defaults.max_inflight),
      .ordered = options.ordered,
      .close_timeout = defaults.close_timeout,
  };
}

void Log(const std::string& line) { std::fprintf(stderr, "msgsdk: %s\n", line.c_str()); }

template <typename T>
std::vector<std::shared_ptr<T>> LiveOnly(std::vector<std::weak_ptr<T>>& handles) {
  std::vector<std::shared_ptr<T>> live;
  for (auto& weak : handles) {
    if (auto strong = weak.lock()) live.push_back(std::move(strong));
  }
  return live;
}

}  // namespace

Result<std::shared_ptr<Engine>> Engine::Create(std::shared_ptr<const RoutingTable> table,
                                               const std::string& environment,
                                               std::string client_id,
                                               std::shared_ptr<const BackendRegistry> registry) {
  MSGSDK_ASSIGN_OR_RETURN(const EnvironmentConfig* chosen, table->ChooseEnvironment(environment));
  MSGSDK_RETURN_IF_ERROR(ValidateName("client id", client_id).WithContext("ClientOptions"));
  return std::shared_ptr<Engine>(
      new Engine(std::move(registry), std::move(table), chosen->name, std::move(client_id)),
      [](Engine* engine) { DeleteOwnerOfPool(engine, engine->callback_pool_); });
}

Result<std::shared_ptr<Engine>> Engine::Create(ClientOptions options,
                                               std::shared_ptr<const BackendRegistry> registry) {
  MSGSDK_ASSIGN_OR_RETURN(LoadedTable loaded, LoadTable(options, *registry));
  MSGSDK_ASSIGN_OR_RETURN(auto engine, Create(loaded.table, RequestedEnvironment(options),
                                              ClientIdOf(options), registry));
  if (!loaded.path.empty()) {
    // Weak: the watcher must not keep the client alive. A callback that holds the last
    // reference when the client goes away closes it on the watcher's thread, which the
    // watcher allows.
    std::weak_ptr<Engine> weak = engine;
    engine->watcher_ = std::make_unique<RoutingFileWatcher>(
        loaded.path, std::move(loaded.text), std::move(registry), kRoutingPollInterval,
        [weak](std::shared_ptr<const RoutingTable> table) {
          auto self = weak.lock();
          return self ? self->Apply(std::move(table)) : OkStatus();
        },
        [weak](const Status& status) {
          if (auto self = weak.lock()) self->Reject(status);
        },
        [weak] {
          if (auto self = weak.lock()) self->Reconcile();
        });
  }
  return engine;
}

Engine::Engine(std::shared_ptr<const BackendRegistry> registry,
               std::shared_ptr<const RoutingTable> table, std::string environment,
               std::string client_id)
    : registry_(std::move(registry)),
      environment_(std::move(environment)),
      client_id_(std::move(client_id)),
      async_sends_(*this),
      callback_pool_("msgsdk-callback", table->client_settings().callback_threads),
      send_callbacks_(callback_pool_, &AsyncSend::RunCallbacks),
      table_(std::move(table)) {
  routing_.client = client_id_;
  routing_.version = table_->version();
  routing_.source = table_->source();
  routing_.applied = 1;
}

Engine::~Engine() {
  Close().IgnoreError();
  // Also when Close ran on a callback thread and left the pool running: its tasks use the
  // members below (DeleteOwnerOfPool never runs this on a pool thread).
  callback_pool_.Shutdown();
}

std::shared_ptr<const RoutingTable> Engine::table() const {
  std::lock_guard lock(mutex_);
  return table_;
}

ClientSettings Engine::settings() const { return table()->client_settings(); }

RoutingState Engine::Routing() const {
  std::lock_guard lock(mutex_);
  return routing_;
}

Result<Engine::Route> Engine::Resolve(const std::string& topic) const {
  Route route{.table = table()};
  MSGSDK_ASSIGN_OR_RETURN(route.resolved, route.table->Resolve(environment_, topic));
  return route;
}

Result<BackendPtr> Engine::BackendFor(const ClusterConfig& cluster) {
  std::lock_guard lock(mutex_);
  if (closed_) return FailedPreconditionError("client is closed");
  auto it = backends_.find(cluster.name);
  if (it == backends_.end() || !SameCluster(it->second.config, cluster)) {
    MSGSDK_ASSIGN_OR_RETURN(BackendFactory * factory, registry_->Find(cluster.backend));
    auto backend = factory->Create(cluster);
    if (!backend.ok()) {
      return backend.status().WithContext("cluster '" + cluster.name + "' (" + cluster.source +
                                          ")");
    }
    if (it != backends_.end()) {
      // The cluster's configuration changed: its users move to the new backend, the old one
      // closes once the last of them has.
      replaced_backends_.push_back(std::move(it->second.backend));
      it->second = BackendEntry{cluster, std::move(backend).value()};
    } else {
      it = backends_.emplace(cluster.name, BackendEntry{cluster, std::move(backend).value()}).first;
    }
  }
  return it->second.backend;
}

Result<Engine::Binding> Engine::Bind(const ClusterConfig& cluster) {
  MSGSDK_ASSIGN_OR_RETURN(BackendPtr backend, BackendFor(cluster));
  return Binding{std::move(backend), cluster.name};
}

Result<ProducerRoute> Engine::MakeProducerRoute(const std::string& topic, const Route& route) {
  MSGSDK_ASSIGN_OR_RETURN(Binding primary, Bind(*route.resolved.cluster));
  MSGSDK_ASSIGN_OR_RETURN(auto backend_producer, primary.backend->CreateProducer(topic));
  ProducerRoute made{.backend = primary.backend,
                     .producer = std::move(backend_producer),
                     .capabilities = primary.backend->capabilities(),
                     .counter = std::make_shared<SendCounter>(topic, primary.cluster)};
  if (route.resolved.shadow != nullptr) {
    MSGSDK_ASSIGN_OR_RETURN(Binding shadow, Bind(*route.resolved.shadow));
    auto shadow_producer = shadow.backend->CreateProducer(topic);
    if (!shadow_producer.ok()) {
      made.producer->Close(std::chrono::steady_clock::now()).IgnoreError();
      return shadow_producer.status().WithContext("shadow copies of topic '" + topic + "'");
    }
    made.shadow =
        std::make_unique<ShadowTarget>(ShadowTarget{.backend = shadow.backend,
                                                    .producer = std::move(shadow_producer).value(),
                                                    .cluster = shadow.cluster});
    made.generation = std::to_string(route.resolved.migration->generation);
    made.shadow_stats = std::make_shared<ShadowStats>();
  }
  return made;
}

RouteIdentity Engine::IdentityOf(const Route& route) {
  RouteIdentity identity;
  Result<BackendPtr> primary = BackendFor(*route.resolved.cluster);
  identity.primary = primary.ok() ? primary->get() : nullptr;
  if (route.resolved.shadow != nullptr) {
    Result<BackendPtr> shadow = BackendFor(*route.resolved.shadow);
    identity.shadow = shadow.ok() ? shadow->get() : nullptr;
    identity.generation = std::to_string(route.resolved.migration->generation);
  }
  return identity;
}

Result<const ClusterConfig*> Engine::ReadTarget(const SubscriptionSpec& spec, const Route& route,
                                                const std::string& current, std::string& waiting) {
  const ResolvedRoute& resolved = route.resolved;
  const MigrationConfig* migration = resolved.migration;
  if (migration == nullptr || migration->phase == MigrationPhase::kB) return resolved.read;
  if (current == resolved.read->name) return resolved.read;
  // A group reads the cluster it leaves until it has consumed everything written there as a
  // primary copy (up to `drain`); only then may it read where primary copies go now, or a
  // key's older messages could come after its newer ones. In cutover every group leaves
  // `from`. In A and dual_write only a group that read `to` does (a cutover was rolled back).
  const ClusterConfig& leave = *resolved.leave;
  const bool cutover = migration->phase == MigrationPhase::kCutover;
  std::optional<std::vector<PartitionPosition>> positions;
  auto read_positions = [&]() -> Status {
    MSGSDK_ASSIGN_OR_RETURN(BackendPtr backend, BackendFor(leave));
    MSGSDK_ASSIGN_OR_RETURN(positions, backend->Positions(spec));
    return OkStatus();
  };
  if (!cutover && current != leave.name) {
    // A new subscription: has its group ever read `to`?
    if (!read_positions().ok()) return resolved.read;
    const bool read_before = std::any_of(positions->begin(), positions->end(),
                                         [](const auto& p) { return p.committed >= 0; });
    if (!read_before) return resolved.read;
  }
  if (migration->drain.empty()) {
    waiting = "reads '" + leave.name + "' until the migration's drain offsets are known";
    return &leave;
  }
  if (!positions) {
    if (Status status = read_positions(); !status.ok()) {
      waiting = "reads '" + leave.name + "': its positions are unknown (" + status.ToString() + ")";
      return &leave;
    }
  }
  // What the group has left to consume of `leave` (its lag up to the drain offsets).
  int64_t left = 0;
  int partitions = 0;
  std::string first;
  for (const PartitionPosition& position : *positions) {
    auto drain = migration->drain.find(position.partition);
    if (drain == migration->drain.end() || drain->second == 0) continue;
    // Messages retention deleted before the group read them are not waited for: the group
    // skips them (and so has drained a partition whose drain offset they all lie below).
    const int64_t remaining = position.Remaining(drain->second);
    if (remaining == 0) continue;
    left += remaining;
    if (partitions++ == 0) {
      first = "partition " + std::to_string(position.partition) + " at " +
              std::to_string(position.committed) + " of " + std::to_string(drain->second);
    }
  }
  if (partitions == 0) return resolved.read;
  waiting = "reads '" + leave.name +
            "' until it reaches the drain offsets: " + std::to_string(partitions) + " partition" +
            (partitions == 1 ? "" : "s") + " behind, about " + std::to_string(left) +
            " offsets left (" + first + ")";
  return &leave;
}

Result<std::shared_ptr<ProducerCore>> Engine::CreateProducer(std::string_view topic_view,
                                                             const ProducerOptions& options) {
  const std::string topic(topic_view);
  MSGSDK_RETURN_IF_ERROR(ValidateProducerTopic(topic));
  MSGSDK_ASSIGN_OR_RETURN(Route route, Resolve(topic));
  MSGSDK_ASSIGN_OR_RETURN(ProducerRoute made, MakeProducerRoute(topic, route));
  auto producer = std::make_shared<ProducerCore>(shared_from_this(), topic, std::move(made),
                                                 options.send_timeout);
  std::lock_guard lock(mutex_);
  if (closed_) return FailedPreconditionError("client is closed");
  std::erase_if(producers_, [](const auto& weak) { return weak.expired(); });
  producers_.push_back(producer);
  return producer;
}

Result<std::shared_ptr<RoutedSubscription>> Engine::Subscribe(std::string_view topic,
                                                              std::string_view group,
                                                              MessageHandler handler,
                                                              const SubscribeOptions& options) {
  if (!handler) {
    return InvalidArgumentError("subscription to topic '" + std::string(topic) +
                                "' has no handler");
  }
  return Subscribe(topic, group, SettleOnReturn(std::move(handler)), options);
}

Result<std::shared_ptr<SubscriptionCore>> Engine::StartCore(const RoutedSubscription& subscription,
                                                            const Binding& binding,
                                                            const SubscriptionSettings& settings,
                                                            bool from_earliest) {
  const Capabilities& capabilities = binding.backend->capabilities();
  if (subscription.spec().mode == SubscriptionMode::kBroadcast && !capabilities.broadcast) {
    return UnsupportedError("topic '" + subscription.topic() + "' is served by cluster '" +
                            binding.cluster + "' (backend " + capabilities.backend +
                            "), which does not support broadcast subscriptions");
  }
  auto core = SubscriptionCore::Create(shared_from_this(), &subscription, subscription.topic(),
                                       subscription.group(), binding.cluster, binding.backend,
                                       subscription.handler(), subscription.filter(), settings);
  SubscriptionSpec spec = subscription.spec();
  if (from_earliest) spec.start_from = StartPosition::kEarliest;
  MSGSDK_RETURN_IF_ERROR(core->Start(spec));
  return core;
}

Result<std::shared_ptr<RoutedSubscription>> Engine::Subscribe(std::string_view topic_view,
                                                              std::string_view group_view,
                                                              AsyncHandler handler,
                                                              const SubscribeOptions& options) {
  const std::string topic(topic_view);
  const std::string group(group_view);
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  MSGSDK_RETURN_IF_ERROR(ValidateName("group", group));
  if (!handler) {
    return InvalidArgumentError("subscription to topic '" + topic + "' has no handler");
  }
  MSGSDK_ASSIGN_OR_RETURN(TagFilter filter, TagFilter::Parse(options.tag_filter));
  MSGSDK_ASSIGN_OR_RETURN(SubscriptionSettings resolved,
                          ResolveSettings(topic, options, settings()));
  MSGSDK_ASSIGN_OR_RETURN(Route route, Resolve(topic));
  std::string member_id = options.instance_id;
  if (member_id.empty()) {
    std::lock_guard lock(mutex_);
    member_id = client_id_ + "-" + std::to_string(++next_subscription_);
  } else {
    MSGSDK_RETURN_IF_ERROR(ValidateName("instance id", member_id).WithContext("SubscribeOptions"));
  }
  SubscriptionSpec spec{.topic = topic,
                        .group = group,
                        .mode = options.mode,
                        .start_from = options.start_from,
                        .member_id = member_id,
                        .tags = filter.tags()};
  std::string waiting;
  MSGSDK_ASSIGN_OR_RETURN(const ClusterConfig* target, ReadTarget(spec, route, {}, waiting));
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(*target));
  // A group that has drained the cluster a migration leaves starts where primary copies go
  // now from the beginning: what was written there while it drained is its to consume.
  const bool moved_on = route.resolved.migration != nullptr && route.resolved.leave != nullptr &&
                        target == route.resolved.read &&
                        route.resolved.migration->phase == MigrationPhase::kCutover;
  auto subscription = std::make_shared<RoutedSubscription>(std::move(spec), std::move(handler),
                                                           std::move(filter), options);
  {
    std::lock_guard lock(mutex_);
    if (closed_) return FailedPreconditionError("client is closed");
    std::erase_if(subscriptions_, [](const auto& weak) { return weak.expired(); });
    subscriptions_.push_back(subscription);
  }
  MSGSDK_ASSIGN_OR_RETURN(auto core, StartCore(*subscription, binding, resolved, moved_on));
  MSGSDK_RETURN_IF_ERROR(subscription->Install(std::move(core), resolved));
  return subscription;
}

Result<TopicRoute> Engine::Describe(std::string_view topic_view) {
  const std::string topic(topic_view);
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  MSGSDK_ASSIGN_OR_RETURN(Route route, Resolve(topic));
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(*route.resolved.cluster));
  return TopicRoute{.topic = topic,
                    .environment = environment_,
                    .cluster = binding.cluster,
                    .matched_by = route.resolved.matched_by,
                    .capabilities = binding.backend->capabilities()};
}

Status Engine::ResetOffsets(std::string_view topic_view, std::string_view group_view,
                            const ResetTarget& target) {
  const std::string topic(topic_view);
  const std::string group(group_view);
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  MSGSDK_RETURN_IF_ERROR(ValidateName("group", group));
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
  {
    std::lock_guard lock(mutex_);
    subscriptions = LiveOnly(subscriptions_);
  }
  for (const auto& subscription : subscriptions) {
    if (subscription->topic() != topic || subscription->group() != group) continue;
    if (!subscription->closed()) {
      return FailedPreconditionError("group '" + group + "' still has an open subscription to '" +
                                     topic + "' in this client; close it before resetting");
    }
    // Closed but maybe still committing (another thread's Close): Close waits for that, so
    // its last commit cannot land after the reset.
    subscription->Close().IgnoreError();
  }
  MSGSDK_ASSIGN_OR_RETURN(Route route, Resolve(topic));
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(*route.resolved.read));
  return binding.backend->ResetOffsets(topic, group, target);
}

// ---- Routing versions ---------------------------------------------------------------------

void Engine::Reject(const Status& status) {
  std::string version_text;
  {
    std::lock_guard lock(mutex_);
    ++routing_.rejected;
    routing_.last_rejection = status.ToString();
    version_text = std::to_string(routing_.version);
  }
  Log("routing version refused, version " + version_text + " keeps running: " + status.ToString());
}

Status Engine::Apply(std::shared_ptr<const RoutingTable> table) {
  {
    std::lock_guard apply(apply_mutex_);
    const std::string what =
        "routing version " + std::to_string(table->version()) + " of " + table->source();
    if (!table->ChooseEnvironment(environment_).ok()) {
      return FailedPreconditionError(what + " has no environment '" + environment_ +
                                     "', the one this client runs in (a client never changes "
                                     "environment while it runs)");
    }
    std::vector<std::shared_ptr<ProducerCore>> producers;
    std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return OkStatus();
      producers = LiveOnly(producers_);
      subscriptions = LiveOnly(subscriptions_);
    }
    std::vector<std::string> topics;
    for (const auto& producer : producers) topics.push_back(producer->topic());
    for (const auto& subscription : subscriptions) topics.push_back(subscription->topic());
    for (const std::string& topic : topics) {
      Result<ResolvedRoute> route = table->Resolve(environment_, topic);
      if (!route.ok()) {
        return FailedPreconditionError(
            what + " leaves topic '" + topic +
            "', which this client uses, without a route: " + route.status().message());
      }
    }
    std::lock_guard lock(mutex_);
    table_ = table;
  }
  callback_pool_.Resize(table->client_settings().callback_threads);
  // Moving the producers and subscriptions is what every tick retries; do it now so the new
  // version takes effect at once. It counts as applied once that first move is done.
  Reconcile();
  {
    std::lock_guard lock(mutex_);
    routing_.version = table->version();
    routing_.source = table->source();
    ++routing_.applied;
  }
  Log("routing version " + std::to_string(table->version()) + " of " + table->source() +
      " applied");
  return OkStatus();
}

void Engine::Reconcile() {
  std::lock_guard apply(apply_mutex_);
  std::vector<std::shared_ptr<ProducerCore>> producers;
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    producers = LiveOnly(producers_);
    subscriptions = LiveOnly(subscriptions_);
  }
  const ClientSettings client = settings();
  std::vector<std::string> pending;
  // Topic -> what this client does in its migration.
  std::map<std::string, MigrationProgress> migrations;
  auto progress_of = [&](const std::string& topic, const Route& route) -> MigrationProgress* {
    const MigrationConfig* migration = route.resolved.migration;
    if (migration == nullptr) return nullptr;
    auto [it, inserted] = migrations.try_emplace(topic);
    if (inserted) {
      it->second.topic = topic;
      it->second.phase = std::string(MigrationPhaseName(migration->phase));
      it->second.generation = migration->generation;
      it->second.producers_settled = true;
    }
    return &it->second;
  };

  for (const auto& producer : producers) {
    producer->ApplySettings(client.send_timeout, client.max_message_bytes);
    const std::string& topic = producer->topic();
    Result<Route> route = Resolve(topic);
    MigrationProgress* progress = route.ok() ? progress_of(topic, *route) : nullptr;
    if (progress != nullptr) ++progress->producers;
    if (route.ok() && IdentityOf(*route) == producer->identity()) {
      if (progress != nullptr) AddShadowStats(*progress, producer->shadow_stats());
      continue;
    }
    Result<ProducerRoute> made =
        route.ok() ? MakeProducerRoute(topic, *route) : Result<ProducerRoute>(route.status());
    if (!made.ok()) {
      pending.push_back("producer of topic '" + topic + "': " + made.status().ToString());
      if (progress != nullptr) progress->producers_settled = false;
      continue;
    }
    // Returns once the sends of the previous route completed: with it, this producer stops
    // writing primary copies where the phase no longer has them.
    producer->Rebind(std::move(made).value());
    if (progress != nullptr) AddShadowStats(*progress, producer->shadow_stats());
  }

  for (const auto& subscription : subscriptions) {
    const std::string& topic = subscription->topic();
    Result<SubscriptionSettings> settings = ResolveSettings(topic, subscription->options(), client);
    Result<Route> route = Resolve(topic);
    const std::string current = subscription->cluster();
    std::string waiting;
    Result<const ClusterConfig*> target =
        route.ok() ? ReadTarget(subscription->spec(), *route, current, waiting)
                   : Result<const ClusterConfig*>(route.status());
    Result<Binding> binding = target.ok() ? Bind(**target) : Result<Binding>(target.status());
    MigrationProgress* progress = route.ok() ? progress_of(topic, *route) : nullptr;
    if (progress != nullptr && !waiting.empty()) {
      progress->draining.push_back("group '" + subscription->group() + "' " + waiting);
    }
    if (binding.ok() && settings.ok() && binding->backend.get() == subscription->backend() &&
        *settings == subscription->settings()) {
      continue;
    }
    // Moving on from a cluster the migration leaves: the group starts on the new one from its
    // beginning (it has consumed none of the primary copies there yet).
    const bool moved_on =
        route.ok() && route->resolved.migration != nullptr && route->resolved.leave != nullptr &&
        current == route->resolved.leave->name && target.ok() && *target == route->resolved.read;
    Result<std::shared_ptr<SubscriptionCore>> core =
        !settings.ok()  ? Result<std::shared_ptr<SubscriptionCore>>(settings.status())
        : !binding.ok() ? Result<std::shared_ptr<SubscriptionCore>>(binding.status())
                        : StartCore(*subscription, *binding, *settings, moved_on);
    if (!core.ok()) {
      pending.push_back("subscription of group '" + subscription->group() + "' to topic '" + topic +
                        "': " + core.status().ToString());
      continue;
    }
    Status closed_old = subscription->Install(std::move(core).value(), *settings);
    if (!closed_old.ok()) {
      Log("closing the previous subscription of group '" + subscription->group() + "' to topic '" +
          topic + "': " + closed_old.ToString());
    }
  }

  std::string pending_text;
  for (const std::string& line : pending) {
    if (!pending_text.empty()) pending_text += "\n";
    pending_text += line;
  }
  bool changed;
  {
    std::lock_guard lock(mutex_);
    changed = routing_.pending != pending_text;
    routing_.pending = pending_text;
    routing_.migrations.clear();
    for (auto& [topic, progress] : migrations) routing_.migrations.push_back(std::move(progress));
  }
  if (changed && !pending_text.empty()) {
    Log("not everything is on routing version " + std::to_string(table()->version()) +
        " yet (retried): " + pending_text);
  }
  CloseUnusedBackends();
}

void Engine::AddShadowStats(MigrationProgress& progress,
                            const std::shared_ptr<ShadowStats>& stats) {
  if (!stats) return;
  progress.shadow_sent += stats->sent.load(std::memory_order_relaxed);
  const int64_t failed = stats->failed.load(std::memory_order_relaxed);
  progress.shadow_failed += failed;
  if (failed > 0) {
    std::lock_guard lock(stats->mutex);
    progress.last_shadow_error = stats->last_error;
  }
}

void Engine::CloseUnusedBackends() {
  std::vector<std::shared_ptr<ProducerCore>> producers;
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
  {
    std::lock_guard lock(mutex_);
    if (replaced_backends_.empty()) return;
    producers = LiveOnly(producers_);
    subscriptions = LiveOnly(subscriptions_);
  }
  std::vector<const Backend*> used;
  for (const auto& producer : producers) {
    for (const Backend* backend : producer->backends()) used.push_back(backend);
  }
  for (const auto& subscription : subscriptions) used.push_back(subscription->backend());
  std::vector<BackendPtr> unused;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(replaced_backends_, [&](BackendPtr& backend) {
      if (std::find(used.begin(), used.end(), backend.get()) != used.end()) return false;
      unused.push_back(std::move(backend));
      return true;
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + settings().close_timeout;
  for (auto& backend : unused) {
    Status status = backend->Close(deadline);
    if (!status.ok()) Log("closing a replaced backend: " + status.ToString());
  }
}

Status Engine::Close() {
  if (InUserCode()) {
    // A handler or a send callback closing its client (or another): closing waits for the
    // subscriptions' handlers, this one among them or one that may be waiting for it
    // (UserCodeMark), and must not take apply_mutex_ (an Apply holding it may be waiting for
    // this handler's subscription to close). The close keeps the engine alive meanwhile.
    {
      std::lock_guard lock(mutex_);
      if (closed_) return OkStatus();
    }
    std::thread([self = shared_from_this()] { self->Close().IgnoreError(); }).detach();
    return OkStatus();
  }
  // First, so that no version is applied while (or after) everything closes.
  if (watcher_) watcher_->Stop();
  StopSource();
  std::vector<std::shared_ptr<ProducerCore>> producers;
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
  std::map<std::string, BackendEntry> backends;
  std::vector<BackendPtr> replaced;
  {
    std::unique_lock apply(apply_mutex_);
    std::unique_lock lock(mutex_);
    if (closed_) {
      apply.unlock();
      // A send callback may be what that close waits for.
      if (!callback_pool_.IsPoolThread()) {
        close_finished_.wait(lock, [this] { return close_done_; });
      }
      return OkStatus();
    }
    closed_ = true;
    producers = LiveOnly(producers_);
    subscriptions = LiveOnly(subscriptions_);
    producers_.clear();
    subscriptions_.clear();
  }
  Status first;
  auto keep_first = [&first](Status status) {
    if (first.ok() && !status.ok()) first = std::move(status);
  };
  for (auto& subscription : subscriptions) keep_first(subscription->Close());
  for (auto& producer : producers) keep_first(producer->Close());
  {
    std::lock_guard lock(mutex_);
    backends.swap(backends_);
    replaced.swap(replaced_backends_);
  }
  const auto deadline = std::chrono::steady_clock::now() + settings().close_timeout;
  for (auto& [name, entry] : backends) keep_first(entry.backend->Close(deadline));
  for (auto& backend : replaced) keep_first(backend->Close(deadline));
  timers_.Shutdown();
  if (!callback_pool_.IsPoolThread()) callback_pool_.Shutdown();
  {
    std::lock_guard lock(mutex_);
    close_done_ = true;
  }
  close_finished_.notify_all();
  return first;
}

// ---- Other sources of versions ------------------------------------------------------------

void Engine::Attach(std::unique_ptr<RoutingSource> source) {
  {
    std::lock_guard lock(mutex_);
    if (!closed_) {
      source_ = std::move(source);
      return;
    }
  }
  source->Stop();
}

void Engine::StopSource() {
  RoutingSource* source;
  {
    std::lock_guard lock(mutex_);
    source = source_.get();
  }
  // Not under the lock: a call of the source into the engine may be waiting for it.
  if (source != nullptr) source->Stop();
}

Engine::TopicsInUse Engine::Topics() {
  std::vector<std::shared_ptr<ProducerCore>> producers;
  std::vector<std::shared_ptr<RoutedSubscription>> subscriptions;
  {
    std::lock_guard lock(mutex_);
    producers = LiveOnly(producers_);
    subscriptions = LiveOnly(subscriptions_);
  }
  // Released after the lock: the last reference may go here, and closing takes it.
  TopicsInUse topics;
  for (const auto& producer : producers) topics.produces.push_back(producer->topic());
  for (const auto& subscription : subscriptions) topics.subscribes.push_back(subscription->topic());
  for (auto* list : {&topics.produces, &topics.subscribes}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  return topics;
}

}  // namespace msgsdk::core
