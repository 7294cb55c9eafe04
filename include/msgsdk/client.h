#pragma once

/// @file
/// Client: the entry point. Say a topic and a group; the routing table decides the rest.

#include <memory>
#include <string>
#include <string_view>

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

  /// The environment this client resolves topics in.
  const std::string& environment() const;

  /// Closes every producer and subscription made from this client, then the connections.
  /// Idempotent and bounded in time.
  Status Close();

 private:
  explicit Client(std::shared_ptr<internal::ClientTransport> transport);
  std::shared_ptr<internal::ClientTransport> transport_;
};

}  // namespace msgsdk
