#pragma once

/// @file
/// Client: the entry point. Say a topic and a group; the routing table decides the rest.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "msgsdk/capabilities.h"
#include "msgsdk/message.h"
#include "msgsdk/options.h"
#include "msgsdk/producer.h"
#include "msgsdk/result.h"
#include "msgsdk/subscription.h"

namespace msgsdk {

namespace internal {
class ClientTransport;
}

/// Where a topic resolves, and why (Client::Describe).
struct TopicRoute {
  std::string topic;
  std::string environment;
  std::string cluster;
  /// The routing-table entry that matched: the topic itself, a glob such as "sms-*",
  /// or "default_cluster".
  std::string matched_by;
  Capabilities capabilities;
};

/// What a client does in one topic's migration (docs/migration.md): what the migration
/// controller waits for before the next step.
struct MigrationProgress {
  std::string topic;
  /// "A", "dual_write", "cutover" or "B", and the generation its copies are stamped with.
  std::string phase;
  int64_t generation = 0;
  /// Producers of the topic in this client.
  int64_t producers = 0;
  /// Every one of them writes as the phase says, and nothing it sent where the phase no longer
  /// writes primary copies is still in flight (the producer side of a fence).
  bool producers_settled = false;
  /// Shadow copies written and failed (a failed shadow never fails a send; B is then missing
  /// a copy, which matters only for messages a group has not consumed on A before cutover).
  int64_t shadow_sent = 0;
  int64_t shadow_failed = 0;
  std::string last_shadow_error;
  /// Subscriptions still reading the cluster the topic leaves, and what they wait for.
  std::vector<std::string> draining;
};

/// The routing version a client runs, and what became of the versions it was offered
/// (Client::Routing). A routing file is watched, and a routing push service followed: a valid
/// change applies within a second.
struct RoutingState {
  /// The client's name (ClientOptions.client_id, else host and process id; a sidecar's
  /// --client-id through a sidecar).
  std::string client;
  /// The running table's `version:` (0 when the file has none).
  int64_t version = 0;
  /// Where the running table came from: the file's path, "<ClientOptions.config_yaml>",
  /// "<built-in default>", "routing service ADDRESS: FILE" (a push service and the file it
  /// serves) or the path of the routing service's cache.
  std::string source;
  /// Versions applied since the client started, the first one included.
  int64_t applied = 0;
  /// Versions refused: invalid, unreadable, or leaving a topic in use without a route.
  int64_t rejected = 0;
  /// Why the last refused version was refused; empty if none was.
  std::string last_rejection;
  /// Producers and subscriptions not yet moved to the running version, and why (the move is
  /// retried until it succeeds; they keep working on their previous route meanwhile).
  std::string pending;
  /// Every migrating topic this client produces to or subscribes to.
  std::vector<MigrationProgress> migrations;
};

/// Where Client::ResetOffsets moves a group.
struct ResetTarget {
  enum class Kind { kEarliest, kLatest, kTimestamp };
  Kind kind = Kind::kEarliest;
  /// For kTimestamp: the first message stored at or after this time.
  Timestamp timestamp{};
};

/// A messaging client. Create one per process and share it; producers and subscriptions
/// made from it stay valid until the client is closed.
/// Thread-safety: all methods may be called concurrently. Move-only handle; destroying it
/// closes it.
class Client {
 public:
  /// Loads and validates the routing table, then returns a started client.
  static Result<Client> Create(ClientOptions options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  /// A producer for `topic`, resolved through the routing table.
  Result<Producer> CreateProducer(std::string_view topic, ProducerOptions options = {});

  /// Starts calling `handler` for the messages of `topic` in consumer group `group`.
  Result<Subscription> Subscribe(std::string_view topic, std::string_view group,
                                 MessageHandler handler, SubscribeOptions options = {});

  /// Where `topic` resolves in this client's environment, and what its backend can do.
  Result<TopicRoute> Describe(std::string_view topic) const;

  /// Moves `group`'s committed position on `topic`. Subscriptions of that group in this
  /// process must be closed first (kFailedPrecondition otherwise).
  Status ResetOffsets(std::string_view topic, std::string_view group, ResetTarget target);

  /// The routing version this client runs and the fate of the versions it was offered
  /// (through a sidecar: the sidecar's, kUnavailable when it does not answer).
  Result<RoutingState> Routing() const;

  /// The environment this client resolves topics in.
  const std::string& environment() const;

  /// Closes every producer and subscription made from this client, then the connections.
  /// Idempotent and bounded in time; a later call waits for a close under way. Called from a
  /// subscription's handler or a SendAsync callback (of this client or another), it returns
  /// OK at once and the close goes on once the running handlers and callbacks have returned
  /// (closing waits for them).
  Status Close();

 private:
  explicit Client(std::shared_ptr<internal::ClientTransport> transport);
  std::shared_ptr<internal::ClientTransport> transport_;
};

}  // namespace msgsdk
