#pragma once

// The migration controller (docs/migration.md): reads a topic's migration entry from the
// routing file, judges from the clients' reports whether the next step may be taken, and
// writes it (the drain offsets, or the next phase) as a new version of the file.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend_registry.h"
#include "core/routing/routing_table.h"
#include "msgsdk/migration.h"

namespace msgsdk::core {

class MigrationSteps {
 public:
  MigrationSteps(std::string path, std::string environment,
                 std::shared_ptr<const BackendRegistry> registry);

  Result<MigrationReport> Inspect(const std::string& topic,
                                  const std::vector<RoutingState>& clients);
  Result<MigrationReport> Advance(const std::string& topic,
                                  const std::vector<RoutingState>& clients);
  Result<MigrationReport> Rollback(const std::string& topic,
                                   const std::vector<RoutingState>& clients);

 private:
  struct Snapshot;
  Result<Snapshot> Read(const std::string& topic);
  // The report of `snapshot` for `clients`, with what Advance would do and what it waits for.
  MigrationReport Judge(const Snapshot& snapshot, const std::vector<RoutingState>& clients);
  // The end of every partition of `cluster` for the topic.
  Result<std::map<int32_t, int64_t>> EndOffsets(const Snapshot& snapshot,
                                                const std::string& cluster);
  Status Write(const Snapshot& snapshot, const MigrationConfig& entry, std::string& done);

  const std::string path_;
  const std::string environment_;
  const std::shared_ptr<const BackendRegistry> registry_;
};

}  // namespace msgsdk::core
