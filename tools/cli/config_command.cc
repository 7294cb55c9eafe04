// msgsdk config validate [FILE]: checks a routing table as a client would load it, with the
// property table of every backend compiled into this build.

#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli.h"
#include <fmt/format.h>

#include "api/default_registry.h"
#include "core/routing/client_table.h"
#include "core/routing/routing_table.h"

namespace msgsdk::cli {
namespace {

std::string Plural(size_t count, std::string_view singular, std::string_view plural) {
  return fmt::format("{} {}", count, count == 1 ? singular : plural);
}

void PrintSummary(const std::string& path, const core::RoutingTable& table) {
  fmt::print("{}: valid routing table\n", path);
  fmt::print("  version: {}\n", table.version());
  fmt::print("  default environment: {}\n",
             table.default_environment().empty() ? "(none)" : table.default_environment());
  fmt::print("  environments: {}\n", table.environments().size());
  for (const auto& [name, environment] : table.environments()) {
    fmt::print("    {}: {}, {}, default cluster {}\n", name,
               Plural(environment.clusters.size(), "cluster", "clusters"),
               Plural(environment.topics.size(), "topic rule", "topic rules"),
               environment.default_cluster.empty() ? "(none)" : environment.default_cluster);
    for (const auto& [cluster_name, cluster] : environment.clusters) {
      fmt::print("      {}: backend {} ({})\n", cluster_name, cluster.backend, cluster.source);
    }
  }
  fmt::print("  migrations: {}\n", table.migrations().size());
  for (const auto& [topic, migration] : table.migrations()) {
    fmt::print("    {}: {} -> {}, phase {} ({})\n", topic, migration.from, migration.to,
               core::MigrationPhaseName(migration.phase), migration.source);
  }
  if (table.environments().size() > 1 && table.default_environment().empty()) {
    fmt::print(
        "  note: several environments and no default_environment: every client must choose "
        "one (ClientOptions.environment, MSGSDK_ENV or --env)\n");
  }
}

int Validate(const GlobalOptions& globals, std::string path) {
  if (path.empty()) {
    const core::RoutingTableOrigin origin = core::FindRoutingTable(globals.ToClientOptions());
    if (origin.kind == core::RoutingTableOrigin::Kind::kBuiltInDefault) {
      return UsageError("config validate: no file to check: give FILE, --config or MSGSDK_CONFIG");
    }
    path = origin.path;
  }
  const auto registry = internal::DefaultBackendRegistry();
  auto table = core::RoutingTable::LoadFile(path, *registry);
  if (!table.ok()) {
    PrintTableErrors(table.status(), path);
    return kExitFailed;
  }
  PrintSummary(path, **table);
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace

void AddConfigCommands(CLI::App& app, const GlobalOptions& globals, Action* action) {
  CLI::App* config = app.add_subcommand("config", "Check routing tables");
  config->require_subcommand(1);
  CLI::App* validate = config->add_subcommand(
      "validate",
      "Validate a routing-table file against every backend of this build; print a summary, or "
      "every error as file:line:col: field: what");
  auto file = std::make_shared<std::string>();
  validate->add_option("FILE", *file, "The routing table (default: --config, then $MSGSDK_CONFIG)");
  validate->callback([&globals, file, action] {
    *action = [&globals, file] { return Validate(globals, *file); };
  });
}

}  // namespace msgsdk::cli
