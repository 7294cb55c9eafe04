#pragma once

// The routing table: which cluster serves a topic in an environment, and the client settings.
// Parsed from YAML, validated as a whole (every error names the source, line, column and
// field), immutable afterwards: a new version is a new RoutingTable swapped in atomically.
//
// Schema (docs/configuration.md is the reference):
//   version: 7                         # optional integer, informational
//   default_environment: dev           # optional
//   environments:
//     <env>:
//       clusters:
//         <cluster>: { backend: native|kafka|redis, <backend properties...> }
//       topics:
//         <topic or glob>: { cluster: <cluster> }     # or the short form  <topic>: <cluster>
//       default_cluster: <cluster>      # optional
//   migrations:                        # optional; the phases take effect with the migration
//     <topic>: { from: <cluster>, to: <cluster>, phase: A|dual_write|cutover|B }   # controller
//   client: { send_timeout_ms: 3000, consumer_threads: 4, ... }   # optional, see ClientSettings
//   transport: { sidecar: "unix:/run/msgsdk/sidecar.sock" }   # optional: clients use the sidecar
//
// Errors: every problem of the document is reported, one per line joined by "\n" (at most
// kMaxReportedErrors, then a line counting the rest), in document order, each as
// "source:line:col: field.path: what is wrong (hint)". The code is kInvalidArgument.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend_registry.h"
#include "core/cluster_config.h"
#include "msgsdk/result.h"

namespace msgsdk::core {

// The `client:` section. Every field has a default, a unit and a range (ClientSettingsTable()
// is the authoritative list, in the same order; the YAML names end in "_ms" for durations).
struct ClientSettings {
  std::chrono::milliseconds send_timeout{3000};        // 1 .. 600000
  int consumer_threads = 4;                            // 1 .. 256
  int max_attempts = 16;                               // 1 .. 1000
  std::chrono::milliseconds retry_backoff{100};        // 1 .. 3600000, doubles per attempt
  std::chrono::milliseconds retry_backoff_max{30000};  // 1 .. 86400000
  int max_inflight = 2000;                             // 1 .. 1000000, per subscription
  int64_t max_message_bytes = 4 << 20;                 // 1 .. 256 MiB (accepts KiB/MiB suffixes)
  std::chrono::milliseconds close_timeout{10000};      // 1 .. 600000
  int callback_threads = 2;                            // 1 .. 64, SendAsync callbacks

  friend bool operator==(const ClientSettings&, const ClientSettings&) = default;
};

// The property table of the `client:` section: names, types, defaults and ranges of
// ClientSettings. Validated by the same code as cluster entries; feeds the reference docs.
const PropertyTable& ClientSettingsTable();

// Validated `client:` properties (as ValidateProperties returns them) as ClientSettings, with
// the cross-field checks (retry_backoff_ms <= retry_backoff_max_ms). `path` and `location`
// name the section in errors.
Result<ClientSettings> ClientSettingsFromProperties(
    const std::map<std::string, std::string>& properties, const std::string& path = "client",
    const std::string& location = {});

// The steps of moving a topic from cluster `from` to cluster `to` (docs/configuration.md).
enum class MigrationPhase {
  kA,          // "A": `from` only
  kDualWrite,  // "dual_write": `from` primary, `to` shadow
  kCutover,    // "cutover": `to` primary, `from` drained behind fences
  kB,          // "B": `to` only
};

// "A", "dual_write", "cutover", "B".
std::string_view MigrationPhaseName(MigrationPhase phase);

// One `migrations:` entry (docs/migration.md). It applies in every environment that defines
// both clusters, and there it decides the topic's route, whatever the topic rules say.
struct MigrationConfig {
  std::string topic;
  std::string from;
  std::string to;
  MigrationPhase phase = MigrationPhase::kA;
  // Stamped on every copy written in this phase; the controller raises it at every step.
  int64_t generation = 0;
  // Partition -> the last primary offset of the cluster consumers leave in this phase (`from`
  // in cutover and B, `to` in A and dual_write after a rollback): where they may leave it.
  // Empty until every producer reported where its primary copies there ended.
  std::map<int32_t, int64_t> drain;
  std::string source;  // "file:line:col"

  friend bool operator==(const MigrationConfig&, const MigrationConfig&) = default;
};

// One `topics:` entry.
struct TopicRule {
  std::string pattern;  // a topic name, or a glob with * and ?
  std::string cluster;
  bool is_glob = false;
  std::string source;  // "file:line:col"
};

struct EnvironmentConfig {
  std::string name;
  std::map<std::string, ClusterConfig> clusters;
  std::vector<TopicRule> topics;  // in file order
  std::string default_cluster;    // empty: none
};

// The answer to "which cluster serves this topic". The pointers point into the RoutingTable
// that produced it: hold the table (its shared_ptr) as long as the route is used.
struct ResolvedRoute {
  const EnvironmentConfig* environment = nullptr;
  // Where messages go (during a migration: the primary, whose ack completes a send).
  const ClusterConfig* cluster = nullptr;
  // The topic itself, the glob that matched ("sms-*"), "default_cluster", or
  // "migration (<phase>)".
  std::string matched_by;
  // The `topics:` entry that matched; nullptr when the route is the default_cluster.
  const TopicRule* rule = nullptr;
  // The topic's migration in this environment, or null. During one, `shadow` (dual_write,
  // cutover) also gets a copy of every message, `read` is where subscriptions read, and
  // `leave` (the other cluster) is where they may still have to drain first.
  const MigrationConfig* migration = nullptr;
  const ClusterConfig* shadow = nullptr;
  const ClusterConfig* read = nullptr;
  const ClusterConfig* leave = nullptr;
};

// Thread-safety: immutable after Parse/LoadFile/Default; any method may be called concurrently.
class RoutingTable {
 public:
  // At most this many errors are listed in a Parse failure.
  static constexpr size_t kMaxReportedErrors = 20;

  // Parses and validates `yaml`. `source` names it in errors ("routing.yaml").
  // Backend names and cluster properties are checked against `registry`'s property tables.
  static Result<std::shared_ptr<const RoutingTable>> Parse(std::string_view yaml,
                                                           const std::string& source,
                                                           const BackendRegistry& registry);
  // Reads and parses a file (kNotFound / kPermissionDenied naming the path if unreadable).
  // Errors name the file by `path` as given.
  static Result<std::shared_ptr<const RoutingTable>> LoadFile(const std::string& path,
                                                              const BackendRegistry& registry);
  // LoadFile's first half: the file's text, with the same errors.
  static Result<std::string> ReadFile(const std::string& path);
  // The built-in table used when there is no configuration at all: environment "local",
  // one embedded native cluster "embedded" storing in `data_dir` (empty: "./msgsdk-data"),
  // default for every topic. The cluster is validated through the registry's "native" property
  // table so its defaults are filled; without a "native" factory it has just
  // {embedded: true, data_dir}.
  static std::shared_ptr<const RoutingTable> Default(const std::string& data_dir,
                                                     const BackendRegistry& registry);

  int64_t version() const { return version_; }
  const std::string& source() const { return source_; }
  const ClientSettings& client_settings() const { return client_; }
  const std::map<std::string, EnvironmentConfig>& environments() const { return environments_; }
  // Empty when the file has none.
  const std::string& default_environment() const { return default_environment_; }
  // `transport.sidecar`: the msgsdk-sidecar that clients loading this table talk to (empty:
  // they run in process). Read once, when a client is created.
  const std::string& sidecar() const { return sidecar_; }
  // Topic -> its migration entry.
  const std::map<std::string, MigrationConfig>& migrations() const { return migrations_; }

  // The environment to use: `requested` if not empty, else default_environment, else the
  // only one. kNotFound listing the environments otherwise. (The caller passes
  // ClientOptions.environment, or else MSGSDK_ENV, as `requested`.)
  Result<const EnvironmentConfig*> ChooseEnvironment(const std::string& requested) const;

  // Exact topic entry first; then the matching glob with the most literal (non-wildcard)
  // characters, ties going to the earlier entry; then default_cluster. kNotFound naming
  // topic and environment when nothing matches. `environment` goes through ChooseEnvironment
  // (empty: the default one). kInvalidArgument for an invalid topic name.
  Result<ResolvedRoute> Resolve(const std::string& environment, const std::string& topic) const;

 private:
  int64_t version_ = 0;
  std::string source_;
  std::string default_environment_;
  std::map<std::string, EnvironmentConfig> environments_;
  std::map<std::string, MigrationConfig> migrations_;
  ClientSettings client_;
  std::string sidecar_;

  friend class RoutingTableParser;
};

}  // namespace msgsdk::core
