#include "backends/redis/redis_options.h"

#include <charconv>
#include <string>

namespace msgsdk::redis {
namespace {

using core::PropertySpec;
using Type = core::PropertySpec::Type;

PropertySpec Spec(std::string name, Type type, std::string default_value, int64_t min, int64_t max,
                  std::string description, bool required = false,
                  std::vector<std::string> allowed = {}) {
  PropertySpec spec;
  spec.allowed = std::move(allowed);
  spec.name = std::move(name);
  spec.type = type;
  spec.default_value = std::move(default_value);
  spec.required = required;
  spec.min = min;
  spec.max = max;
  spec.description = std::move(description);
  return spec;
}

core::PropertyTable BuildTable() {
  constexpr int64_t kMinInt = INT64_MIN;
  constexpr int64_t kMaxInt = INT64_MAX;
  core::PropertyTable table;
  table.push_back(Spec("endpoint", Type::kString, "", kMinInt, kMaxInt,
                       "The Redis server as \"host:port\" (or \"unix:/path/to/redis.sock\"); "
                       "a standalone server or the primary of a replicated set.",
                       /*required=*/true));
  table.push_back(Spec("endpoints", Type::kList, "", kMinInt, kMaxInt,
                       "Further servers tried in order when `endpoint` is unreachable or is a "
                       "read-only replica (after a failover); only a primary is used."));
  table.push_back(Spec("user", Type::kString, "", kMinInt, kMaxInt,
                       "ACL user name (Redis >= 6) for AUTH; empty: the default user."));
  table.push_back(Spec("password", Type::kString, "", kMinInt, kMaxInt,
                       "Password for AUTH; empty: no authentication."));
  table.push_back(Spec("database", Type::kInt, "0", 0, 1 << 20,
                       "Logical database number selected with SELECT after connecting."));
  table.push_back(Spec("partitions", Type::kInt, "4", 1, 1024,
                       "Streams per topic (\"<key_prefix>:<topic>:<n>\"); messages with a key "
                       "always go to the same stream. Every client of a topic must agree."));
  table.push_back(Spec("key_prefix", Type::kString, "msgsdk", kMinInt, kMaxInt,
                       "Prefix of every stream key the backend reads or writes."));
  table.push_back(Spec("maxlen", Type::kInt, "0", 0, kMaxInt,
                       "Approximate length each stream is trimmed to on every write "
                       "(XADD MAXLEN ~); 0: never trimmed. Trimmed entries are gone even if "
                       "a group has not read them: watch the backlog warnings."));
  table.push_back(Spec("connect_timeout_ms", Type::kDuration, "2000", 1, 600000,
                       "Time allowed to establish a connection (and authenticate)."));
  table.push_back(Spec("command_timeout_ms", Type::kDuration, "3000", 1, 600000,
                       "Time allowed for a reply; also how long a send waits for a "
                       "connection to be re-established before it fails with UNAVAILABLE."));
  table.push_back(Spec("block_ms", Type::kDuration, "2000", 1, 600000,
                       "Longest wait of one XREADGROUP BLOCK long poll when no entry arrives."));
  table.push_back(Spec("claim_idle_ms", Type::kDuration, "30000", 10, 86400000,
                       "Pending entries idle this long (their consumer crashed or hung) are "
                       "taken over by another member of the group with XAUTOCLAIM."));
  table.push_back(Spec("stream_assignment", Type::kEnum, "exclusive", kMinInt, kMaxInt,
                       "How the members of a clustering group share a topic's streams: "
                       "\"exclusive\" gives each stream to one member at a time (per-key order "
                       "holds across members; at most `partitions` members read), \"shared\" "
                       "lets every member read every stream (per-key order only within one "
                       "member).",
                       /*required=*/false, {"exclusive", "shared"}));
  table.push_back(Spec("lease_ms", Type::kDuration, "10000", 100, 600000,
                       "Exclusive streams: a member that stops renewing its streams (crashed) "
                       "loses them after this long; leases and membership are renewed every "
                       "third of it."));
  table.push_back(Spec("read_batch", Type::kInt, "256", 1, 100000,
                       "Entries read per stream with one XREADGROUP (COUNT)."));
  table.push_back(Spec("pipeline_depth", Type::kInt, "256", 1, 100000,
                       "XADD commands written at once (one pipelined write); the writer keeps "
                       "up to two such writes waiting for their replies."));
  table.push_back(Spec("backlog_warn_percent", Type::kInt, "80", 1, 100,
                       "Warn when a group's unread plus unacknowledged entries reach this "
                       "percentage of `maxlen` (entries would be trimmed before being read)."));
  table.push_back(Spec("backlog_check_ms", Type::kDuration, "5000", 10, 86400000,
                       "How often group backlogs are compared with `maxlen` (only when "
                       "maxlen > 0)."));
  return table;
}

const PropertySpec& Find(const core::PropertyTable& table, std::string_view name) {
  for (const PropertySpec& spec : table) {
    if (spec.name == name) return spec;
  }
  // Only called with names of the table above.
  static const PropertySpec kNone;
  return kNone;
}

int64_t DefaultInt(std::string_view name) {
  const std::string& text = Find(RedisPropertyTable(), name).default_value;
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

bool IsDigits(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string Endpoint::ToString() const {
  if (!unix_path.empty()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<Endpoint> ParseEndpoint(std::string_view text, std::string_view what) {
  const auto invalid = [&](std::string_view why) {
    return InvalidArgumentError(std::string(what) + " '" + std::string(text) + "' " +
                                std::string(why) +
                                R"x( (expected "host:port" or "unix:/path/to/socket"))x");
  };
  Endpoint endpoint;
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.starts_with("//")) path.remove_prefix(2);
    if (path.empty() || path[0] != '/') return invalid("needs an absolute socket path");
    endpoint.unix_path = std::string(path);
    return endpoint;
  }
  std::string_view host;
  std::string_view port;
  if (text.starts_with("[")) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid("has a malformed [IPv6]:port form");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("has no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return invalid("needs brackets around IPv6");
  }
  if (host.empty()) return invalid("has no host");
  if (!IsDigits(port) || port.size() > 5) return invalid("has an invalid port");
  int port_number = 0;
  std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port_number < 1 || port_number > 65535) return invalid("has a port outside 1..65535");
  endpoint.host = std::string(host);
  endpoint.port = port_number;
  return endpoint;
}

const core::PropertyTable& RedisPropertyTable() {
  static const core::PropertyTable kTable = BuildTable();
  return kTable;
}

Result<RedisOptions> ParseRedisOptions(const core::ClusterConfig& config) {
  RedisOptions options;
  options.cluster = config.name;
  options.source = config.source;
  const std::string context = "redis cluster '" + config.name + "'" +
                              (config.source.empty() ? std::string() : " (" + config.source + ")");

  const std::string endpoint = config.GetString("endpoint");
  if (endpoint.empty()) {
    return InvalidArgumentError(context + ": `endpoint` is required (\"host:port\")");
  }
  auto first = ParseEndpoint(endpoint, "endpoint");
  if (!first.ok()) return first.status().WithContext(context);
  options.endpoints.push_back(*first);
  for (const std::string& extra : config.GetList("endpoints")) {
    if (extra.empty()) continue;
    auto parsed = ParseEndpoint(extra, "endpoints entry");
    if (!parsed.ok()) return parsed.status().WithContext(context);
    bool duplicate = false;
    for (const Endpoint& known : options.endpoints) duplicate = duplicate || known == *parsed;
    if (!duplicate) options.endpoints.push_back(*parsed);
  }

  const auto ms = [&](const char* name) {
    return config.GetDuration(name, std::chrono::milliseconds(DefaultInt(name)));
  };
  const auto integer = [&](const char* name) { return config.GetInt(name, DefaultInt(name)); };

  options.user = config.GetString("user");
  options.password = config.GetString("password");
  options.database = static_cast<int>(integer("database"));
  options.partitions = static_cast<int32_t>(integer("partitions"));
  options.key_prefix = config.GetString("key_prefix", "msgsdk");
  options.maxlen = integer("maxlen");
  options.connect_timeout = ms("connect_timeout_ms");
  options.command_timeout = ms("command_timeout_ms");
  options.block = ms("block_ms");
  options.claim_idle = ms("claim_idle_ms");
  options.read_batch = static_cast<int>(integer("read_batch"));
  options.pipeline_depth = static_cast<int>(integer("pipeline_depth"));
  options.backlog_warn_percent = static_cast<int>(integer("backlog_warn_percent"));
  options.backlog_check_interval = ms("backlog_check_ms");
  options.lease = ms("lease_ms");
  const std::string assignment = config.GetString("stream_assignment", "exclusive");
  if (assignment != "exclusive" && assignment != "shared") {
    return InvalidArgumentError(context + ": `stream_assignment` is '" + assignment +
                                R"x(' (expected "exclusive" or "shared"))x");
  }
  options.exclusive_streams = assignment == "exclusive";

  // The table checks ranges when the routing table is parsed; a ClusterConfig built by hand
  // (tests, embedding) is checked here so the backend never runs with nonsense values.
  for (const core::PropertySpec& spec : RedisPropertyTable()) {
    if (spec.type != Type::kInt && spec.type != Type::kDuration) continue;
    const int64_t value =
        spec.type == Type::kInt ? integer(spec.name.c_str()) : ms(spec.name.c_str()).count();
    if (value < spec.min || value > spec.max) {
      return InvalidArgumentError(context + ": `" + spec.name + "` is " + std::to_string(value) +
                                  ", outside " + std::to_string(spec.min) + ".." +
                                  std::to_string(spec.max));
    }
  }
  if (options.key_prefix.empty()) {
    return InvalidArgumentError(context + ": `key_prefix` is empty");
  }
  return options;
}

}  // namespace msgsdk::redis
