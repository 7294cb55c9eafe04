#include "core/migration/migration_controller.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <utility>

#include "core/migration/migration_file.h"
#include "core/routing/client_table.h"

namespace msgsdk::core {
namespace {

std::string Joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += (text.empty() ? "" : "; ") + line;
  return text;
}

// The cluster groups leave in `phase`: `from` once primary copies go to `to`, else `to`.
const std::string& LeftCluster(const MigrationConfig& entry) {
  return entry.phase == MigrationPhase::kCutover || entry.phase == MigrationPhase::kB
             ? entry.from
             : entry.to;
}

}  // namespace

struct MigrationSteps::Snapshot {
  std::string text;
  std::shared_ptr<const RoutingTable> table;
  const EnvironmentConfig* environment = nullptr;
  MigrationConfig entry;
};

MigrationSteps::MigrationSteps(std::string path, std::string environment,
                               std::shared_ptr<const BackendRegistry> registry)
    : path_(std::move(path)), environment_(std::move(environment)), registry_(std::move(registry)) {}

Result<MigrationSteps::Snapshot> MigrationSteps::Read(const std::string& topic) {
  Snapshot snapshot;
  MSGSDK_ASSIGN_OR_RETURN(snapshot.text, RoutingTable::ReadFile(path_));
  MSGSDK_ASSIGN_OR_RETURN(snapshot.table, RoutingTable::Parse(snapshot.text, path_, *registry_));
  ClientOptions options;
  options.environment = environment_;
  MSGSDK_ASSIGN_OR_RETURN(EnvironmentChoice choice,
                          ChooseClientEnvironment(*snapshot.table, options));
  snapshot.environment = choice.environment;
  auto it = snapshot.table->migrations().find(topic);
  if (it == snapshot.table->migrations().end()) {
    return NotFoundError(path_ + " has no migrations entry for topic '" + topic +
                         "'; add one with from, to and phase: A to start");
  }
  snapshot.entry = it->second;
  for (const std::string& cluster : {snapshot.entry.from, snapshot.entry.to}) {
    if (snapshot.environment->clusters.count(cluster) == 0) {
      return FailedPreconditionError("environment '" + snapshot.environment->name + "' of " +
                                     path_ + " has no cluster '" + cluster +
                                     "': the migration of topic '" + topic +
                                     "' does not apply there");
    }
  }
  return snapshot;
}

MigrationReport MigrationSteps::Judge(const Snapshot& snapshot,
                                      const std::vector<RoutingState>& clients) {
  const MigrationConfig& entry = snapshot.entry;
  MigrationReport report{.topic = entry.topic,
                         .from = entry.from,
                         .to = entry.to,
                         .phase = std::string(MigrationPhaseName(entry.phase)),
                         .generation = entry.generation,
                         .version = snapshot.table->version(),
                         .drain_known = !entry.drain.empty()};
  std::vector<std::string> behind;    // clients not running this version as it says
  std::vector<std::string> draining;  // groups still reading the cluster they leave
  for (const RoutingState& client : clients) {
    const std::string name = client.client.empty() ? "a client" : "client '" + client.client + "'";
    if (client.version != snapshot.table->version()) {
      behind.push_back(name + " runs version " + std::to_string(client.version));
      continue;
    }
    for (const MigrationProgress& progress : client.migrations) {
      if (progress.topic != entry.topic) continue;
      report.shadow_sent += progress.shadow_sent;
      report.shadow_failed += progress.shadow_failed;
      if (!progress.last_shadow_error.empty()) report.last_shadow_error = progress.last_shadow_error;
      if (!progress.producers_settled) {
        behind.push_back(name + " has producers still writing as the previous phase did");
      }
      for (const std::string& line : progress.draining) {
        draining.push_back(name + ": " + line);
      }
    }
  }
  const bool needs_drain =
      entry.drain.empty() && (entry.phase == MigrationPhase::kCutover || !draining.empty());
  if (needs_drain) {
    report.next = "write the drain offsets of '" + LeftCluster(entry) + "'";
    report.waiting = behind;
    return report;
  }
  report.waiting = behind;
  switch (entry.phase) {
    case MigrationPhase::kA:
      report.next = "move to dual_write";
      break;
    case MigrationPhase::kDualWrite:
      report.next = "move to cutover";
      break;
    case MigrationPhase::kCutover:
      report.next = "move to B";
      break;
    case MigrationPhase::kB:
      report.waiting.push_back("the migration is finished: route the topic to '" + entry.to +
                               "' with a topics: entry, then remove its migrations: entry");
      return report;
  }
  report.waiting.insert(report.waiting.end(), draining.begin(), draining.end());
  return report;
}

Result<std::map<int32_t, int64_t>> MigrationSteps::EndOffsets(const Snapshot& snapshot,
                                                              const std::string& cluster) {
  const ClusterConfig& config = snapshot.environment->clusters.at(cluster);
  MSGSDK_ASSIGN_OR_RETURN(BackendFactory * factory, registry_->Find(config.backend));
  MSGSDK_ASSIGN_OR_RETURN(BackendPtr backend, factory->Create(config));
  Result<std::vector<PartitionPosition>> positions =
      backend->Positions({.topic = snapshot.entry.topic, .group = "msgsdk-migration"});
  backend->Close(std::chrono::steady_clock::now() + std::chrono::seconds(10)).IgnoreError();
  if (!positions.ok()) {
    return positions.status().WithContext("reading where topic '" + snapshot.entry.topic +
                                          "' ends on cluster '" + cluster + "'");
  }
  std::map<int32_t, int64_t> ends;
  for (const PartitionPosition& position : *positions) ends[position.partition] = position.end;
  return ends;
}

Status MigrationSteps::Write(const Snapshot& snapshot, const MigrationConfig& entry,
                             std::string& done) {
  const int64_t version = snapshot.table->version() + 1;
  MSGSDK_ASSIGN_OR_RETURN(std::string text,
                          RewriteMigration(snapshot.text, path_, entry, version));
  // Checked like any version before the clients see it.
  MSGSDK_RETURN_IF_ERROR(RoutingTable::Parse(text, path_, *registry_).status());
  // Renamed over the file: a client never reads half of it.
  const std::string staged = path_ + ".msgsdk-migrate-" + std::to_string(getpid());
  {
    std::ofstream out(staged, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return UnavailableError("cannot write " + staged);
  }
  if (std::rename(staged.c_str(), path_.c_str()) != 0) {
    std::remove(staged.c_str());
    return UnavailableError("cannot replace " + path_ + " with the new version");
  }
  done = "wrote version " + std::to_string(version) + ": topic '" + entry.topic + "' in " +
         std::string(MigrationPhaseName(entry.phase)) + ", generation " +
         std::to_string(entry.generation) + ", " + FormatMigrationEntry(entry);
  return OkStatus();
}

Result<MigrationReport> MigrationSteps::Inspect(const std::string& topic,
                                                const std::vector<RoutingState>& clients) {
  MSGSDK_ASSIGN_OR_RETURN(Snapshot snapshot, Read(topic));
  return Judge(snapshot, clients);
}

Result<MigrationReport> MigrationSteps::Advance(const std::string& topic,
                                                const std::vector<RoutingState>& clients) {
  MSGSDK_ASSIGN_OR_RETURN(Snapshot snapshot, Read(topic));
  MigrationReport report = Judge(snapshot, clients);
  if (!report.waiting.empty()) {
    return FailedPreconditionError("topic '" + topic + "' cannot " +
                                   (report.next.empty() ? std::string("advance") : report.next) +
                                   " yet: " + Joined(report.waiting));
  }
  MigrationConfig entry = snapshot.entry;
  if (entry.drain.empty() && report.next.starts_with("write the drain")) {
    MSGSDK_ASSIGN_OR_RETURN(entry.drain, EndOffsets(snapshot, LeftCluster(entry)));
  } else {
    const std::string left = LeftCluster(entry);
    entry.phase = entry.phase == MigrationPhase::kA          ? MigrationPhase::kDualWrite
                  : entry.phase == MigrationPhase::kDualWrite ? MigrationPhase::kCutover
                                                              : MigrationPhase::kB;
    ++entry.generation;
    // Drain offsets describe the cluster groups leave; a phase that leaves the other one
    // needs its own.
    if (LeftCluster(entry) != left) entry.drain.clear();
  }
  MSGSDK_RETURN_IF_ERROR(Write(snapshot, entry, report.done));
  return report;
}

Result<MigrationReport> MigrationSteps::Rollback(const std::string& topic,
                                                 const std::vector<RoutingState>& clients) {
  MSGSDK_ASSIGN_OR_RETURN(Snapshot snapshot, Read(topic));
  MigrationReport report = Judge(snapshot, clients);
  MigrationConfig entry = snapshot.entry;
  const std::string left = LeftCluster(entry);
  switch (entry.phase) {
    case MigrationPhase::kA:
      return FailedPreconditionError("topic '" + topic + "' is in phase A: nothing to roll back");
    case MigrationPhase::kB:
      return FailedPreconditionError("topic '" + topic +
                                     "' is in phase B, which is final: cluster '" + entry.from +
                                     "' may already be retired");
    case MigrationPhase::kDualWrite:
      entry.phase = MigrationPhase::kA;
      break;
    case MigrationPhase::kCutover: {
      // Until every group reads `to`, the groups still on `from` have not seen the primary
      // copies `to` took since the cutover, and a rollback would send them back to `from`
      // past those copies. So the cutover is completed first; then it can be undone.
      std::vector<std::string> draining;
      for (const RoutingState& client : clients) {
        for (const MigrationProgress& progress : client.migrations) {
          if (progress.topic != topic) continue;
          for (const std::string& line : progress.draining) {
            draining.push_back("client '" + client.client + "': " + line);
          }
        }
      }
      if (entry.drain.empty() || !draining.empty()) {
        return FailedPreconditionError(
            "topic '" + topic + "' cannot roll back from cutover yet: groups still read '" +
            entry.from + "' and have not seen the primary copies '" + entry.to +
            "' took since the cutover; " +
            (entry.drain.empty() ? std::string("advance to write the drain offsets, then ")
                                 : std::string()) +
            "roll back once every group reads '" + entry.to + "'" +
            (draining.empty() ? "" : " (" + Joined(draining) + ")"));
      }
      entry.phase = MigrationPhase::kDualWrite;
      break;
    }
  }
  ++entry.generation;
  if (LeftCluster(entry) != left) entry.drain.clear();
  MSGSDK_RETURN_IF_ERROR(Write(snapshot, entry, report.done));
  return report;
}

}  // namespace msgsdk::core
