#pragma once

// One cell of the conformance matrix: a backend (with a real cluster behind it) reached
// through a transport. The suite asks a cell only for client options; everything else is the
// public API.

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "msgsdk/options.h"

namespace msgsdk::conformance {

class ClusterEnvironment {
 public:
  virtual ~ClusterEnvironment() = default;
  // A routing table whose default cluster is this cell's cluster, in environment
  // "conformance", with fast retry settings. Each call may give the same table.
  virtual std::string RoutingYaml() const = 0;

  // How the suite's clients reach the cell: in process over RoutingYaml(), or through a
  // sidecar serving it.
  virtual ClientOptions Options() const {
    return ClientOptions{.config_yaml = RoutingYaml(), .environment = "conformance"};
  }
};

struct Cell {
  // "native_inprocess": backend, then transport.
  std::string name;
  // Starts what the cell needs (a fresh cluster or a fresh namespace on a shared one).
  std::function<std::unique_ptr<ClusterEnvironment>()> make;
};

// gtest prints a test's parameter in its CTest name: show the cell's name, not its bytes.
inline void PrintTo(const Cell& cell, std::ostream* out) { *out << cell.name; }

// Every cell this build can run.
std::vector<Cell> AllCells();

// The `client:` section every cell uses: quick retries so the retry tests are fast, and
// `close_timeout_ms` (5 s unless a cell needs more).
inline std::string ConformanceClientSettings(int close_timeout_ms = 5000) {
  return "client:\n"
         "  retry_backoff_ms: 10\n"
         "  retry_backoff_max_ms: 100\n"
         "  max_attempts: 4\n"
         "  close_timeout_ms: " +
         std::to_string(close_timeout_ms) +
         "\n"
         "  send_timeout_ms: 10000\n";
}

}  // namespace msgsdk::conformance
