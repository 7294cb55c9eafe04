#pragma once

// A cluster's settings from the routing table, and the property tables that validate them.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "msgsdk/result.h"
#include "msgsdk/status.h"

namespace msgsdk::core {

// One property a backend accepts in a cluster entry.
struct PropertySpec {
  enum class Type {
    kString,
    kInt,       // integer within [min, max]
    kBool,      // true/false
    kDuration,  // milliseconds, integer within [min, max]; the key ends in "_ms"
    kBytes,     // a byte count within [min, max]; accepts suffixes KiB, MiB, GiB
    kEnum,      // one of `allowed`
    kList,      // a YAML sequence of strings (or one comma-separated string)
    kMap,       // a YAML map of scalar values, passed through as "name.key" properties
  };
  std::string name;
  Type type = Type::kString;
  // Empty: no default (the property is then absent unless required).
  std::string default_value;
  bool required = false;
  int64_t min = INT64_MIN;
  int64_t max = INT64_MAX;
  std::vector<std::string> allowed;
  // One sentence for the configuration reference.
  std::string description;
};

using PropertyTable = std::vector<PropertySpec>;

// A cluster entry of the routing table after validation: every property present (defaults
// filled in), normalised to a string (durations and byte counts as plain integers, bools as
// "true"/"false", lists comma-joined). kMap properties appear as "name.key" entries.
struct ClusterConfig {
  // Routing-table name ("kafka-main").
  std::string name;
  // Registry name of the backend ("native").
  std::string backend;
  std::map<std::string, std::string> properties;
  // "routing.yaml:12:7": where the entry was defined, for error messages.
  std::string source;

  // Typed access to validated properties (absent properties give the fallback).
  std::string GetString(const std::string& key, const std::string& fallback = {}) const;
  int64_t GetInt(const std::string& key, int64_t fallback = 0) const;
  bool GetBool(const std::string& key, bool fallback = false) const;
  std::chrono::milliseconds GetDuration(const std::string& key,
                                        std::chrono::milliseconds fallback = {}) const;
  std::vector<std::string> GetList(const std::string& key) const;
  // Every "prefix.xxx" property as xxx -> value (kMap properties).
  std::map<std::string, std::string> GetMap(const std::string& prefix) const;

  friend bool operator==(const ClusterConfig&, const ClusterConfig&) = default;
};

// A configuration value as a source wrote it (a YAML file, a pushed snapshot, code), before
// validation, with where it was written so that errors can point at it.
struct RawEntry;
struct RawValue {
  enum class Kind {
    kNull,  // the key is present without a value ("bootstrap:")
    kScalar,
    kSequence,
    kMap,
  };
  Kind kind = Kind::kScalar;
  std::string scalar;             // kScalar
  std::vector<RawValue> items;    // kSequence
  std::vector<RawEntry> entries;  // kMap, in source order
  // "routing.yaml:12:7", or empty when the source has no positions.
  std::string location;

  static RawValue Scalar(std::string value, std::string location = {});
};

// One `key: value` of a map.
struct RawEntry {
  std::string key;
  RawValue value;
  // Where the key was written ("routing.yaml:12:3"), or empty.
  std::string key_location;
};

// The entries of one section (a cluster entry without its `backend:` key, or `client:`).
using RawProperties = std::vector<RawEntry>;

// Validates `raw` against `table` and returns every property normalised (see ClusterConfig),
// defaults filled in. Checks: unknown names (with a did-you-mean), duplicates, types, ranges,
// enum values, required properties. A kMap property "p" may be given as a map (`p: {a: 1}`)
// or as flat dotted keys (`p.a: 1`). `path` is the field path of the section
// ("environments.prod.clusters.kafka-main"), `location` where the section starts, and
// `owner` names the table in messages ("backend 'kafka'", "client settings").
// On failure: kInvalidArgument with one line per error, each "location: path.name: message";
// kInternal if a default of the table itself is invalid.
Result<std::map<std::string, std::string>> ValidateProperties(const RawProperties& raw,
                                                              const PropertyTable& table,
                                                              const std::string& path,
                                                              const std::string& location,
                                                              const std::string& owner);

// ValidateProperties for a cluster entry of backend `backend`, as a ClusterConfig whose
// `source` is `location`.
Result<ClusterConfig> ValidateClusterConfig(const std::string& name, const std::string& backend,
                                            const RawProperties& raw, const PropertyTable& table,
                                            const std::string& path, const std::string& location);

// Checks a property table itself (BackendRegistry::Register calls it): unique, well-formed
// names (not "backend"), min <= max, enums with values, kDuration names ending in "_ms",
// defaults that pass their own validation, required properties without a default.
Status ValidatePropertyTable(const PropertyTable& table);

// "string", "integer", "boolean", "duration (ms)", "bytes", "enum", "list", "map".
std::string PropertyTypeName(PropertySpec::Type type);

// A byte count in the largest exact unit: 4194304 -> "4MiB", 1000 -> "1000".
std::string FormatBytes(int64_t bytes);

}  // namespace msgsdk::core
