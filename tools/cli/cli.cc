#include "cli/cli.h"

#include <cstdio>

#include <fmt/format.h>

namespace msgsdk::cli {

ClientOptions GlobalOptions::ToClientOptions() const {
  return ClientOptions{.config_path = config_path,
                       .config_yaml = {},
                       .environment = environment,
                       .data_dir = data_dir,
                       .client_id = client_id,
                       .sidecar = sidecar};
}

int Fail(std::string_view context, const Status& status) {
  const std::string text = status.ToString();
  if (context.empty()) {
    fmt::print(stderr, "msgsdk: {}\n", text);
  } else {
    fmt::print(stderr, "msgsdk: {}: {}\n", context, text);
  }
  return kExitFailed;
}

int UsageError(std::string_view message) {
  fmt::print(stderr, "msgsdk: {}\nRun with --help for more information.\n", message);
  return kExitUsage;
}

void PrintTableErrors(const Status& status, std::string_view source) {
  if (status.code() != StatusCode::kInvalidArgument) {
    // Not a validation failure: the file could not be read (its message names the path).
    fmt::print(stderr, "msgsdk: {}\n", status.ToString());
    return;
  }
  // Each line already reads "file:line:col: field: what"; editors and grep use them as is.
  std::string_view rest = status.message();
  while (!rest.empty()) {
    const size_t newline = rest.find('\n');
    fmt::print(stderr, "{}\n", rest.substr(0, newline));
    if (newline == std::string_view::npos) break;
    rest.remove_prefix(newline + 1);
  }
  fmt::print(stderr, "msgsdk: {} is not a valid routing table\n", source);
}

}  // namespace msgsdk::cli
