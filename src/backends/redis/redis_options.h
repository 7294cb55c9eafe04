#pragma once

// The settings of one redis cluster entry, and the property table that validates them.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "msgsdk/result.h"

namespace msgsdk::redis {

// Where a server listens: TCP host and port, or a Unix socket path.
struct Endpoint {
  std::string host;
  int port = 0;
  // Set for "unix:/path/to/redis.sock" endpoints (host and port unused).
  std::string unix_path;

  // "host:port" or "unix:/path".
  std::string ToString() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// "127.0.0.1:6379", "redis.internal:6380", "[::1]:6379" or "unix:/run/redis.sock".
// kInvalidArgument naming `what` (the property) if malformed.
Result<Endpoint> ParseEndpoint(std::string_view text, std::string_view what);

// Every setting of a redis cluster entry, typed. Durations are milliseconds.
struct RedisOptions {
  // Routing-table name of the cluster, and where it was defined (for messages).
  std::string cluster;
  std::string source;
  // `endpoint` first, then `endpoints` in order.
  std::vector<Endpoint> endpoints;
  std::string user;
  std::string password;
  int database = 0;
  int32_t partitions = 4;
  std::string key_prefix = "msgsdk";
  // Approximate MAXLEN per stream; 0: streams are never trimmed.
  int64_t maxlen = 0;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{3000};
  std::chrono::milliseconds block{2000};
  std::chrono::milliseconds claim_idle{30000};
  int read_batch = 256;
  int pipeline_depth = 256;
  int backlog_warn_percent = 80;
  std::chrono::milliseconds backlog_check_interval{5000};
  // Clustering subscriptions: true (exclusive) gives each stream to one member of the group
  // at a time, which keeps per-key order across members; false (shared) lets every member
  // read every stream and Redis spread the entries.
  bool exclusive_streams = true;
  // Exclusive streams: how long a member keeps a stream without renewing its lease.
  std::chrono::milliseconds lease{10000};
};

// The property table of the "redis" backend (names, types, defaults, ranges, descriptions).
const core::PropertyTable& RedisPropertyTable();

// Builds the options of a validated cluster entry. Absent properties take the table's
// defaults; endpoints are parsed here (kInvalidArgument naming cluster, source and property).
Result<RedisOptions> ParseRedisOptions(const core::ClusterConfig& config);

}  // namespace msgsdk::redis
