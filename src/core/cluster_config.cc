#include "core/cluster_config.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <string_view>
#include <utility>

#include "core/routing/diagnostics.h"

namespace msgsdk::core {
namespace {

using diagnostics::DidYouMean;
using diagnostics::FieldPath;
using diagnostics::FormatError;
using diagnostics::JoinNames;
using diagnostics::Quote;

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

std::optional<int64_t> ParseInt64(std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

std::string_view Trim(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::string FormatLimit(const PropertySpec& spec, int64_t value) {
  std::string text = std::to_string(value);
  if (spec.type == PropertySpec::Type::kBytes) {
    const std::string human = FormatBytes(value);
    if (human != text) text += " (" + human + ")";
  }
  return text;
}

// "" when the spec has no bounds.
std::string RangeText(const PropertySpec& spec) {
  const bool has_min = spec.min != INT64_MIN;
  const bool has_max = spec.max != INT64_MAX;
  if (has_min && has_max) {
    return "between " + FormatLimit(spec, spec.min) + " and " + FormatLimit(spec, spec.max);
  }
  if (has_min) return "at least " + FormatLimit(spec, spec.min);
  if (has_max) return "at most " + FormatLimit(spec, spec.max);
  return {};
}

std::optional<int64_t> ParseBytes(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    int64_t factor;
  };
  static constexpr Unit kUnits[] = {{"KiB", kKiB}, {"MiB", kMiB}, {"GiB", kGiB}};
  int64_t factor = 1;
  for (const Unit& unit : kUnits) {
    if (text.ends_with(unit.suffix)) {
      factor = unit.factor;
      text = Trim(text.substr(0, text.size() - unit.suffix.size()));
      break;
    }
  }
  std::optional<int64_t> count = ParseInt64(text);
  if (!count || *count < 0 || *count > INT64_MAX / factor) return std::nullopt;
  return *count * factor;
}

// Checks one scalar against `spec` (any type but kMap) and returns its normalised form, or
// sets `error`.
std::string NormaliseScalar(const PropertySpec& spec, std::string_view text, std::string* error) {
  using Type = PropertySpec::Type;
  switch (spec.type) {
    case Type::kString:
      return std::string(text);
    case Type::kInt:
    case Type::kDuration:
    case Type::kBytes: {
      std::optional<int64_t> value;
      if (spec.type == Type::kBytes) {
        value = ParseBytes(Trim(text));
      } else {
        value = ParseInt64(Trim(text));
      }
      const std::string range = RangeText(spec);
      if (!value) {
        if (spec.type == Type::kInt) {
          *error = "expected an integer";
        } else if (spec.type == Type::kDuration) {
          *error = "expected an integer number of milliseconds";
        } else {
          *error = "expected a byte count such as 65536, 64KiB, 4MiB or 1GiB";
        }
        if (!range.empty()) *error += " " + range;
        *error += ", got " + Quote(text);
        return {};
      }
      if (*value < spec.min || *value > spec.max) {
        *error = FormatLimit(spec, *value) + " is out of range: must be " + range;
        return {};
      }
      return std::to_string(*value);
    }
    case Type::kBool: {
      const std::string_view value = Trim(text);
      if (value == "true" || value == "True" || value == "TRUE") return "true";
      if (value == "false" || value == "False" || value == "FALSE") return "false";
      *error = "expected true or false, got " + Quote(text);
      return {};
    }
    case Type::kEnum: {
      std::string value(Trim(text));
      if (std::find(spec.allowed.begin(), spec.allowed.end(), value) != spec.allowed.end()) {
        return value;
      }
      std::string hint = DidYouMean(value, spec.allowed);
      *error = "unknown value " + Quote(text) +
               (hint.empty() ? " (allowed: " + JoinNames(spec.allowed) + ")"
                             : hint.substr(0, hint.size() - 1) +
                                   " allowed: " + JoinNames(spec.allowed) + ")");
      return {};
    }
    case Type::kList: {
      std::string joined;
      size_t start = 0;
      while (true) {
        const size_t comma = text.find(',', start);
        const std::string_view item =
            Trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
        if (item.empty()) {
          // A lone empty string is the empty list; an empty item inside a list is a typo.
          if (Trim(text).empty()) return {};
          *error = "empty item in the comma-separated list " + Quote(text);
          return {};
        }
        if (!joined.empty()) joined += ',';
        joined += item;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      return joined;
    }
    case Type::kMap:
      *error = "expected a map of scalar values, got the scalar " + Quote(text);
      return {};
  }
  *error = "unknown property type";
  return {};
}

std::string KindName(RawValue::Kind kind) {
  switch (kind) {
    case RawValue::Kind::kNull:
      return "no value";
    case RawValue::Kind::kScalar:
      return "a scalar";
    case RawValue::Kind::kSequence:
      return "a sequence";
    case RawValue::Kind::kMap:
      return "a map";
  }
  return "a value";
}

std::string Expected(PropertySpec::Type type) {
  using Type = PropertySpec::Type;
  switch (type) {
    case Type::kString:
      return "a string";
    case Type::kInt:
      return "an integer";
    case Type::kBool:
      return "true or false";
    case Type::kDuration:
      return "an integer number of milliseconds";
    case Type::kBytes:
      return "a byte count";
    case Type::kEnum:
      return "one of the allowed values";
    case Type::kList:
      return "a sequence of strings or a comma-separated string";
    case Type::kMap:
      return "a map of scalar values";
  }
  return "a value";
}

class Validator {
 public:
  Validator(const PropertyTable& table, const std::string& path, const std::string& location,
            const std::string& owner)
      : table_(table), path_(path), location_(location), owner_(owner) {
    for (const PropertySpec& spec : table_) names_.push_back(spec.name);
  }

  Result<std::map<std::string, std::string>> Run(const RawProperties& raw) {
    for (const RawEntry& entry : raw) Entry(entry);
    for (const PropertySpec& spec : table_) {
      if (given_.count(spec.name) != 0) continue;
      if (spec.required) {
        errors_.push_back(FormatError(
            location_, path_, "missing required property '" + spec.name + "' of " + owner_));
        continue;
      }
      if (spec.default_value.empty() || spec.type == PropertySpec::Type::kMap) continue;
      std::string error;
      std::string value = NormaliseScalar(spec, spec.default_value, &error);
      if (!error.empty()) {
        return InternalError(owner_ + ": the default " + Quote(spec.default_value) +
                             " of property '" + spec.name + "' is invalid: " + error);
      }
      values_[spec.name] = std::move(value);
    }
    if (!errors_.empty()) {
      std::string message;
      for (const std::string& line : errors_) {
        if (!message.empty()) message += '\n';
        message += line;
      }
      return InvalidArgumentError(std::move(message));
    }
    return std::move(values_);
  }

 private:
  const PropertySpec* Find(std::string_view name) const {
    for (const PropertySpec& spec : table_) {
      if (spec.name == name) return &spec;
    }
    return nullptr;
  }

  // The kMap property that `name` ("librdkafka.session.timeout.ms") is an entry of.
  const PropertySpec* FindMapOwner(std::string_view name) const {
    for (const PropertySpec& spec : table_) {
      if (spec.type == PropertySpec::Type::kMap && name.size() > spec.name.size() + 1 &&
          name.starts_with(spec.name) && name[spec.name.size()] == '.') {
        return &spec;
      }
    }
    return nullptr;
  }

  static std::string KeyWhere(const RawEntry& entry) {
    return entry.key_location.empty() ? entry.value.location : entry.key_location;
  }

  static std::string ValueWhere(const RawEntry& entry) {
    return entry.value.location.empty() ? entry.key_location : entry.value.location;
  }

  // Records `key` as set; false (and an error) if it already was.
  bool MarkSet(const std::string& key, const std::string& where, const std::string& path) {
    auto [it, inserted] = set_at_.emplace(key, where);
    if (!inserted) {
      errors_.push_back(FormatError(
          where, path,
          "set more than once" + (it->second.empty() ? "" : " (first at " + it->second + ")")));
    }
    return inserted;
  }

  void Entry(const RawEntry& entry) {
    const std::string path = FieldPath(path_, entry.key);
    const PropertySpec* spec = Find(entry.key);
    if (spec == nullptr) {
      if (const PropertySpec* owner = FindMapOwner(entry.key)) {
        given_.insert(owner->name);
        MapItem(entry.key, entry.value, KeyWhere(entry), path);
        return;
      }
      std::string hint = DidYouMean(entry.key, names_);
      errors_.push_back(
          FormatError(KeyWhere(entry), path,
                      "unknown property " + Quote(entry.key) + " of " + owner_ +
                          (hint.empty() ? " (known: " + JoinNames(names_) + ")" : hint)));
      return;
    }
    given_.insert(spec->name);
    const std::string where = ValueWhere(entry);
    const RawValue& value = entry.value;
    if (spec->type == PropertySpec::Type::kMap) {
      if (value.kind != RawValue::Kind::kMap) {
        if (value.kind == RawValue::Kind::kNull && !spec->required) return;
        errors_.push_back(FormatError(
            where, path,
            "expected a map of scalar values, got " + KindName(value.kind) + ScalarSuffix(value)));
        return;
      }
      if (value.entries.empty() && spec->required) {
        errors_.push_back(
            FormatError(where, path, "must not be empty (required by " + owner_ + ")"));
      }
      for (const RawEntry& item : value.entries) {
        MapItem(spec->name + "." + item.key, item.value, KeyWhere(item), FieldPath(path, item.key));
      }
      return;
    }
    if (!MarkSet(spec->name, KeyWhere(entry), path)) return;
    std::string normalised;
    switch (value.kind) {
      case RawValue::Kind::kNull:
        errors_.push_back(
            FormatError(where, path, "has no value: expected " + Expected(spec->type)));
        return;
      case RawValue::Kind::kMap:
        errors_.push_back(
            FormatError(where, path, "expected " + Expected(spec->type) + ", got a map"));
        return;
      case RawValue::Kind::kSequence:
        if (spec->type != PropertySpec::Type::kList) {
          errors_.push_back(
              FormatError(where, path, "expected " + Expected(spec->type) + ", got a sequence"));
          return;
        }
        if (!ListItems(value, path, &normalised)) return;
        break;
      case RawValue::Kind::kScalar: {
        std::string error;
        normalised = NormaliseScalar(*spec, value.scalar, &error);
        if (!error.empty()) {
          errors_.push_back(FormatError(where, path, error));
          return;
        }
        break;
      }
    }
    if (spec->required && normalised.empty()) {
      errors_.push_back(FormatError(where, path, "must not be empty (required by " + owner_ + ")"));
      return;
    }
    values_[spec->name] = std::move(normalised);
  }

  static std::string ScalarSuffix(const RawValue& value) {
    return value.kind == RawValue::Kind::kScalar ? " " + Quote(value.scalar) : "";
  }

  bool ListItems(const RawValue& value, const std::string& path, std::string* joined) {
    bool ok = true;
    for (size_t i = 0; i < value.items.size(); ++i) {
      const RawValue& item = value.items[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      const std::string where = item.location.empty() ? value.location : item.location;
      if (item.kind != RawValue::Kind::kScalar) {
        errors_.push_back(
            FormatError(where, item_path, "expected a string, got " + KindName(item.kind)));
        ok = false;
        continue;
      }
      const std::string_view text = Trim(item.scalar);
      if (text.empty() || text.find(',') != std::string_view::npos) {
        errors_.push_back(
            FormatError(where, item_path,
                        text.empty() ? "empty list item"
                                     : "list items cannot contain ',': " + Quote(item.scalar)));
        ok = false;
        continue;
      }
      if (!joined->empty()) *joined += ',';
      *joined += text;
    }
    return ok;
  }

  void MapItem(const std::string& key, const RawValue& value, const std::string& where,
               const std::string& path) {
    if (!MarkSet(key, where, path)) return;
    if (value.kind != RawValue::Kind::kScalar) {
      errors_.push_back(FormatError(value.location.empty() ? where : value.location, path,
                                    "expected a scalar value, got " + KindName(value.kind)));
      return;
    }
    values_[key] = value.scalar;
  }

  const PropertyTable& table_;
  const std::string& path_;
  const std::string& location_;
  const std::string& owner_;
  std::vector<std::string> names_;
  std::set<std::string> given_;                // spec names seen in the input
  std::map<std::string, std::string> set_at_;  // output key -> where it was set
  std::map<std::string, std::string> values_;
  std::vector<std::string> errors_;
};

bool IsPropertyNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

}  // namespace

RawValue RawValue::Scalar(std::string value, std::string location) {
  RawValue raw;
  raw.kind = Kind::kScalar;
  raw.scalar = std::move(value);
  raw.location = std::move(location);
  return raw;
}

Result<std::map<std::string, std::string>> ValidateProperties(const RawProperties& raw,
                                                              const PropertyTable& table,
                                                              const std::string& path,
                                                              const std::string& location,
                                                              const std::string& owner) {
  return Validator(table, path, location, owner).Run(raw);
}

Result<ClusterConfig> ValidateClusterConfig(const std::string& name, const std::string& backend,
                                            const RawProperties& raw, const PropertyTable& table,
                                            const std::string& path, const std::string& location) {
  MSGSDK_ASSIGN_OR_RETURN(
      auto properties, ValidateProperties(raw, table, path, location, "backend '" + backend + "'"));
  ClusterConfig config;
  config.name = name;
  config.backend = backend;
  config.properties = std::move(properties);
  config.source = location;
  return config;
}

Status ValidatePropertyTable(const PropertyTable& table) {
  std::vector<std::string> errors;
  std::set<std::string> names;
  for (const PropertySpec& spec : table) {
    auto fail = [&](const std::string& what) {
      errors.push_back("property " + Quote(spec.name) + ": " + what);
    };
    if (spec.name.empty() || !std::all_of(spec.name.begin(), spec.name.end(), IsPropertyNameChar)) {
      fail("names are 1 or more of the characters A-Z a-z 0-9 _ . -");
    }
    if (spec.name == "backend") fail("'backend' is the routing table's own key");
    if (!names.insert(spec.name).second) fail("defined more than once");
    if (spec.min > spec.max) fail("min is greater than max");
    if (spec.type == PropertySpec::Type::kEnum && spec.allowed.empty()) {
      fail("an enum needs allowed values");
    }
    if (spec.type != PropertySpec::Type::kEnum && !spec.allowed.empty()) {
      fail("allowed values are only for enums");
    }
    if (spec.type == PropertySpec::Type::kDuration && !spec.name.ends_with("_ms")) {
      fail("duration properties are milliseconds and their names end in \"_ms\"");
    }
    if (spec.type == PropertySpec::Type::kMap && !spec.default_value.empty()) {
      fail("map properties have no default");
    }
    if (spec.required && !spec.default_value.empty()) {
      fail("a required property cannot have a default");
    }
    if (!spec.default_value.empty() && spec.type != PropertySpec::Type::kMap) {
      std::string error;
      NormaliseScalar(spec, spec.default_value, &error);
      if (!error.empty()) fail("invalid default: " + error);
    }
  }
  // A flat "p.x" key must mean one thing: an entry of map property p, or a property itself.
  for (const PropertySpec& spec : table) {
    if (spec.type != PropertySpec::Type::kMap) continue;
    for (const PropertySpec& other : table) {
      if (other.name.starts_with(spec.name + ".")) {
        errors.push_back("property " + Quote(other.name) + ": clashes with the entries of map " +
                         "property " + Quote(spec.name));
      }
    }
  }
  if (errors.empty()) return OkStatus();
  std::string message = "invalid property table: ";
  for (size_t i = 0; i < errors.size(); ++i) message += (i == 0 ? "" : "; ") + errors[i];
  return InvalidArgumentError(std::move(message));
}

std::string PropertyTypeName(PropertySpec::Type type) {
  using Type = PropertySpec::Type;
  switch (type) {
    case Type::kString:
      return "string";
    case Type::kInt:
      return "integer";
    case Type::kBool:
      return "boolean";
    case Type::kDuration:
      return "duration (ms)";
    case Type::kBytes:
      return "bytes";
    case Type::kEnum:
      return "enum";
    case Type::kList:
      return "list";
    case Type::kMap:
      return "map";
  }
  return "unknown";
}

std::string FormatBytes(int64_t bytes) {
  if (bytes > 0) {
    if (bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "GiB";
    if (bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "MiB";
    if (bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "KiB";
  }
  return std::to_string(bytes);
}

std::string ClusterConfig::GetString(const std::string& key, const std::string& fallback) const {
  auto it = properties.find(key);
  return it == properties.end() ? fallback : it->second;
}

int64_t ClusterConfig::GetInt(const std::string& key, int64_t fallback) const {
  auto it = properties.find(key);
  if (it == properties.end()) return fallback;
  return ParseInt64(it->second).value_or(fallback);
}

bool ClusterConfig::GetBool(const std::string& key, bool fallback) const {
  auto it = properties.find(key);
  if (it == properties.end()) return fallback;
  if (it->second == "true") return true;
  if (it->second == "false") return false;
  return fallback;
}

std::chrono::milliseconds ClusterConfig::GetDuration(const std::string& key,
                                                     std::chrono::milliseconds fallback) const {
  auto it = properties.find(key);
  if (it == properties.end()) return fallback;
  std::optional<int64_t> ms = ParseInt64(it->second);
  return ms ? std::chrono::milliseconds(*ms) : fallback;
}

std::vector<std::string> ClusterConfig::GetList(const std::string& key) const {
  std::vector<std::string> items;
  auto it = properties.find(key);
  if (it == properties.end() || it->second.empty()) return items;
  std::string_view text = it->second;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    items.emplace_back(
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

std::map<std::string, std::string> ClusterConfig::GetMap(const std::string& prefix) const {
  std::map<std::string, std::string> entries;
  const std::string start = prefix + ".";
  for (auto it = properties.lower_bound(start);
       it != properties.end() && it->first.starts_with(start); ++it) {
    entries.emplace(it->first.substr(start.size()), it->second);
  }
  return entries;
}

}  // namespace msgsdk::core
