// msgsdk route TOPIC: where a topic resolves and why, from the routing table a client started
// with the same flags and environment would load, without connecting to any cluster.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/formatting.h"
#include <fmt/format.h>

#include "api/default_registry.h"
#include "core/cluster_config.h"
#include "core/routing/client_table.h"
#include "core/routing/routing_table.h"

namespace msgsdk::cli {
namespace {

using core::EnvironmentChoice;
using core::RoutingTableOrigin;

constexpr std::string_view kHidden = "<hidden>";

struct RouteFlags {
  std::string topic;
  bool all_properties = false;
};

std::string WhyEnvironment(EnvironmentChoice::Reason reason) {
  switch (reason) {
    case EnvironmentChoice::Reason::kOptions:
      return "chosen by --env";
    case EnvironmentChoice::Reason::kEnvVariable:
      return "chosen by MSGSDK_ENV";
    case EnvironmentChoice::Reason::kDefaultEnvironment:
      return "the table's default_environment";
    case EnvironmentChoice::Reason::kOnlyEnvironment:
      return "the table's only environment";
  }
  return "unknown";
}

std::string DescribeOrigin(const RoutingTableOrigin& origin) {
  switch (origin.kind) {
    case RoutingTableOrigin::Kind::kOptionsPath:
      return origin.path + " (--config)";
    case RoutingTableOrigin::Kind::kConfigVariable:
      return origin.path + " (MSGSDK_CONFIG)";
    case RoutingTableOrigin::Kind::kBuiltInDefault:
      return "built-in default (no --config and no MSGSDK_CONFIG): one embedded native cluster "
             "storing in " +
             origin.path;
    case RoutingTableOrigin::Kind::kOptionsYaml:
      break;
  }
  return std::string(core::RoutingTableOriginName(origin.kind));
}

std::string DescribeMatch(const core::ResolvedRoute& route) {
  if (route.rule == nullptr) return "the environment's default_cluster (no topic entry matches)";
  if (route.rule->is_glob) {
    return fmt::format("glob {} ({})", Quoted(route.rule->pattern), route.rule->source);
  }
  return fmt::format("exact topic entry {} ({})", Quoted(route.rule->pattern), route.rule->source);
}

std::string DescribePhase(const core::MigrationConfig& migration) {
  switch (migration.phase) {
    case core::MigrationPhase::kA:
      return fmt::format("{} only", migration.from);
    case core::MigrationPhase::kDualWrite:
      return fmt::format("writes {} (primary) and {} (shadow), reads {}", migration.from,
                         migration.to, migration.from);
    case core::MigrationPhase::kCutover:
      return fmt::format("writes {} (primary) and {} (shadow), reads {} up to the fences, then {}",
                         migration.to, migration.from, migration.from, migration.to);
    case core::MigrationPhase::kB:
      return fmt::format("{} only", migration.to);
  }
  return "unknown";
}

// The normalised default of every property that has one, as a validated cluster holds it.
std::map<std::string, std::string> NormalisedDefaults(const core::PropertyTable& table) {
  std::map<std::string, std::string> defaults;
  for (core::PropertySpec spec : table) {
    if (spec.default_value.empty()) continue;
    spec.required = false;
    auto normalised = core::ValidateProperties({}, {spec}, "defaults", "", "backend");
    if (normalised.ok()) defaults.insert(normalised->begin(), normalised->end());
  }
  return defaults;
}

// Prints the cluster's properties: addresses, paths and names (string and list properties),
// map entries and whatever differs from its default; the others only with --all-properties.
// Secrets are never printed.
void PrintProperties(const core::ClusterConfig& cluster, const core::BackendRegistry& registry,
                     bool all) {
  const core::PropertyTable* table = nullptr;
  if (auto factory = registry.Find(cluster.backend); factory.ok()) {
    table = &(*factory)->properties();
  }
  const std::map<std::string, std::string> defaults =
      table != nullptr ? NormalisedDefaults(*table) : std::map<std::string, std::string>{};
  auto spec_of = [&](const std::string& name) -> const core::PropertySpec* {
    if (table == nullptr) return nullptr;
    auto it = std::find_if(table->begin(), table->end(),
                           [&](const core::PropertySpec& spec) { return spec.name == name; });
    return it == table->end() ? nullptr : &*it;
  };
  std::vector<std::pair<std::string, std::string>> shown;
  size_t at_default = 0;
  for (const auto& [name, value] : cluster.properties) {
    const core::PropertySpec* spec = spec_of(name);
    auto default_it = defaults.find(name);
    const bool is_default = default_it != defaults.end() && default_it->second == value;
    const bool identifying = spec == nullptr || spec->type == core::PropertySpec::Type::kString ||
                             spec->type == core::PropertySpec::Type::kList;
    if (!all && is_default && !identifying) {
      ++at_default;
      continue;
    }
    std::string text = IsSecretProperty(name) ? std::string(kHidden) : value;
    if (all && is_default) text += " (default)";
    shown.emplace_back(name, std::move(text));
  }
  size_t width = 0;
  for (const auto& [name, value] : shown) width = std::max(width, name.size());
  fmt::print("properties:\n");
  for (const auto& [name, value] : shown) fmt::print("  {:<{}}  {}\n", name, width, value);
  if (at_default > 0) {
    fmt::print("  ({} more at their defaults; --all-properties lists them)\n", at_default);
  }
}

int Route(const GlobalOptions& globals, const RouteFlags& flags) {
  const ClientOptions options = globals.ToClientOptions();
  std::string sidecar = options.sidecar;
  if (sidecar.empty()) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, nothing here calls setenv
    if (const char* value = std::getenv("MSGSDK_SIDECAR")) sidecar = value;
  }
  if (!sidecar.empty()) {
    fmt::print(stderr,
               "msgsdk: note: clients started with this environment use msgsdk-sidecar at {}, "
               "which routes with its own table; this is the local configuration\n",
               sidecar);
  }
  const auto registry = internal::DefaultBackendRegistry();
  const RoutingTableOrigin origin = core::FindRoutingTable(options);
  auto table = core::LoadRoutingTable(origin, options, *registry);
  if (!table.ok()) {
    PrintTableErrors(table.status(), DescribeOrigin(origin));
    fmt::print(stderr,
               "msgsdk: clients cannot start with it; running clients keep their last good "
               "version of the table\n");
    return kExitFailed;
  }
  auto choice = core::ChooseClientEnvironment(**table, options);
  if (!choice.ok()) return Fail("route", choice.status());
  const core::EnvironmentConfig& environment = *choice->environment;
  auto route = (*table)->Resolve(environment.name, flags.topic);
  if (!route.ok()) return Fail("route", route.status());
  const core::ClusterConfig& cluster = *route->cluster;

  fmt::print("topic:        {}\n", flags.topic);
  fmt::print("environment:  {} ({})\n", environment.name, WhyEnvironment(choice->reason));
  fmt::print("cluster:      {} (defined at {})\n", cluster.name, cluster.source);
  fmt::print("backend:      {}\n", cluster.backend);
  fmt::print("matched by:   {}\n", DescribeMatch(*route));
  auto migration = (*table)->migrations().find(flags.topic);
  if (migration == (*table)->migrations().end()) {
    fmt::print("migration:    none\n");
  } else {
    const core::MigrationConfig& entry = migration->second;
    fmt::print("migration:    from {} to {}, phase {} ({}; defined at {})\n", entry.from, entry.to,
               core::MigrationPhaseName(entry.phase), DescribePhase(entry), entry.source);
    for (const std::string* name : {&entry.from, &entry.to}) {
      if (!environment.clusters.contains(*name)) {
        fmt::print("              note: {} is not a cluster of environment {}\n", *name,
                   environment.name);
      }
    }
  }
  fmt::print("routing:      version {}, {}\n", (*table)->version(), DescribeOrigin(origin));
  PrintProperties(cluster, *registry, flags.all_properties);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace

void AddRouteCommand(CLI::App& app, const GlobalOptions& globals, Action* action) {
  auto flags = std::make_shared<RouteFlags>();
  CLI::App* route = app.add_subcommand(
      "route",
      "Show where a topic resolves (environment and why, cluster, backend, the rule that "
      "matched, migration, the cluster's properties) without connecting anywhere");
  route->add_option("TOPIC", flags->topic, "The topic")->required();
  route->add_flag("--all-properties", flags->all_properties,
                  "List every property of the cluster, defaults included (secrets stay hidden)");
  route->callback([&globals, flags, action] {
    *action = [&globals, flags] { return Route(globals, *flags); };
  });
}

}  // namespace msgsdk::cli
