#pragma once

/// @file
/// The operator's side of moving a topic between clusters (docs/migration.md): reads and
/// advances a topic's `migrations:` entry in a routing file, one step at a time, and only when
/// the clients running that file are ready for it. Services never use this; `msgsdk migrate`
/// and the demo do.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "msgsdk/client.h"
#include "msgsdk/result.h"

namespace msgsdk {

/// Where a topic's migration stands, and what its next step waits for.
struct MigrationReport {
  std::string topic;
  std::string from;
  std::string to;
  /// "A", "dual_write", "cutover" or "B"; the generation its copies carry; the file's version.
  std::string phase;
  int64_t generation = 0;
  int64_t version = 0;
  /// Whether the entry holds the drain offsets of the cluster groups leave in this phase.
  bool drain_known = false;
  /// What Advance would do now: "write the drain offsets of 'a'", "move to cutover", ...
  std::string next;
  /// What keeps the next step from being taken (empty: nothing): clients not on the file's
  /// version, producers not settled, groups still draining (with what they have left).
  std::vector<std::string> waiting;
  /// Shadow copies the clients wrote and failed to write in this migration (a failure never
  /// fails a send and loses nothing: groups read the shadow cluster only after draining the
  /// primary; it says the shadow cluster did not take the load), and the last failure.
  int64_t shadow_sent = 0;
  int64_t shadow_failed = 0;
  std::string last_shadow_error;
  /// What the call changed ("wrote version 7: cutover, generation 3"); empty for Inspect.
  std::string done;
};

struct MigrationControllerOptions {
  /// The routing file the clients watch.
  std::string routing_file;
  /// The environment whose clusters the drain offsets are read from (empty: as a client
  /// would choose: MSGSDK_ENV, then the file's default_environment, then its only one).
  std::string environment;
};

/// What every client connected to the routing push service at `address` reports
/// (`msgsdk-sidecar --serve-routing`; its ListClients): the reports the controller's steps
/// judge by. kUnavailable if the service does not answer.
Result<std::vector<RoutingState>> RoutingServiceReports(const std::string& address);

/// Thread-safety: one call at a time.
class MigrationController {
 public:
  static Result<MigrationController> Open(MigrationControllerOptions options);

  MigrationController(MigrationController&&) noexcept;
  MigrationController& operator=(MigrationController&&) noexcept;
  ~MigrationController();

  /// `clients`: what every live client running the file reports (Client::Routing()).
  Result<MigrationReport> Inspect(std::string_view topic, const std::vector<RoutingState>& clients);
  /// Takes the next step if nothing waits: writes the drain offsets of the cluster groups
  /// leave (once every producer is settled), or moves A -> dual_write -> cutover -> B.
  /// kFailedPrecondition listing what it waits for otherwise.
  Result<MigrationReport> Advance(std::string_view topic, const std::vector<RoutingState>& clients);
  /// Takes a step back: dual_write -> A, cutover -> dual_write (B is final).
  Result<MigrationReport> Rollback(std::string_view topic,
                                   const std::vector<RoutingState>& clients);

 private:
  struct Impl;
  explicit MigrationController(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace msgsdk
