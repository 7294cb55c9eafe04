// msgsdk: the command line of the SDK.
//
//   msgsdk config validate [FILE]        check a routing table; print a summary or its errors
//   msgsdk route TOPIC                   where TOPIC resolves and why, connecting nowhere
//   msgsdk send TOPIC BODY               send a message; print its id and position
//   msgsdk tail TOPIC --group G          print a group's messages as they arrive
//   msgsdk reset TOPIC GROUP --to WHERE  move a group's position (replay)
//
// Global flags (before or after the subcommand): --config, --env, --data-dir, --client-id,
// --sidecar; without them the MSGSDK_* environment variables apply, as for any client.
// Exit status: 0 done, 1 the operation failed (the reason is on standard error), 2 usage error.
// docs/cli.md describes every subcommand.

#include <csignal>
#include <cstdio>
#include <exception>

#include "cli/cli.h"
#include <CLI/CLI.hpp>

namespace {

int Run(int argc, char** argv) {
  using namespace msgsdk::cli;  // NOLINT(google-build-using-namespace): this file's own
  CLI::App app{
      "msgsdk: send, tail, route and replay messages, and check routing tables, configured "
      "like any msgsdk client",
      "msgsdk"};
  app.set_version_flag("--version", MSGSDK_VERSION);
  app.require_subcommand(1);
  // Global flags are accepted after the subcommand too: `msgsdk route orders --env prod`.
  app.fallthrough();
  app.footer(
      "Exit status: 0 done, 1 the operation failed (reason on standard error), 2 usage error.\n"
      "Without --config, --env and --data-dir the MSGSDK_CONFIG, MSGSDK_ENV and "
      "MSGSDK_DATA_DIR\nenvironment variables apply; MSGSDK_SIDECAR (or --sidecar) sends "
      "everything through msgsdk-sidecar.");
  GlobalOptions globals;
  app.add_option("--config", globals.config_path,
                 "Routing table file (default: $MSGSDK_CONFIG; without either, one embedded "
                 "native cluster)");
  app.add_option("--env", globals.environment,
                 "Environment of the routing table (default: $MSGSDK_ENV, then the table's "
                 "default_environment, then its only one)");
  app.add_option("--data-dir", globals.data_dir,
                 "Data directory of the built-in embedded cluster, used only without a routing "
                 "table (default: $MSGSDK_DATA_DIR, then ./msgsdk-data)");
  app.add_option("--client-id", globals.client_id,
                 "Client name in logs and broadcast member ids (default: <hostname>-<pid>)");
  app.add_option("--sidecar", globals.sidecar,
                 "Use msgsdk-sidecar at host:port or unix:/path (default: $MSGSDK_SIDECAR)");

  Action action;
  AddConfigCommands(app, globals, &action);
  AddRouteCommand(app, globals, &action);
  AddMessageCommands(app, globals, &action);
  AddMigrateCommands(app, globals, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  return action ? action() : kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed output pipe (`msgsdk tail ... | head`) must fail a write, not kill the process
  // before tail has closed its subscription.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "msgsdk: internal error: %s\n", e.what());
    return msgsdk::cli::kExitFailed;
  }
}
