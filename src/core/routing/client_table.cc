#include "core/routing/client_table.h"

#include <cstdlib>
#include <utility>

namespace msgsdk::core {
namespace {

constexpr std::string_view kConfigVariable = "MSGSDK_CONFIG";
constexpr std::string_view kEnvVariable = "MSGSDK_ENV";
constexpr std::string_view kDataDirVariable = "MSGSDK_DATA_DIR";
constexpr std::string_view kDefaultDataDir = "./msgsdk-data";

// The variable's value; empty when unset or set to the empty string.
std::string Variable(std::string_view name) {
  // Clients read their environment once, at creation; nothing in the SDK calls setenv.
  const char* value = std::getenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
  return value != nullptr ? std::string(value) : std::string();
}

}  // namespace

std::string_view RoutingTableOriginName(RoutingTableOrigin::Kind kind) {
  switch (kind) {
    case RoutingTableOrigin::Kind::kOptionsYaml:
      return "ClientOptions.config_yaml";
    case RoutingTableOrigin::Kind::kOptionsPath:
      return "ClientOptions.config_path";
    case RoutingTableOrigin::Kind::kConfigVariable:
      return kConfigVariable;
    case RoutingTableOrigin::Kind::kBuiltInDefault:
      return "built-in default";
  }
  return "unknown";
}

RoutingTableOrigin FindRoutingTable(const ClientOptions& options) {
  using Kind = RoutingTableOrigin::Kind;
  if (!options.config_yaml.empty()) return {.kind = Kind::kOptionsYaml, .path = {}};
  if (!options.config_path.empty())
    return {.kind = Kind::kOptionsPath, .path = options.config_path};
  if (std::string path = Variable(kConfigVariable); !path.empty()) {
    return {.kind = Kind::kConfigVariable, .path = std::move(path)};
  }
  std::string data_dir = options.data_dir;
  if (data_dir.empty()) data_dir = Variable(kDataDirVariable);
  if (data_dir.empty()) data_dir = kDefaultDataDir;
  return {.kind = Kind::kBuiltInDefault, .path = std::move(data_dir)};
}

Result<std::shared_ptr<const RoutingTable>> LoadRoutingTable(const RoutingTableOrigin& origin,
                                                             const ClientOptions& options,
                                                             const BackendRegistry& registry) {
  switch (origin.kind) {
    case RoutingTableOrigin::Kind::kOptionsYaml:
      return RoutingTable::Parse(options.config_yaml, "<ClientOptions.config_yaml>", registry);
    case RoutingTableOrigin::Kind::kOptionsPath:
    case RoutingTableOrigin::Kind::kConfigVariable:
      return RoutingTable::LoadFile(origin.path, registry);
    case RoutingTableOrigin::Kind::kBuiltInDefault:
      return RoutingTable::Default(origin.path, registry);
  }
  return InternalError("unknown routing table origin");
}

Result<std::shared_ptr<const RoutingTable>> LoadRoutingTable(const ClientOptions& options,
                                                             const BackendRegistry& registry) {
  return LoadRoutingTable(FindRoutingTable(options), options, registry);
}

Result<EnvironmentChoice> ChooseClientEnvironment(const RoutingTable& table,
                                                  const ClientOptions& options) {
  using Reason = EnvironmentChoice::Reason;
  std::string requested = options.environment;
  Reason reason = Reason::kOptions;
  if (requested.empty()) {
    requested = Variable(kEnvVariable);
    reason = Reason::kEnvVariable;
  }
  if (requested.empty()) {
    // ChooseEnvironment falls back to default_environment, then to the only environment.
    reason = table.default_environment().empty() ? Reason::kOnlyEnvironment
                                                 : Reason::kDefaultEnvironment;
  }
  MSGSDK_ASSIGN_OR_RETURN(const EnvironmentConfig* environment, table.ChooseEnvironment(requested));
  return EnvironmentChoice{.environment = environment, .reason = reason};
}

}  // namespace msgsdk::core
