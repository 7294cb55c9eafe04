#pragma once

/// @file
/// Options for the client, producers and subscriptions. Plain structs with in-class
/// defaults: set what you need with designated initialisers, leave the rest.
/// Durations are std::chrono types; a zero duration or count means "use the routing
/// table's `client:` setting" unless a field says otherwise.

#include <chrono>
#include <cstdint>
#include <string>

namespace msgsdk {

/// How a Client finds its configuration.
struct ClientOptions {
  /// Path of the routing-table YAML file. Empty: the MSGSDK_CONFIG environment variable;
  /// if that is unset too, the built-in default (an embedded native cluster in `data_dir`).
  std::string config_path;
  /// The routing table as YAML text (tests and embedding); takes precedence over config_path.
  std::string config_yaml;
  /// Environment to resolve topics in. Empty: MSGSDK_ENV, then the file's
  /// `default_environment`, then its only environment.
  std::string environment;
  /// Data directory of the built-in default embedded cluster (used only when there is no
  /// configuration at all). Empty: MSGSDK_DATA_DIR, then "./msgsdk-data".
  std::string data_dir;
  /// A name for this client in logs and broadcast member ids. Empty: "<hostname>-<pid>".
  std::string client_id;
  /// Use the msgsdk-sidecar at this address ("host:port" or "unix:/path") instead of
  /// connecting to clusters from this process; the sidecar holds the routing table. Empty:
  /// MSGSDK_SIDECAR; when that is unset too, the client runs in process.
  std::string sidecar;
  /// Take the routing table from the routing push service at this address ("host:port" or
  /// "unix:/path"; `msgsdk-sidecar --serve-routing`) instead of a file: the client runs in
  /// process and applies every version the service pushes, answering each with an ACK or a
  /// NACK. Client::Create waits up to 5 s for the first version (less when the service is
  /// unreachable and a cached version exists). Excludes config_path and config_yaml. Empty:
  /// MSGSDK_ROUTING_SERVICE; when that is unset too, the routing table comes from a file or the
  /// built-in default. A sidecar (above) takes precedence over both.
  std::string routing_service;
  /// Directory of the on-disk cache of the last version the routing service sent and this
  /// client applied (the file "snapshot.yaml", replaced atomically): a client that cannot reach
  /// the service starts from it. Empty: MSGSDK_ROUTING_CACHE, then "<data_dir>/routing-cache"
  /// (data_dir as above). Used only with a routing service.
  std::string routing_cache_dir;
};

/// Options of one producer.
struct ProducerOptions {
  /// How long Send waits for the cluster to acknowledge. 0: the table's `send_timeout_ms`.
  std::chrono::milliseconds send_timeout{0};
};

/// How a group shares a topic's messages.
enum class SubscriptionMode {
  /// Each message goes to one member of the group.
  kClustering,
  /// Each member receives every message (offsets kept per member).
  kBroadcast,
};

/// Where a group with no committed offset starts reading.
enum class StartPosition {
  /// The oldest retained message.
  kEarliest,
  /// Only messages stored after the subscription starts.
  kLatest,
};

/// Options of one subscription.
struct SubscribeOptions {
  SubscriptionMode mode = SubscriptionMode::kClustering;
  /// When true, messages with the same non-empty key are handled one at a time, in send
  /// order, also across retries (a retrying key holds back only its own later messages).
  bool ordered = false;
  /// Tag filter: "*" (everything), or tags joined by "||", e.g. "created || paid".
  std::string tag_filter = "*";
  /// Where a new group starts.
  StartPosition start_from = StartPosition::kEarliest;
  /// Handler threads for this subscription. 0: the table's `consumer_threads`.
  int consumer_threads = 0;
  /// Deliveries before a message goes to the dead-letter topic. 0: the table's `max_attempts`.
  int max_attempts = 0;
  /// First retry delay; doubles per attempt up to retry_backoff_max. 0: the table's setting.
  std::chrono::milliseconds retry_backoff{0};
  /// Upper bound of the retry delay. 0: the table's setting.
  std::chrono::milliseconds retry_backoff_max{0};
  /// Unacknowledged deliveries held at most; fetching pauses beyond it. 0: the table's setting.
  int max_inflight = 0;
  /// Stable member name for broadcast mode, so a restarted member resumes its own offsets.
  /// Empty: the client id (which defaults to "<hostname>-<pid>", new after each restart).
  std::string instance_id;
};

}  // namespace msgsdk
