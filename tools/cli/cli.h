#pragma once

// The `msgsdk` command line: what its subcommands share. Each group of subcommands lives in
// its own file and registers itself on the application with an Add...Commands function; a
// new group is one more file and one more call in main.cc.

#include <functional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "msgsdk/options.h"
#include "msgsdk/status.h"

namespace msgsdk::cli {

// Exit statuses of every subcommand.
inline constexpr int kExitOk = 0;
// The operation failed: the Status (or the configuration errors) went to standard error.
inline constexpr int kExitFailed = 1;
// The command line was wrong (unknown flag, missing or malformed argument).
inline constexpr int kExitUsage = 2;

// The flags every subcommand accepts (given before or after the subcommand's name).
struct GlobalOptions {
  std::string config_path;  // --config
  std::string environment;  // --env
  std::string data_dir;     // --data-dir
  std::string client_id;    // --client-id
  std::string sidecar;      // --sidecar

  // The options a Client would be created with; empty fields fall back to the MSGSDK_*
  // environment variables exactly as in any client.
  ClientOptions ToClientOptions() const;
};

// What the parsed subcommand does. A subcommand's parse callback sets it; main runs it after
// the whole command line parsed, and returns its result as the exit status.
using Action = std::function<int()>;

// `config validate`.
void AddConfigCommands(CLI::App& app, const GlobalOptions& globals, Action* action);
// `route`.
void AddRouteCommand(CLI::App& app, const GlobalOptions& globals, Action* action);
// `send`, `tail`, `reset`.
void AddMessageCommands(CLI::App& app, const GlobalOptions& globals, Action* action);
// `migrate status|advance|rollback`.
void AddMigrateCommands(CLI::App& app, const GlobalOptions& globals, Action* action);

// Writes "msgsdk: <context>: <status>" to standard error, with each further line of a
// multi-line message on its own line. Returns kExitFailed.
int Fail(std::string_view context, const Status& status);

// Writes "msgsdk: <message>" to standard error. Returns kExitUsage.
int UsageError(std::string_view message);

// Prints every line of a routing table's validation errors to standard error as they are
// ("file:line:col: field: what"), then what it means for `what` ("msgsdk: routing.yaml: ...").
void PrintTableErrors(const Status& status, std::string_view source);

// A CLI11 check that runs `parse` on the option's value and reports its error message.
template <typename Parse>
CLI::Validator ParsedBy(std::string description, Parse parse) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        auto parsed = parse(value);
        return parsed.ok() ? std::string() : parsed.status().message();
      },
      std::move(description));
}

}  // namespace msgsdk::cli
