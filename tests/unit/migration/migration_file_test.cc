// The migration controller's edits of a routing file: one entry and the version line change,
// everything else stays as the operator wrote it.

#include "core/migration/migration_file.h"

#include <gtest/gtest.h>

namespace msgsdk::core {
namespace {

MigrationConfig Entry(MigrationPhase phase, int64_t generation,
                      std::map<int32_t, int64_t> drain = {}) {
  return MigrationConfig{.topic = "orders",
                         .from = "a",
                         .to = "b",
                         .phase = phase,
                         .generation = generation,
                         .drain = std::move(drain)};
}

TEST(MigrationFileTest, ReplacesABlockEntryAndRaisesTheVersionKeepingComments) {
  const std::string before =
      "# owned by the payments team\n"
      "version: 6   # bumped by msgsdk migrate\n"
      "environments:\n"
      "  prod: { clusters: { a: { backend: redis }, b: { backend: redis } } }\n"
      "migrations:\n"
      "  # moving to the new cluster, ticket OPS-12\n"
      "  orders:\n"
      "    from: a\n"
      "    to: b\n"
      "    phase: dual_write\n"
      "\n"
      "  payments: { from: a, to: b, phase: A }\n"
      "client: { send_timeout_ms: 2000 }\n";
  auto after = RewriteMigration(before, "routing.yaml",
                                Entry(MigrationPhase::kCutover, 3, {{0, 12}, {1, 40}}), 7);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after,
            "# owned by the payments team\n"
            "version: 7   # bumped by msgsdk migrate\n"
            "environments:\n"
            "  prod: { clusters: { a: { backend: redis }, b: { backend: redis } } }\n"
            "migrations:\n"
            "  # moving to the new cluster, ticket OPS-12\n"
            "  orders: { from: a, to: b, phase: cutover, generation: 3, drain: { 0: 12, 1: 40 } }\n"
            "\n"
            "  payments: { from: a, to: b, phase: A }\n"
            "client: { send_timeout_ms: 2000 }\n");
}

TEST(MigrationFileTest, AddsAVersionLineWhenThereIsNone) {
  auto after = RewriteMigration(
      "environments: { prod: { clusters: { a: { backend: redis }, b: { backend: redis } } } }\n"
      "migrations:\n"
      "  orders: { from: a, to: b, phase: A }\n",
      "routing.yaml", Entry(MigrationPhase::kDualWrite, 1), 1);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(
      *after,
      "version: 1\n"
      "environments: { prod: { clusters: { a: { backend: redis }, b: { backend: redis } } } }\n"
      "migrations:\n"
      "  orders: { from: a, to: b, phase: dual_write, generation: 1 }\n");
}

TEST(MigrationFileTest, RefusesWhatItCannotEditSafely) {
  auto flow = RewriteMigration("migrations: { orders: { from: a, to: b, phase: A } }\n",
                               "routing.yaml", Entry(MigrationPhase::kDualWrite, 1), 2);
  EXPECT_EQ(flow.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(flow.status().message().find("block map"), std::string::npos);
  auto missing = RewriteMigration("migrations:\n  other: { from: a, to: b, phase: A }\n",
                                  "routing.yaml", Entry(MigrationPhase::kDualWrite, 1), 2);
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("'orders'"), std::string::npos);
}

}  // namespace
}  // namespace msgsdk::core
