#pragma once

// Edits a routing file the way the migration controller needs: one topic's `migrations:` entry
// and the `version:` line, leaving every other line as the operator wrote it (comments too).

#include <cstdint>
#include <string>
#include <string_view>

#include "core/routing/routing_table.h"
#include "msgsdk/result.h"

namespace msgsdk::core {

// `entry` as one flow-style YAML map: "{ from: a, to: b, phase: cutover, generation: 3,
// drain: { 0: 12, 1: 40 } }".
std::string FormatMigrationEntry(const MigrationConfig& entry);

// `text` (a routing table that parses) with the `migrations:` entry of `entry.topic` replaced by
// `entry` on one line, and `version:` set to `version` (added as the first line if missing).
// The `migrations:` map must be written in block style and hold the topic (kFailedPrecondition
// naming `source` otherwise).
Result<std::string> RewriteMigration(std::string_view text, const std::string& source,
                                     const MigrationConfig& entry, int64_t version);

}  // namespace msgsdk::core
