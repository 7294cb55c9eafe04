// msgsdk migrate status|advance|rollback TOPIC: the migration controller on the routing file
// (--config or MSGSDK_CONFIG), judging from what the running clients report.
//
// Where the reports come from: the routing push service the clients follow
// (--routing-service: every client connected to it), and every --client-sidecar (an
// msgsdk-sidecar, whose report covers the services behind it). A step is never taken blind:
// without a report source the command refuses unless --no-clients says no client runs the file.

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include <fmt/format.h>

#include "core/routing/client_table.h"
#include "msgsdk/msgsdk.h"

namespace msgsdk::cli {
namespace {

struct MigrateOptions {
  std::string topic;
  std::string routing_service;
  std::vector<std::string> sidecars;
  bool no_clients = false;
};

void PrintReport(const MigrationReport& report) {
  fmt::print("topic {}: {} -> {}, phase {}, generation {} (routing version {})\n", report.topic,
             report.from, report.to, report.phase, report.generation, report.version);
  fmt::print("  drain offsets: {}\n", report.drain_known ? "written" : "not written");
  fmt::print("  shadow copies: {} written, {} failed{}\n", report.shadow_sent,
             report.shadow_failed,
             report.last_shadow_error.empty() ? "" : " (last: " + report.last_shadow_error + ")");
  if (!report.done.empty()) fmt::print("  done: {}\n", report.done);
  if (!report.next.empty()) fmt::print("  next: {}\n", report.next);
  if (report.waiting.empty()) {
    fmt::print("  waiting for: nothing\n");
  } else {
    fmt::print("  waiting for:\n");
    for (const std::string& line : report.waiting) fmt::print("    {}\n", line);
  }
}

// The reports of the clients that run the file.
Result<std::vector<RoutingState>> Reports(const MigrateOptions& options) {
  if (options.routing_service.empty() && options.sidecars.empty() && !options.no_clients) {
    return FailedPreconditionError(
        "no client reports: name the routing service the clients follow with "
        "--routing-service, or every msgsdk-sidecar running the file with --client-sidecar, or "
        "say --no-clients if no client runs it (a step is never taken blind)");
  }
  std::vector<RoutingState> reports;
  if (!options.routing_service.empty()) {
    MSGSDK_ASSIGN_OR_RETURN(reports, RoutingServiceReports(options.routing_service));
  }
  for (const std::string& address : options.sidecars) {
    ClientOptions client_options;
    client_options.sidecar = address;
    MSGSDK_ASSIGN_OR_RETURN(Client client, Client::Create(client_options));
    Result<RoutingState> state = client.Routing();
    client.Close().IgnoreError();
    if (!state.ok()) return state.status().WithContext("msgsdk-sidecar at " + address);
    reports.push_back(std::move(state).value());
  }
  return reports;
}

int Run(const GlobalOptions& globals, const MigrateOptions& options, const std::string& verb) {
  const core::RoutingTableOrigin origin = core::FindRoutingTable(globals.ToClientOptions());
  if (origin.kind != core::RoutingTableOrigin::Kind::kOptionsPath &&
      origin.kind != core::RoutingTableOrigin::Kind::kConfigVariable) {
    return UsageError(
        "migrate: name the routing file the clients watch with --config or "
        "MSGSDK_CONFIG");
  }
  auto controller =
      MigrationController::Open({.routing_file = origin.path, .environment = globals.environment});
  if (!controller.ok()) return Fail("migrate", controller.status());
  auto reports = Reports(options);
  if (!reports.ok()) return Fail("migrate " + verb, reports.status());
  Result<MigrationReport> report = verb == "advance" ? controller->Advance(options.topic, *reports)
                                   : verb == "rollback"
                                       ? controller->Rollback(options.topic, *reports)
                                       : controller->Inspect(options.topic, *reports);
  if (!report.ok()) return Fail("migrate " + verb + " " + options.topic, report.status());
  PrintReport(*report);
  return kExitOk;
}

}  // namespace

void AddMigrateCommands(CLI::App& app, const GlobalOptions& globals, Action* action) {
  CLI::App* migrate = app.add_subcommand(
      "migrate", "Move a topic between clusters, one phase at a time (docs/migration.md)");
  migrate->require_subcommand(1);
  auto options = std::make_shared<MigrateOptions>();
  for (const auto& [verb, help] : std::vector<std::pair<std::string, std::string>>{
           {"status", "Show the phase and what the next step waits for"},
           {"advance",
            "Take the next step when nothing waits: the drain offsets, or the next phase"},
           {"rollback", "Take a step back: dual_write -> A, cutover -> dual_write"}}) {
    CLI::App* command = migrate->add_subcommand(verb, help);
    command->add_option("TOPIC", options->topic, "The migrating topic")->required();
    command->add_option("--routing-service", options->routing_service,
                        "The routing push service the clients follow (msgsdk-sidecar "
                        "--serve-routing): every client connected to it reports");
    command->add_option("--client-sidecar", options->sidecars,
                        "An msgsdk-sidecar running the routing file (repeat for each): its "
                        "report counts in what a step waits for");
    command->add_flag("--no-clients", options->no_clients,
                      "No client runs the routing file: take steps without reports");
    command->callback([&globals, options, action, verb = verb] {
      *action = [&globals, options, verb] { return Run(globals, *options, verb); };
    });
  }
}

}  // namespace msgsdk::cli
