#pragma once

// How a client in process finds its routing table and its environment: ClientOptions first,
// then the MSGSDK_CONFIG / MSGSDK_ENV / MSGSDK_DATA_DIR environment variables, then the
// built-in default. The engine and the `msgsdk` command line both go through these functions,
// so `msgsdk route` answers exactly what a client started the same way would do.

#include <memory>
#include <string>
#include <string_view>

#include "core/backend_registry.h"
#include "core/routing/routing_table.h"
#include "msgsdk/options.h"
#include "msgsdk/result.h"

namespace msgsdk::core {

// Where the routing table comes from, decided without reading anything.
struct RoutingTableOrigin {
  enum class Kind {
    kOptionsYaml,     // ClientOptions.config_yaml
    kOptionsPath,     // ClientOptions.config_path
    kConfigVariable,  // the MSGSDK_CONFIG environment variable
    kBuiltInDefault,  // no configuration: one embedded native cluster
  };
  Kind kind = Kind::kBuiltInDefault;
  // kOptionsPath, kConfigVariable: the file. kBuiltInDefault: the embedded cluster's data
  // directory (ClientOptions.data_dir, else MSGSDK_DATA_DIR, else "./msgsdk-data").
  // kOptionsYaml: empty (the text is in the options).
  std::string path;
};

// "ClientOptions.config_yaml", "ClientOptions.config_path", "MSGSDK_CONFIG", "built-in default".
std::string_view RoutingTableOriginName(RoutingTableOrigin::Kind kind);

// The first of config_yaml, config_path, $MSGSDK_CONFIG, the built-in default. An environment
// variable set to the empty string counts as unset.
RoutingTableOrigin FindRoutingTable(const ClientOptions& options);

// Reads and validates the table `origin` names (`options` supplies the text of a
// kOptionsYaml origin). Errors are those of RoutingTable::Parse and LoadFile.
Result<std::shared_ptr<const RoutingTable>> LoadRoutingTable(const RoutingTableOrigin& origin,
                                                             const ClientOptions& options,
                                                             const BackendRegistry& registry);

// FindRoutingTable, then LoadRoutingTable.
Result<std::shared_ptr<const RoutingTable>> LoadRoutingTable(const ClientOptions& options,
                                                             const BackendRegistry& registry);

// The environment a client uses, and which rule chose it.
struct EnvironmentChoice {
  enum class Reason {
    kOptions,             // ClientOptions.environment
    kEnvVariable,         // the MSGSDK_ENV environment variable
    kDefaultEnvironment,  // the table's default_environment
    kOnlyEnvironment,     // the table defines exactly one environment
  };
  const EnvironmentConfig* environment = nullptr;  // points into the table
  Reason reason = Reason::kOptions;
};

// ClientOptions.environment, else $MSGSDK_ENV, else the table's choice
// (RoutingTable::ChooseEnvironment, whose errors it returns).
Result<EnvironmentChoice> ChooseClientEnvironment(const RoutingTable& table,
                                                  const ClientOptions& options);

}  // namespace msgsdk::core
