#include "core/routing/routing_table.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "core/names.h"
#include "core/routing/diagnostics.h"

namespace msgsdk::core {
namespace {

using diagnostics::ClosestMatch;
using diagnostics::DidYouMean;
using diagnostics::FieldPath;
using diagnostics::FormatError;
using diagnostics::JoinNames;
using diagnostics::Quote;

// A routing table is a few kilobytes; anything this large is the wrong file.
constexpr size_t kMaxFileBytes = 16 << 20;

constexpr std::string_view kBuiltInSource = "built-in default";
constexpr std::string_view kDefaultDataDir = "./msgsdk-data";

const std::vector<std::string>& TopLevelKeys() {
  static const auto* keys = new std::vector<std::string>{
      "version", "default_environment", "environments", "migrations", "client", "transport"};
  return *keys;
}

const std::vector<std::string>& EnvironmentKeys() {
  static const auto* keys = new std::vector<std::string>{"clusters", "topics", "default_cluster"};
  return *keys;
}

const std::vector<std::string>& TopicKeys() {
  static const auto* keys = new std::vector<std::string>{"cluster"};
  return *keys;
}

const std::vector<std::string>& MigrationKeys() {
  static const auto* keys =
      new std::vector<std::string>{"from", "to", "phase", "generation", "drain"};
  return *keys;
}

const std::vector<std::string>& RequiredMigrationKeys() {
  static const auto* keys = new std::vector<std::string>{"from", "to", "phase"};
  return *keys;
}

const std::vector<std::string>& PhaseNames() {
  static const auto* names = new std::vector<std::string>{"A", "dual_write", "cutover", "B"};
  return *names;
}

bool IsGlob(std::string_view pattern) {
  return pattern.find_first_of("*?") != std::string_view::npos;
}

size_t LiteralCount(std::string_view pattern) {
  return static_cast<size_t>(
      std::count_if(pattern.begin(), pattern.end(), [](char c) { return c != '*' && c != '?'; }));
}

// Topic names as names.h defines them; globs may also use * and ?.
Status ValidateTopicPattern(std::string_view pattern) {
  if (!IsGlob(pattern)) return ValidateName("topic", pattern);
  if (pattern.size() > kMaxNameLength) {
    return InvalidArgumentError("topic glob " + Quote(pattern) + " is " +
                                std::to_string(pattern.size()) + " characters long (at most " +
                                std::to_string(kMaxNameLength) + ")");
  }
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '*' || c == '?';
    if (!ok) {
      return InvalidArgumentError("topic glob " + Quote(pattern) +
                                  " has an invalid character at position " + std::to_string(i) +
                                  " (allowed: letters, digits, '.', '_', '-', '*', '?')");
    }
  }
  return OkStatus();
}

std::optional<int64_t> ParseInt64(std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

std::string KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return "the scalar " + Quote(node.Scalar());
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "no value";
  }
  return "an unknown node";
}

// strerror without its shared buffer.
std::string ErrnoText(int error) { return std::generic_category().message(error); }

std::optional<MigrationPhase> ParsePhase(std::string_view name) {
  if (name == "A") return MigrationPhase::kA;
  if (name == "dual_write") return MigrationPhase::kDualWrite;
  if (name == "cutover") return MigrationPhase::kCutover;
  if (name == "B") return MigrationPhase::kB;
  return std::nullopt;
}

}  // namespace

// Walks the YAML document once, in document order, collecting every error. Cross references
// (topics -> clusters, default_environment -> environments) are checked against names
// gathered by a tolerant first pass, so errors still come out in document order and a broken
// cluster entry does not also make every topic that uses it "unknown".
class RoutingTableParser {
 public:
  RoutingTableParser(std::string source, const BackendRegistry& registry)
      : source_(std::move(source)), registry_(registry), table_(new RoutingTable()) {}

  Result<std::shared_ptr<const RoutingTable>> Parse(std::string_view yaml) {
    std::vector<YAML::Node> documents;
    try {
      documents = YAML::LoadAll(std::string(yaml));
    } catch (const YAML::Exception& e) {
      return InvalidArgumentError(FormatError(Where(e.mark), "", "invalid YAML: " + e.msg));
    }
    if (documents.empty() || documents[0].IsNull()) {
      return InvalidArgumentError(
          FormatError(source_, "", "the routing table is empty: 'environments' is required"));
    }
    if (documents.size() > 1) {
      Error(documents[1].Mark(), "",
            "a routing table is one YAML document, this file has " +
                std::to_string(documents.size()) + " (remove the '---' separators)");
    }
    const YAML::Node& root = documents[0];
    if (!root.IsMap()) {
      Error(root.Mark(), "",
            "expected a map with 'environments' at the top level, got " + KindName(root));
      return Finish();
    }
    CollectNames(root);
    bool saw_environments = false;
    for (const Item& item : Entries(root, "", &TopLevelKeys())) {
      if (item.key == "version") {
        ParseVersion(item);
      } else if (item.key == "default_environment") {
        ParseDefaultEnvironment(item);
      } else if (item.key == "environments") {
        saw_environments = true;
        ParseEnvironments(item);
      } else if (item.key == "migrations") {
        ParseMigrations(item);
      } else if (item.key == "client") {
        ParseClient(item);
      } else if (item.key == "transport") {
        ParseTransport(item);
      }
    }
    // A file that only sends its clients to a sidecar needs no environments: the sidecar's
    // table resolves their topics.
    if (!saw_environments && table_->sidecar_.empty()) {
      Error(root.Mark(), "",
            "missing required key 'environments' (or 'transport: { sidecar: ADDRESS }')");
    }
    return Finish();
  }

 private:
  static constexpr int kNoPosition = INT_MAX;
  // Far above any real table: property values are a handful of scalars per cluster.
  static constexpr size_t kMaxRawNodes = 100000;

  struct ErrorLine {
    int line;  // 1-based; kNoPosition sorts last
    int column;
    std::string text;
  };

  // One `key: value` of a YAML map.
  struct Item {
    std::string key;
    YAML::Node value;
    YAML::Mark key_mark;
    // Where the value starts; the key's position when there is no value.
    YAML::Mark value_mark;
  };

  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return source_;
    return source_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  void Error(const YAML::Mark& mark, const std::string& path, const std::string& message) {
    if (mark.is_null()) {
      errors_.push_back(ErrorLine{kNoPosition, kNoPosition, FormatError(source_, path, message)});
    } else {
      errors_.push_back(
          ErrorLine{mark.line + 1, mark.column + 1, FormatError(Where(mark), path, message)});
    }
  }

  // Takes over the lines of a validation error, which start with a location of ours.
  void Errors(const Status& status) {
    const std::string& message = status.message();
    size_t start = 0;
    while (start <= message.size()) {
      const size_t newline = message.find('\n', start);
      const size_t end = newline == std::string::npos ? message.size() : newline;
      if (end > start) errors_.push_back(PositionOf(message.substr(start, end - start)));
      if (newline == std::string::npos) break;
      start = newline + 1;
    }
  }

  // "source:12:7: ..." -> {12, 7, text}.
  ErrorLine PositionOf(std::string text) const {
    ErrorLine line{kNoPosition, kNoPosition, std::move(text)};
    if (!line.text.starts_with(source_ + ":")) return line;
    const char* begin = line.text.data() + source_.size() + 1;
    const char* end = line.text.data() + line.text.size();
    int row = 0;
    int column = 0;
    auto [after_row, row_error] = std::from_chars(begin, end, row);
    if (row_error != std::errc() || after_row == end || *after_row != ':') return line;
    auto [after_column, column_error] = std::from_chars(after_row + 1, end, column);
    if (column_error != std::errc() || after_column == end || *after_column != ':') return line;
    line.line = row;
    line.column = column;
    return line;
  }

  Result<std::shared_ptr<const RoutingTable>> Finish() {
    if (errors_.empty()) {
      table_->source_ = source_;
      return std::shared_ptr<const RoutingTable>(std::move(table_));
    }
    // The walk checks a map's keys before its values; readers expect document order.
    std::stable_sort(errors_.begin(), errors_.end(), [](const ErrorLine& a, const ErrorLine& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    std::string message;
    const size_t shown = std::min(errors_.size(), RoutingTable::kMaxReportedErrors);
    for (size_t i = 0; i < shown; ++i) {
      if (i > 0) message += '\n';
      message += errors_[i].text;
    }
    if (errors_.size() > shown) {
      message +=
          "\n" + source_ + ": " + std::to_string(errors_.size() - shown) + " more errors not shown";
    }
    return InvalidArgumentError(std::move(message));
  }

  static YAML::Mark ValueMark(const YAML::Node& value, const YAML::Mark& key_mark) {
    // yaml-cpp places an absent value at the next token, often on the following line.
    if (value.IsNull() || !value.IsDefined() || value.Mark().is_null()) return key_mark;
    return value.Mark();
  }

  // The entries of a map in document order. Reports (and drops) non-scalar keys, merge keys
  // and duplicated keys (yaml-cpp keeps both; a lookup would silently see only one), and,
  // when `allowed` is given, keys not in it.
  std::vector<Item> Entries(const YAML::Node& map, const std::string& path,
                            const std::vector<std::string>* allowed) {
    std::vector<Item> items;
    std::map<std::string, YAML::Mark> first_seen;
    // Dereferencing a yaml-cpp iterator yields a temporary pair: keep copies of the handles.
    for (const auto& pair : map) {
      const YAML::Node key = pair.first;
      const YAML::Node value = pair.second;
      if (!key.IsScalar()) {
        Error(key.Mark(), path, "map keys must be plain strings, got " + KindName(key));
        continue;
      }
      Item item{key.Scalar(), value, key.Mark(), ValueMark(value, key.Mark())};
      const std::string item_path = FieldPath(path, item.key);
      if (item.key == "<<" && key.Tag() == "?") {
        Error(item.key_mark, path, "merge keys ('<<') are not supported: write the entries out");
        continue;
      }
      auto [previous, inserted] = first_seen.emplace(item.key, item.key_mark);
      if (!inserted) {
        Error(item.key_mark, item_path,
              "duplicate key (first defined at line " + std::to_string(previous->second.line + 1) +
                  ", column " + std::to_string(previous->second.column + 1) + ")");
        continue;
      }
      if (allowed != nullptr &&
          std::find(allowed->begin(), allowed->end(), item.key) == allowed->end()) {
        const std::string hint = DidYouMean(item.key, *allowed);
        Error(item.key_mark, item_path,
              "unknown key " + Quote(item.key) +
                  (hint.empty() ? " (allowed: " + JoinNames(*allowed) + ")" : hint));
        continue;
      }
      items.push_back(std::move(item));
    }
    return items;
  }

  // The value as a string, or an error naming `expected`.
  std::optional<std::string> Scalar(const Item& item, const std::string& path,
                                    const std::string& expected) {
    if (item.value.IsScalar()) return item.value.Scalar();
    Error(item.value_mark, path, "expected " + expected + ", got " + KindName(item.value));
    return std::nullopt;
  }

  // True for a map; false with an error otherwise (null too, unless `null_ok`).
  bool ExpectMap(const Item& item, const std::string& path, const std::string& expected,
                 bool null_ok) {
    if (item.value.IsMap()) return true;
    if (item.value.IsNull() && null_ok) return false;
    Error(item.value_mark, path, "expected " + expected + ", got " + KindName(item.value));
    return false;
  }

  RawValue ToRaw(const YAML::Node& node, const YAML::Mark& key_mark, const std::string& path) {
    RawValue raw;
    const YAML::Mark mark = ValueMark(node, key_mark);
    raw.location = Where(mark);
    // Aliases share nodes, so a small document can expand exponentially ("billion laughs").
    if (++raw_nodes_ > kMaxRawNodes) {
      if (raw_nodes_ == kMaxRawNodes + 1) {
        Error(mark, path,
              "property values expand to more than " + std::to_string(kMaxRawNodes) +
                  " nodes (through aliases?)");
      }
      raw.kind = RawValue::Kind::kNull;
      return raw;
    }
    if (node.IsScalar()) {
      raw.kind = RawValue::Kind::kScalar;
      raw.scalar = node.Scalar();
    } else if (node.IsSequence()) {
      raw.kind = RawValue::Kind::kSequence;
      size_t index = 0;
      for (const YAML::Node& element : node) {
        raw.items.push_back(ToRaw(element, mark, path + "[" + std::to_string(index++) + "]"));
      }
    } else if (node.IsMap()) {
      raw.kind = RawValue::Kind::kMap;
      for (const Item& item : Entries(node, path, nullptr)) {
        raw.entries.push_back(ToRawEntry(item, path));
      }
    } else {
      raw.kind = RawValue::Kind::kNull;
    }
    return raw;
  }

  RawEntry ToRawEntry(const Item& item, const std::string& path) {
    return RawEntry{item.key, ToRaw(item.value, item.key_mark, FieldPath(path, item.key)),
                    Where(item.key_mark)};
  }

  // The names other parts refer to, read without reporting anything: the walk reports.
  void CollectNames(const YAML::Node& root) {
    std::set<std::string> all_clusters;
    for (const YAML::Node& environments : Values(root, "environments")) {
      for (const auto& env : environments) {
        const YAML::Node env_key = env.first;
        if (!env_key.IsScalar()) continue;
        const std::string& env_name = env_key.Scalar();
        if (std::find(environment_names_.begin(), environment_names_.end(), env_name) ==
            environment_names_.end()) {
          environment_names_.push_back(env_name);
        }
        std::set<std::string>& clusters = clusters_by_environment_[env_name];
        for (const YAML::Node& cluster_map : Values(env.second, "clusters")) {
          for (const auto& cluster : cluster_map) {
            const YAML::Node cluster_key = cluster.first;
            if (!cluster_key.IsScalar()) continue;
            clusters.insert(cluster_key.Scalar());
            all_clusters.insert(cluster_key.Scalar());
          }
        }
      }
    }
    std::sort(environment_names_.begin(), environment_names_.end());
    all_cluster_names_.assign(all_clusters.begin(), all_clusters.end());
  }

  // The map values stored under `key` in `node` (several when the key is duplicated).
  static std::vector<YAML::Node> Values(const YAML::Node& node, const std::string& key) {
    std::vector<YAML::Node> values;
    if (!node.IsMap()) return values;
    for (const auto& pair : node) {
      const YAML::Node name = pair.first;
      const YAML::Node value = pair.second;
      if (name.IsScalar() && name.Scalar() == key && value.IsMap()) values.push_back(value);
    }
    return values;
  }

  std::vector<std::string> ClustersOf(const std::string& environment) const {
    auto it = clusters_by_environment_.find(environment);
    if (it == clusters_by_environment_.end()) return {};
    return {it->second.begin(), it->second.end()};
  }

  void ParseVersion(const Item& item) {
    std::optional<std::string> text = Scalar(item, "version", "a non-negative integer");
    if (!text) return;
    std::optional<int64_t> version = ParseInt64(*text);
    if (!version || *version < 0) {
      Error(item.value_mark, "version", "expected a non-negative integer, got " + Quote(*text));
      return;
    }
    table_->version_ = *version;
  }

  void ParseTransport(const Item& item) {
    const std::string path = "transport";
    if (!ExpectMap(item, path, "a map with 'sidecar'", true)) return;
    static const std::vector<std::string> keys = {"sidecar"};
    for (const Item& entry : Entries(item.value, path, &keys)) {
      std::optional<std::string> address =
          Scalar(entry, FieldPath(path, entry.key), "an address (host:port or unix:/path)");
      if (!address) continue;
      if (address->empty()) {
        Error(entry.value_mark, FieldPath(path, entry.key),
              "empty address: name the msgsdk-sidecar as host:port or unix:/path");
        continue;
      }
      table_->sidecar_ = *address;
    }
  }

  void ParseDefaultEnvironment(const Item& item) {
    std::optional<std::string> name = Scalar(item, "default_environment", "an environment name");
    if (!name) return;
    if (!environment_names_.empty() &&
        std::find(environment_names_.begin(), environment_names_.end(), *name) ==
            environment_names_.end()) {
      Error(item.value_mark, "default_environment",
            "unknown environment " + Quote(*name) + DidYouMean(*name, environment_names_) +
                " (environments: " + JoinNames(environment_names_) + ")");
      return;
    }
    table_->default_environment_ = *name;
  }

  void ParseEnvironments(const Item& item) {
    if (item.value.IsNull() || (item.value.IsMap() && item.value.size() == 0)) {
      Error(item.value_mark, "environments", "no environments defined: at least one is required");
      return;
    }
    if (!ExpectMap(item, "environments", "a map of environment names to environments", false)) {
      return;
    }
    for (const Item& env : Entries(item.value, "environments", nullptr)) ParseEnvironment(env);
  }

  void ParseEnvironment(const Item& item) {
    const std::string path = FieldPath("environments", item.key);
    if (Status status = ValidateName("environment", item.key); !status.ok()) {
      Error(item.key_mark, path, status.message());
    }
    if (item.value.IsNull()) {
      Error(item.value_mark, path, "the environment is empty: 'clusters' is required");
      return;
    }
    if (!ExpectMap(item, path, "a map with clusters, topics and default_cluster", false)) return;
    EnvironmentConfig env;
    env.name = item.key;
    bool saw_clusters = false;
    for (const Item& entry : Entries(item.value, path, &EnvironmentKeys())) {
      if (entry.key == "clusters") {
        saw_clusters = true;
        ParseClusters(entry, path, &env);
      } else if (entry.key == "topics") {
        ParseTopics(entry, path, &env);
      } else if (entry.key == "default_cluster") {
        const std::string field = FieldPath(path, entry.key);
        std::optional<std::string> cluster = Scalar(entry, field, "a cluster name");
        if (cluster && CheckCluster(*cluster, env.name, entry.value_mark, field)) {
          env.default_cluster = *cluster;
        }
      }
    }
    if (!saw_clusters) Error(item.value_mark, path, "missing required key 'clusters'");
    table_->environments_[env.name] = std::move(env);
  }

  bool CheckCluster(const std::string& cluster, const std::string& environment,
                    const YAML::Mark& mark, const std::string& path) {
    const std::vector<std::string> clusters = ClustersOf(environment);
    if (std::find(clusters.begin(), clusters.end(), cluster) != clusters.end()) return true;
    Error(mark, path,
          "unknown cluster " + Quote(cluster) + " (clusters of " + environment + ": " +
              JoinNames(clusters) + ")");
    return false;
  }

  void ParseClusters(const Item& item, const std::string& env_path, EnvironmentConfig* env) {
    const std::string path = FieldPath(env_path, item.key);
    if (item.value.IsNull() || (item.value.IsMap() && item.value.size() == 0)) {
      Error(item.value_mark, path, "no clusters defined: at least one is required");
      return;
    }
    if (!ExpectMap(item, path, "a map of cluster names to cluster entries", false)) return;
    for (const Item& cluster : Entries(item.value, path, nullptr)) {
      ParseCluster(cluster, path, env);
    }
  }

  void ParseCluster(const Item& item, const std::string& clusters_path, EnvironmentConfig* env) {
    const std::string path = FieldPath(clusters_path, item.key);
    if (Status status = ValidateName("cluster", item.key); !status.ok()) {
      Error(item.key_mark, path, status.message());
    }
    const std::vector<std::string> backends = registry_.Names();
    if (item.value.IsNull()) {
      Error(item.value_mark, path,
            "the cluster entry is empty: 'backend' is required (registered backends: " +
                JoinNames(backends) + ")");
      return;
    }
    if (!ExpectMap(item, path, "a map with 'backend' and the backend's properties", false)) {
      return;
    }
    std::optional<Item> backend_item;
    RawProperties raw;
    std::vector<std::string> keys;
    for (const Item& entry : Entries(item.value, path, nullptr)) {
      if (entry.key == "backend") {
        backend_item = entry;
      } else {
        keys.push_back(entry.key);
        raw.push_back(ToRawEntry(entry, path));
      }
    }
    if (!backend_item) {
      std::optional<std::string> typo = ClosestMatch("backend", keys);
      Error(item.value_mark, path,
            "missing required key 'backend'" +
                (typo ? " (found " + Quote(*typo) + ": did you mean 'backend'?)"
                      : " (registered backends: " + JoinNames(backends) + ")"));
      return;
    }
    const std::string backend_path = FieldPath(path, "backend");
    std::optional<std::string> backend = Scalar(*backend_item, backend_path, "a backend name");
    if (!backend) return;
    Result<BackendFactory*> factory = registry_.Find(*backend);
    if (!factory.ok()) {
      Error(backend_item->value_mark, backend_path,
            "unknown backend " + Quote(*backend) + DidYouMean(*backend, backends) +
                " (registered backends: " + JoinNames(backends) + ")");
      return;
    }
    Result<ClusterConfig> config = ValidateClusterConfig(
        item.key, *backend, raw, (*factory)->properties(), path, Where(item.key_mark));
    if (!config.ok()) {
      Errors(config.status());
      return;
    }
    env->clusters[item.key] = std::move(config).value();
  }

  void ParseTopics(const Item& item, const std::string& env_path, EnvironmentConfig* env) {
    const std::string path = FieldPath(env_path, item.key);
    if (!ExpectMap(item, path, "a map of topics (or globs) to clusters", true)) return;
    for (const Item& topic : Entries(item.value, path, nullptr)) {
      const std::string topic_path = FieldPath(path, topic.key);
      if (Status status = ValidateTopicPattern(topic.key); !status.ok()) {
        Error(topic.key_mark, topic_path, status.message());
      }
      std::optional<std::string> cluster;
      YAML::Mark cluster_mark = topic.value_mark;
      std::string cluster_path = topic_path;
      if (topic.value.IsScalar()) {
        cluster = topic.value.Scalar();
      } else if (topic.value.IsMap()) {
        std::optional<Item> cluster_item;
        for (const Item& entry : Entries(topic.value, topic_path, &TopicKeys())) {
          cluster_item = entry;  // "cluster" is the only key allowed
        }
        if (!cluster_item) {
          Error(topic.value_mark, topic_path, "missing required key 'cluster'");
          continue;
        }
        cluster_path = FieldPath(topic_path, "cluster");
        cluster_mark = cluster_item->value_mark;
        cluster = Scalar(*cluster_item, cluster_path, "a cluster name");
        if (!cluster) continue;
      } else {
        Error(topic.value_mark, topic_path,
              "expected a cluster name (`" + topic.key + ": <cluster>`) or a map with 'cluster', " +
                  "got " + KindName(topic.value));
        continue;
      }
      if (!CheckCluster(*cluster, env->name, cluster_mark, cluster_path)) continue;
      env->topics.push_back(
          TopicRule{topic.key, *cluster, IsGlob(topic.key), Where(topic.key_mark)});
    }
  }

  void ParseMigrations(const Item& item) {
    const std::string path = "migrations";
    if (!ExpectMap(item, path, "a map of topics to {from, to, phase}", true)) return;
    for (const Item& topic : Entries(item.value, path, nullptr)) {
      const std::string topic_path = FieldPath(path, topic.key);
      if (IsGlob(topic.key)) {
        Error(topic.key_mark, topic_path,
              "a migration moves one topic: globs are not allowed here");
      } else if (Status status = ValidateName("topic", topic.key); !status.ok()) {
        Error(topic.key_mark, topic_path, status.message());
      }
      if (!ExpectMap(topic, topic_path, "a map with from, to and phase", false)) continue;
      MigrationConfig migration;
      migration.topic = topic.key;
      migration.source = Where(topic.key_mark);
      bool complete = true;
      std::set<std::string> seen;
      std::optional<YAML::Mark> to_mark;
      for (const Item& entry : Entries(topic.value, topic_path, &MigrationKeys())) {
        seen.insert(entry.key);
        const std::string field = FieldPath(topic_path, entry.key);
        if (entry.key == "generation") {
          std::optional<std::string> text = Scalar(entry, field, "a non-negative integer");
          std::optional<int64_t> generation = text ? ParseInt64(*text) : std::nullopt;
          if (!generation || *generation < 0) {
            if (text) {
              Error(entry.value_mark, field,
                    "expected a non-negative integer, got " + Quote(*text));
            }
            complete = false;
            continue;
          }
          migration.generation = *generation;
          continue;
        }
        if (entry.key == "drain") {
          if (!ParseDrain(entry, field, migration.drain)) complete = false;
          continue;
        }
        std::optional<std::string> value =
            Scalar(entry, field, entry.key == "phase" ? "a phase" : "a cluster name");
        if (!value) {
          complete = false;
          continue;
        }
        if (entry.key == "phase") {
          std::optional<MigrationPhase> phase = ParsePhase(*value);
          if (!phase) {
            const std::string hint = DidYouMean(*value, PhaseNames());
            Error(
                entry.value_mark, field,
                "unknown phase " + Quote(*value) +
                    (hint.empty() ? " (phases: " : hint.substr(0, hint.size() - 1) + " phases: ") +
                    JoinNames(PhaseNames()) + ")");
            complete = false;
            continue;
          }
          migration.phase = *phase;
          continue;
        }
        if (std::find(all_cluster_names_.begin(), all_cluster_names_.end(), *value) ==
            all_cluster_names_.end()) {
          Error(entry.value_mark, field,
                "unknown cluster " + Quote(*value) + DidYouMean(*value, all_cluster_names_) +
                    " (clusters: " + JoinNames(all_cluster_names_) + ")");
          complete = false;
          continue;
        }
        if (entry.key == "from") {
          migration.from = *value;
        } else {
          migration.to = *value;
          to_mark = entry.value_mark;
        }
      }
      for (const std::string& key : RequiredMigrationKeys()) {
        if (seen.count(key) == 0) {
          Error(topic.value_mark, topic_path, "missing required key '" + key + "'");
          complete = false;
        }
      }
      if (complete && migration.from == migration.to) {
        Error(*to_mark, FieldPath(topic_path, "to"),
              "the topic already is on " + Quote(migration.from) +
                  ": 'to' must name another cluster than 'from'");
        complete = false;
      }
      if (complete) table_->migrations_[migration.topic] = std::move(migration);
    }
  }

  // `drain: { <partition>: <offset>, ... }`: the last primary offset of each partition of the
  // cluster consumers leave in this phase.
  bool ParseDrain(const Item& item, const std::string& path, std::map<int32_t, int64_t>& drain) {
    if (!ExpectMap(item, path, "a map of partitions to offsets", true)) return false;
    bool ok = true;
    for (const Item& entry : Entries(item.value, path, nullptr)) {
      const std::string field = FieldPath(path, entry.key);
      const std::optional<int64_t> partition = ParseInt64(entry.key);
      if (!partition || *partition < 0 || *partition > INT32_MAX) {
        Error(entry.key_mark, field, "expected a partition number, got " + Quote(entry.key));
        ok = false;
        continue;
      }
      std::optional<std::string> text = Scalar(entry, field, "an offset");
      if (!text) {
        ok = false;
        continue;
      }
      const std::optional<int64_t> offset = ParseInt64(*text);
      if (!offset || *offset < -1) {
        Error(entry.value_mark, field, "expected an offset (-1 or more), got " + Quote(*text));
        ok = false;
        continue;
      }
      drain[static_cast<int32_t>(*partition)] = *offset;
    }
    return ok;
  }

  void ParseClient(const Item& item) {
    const std::string path = "client";
    if (!ExpectMap(item, path, "a map of client settings", true)) return;
    RawProperties raw;
    for (const Item& entry : Entries(item.value, path, nullptr)) {
      raw.push_back(ToRawEntry(entry, path));
    }
    Result<std::map<std::string, std::string>> properties = ValidateProperties(
        raw, ClientSettingsTable(), path, Where(item.value_mark), "client settings");
    if (!properties.ok()) {
      Errors(properties.status());
      return;
    }
    // The cross-field check points at the key that was written (the first of the pair).
    std::string location = Where(item.value_mark);
    for (const RawEntry& entry : raw) {
      if (entry.key == "retry_backoff_ms" || entry.key == "retry_backoff_max_ms") {
        location = entry.key_location;
        break;
      }
    }
    Result<ClientSettings> settings = ClientSettingsFromProperties(*properties, path, location);
    if (!settings.ok()) {
      Errors(settings.status());
      return;
    }
    table_->client_ = *settings;
  }

  std::string source_;
  const BackendRegistry& registry_;
  std::unique_ptr<RoutingTable> table_;
  std::vector<ErrorLine> errors_;
  size_t raw_nodes_ = 0;
  std::vector<std::string> environment_names_;  // sorted
  std::map<std::string, std::set<std::string>> clusters_by_environment_;
  std::vector<std::string> all_cluster_names_;  // sorted
};

const PropertyTable& ClientSettingsTable() {
  using Type = PropertySpec::Type;
  static const auto* table = new PropertyTable{
      {.name = "send_timeout_ms",
       .type = Type::kDuration,
       .default_value = "3000",
       .min = 1,
       .max = 600000,
       .description = "How long a send waits for the cluster to acknowledge the message "
                      "before it fails."},
      {.name = "consumer_threads",
       .type = Type::kInt,
       .default_value = "4",
       .min = 1,
       .max = 256,
       .description = "Handler threads of each subscription."},
      {.name = "max_attempts",
       .type = Type::kInt,
       .default_value = "16",
       .min = 1,
       .max = 1000,
       .description = "Deliveries of a message, the first included, before it goes to the "
                      "group's dead-letter topic."},
      {.name = "retry_backoff_ms",
       .type = Type::kDuration,
       .default_value = "100",
       .min = 1,
       .max = 3600000,
       .description = "Delay before the first redelivery of a message whose handler asked "
                      "for a retry; doubles with each further attempt."},
      {.name = "retry_backoff_max_ms",
       .type = Type::kDuration,
       .default_value = "30000",
       .min = 1,
       .max = 86400000,
       .description = "Upper bound of the retry delay; at least retry_backoff_ms."},
      {.name = "max_inflight",
       .type = Type::kInt,
       .default_value = "2000",
       .min = 1,
       .max = 1000000,
       .description = "Unacknowledged deliveries a subscription holds at most; fetching "
                      "pauses beyond it."},
      {.name = "max_message_bytes",
       .type = Type::kBytes,
       .default_value = "4MiB",
       .min = 1,
       .max = int64_t{256} << 20,
       .description = "Largest message a producer accepts."},
      {.name = "close_timeout_ms",
       .type = Type::kDuration,
       .default_value = "10000",
       .min = 1,
       .max = 600000,
       .description = "How long closing a producer, a subscription or the client waits for "
                      "in-flight work to finish."},
      {.name = "callback_threads",
       .type = Type::kInt,
       .default_value = "2",
       .min = 1,
       .max = 64,
       .description = "Threads that run the callbacks of asynchronous sends."},
  };
  return *table;
}

Result<ClientSettings> ClientSettingsFromProperties(
    const std::map<std::string, std::string>& properties, const std::string& path,
    const std::string& location) {
  // Validated values: every key is present and in range, so a parse failure is a caller bug.
  std::string missing;
  auto get = [&](const std::string& key) -> int64_t {
    auto it = properties.find(key);
    std::optional<int64_t> value = it == properties.end() ? std::nullopt : ParseInt64(it->second);
    if (!value) {
      missing += (missing.empty() ? "" : ", ") + key;
      return 0;
    }
    return *value;
  };
  ClientSettings settings;
  settings.send_timeout = std::chrono::milliseconds(get("send_timeout_ms"));
  settings.consumer_threads = static_cast<int>(get("consumer_threads"));
  settings.max_attempts = static_cast<int>(get("max_attempts"));
  settings.retry_backoff = std::chrono::milliseconds(get("retry_backoff_ms"));
  settings.retry_backoff_max = std::chrono::milliseconds(get("retry_backoff_max_ms"));
  settings.max_inflight = static_cast<int>(get("max_inflight"));
  settings.max_message_bytes = get("max_message_bytes");
  settings.close_timeout = std::chrono::milliseconds(get("close_timeout_ms"));
  settings.callback_threads = static_cast<int>(get("callback_threads"));
  if (!missing.empty()) {
    return InternalError(FormatError(location, path, "unvalidated client settings: " + missing));
  }
  if (settings.retry_backoff > settings.retry_backoff_max) {
    return InvalidArgumentError(
        FormatError(location, path,
                    "retry_backoff_ms (" + std::to_string(settings.retry_backoff.count()) +
                        ") is greater than retry_backoff_max_ms (" +
                        std::to_string(settings.retry_backoff_max.count()) + ")"));
  }
  return settings;
}

std::string_view MigrationPhaseName(MigrationPhase phase) {
  switch (phase) {
    case MigrationPhase::kA:
      return "A";
    case MigrationPhase::kDualWrite:
      return "dual_write";
    case MigrationPhase::kCutover:
      return "cutover";
    case MigrationPhase::kB:
      return "B";
  }
  return "unknown";
}

Result<std::shared_ptr<const RoutingTable>> RoutingTable::Parse(std::string_view yaml,
                                                                const std::string& source,
                                                                const BackendRegistry& registry) {
  return RoutingTableParser(source, registry).Parse(yaml);
}

Result<std::string> RoutingTable::ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string what = "routing table " + Quote(path) + ": ";
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(what + "no such file");
    if (error == EACCES || error == EPERM) {
      return PermissionDeniedError(what + "permission denied");
    }
    return UnavailableError(what + "cannot open: " + ErrnoText(error));
  }
  std::string text;
  Status status;
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    status = UnavailableError("routing table " + Quote(path) + ": " + ErrnoText(errno));
  } else if (S_ISDIR(info.st_mode)) {
    status = InvalidArgumentError("routing table " + Quote(path) + " is a directory");
  } else {
    char buffer[16384];
    while (true) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status =
            UnavailableError("routing table " + Quote(path) + ": read failed: " + ErrnoText(errno));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (text.size() > kMaxFileBytes) {
        status = InvalidArgumentError("routing table " + Quote(path) + " is larger than " +
                                      FormatBytes(kMaxFileBytes));
        break;
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

Result<std::shared_ptr<const RoutingTable>> RoutingTable::LoadFile(
    const std::string& path, const BackendRegistry& registry) {
  MSGSDK_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return Parse(text, path, registry);
}

std::shared_ptr<const RoutingTable> RoutingTable::Default(const std::string& data_dir,
                                                          const BackendRegistry& registry) {
  const std::string dir = data_dir.empty() ? std::string(kDefaultDataDir) : data_dir;
  const std::string source(kBuiltInSource);
  ClusterConfig cluster;
  cluster.name = "embedded";
  cluster.backend = "native";
  cluster.properties = {{"embedded", "true"}, {"data_dir", dir}};
  cluster.source = source;
  if (Result<BackendFactory*> factory = registry.Find("native"); factory.ok()) {
    RawProperties raw{RawEntry{"embedded", RawValue::Scalar("true", source), source},
                      RawEntry{"data_dir", RawValue::Scalar(dir, source), source}};
    Result<ClusterConfig> validated =
        ValidateClusterConfig("embedded", "native", raw, (*factory)->properties(),
                              "environments.local.clusters.embedded", source);
    // The native table accepts these two properties; if a future one did not, the cluster
    // still works with the properties given (the backend applies its own defaults).
    if (validated.ok()) cluster = std::move(validated).value();
  }
  auto table = std::make_shared<RoutingTable>();
  table->source_ = source;
  table->default_environment_ = "local";
  EnvironmentConfig& env = table->environments_["local"];
  env.name = "local";
  env.default_cluster = "embedded";
  env.clusters.emplace("embedded", std::move(cluster));
  return table;
}

Result<const EnvironmentConfig*> RoutingTable::ChooseEnvironment(
    const std::string& requested) const {
  std::vector<std::string> names;
  for (const auto& [name, env] : environments_) names.push_back(name);
  if (environments_.empty()) {
    return FailedPreconditionError(source_ +
                                   " defines no environments, only the sidecar its clients use "
                                   "(transport.sidecar): a client of it, not a host of the core, "
                                   "can use it");
  }
  if (!requested.empty()) {
    auto it = environments_.find(requested);
    if (it != environments_.end()) return &it->second;
    return NotFoundError("environment " + Quote(requested) + " is not defined in " + source_ +
                         DidYouMean(requested, names) + " (environments: " + JoinNames(names) +
                         ")");
  }
  if (!default_environment_.empty()) {
    auto it = environments_.find(default_environment_);
    if (it != environments_.end()) return &it->second;
  }
  if (environments_.size() == 1) return &environments_.begin()->second;
  return NotFoundError("no environment selected and " + source_ + " defines " +
                       std::to_string(names.size()) + " (" + JoinNames(names) +
                       "): set ClientOptions.environment, MSGSDK_ENV or default_environment");
}

Result<ResolvedRoute> RoutingTable::Resolve(const std::string& environment,
                                            const std::string& topic) const {
  MSGSDK_ASSIGN_OR_RETURN(const EnvironmentConfig* env, ChooseEnvironment(environment));
  MSGSDK_RETURN_IF_ERROR(ValidateName("topic", topic));
  const TopicRule* best_glob = nullptr;
  size_t best_literals = 0;
  const TopicRule* chosen = nullptr;
  for (const TopicRule& rule : env->topics) {
    if (!rule.is_glob) {
      if (rule.pattern == topic) {
        chosen = &rule;
        break;
      }
      continue;
    }
    if (::fnmatch(rule.pattern.c_str(), topic.c_str(), 0) != 0) continue;
    const size_t literals = LiteralCount(rule.pattern);
    if (best_glob == nullptr || literals > best_literals) {
      best_glob = &rule;
      best_literals = literals;
    }
  }
  if (chosen == nullptr) chosen = best_glob;
  std::string cluster_name;
  ResolvedRoute route;
  route.environment = env;
  if (chosen != nullptr) {
    cluster_name = chosen->cluster;
    route.matched_by = chosen->pattern;
    route.rule = chosen;
  } else if (!env->default_cluster.empty()) {
    cluster_name = env->default_cluster;
    route.matched_by = "default_cluster";
  } else {
    return NotFoundError("topic " + Quote(topic) + " has no route in environment " +
                         Quote(env->name) +
                         " (no topic entry matches and the environment has no default_cluster)");
  }
  auto it = env->clusters.find(cluster_name);
  if (it == env->clusters.end()) {
    return InternalError("routing table " + source_ + ": environment " + Quote(env->name) +
                         " routes topic " + Quote(topic) + " to the undefined cluster " +
                         Quote(cluster_name));
  }
  route.cluster = &it->second;
  route.read = route.cluster;
  auto migration = migrations_.find(topic);
  if (migration == migrations_.end()) return route;
  auto from = env->clusters.find(migration->second.from);
  auto to = env->clusters.find(migration->second.to);
  if (from == env->clusters.end() || to == env->clusters.end()) return route;
  route.migration = &migration->second;
  route.matched_by = "migration (" + std::string(MigrationPhaseName(migration->second.phase)) + ")";
  switch (migration->second.phase) {
    case MigrationPhase::kA:
      route.cluster = route.read = &from->second;
      route.leave = &to->second;
      break;
    case MigrationPhase::kDualWrite:
      route.cluster = route.read = &from->second;
      route.shadow = route.leave = &to->second;
      break;
    case MigrationPhase::kCutover:
      route.cluster = route.read = &to->second;
      route.shadow = route.leave = &from->second;
      break;
    case MigrationPhase::kB:
      route.cluster = route.read = &to->second;
      route.leave = &from->second;
      break;
  }
  return route;
}

}  // namespace msgsdk::core
