#include "core/engine.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "core/names.h"
#include "core/producer_core.h"
#include "core/routing/client_table.h"
#include "core/subscription_core.h"
#include "core/tag_filter.h"

namespace msgsdk::core {
namespace {

std::string DefaultClientId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

template <typename T>
std::vector<std::shared_ptr<T>> LiveOnly(std::vector<std::weak_ptr<T>>& handles) {
  std::vector<std::shared_ptr<T>> live;
  for (auto& weak : handles) {
    if (auto strong = weak.lock()) live.push_back(std::move(strong));
  }
  return live;
}

}  // namespace

Result<std::shared_ptr<Engine>> Engine::Create(ClientOptions options,
                                               std::shared_ptr<const BackendRegistry> registry) {
  MSGSDK_ASSIGN_OR_RETURN(auto table, LoadRoutingTable(options, *registry));
  MSGSDK_ASSIGN_OR_RETURN(EnvironmentChoice choice, ChooseClientEnvironment(*table, options));
  std::string client_id = options.client_id.empty() ? DefaultClientId() : options.client_id;
  MSGSDK_RETURN_IF_ERROR(ValidateName("client id", client_id).WithContext("ClientOptions"));
  return std::shared_ptr<Engine>(new Engine(std::move(registry), std::move(table),
                                            choice.environment->name, std::move(client_id)));
}

Engine::Engine(std::shared_ptr<const BackendRegistry> registry,
               std::shared_ptr<const RoutingTable> table, std::string environment,
               std::string client_id)
    : registry_(std::move(registry)),
      table_(std::move(table)),
      environment_(std::move(environment)),
      client_id_(std::move(client_id)),
      callback_pool_("msgsdk-callback", table_->client_settings().callback_threads),
      send_callbacks_(callback_pool_, [](AsyncSend*& send) {
        send->RunCallback();
        delete send;
      }) {}

Engine::~Engine() { Close().IgnoreError(); }

Result<Engine::Binding> Engine::Bind(const std::string& topic) {
  MSGSDK_ASSIGN_OR_RETURN(ResolvedRoute route, table_->Resolve(environment_, topic));
  std::lock_guard lock(mutex_);
  if (closed_) return FailedPreconditionError("client is closed");
  const ClusterConfig& cluster = *route.cluster;
  auto it = backends_.find(cluster.name);
  if (it == backends_.end()) {
    MSGSDK_ASSIGN_OR_RETURN(BackendFactory * factory, registry_->Find(cluster.backend));
    auto backend = factory->Create(cluster);
    if (!backend.ok()) {
      return backend.status().WithContext("cluster '" + cluster.name + "' (" + cluster.source +
                                          ")");
    }
    it = backends_.emplace(cluster.name, std::move(backend).value()).first;
  }
  return Binding{it->second, cluster.name, route.matched_by};
}

Result<std::shared_ptr<ProducerCore>> Engine::CreateProducer(std::string_view topic_view,
                                                             const ProducerOptions& options) {
  const std::string topic(topic_view);
  MSGSDK_RETURN_IF_ERROR(ValidateProducerTopic(topic));
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(topic));
  MSGSDK_ASSIGN_OR_RETURN(auto backend_producer, binding.backend->CreateProducer(topic));
  const auto timeout =
      options.send_timeout.count() > 0 ? options.send_timeout : settings().send_timeout;
  auto producer = std::make_shared<ProducerCore>(shared_from_this(), topic, binding.cluster,
                                                 binding.backend->capabilities(),
                                                 std::move(backend_producer), timeout);
  std::lock_guard lock(mutex_);
  if (closed_) return FailedPreconditionError("client is closed");
  std::erase_if(producers_, [](const auto& weak) { return weak.expired(); });
  producers_.push_back(producer);
  return producer;
}

Result<std::shared_ptr<SubscriptionCore>> Engine::Subscribe(std::string_view topic,
                                                            std::string_view group,
                                                            MessageHandler handler,
                                                            const SubscribeOptions& options) {
  if (!handler) {
    return InvalidArgumentError("subscription to topic '" + std::string(topic) +
                                "' has no handler");
  }
  return Subscribe(topic, group, SettleOnReturn(std::move(handler)), options);
}

Result<std::shared_ptr<SubscriptionCore>> Engine::Subscribe(std::string_view topic_view,
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
  auto positive_or = [](auto value, auto fallback) { return value > 0 ? value : fallback; };
  auto positive_duration_or = [](auto value, auto fallback) {
    return value.count() > 0 ? value : fallback;
  };
  if (options.consumer_threads < 0 || options.max_attempts < 0 || options.max_inflight < 0 ||
      options.retry_backoff.count() < 0 || options.retry_backoff_max.count() < 0) {
    return InvalidArgumentError("SubscribeOptions for topic '" + topic +
                                "': counts and durations must not be negative (0 means the "
                                "routing table's client setting)");
  }
  const ClientSettings& defaults = settings();
  SubscriptionSettings resolved{
      .threads = positive_or(options.consumer_threads, defaults.consumer_threads),
      .max_attempts = positive_or(options.max_attempts, defaults.max_attempts),
      .retry_backoff = positive_duration_or(options.retry_backoff, defaults.retry_backoff),
      .retry_backoff_max =
          positive_duration_or(options.retry_backoff_max, defaults.retry_backoff_max),
      .max_inflight = positive_or(options.max_inflight, defaults.max_inflight),
      .ordered = options.ordered,
      .close_timeout = defaults.close_timeout,
  };
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(topic));
  const Capabilities& capabilities = binding.backend->capabilities();
  if (options.mode == SubscriptionMode::kBroadcast && !capabilities.broadcast) {
    return UnsupportedError("topic '" + topic + "' is served by cluster '" + binding.cluster +
                            "' (backend " + capabilities.backend +
                            "), which does not support broadcast subscriptions");
  }
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
  auto subscription = std::make_shared<SubscriptionCore>(
      shared_from_this(), topic, group, binding.cluster, binding.backend, std::move(handler),
      std::move(filter), resolved);
  {
    std::lock_guard lock(mutex_);
    if (closed_) return FailedPreconditionError("client is closed");
    std::erase_if(subscriptions_, [](const auto& weak) { return weak.expired(); });
    subscriptions_.push_back(subscription);
  }
  MSGSDK_RETURN_IF_ERROR(subscription->Start(spec));
  return subscription;
}

Result<TopicRoute> Engine::Describe(std::string_view topic_view) {
  const std::string topic(topic_view);
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(topic));
  return TopicRoute{.topic = topic,
                    .environment = environment_,
                    .cluster = binding.cluster,
                    .matched_by = binding.matched_by,
                    .capabilities = binding.backend->capabilities()};
}

Status Engine::ResetOffsets(std::string_view topic_view, std::string_view group_view,
                            const ResetTarget& target) {
  const std::string topic(topic_view);
  const std::string group(group_view);
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  MSGSDK_RETURN_IF_ERROR(ValidateName("group", group));
  {
    std::lock_guard lock(mutex_);
    for (const auto& subscription : LiveOnly(subscriptions_)) {
      if (subscription->topic() == topic && subscription->group() == group) {
        return FailedPreconditionError("group '" + group + "' still has an open subscription to '" +
                                       topic + "' in this client; close it before resetting");
      }
    }
  }
  MSGSDK_ASSIGN_OR_RETURN(Binding binding, Bind(topic));
  return binding.backend->ResetOffsets(topic, group, target);
}

Status Engine::Close() {
  std::vector<std::shared_ptr<ProducerCore>> producers;
  std::vector<std::shared_ptr<SubscriptionCore>> subscriptions;
  std::map<std::string, BackendPtr> backends;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return OkStatus();
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
  }
  const auto deadline = std::chrono::steady_clock::now() + settings().close_timeout;
  for (auto& [name, backend] : backends) keep_first(backend->Close(deadline));
  timers_.Shutdown();
  if (!callback_pool_.IsPoolThread()) callback_pool_.Shutdown();
  return first;
}

}  // namespace msgsdk::core
