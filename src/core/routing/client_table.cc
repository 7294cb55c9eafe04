#include "core/routing/client_table.h"

#include <utility>

#include "core/client_options.h"

namespace msgsdk::core {

std::string_view RoutingTableOriginName(RoutingTableOrigin::Kind kind) {
  switch (kind) {
    case RoutingTableOrigin::Kind::kOptionsYaml:
      return "ClientOptions.config_yaml";
    case RoutingTableOrigin::Kind::kOptionsPath:
      return "ClientOptions.config_path";
    case RoutingTableOrigin::Kind::kConfigVariable:
      return "MSGSDK_CONFIG";
    case RoutingTableOrigin::Kind::kBuiltInDefault:
      return "built-in default";
  }
  return "unknown";
}

RoutingTableOrigin FindRoutingTable(const ClientOptions& options) {
  using Kind = RoutingTableOrigin::Kind;
  if (!options.config_yaml.empty()) return {.kind = Kind::kOptionsYaml, .path = {}};
  if (!options.config_path.empty()) {
    return {.kind = Kind::kOptionsPath, .path = options.config_path};
  }
  if (std::string path = ConfigPathOf(options); !path.empty()) {
    return {.kind = Kind::kConfigVariable, .path = std::move(path)};
  }
  return {.kind = Kind::kBuiltInDefault, .path = DataDirOf(options)};
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
  const std::string requested = RequestedEnvironment(options);
  Reason reason = !options.environment.empty() ? Reason::kOptions : Reason::kEnvVariable;
  if (requested.empty()) {
    // ChooseEnvironment falls back to default_environment, then to the only environment.
    reason = table.default_environment().empty() ? Reason::kOnlyEnvironment
                                                 : Reason::kDefaultEnvironment;
  }
  MSGSDK_ASSIGN_OR_RETURN(const EnvironmentConfig* environment, table.ChooseEnvironment(requested));
  return EnvironmentChoice{.environment = environment, .reason = reason};
}

}  // namespace msgsdk::core
