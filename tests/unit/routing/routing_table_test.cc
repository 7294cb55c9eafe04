#include "core/routing/routing_table.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/routing/fake_backends.h"

namespace msgsdk::core {
namespace {

using ::testing::ElementsAre;
using testing::FakeRegistry;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

constexpr char kDesignExample[] = R"(version: 7
default_environment: prod
environments:
  prod:
    clusters:
      kafka-main: { backend: kafka, bootstrap: "k1:9092,k2:9092" }
      native-a:   { backend: native, endpoints: ["10.0.0.5:9876"] }
    topics:
      order-events: { cluster: kafka-main }
      "sms-*":      { cluster: native-a }
    default_cluster: native-a
  dev:
    clusters: { local: { backend: native, embedded: true, data_dir: ./msgsdk-data } }
    default_cluster: local
migrations:
  order-events: { from: kafka-main, to: native-a, phase: dual_write }
client: { send_timeout_ms: 2500, consumer_threads: 8, max_attempts: 5 }
)";

class RoutingTableTest : public ::testing::Test {
 protected:
  Result<std::shared_ptr<const RoutingTable>> Parse(std::string_view yaml) {
    return RoutingTable::Parse(yaml, "routing.yaml", *registry_);
  }

  std::shared_ptr<const RoutingTable> MustParse(std::string_view yaml) {
    auto table = Parse(yaml);
    EXPECT_TRUE(table.ok()) << table.status().ToString();
    return table.ok() ? *table : nullptr;
  }

  // The message of a parse that must fail with kInvalidArgument.
  std::string ParseError(std::string_view yaml) {
    auto table = Parse(yaml);
    EXPECT_FALSE(table.ok()) << "parsed:\n" << yaml;
    if (table.ok()) return {};
    EXPECT_EQ(table.status().code(), StatusCode::kInvalidArgument) << table.status().ToString();
    return table.status().message();
  }

  // The cluster `topic` resolves to, or the error.
  std::string ResolveCluster(const RoutingTable& table, const std::string& env,
                             const std::string& topic) {
    auto route = table.Resolve(env, topic);
    if (!route.ok()) return "error: " + route.status().ToString();
    return route->cluster->name + " by " + route->matched_by;
  }

  std::shared_ptr<BackendRegistry> registry_ = FakeRegistry();
};

// ---- A valid table -------------------------------------------------------------------------

TEST_F(RoutingTableTest, DesignExampleParsesCompletely) {
  auto table = MustParse(kDesignExample);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->version(), 7);
  EXPECT_EQ(table->source(), "routing.yaml");
  EXPECT_EQ(table->default_environment(), "prod");
  ASSERT_EQ(table->environments().size(), 2u);

  const EnvironmentConfig& prod = table->environments().at("prod");
  EXPECT_EQ(prod.name, "prod");
  EXPECT_EQ(prod.default_cluster, "native-a");
  ASSERT_EQ(prod.clusters.size(), 2u);
  const ClusterConfig& kafka = prod.clusters.at("kafka-main");
  EXPECT_EQ(kafka.name, "kafka-main");
  EXPECT_EQ(kafka.backend, "kafka");
  EXPECT_EQ(kafka.source, "routing.yaml:6:7");
  // Given values and every default, normalised.
  EXPECT_THAT(kafka.properties,
              ElementsAre(Pair("acks", "all"), Pair("batch_size", "1048576"),
                          Pair("bootstrap", "k1:9092,k2:9092"), Pair("linger_ms", "5"),
                          Pair("partitions", "8"), Pair("tls", "false")));
  const ClusterConfig& native = prod.clusters.at("native-a");
  EXPECT_EQ(native.GetList("endpoints"), std::vector<std::string>{"10.0.0.5:9876"});
  EXPECT_FALSE(native.GetBool("embedded", true));

  ASSERT_EQ(prod.topics.size(), 2u);
  EXPECT_EQ(prod.topics[0].pattern, "order-events");
  EXPECT_EQ(prod.topics[0].cluster, "kafka-main");
  EXPECT_FALSE(prod.topics[0].is_glob);
  EXPECT_EQ(prod.topics[0].source, "routing.yaml:9:7");
  EXPECT_EQ(prod.topics[1].pattern, "sms-*");
  EXPECT_TRUE(prod.topics[1].is_glob);

  const ClusterConfig& local = table->environments().at("dev").clusters.at("local");
  EXPECT_TRUE(local.GetBool("embedded"));
  EXPECT_EQ(local.GetString("data_dir"), "./msgsdk-data");
  EXPECT_EQ(local.GetDuration("flush_interval_ms"), std::chrono::milliseconds(1000));

  ASSERT_EQ(table->migrations().size(), 1u);
  const MigrationConfig& migration = table->migrations().at("order-events");
  EXPECT_EQ(migration.from, "kafka-main");
  EXPECT_EQ(migration.to, "native-a");
  EXPECT_EQ(migration.phase, MigrationPhase::kDualWrite);
  EXPECT_EQ(migration.source, "routing.yaml:16:3");

  ClientSettings expected;
  expected.send_timeout = std::chrono::milliseconds(2500);
  expected.consumer_threads = 8;
  expected.max_attempts = 5;
  EXPECT_EQ(table->client_settings(), expected);
}

TEST_F(RoutingTableTest, ShortTopicFormAndOptionalSections) {
  auto table = MustParse(R"(
environments:
  only:
    clusters:
      a: { backend: redis }
      b: { backend: redis, db: 3 }
    topics:
      orders: a
      payments: { cluster: b }
      empty-topics-are-fine:
)"
                         R"(        b
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->version(), 0);
  EXPECT_EQ(table->default_environment(), "");
  EXPECT_TRUE(table->migrations().empty());
  EXPECT_EQ(table->client_settings(), ClientSettings{});
  EXPECT_EQ(ResolveCluster(*table, "", "orders"), "a by orders");
  EXPECT_EQ(ResolveCluster(*table, "", "payments"), "b by payments");
  EXPECT_EQ(ResolveCluster(*table, "", "empty-topics-are-fine"), "b by empty-topics-are-fine");
  EXPECT_EQ(table->environments().at("only").clusters.at("b").GetInt("db"), 3);
}

TEST_F(RoutingTableTest, EmptyOptionalSectionsAreAccepted) {
  auto table = MustParse(R"(
environments:
  dev:
    clusters: { local: { backend: native } }
    topics:
    default_cluster: local
migrations:
client:
)");
  ASSERT_NE(table, nullptr);
  EXPECT_TRUE(table->environments().at("dev").topics.empty());
  EXPECT_EQ(table->client_settings(), ClientSettings{});
}

// ---- Globs and precedence ------------------------------------------------------------------

TEST_F(RoutingTableTest, ExactTopicBeatsEveryGlobWhateverTheOrder) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis }, b: { backend: redis }, c: { backend: redis } }
    topics:
      "*": a
      "sms-*": b
      sms-otp: c
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "prod", "sms-otp"), "c by sms-otp");
  EXPECT_EQ(ResolveCluster(*table, "prod", "sms-promo"), "b by sms-*");
  EXPECT_EQ(ResolveCluster(*table, "prod", "orders"), "a by *");
}

TEST_F(RoutingTableTest, GlobWithMostLiteralCharactersWins) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis }, b: { backend: redis }, c: { backend: redis } }
    topics:
      "s*": a
      "sms-eu-*": c
      "sms-*": b
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "prod", "sms-eu-otp"), "c by sms-eu-*");
  EXPECT_EQ(ResolveCluster(*table, "prod", "sms-us-otp"), "b by sms-*");
  EXPECT_EQ(ResolveCluster(*table, "prod", "shipping"), "a by s*");
}

TEST_F(RoutingTableTest, GlobTiesGoToTheEarlierEntry) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis }, b: { backend: redis } }
    topics:
      "ab*": a
      "*bc": b
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "prod", "abc"), "a by ab*");
  EXPECT_EQ(ResolveCluster(*table, "prod", "xbc"), "b by *bc");
}

TEST_F(RoutingTableTest, QuestionMarkMatchesExactlyOneCharacter) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis }, b: { backend: redis } }
    topics:
      "log-?": a
    default_cluster: b
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "prod", "log-1"), "a by log-?");
  EXPECT_EQ(ResolveCluster(*table, "prod", "log-12"), "b by default_cluster");
  EXPECT_EQ(ResolveCluster(*table, "prod", "log-"), "b by default_cluster");
}

TEST_F(RoutingTableTest, DotsAndDashesInGlobsAreLiteral) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis }, b: { backend: redis } }
    topics:
      "app.*.events": a
    default_cluster: b
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "prod", "app.billing.events"), "a by app.*.events");
  EXPECT_EQ(ResolveCluster(*table, "prod", "appXbillingXevents"), "b by default_cluster");
}

TEST_F(RoutingTableTest, NoRouteIsNotFoundNamingTopicAndEnvironment) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters: { a: { backend: redis } }
    topics: { "sms-*": a }
)");
  ASSERT_NE(table, nullptr);
  auto route = table->Resolve("prod", "orders");
  ASSERT_FALSE(route.ok());
  EXPECT_EQ(route.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(route.status().message(),
            "topic 'orders' has no route in environment 'prod' (no topic entry matches and the "
            "environment has no default_cluster)");
}

TEST_F(RoutingTableTest, ResolveRejectsInvalidTopicNames) {
  auto table = MustParse(kDesignExample);
  ASSERT_NE(table, nullptr);
  for (const std::string& topic :
       std::vector<std::string>{"", "sms *", "sms-*", std::string(250, 'a')}) {
    auto route = table->Resolve("prod", topic);
    ASSERT_FALSE(route.ok()) << topic;
    EXPECT_EQ(route.status().code(), StatusCode::kInvalidArgument) << topic;
  }
}

TEST_F(RoutingTableTest, RouteCarriesEnvironmentAndCluster) {
  auto table = MustParse(kDesignExample);
  ASSERT_NE(table, nullptr);
  auto route = table->Resolve("dev", "order-events");
  ASSERT_TRUE(route.ok()) << route.status().ToString();
  EXPECT_EQ(route->environment->name, "dev");
  EXPECT_EQ(route->cluster->name, "local");
  EXPECT_EQ(route->matched_by, "default_cluster");
  EXPECT_EQ(ResolveCluster(*table, "prod", "order-events"), "kafka-main by order-events");
}

// ---- Environments and selection ------------------------------------------------------------

TEST_F(RoutingTableTest, ChooseEnvironmentPrefersTheRequestedOne) {
  auto table = MustParse(kDesignExample);
  ASSERT_NE(table, nullptr);
  auto env = table->ChooseEnvironment("dev");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ((*env)->name, "dev");
  env = table->ChooseEnvironment("");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ((*env)->name, "prod");  // default_environment
}

TEST_F(RoutingTableTest, ChooseEnvironmentUnknownListsTheEnvironments) {
  auto table = MustParse(kDesignExample);
  ASSERT_NE(table, nullptr);
  auto env = table->ChooseEnvironment("prd");
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(env.status().message(),
            "environment 'prd' is not defined in routing.yaml (did you mean 'prod'?) "
            "(environments: dev, prod)");
  auto route = table->Resolve("staging", "orders");
  ASSERT_FALSE(route.ok());
  EXPECT_EQ(route.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(route.status().message(), HasSubstr("environment 'staging'"));
}

TEST_F(RoutingTableTest, ChooseEnvironmentTakesTheOnlyOne) {
  auto table = MustParse(R"(
environments:
  solo: { clusters: { a: { backend: redis } }, default_cluster: a }
)");
  ASSERT_NE(table, nullptr);
  auto env = table->ChooseEnvironment("");
  ASSERT_TRUE(env.ok());
  EXPECT_EQ((*env)->name, "solo");
}

TEST_F(RoutingTableTest, ChooseEnvironmentNeedsAChoiceAmongSeveral) {
  auto table = MustParse(R"(
environments:
  test: { clusters: { a: { backend: redis } } }
  prod: { clusters: { a: { backend: redis } } }
)");
  ASSERT_NE(table, nullptr);
  auto env = table->ChooseEnvironment("");
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(env.status().message(),
            "no environment selected and routing.yaml defines 2 (prod, test): set "
            "ClientOptions.environment, MSGSDK_ENV or default_environment");
}

TEST_F(RoutingTableTest, EnvironmentsAreIsolated) {
  auto table = MustParse(R"(
environments:
  test:
    clusters: { t: { backend: redis, db: 1 } }
    topics: { orders: t }
  prod:
    clusters: { p: { backend: redis, db: 2 } }
    topics: { orders: p }
)");
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(ResolveCluster(*table, "test", "orders"), "t by orders");
  EXPECT_EQ(ResolveCluster(*table, "prod", "orders"), "p by orders");
  EXPECT_THAT(ResolveCluster(*table, "prod", "payments"), HasSubstr("NOT_FOUND"));
}

// ---- The built-in default ------------------------------------------------------------------

TEST_F(RoutingTableTest, DefaultTableIsOneEmbeddedNativeCluster) {
  auto table = RoutingTable::Default("/var/lib/app/msgs", *registry_);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->source(), "built-in default");
  EXPECT_EQ(table->default_environment(), "local");
  ASSERT_EQ(table->environments().size(), 1u);
  const EnvironmentConfig& env = table->environments().at("local");
  EXPECT_EQ(env.default_cluster, "embedded");
  const ClusterConfig& cluster = env.clusters.at("embedded");
  EXPECT_EQ(cluster.backend, "native");
  // Validated through the native table: its defaults are filled in.
  EXPECT_THAT(cluster.properties,
              ElementsAre(Pair("data_dir", "/var/lib/app/msgs"), Pair("embedded", "true"),
                          Pair("flush_interval_ms", "1000")));
  EXPECT_EQ(ResolveCluster(*table, "", "anything"), "embedded by default_cluster");
  EXPECT_EQ(ResolveCluster(*table, "local", "__dlq.billing"), "embedded by default_cluster");
  EXPECT_EQ(table->client_settings(), ClientSettings{});
}

TEST_F(RoutingTableTest, DefaultTableWithoutNativeFactoryKeepsTheGivenProperties) {
  auto registry = FakeRegistry(/*with_native=*/false);
  auto table = RoutingTable::Default("", *registry);
  ASSERT_NE(table, nullptr);
  const ClusterConfig& cluster = table->environments().at("local").clusters.at("embedded");
  EXPECT_EQ(cluster.backend, "native");
  EXPECT_THAT(cluster.properties,
              ElementsAre(Pair("data_dir", "./msgsdk-data"), Pair("embedded", "true")));
}

// ---- Client settings -----------------------------------------------------------------------

TEST_F(RoutingTableTest, ClientSettingsAreParsedWithUnits) {
  auto table = MustParse(R"(
environments: { dev: { clusters: { a: { backend: redis } } } }
client:
  send_timeout_ms: 1
  consumer_threads: 256
  max_attempts: 1000
  retry_backoff_ms: 250
  retry_backoff_max_ms: 86400000
  max_inflight: 1000000
  max_message_bytes: 256MiB
  close_timeout_ms: 600000
  callback_threads: 64
)");
  ASSERT_NE(table, nullptr);
  const ClientSettings& client = table->client_settings();
  EXPECT_EQ(client.send_timeout, std::chrono::milliseconds(1));
  EXPECT_EQ(client.consumer_threads, 256);
  EXPECT_EQ(client.max_attempts, 1000);
  EXPECT_EQ(client.retry_backoff, std::chrono::milliseconds(250));
  EXPECT_EQ(client.retry_backoff_max, std::chrono::milliseconds(86400000));
  EXPECT_EQ(client.max_inflight, 1000000);
  EXPECT_EQ(client.max_message_bytes, int64_t{256} << 20);
  EXPECT_EQ(client.close_timeout, std::chrono::milliseconds(600000));
  EXPECT_EQ(client.callback_threads, 64);
}

TEST_F(RoutingTableTest, ClientSettingsTableMatchesTheStructDefaults) {
  std::map<std::string, std::string> defaults;
  for (const PropertySpec& spec : ClientSettingsTable()) {
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    defaults[spec.name] = spec.default_value;
  }
  EXPECT_EQ(defaults.size(), 9u);
  auto validated = ValidateProperties({}, ClientSettingsTable(), "client", "", "client settings");
  ASSERT_TRUE(validated.ok()) << validated.status().ToString();
  auto settings = ClientSettingsFromProperties(*validated);
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(*settings, ClientSettings{});
  EXPECT_TRUE(ValidatePropertyTable(ClientSettingsTable()).ok());
}

TEST_F(RoutingTableTest, ClientSettingOutOfRange) {
  const std::string message =
      ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
client:
  consumer_threads: 0
  max_message_bytes: 512MiB
)");
  EXPECT_EQ(message,
            "routing.yaml:3:21: client.consumer_threads: 0 is out of range: must be between 1 "
            "and 256\n"
            "routing.yaml:4:22: client.max_message_bytes: 536870912 (512MiB) is out of range: "
            "must be between 1 and 268435456 (256MiB)");
}

TEST_F(RoutingTableTest, ClientSettingWrongTypeAndUnknownKey) {
  const std::string message =
      ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
client:
  send_timeout: 3000
  max_attempts: many
)");
  EXPECT_EQ(message,
            "routing.yaml:3:3: client.send_timeout: unknown property 'send_timeout' of client "
            "settings (did you mean 'send_timeout_ms'?)\n"
            "routing.yaml:4:17: client.max_attempts: expected an integer between 1 and 1000, got "
            "'many'");
}

TEST_F(RoutingTableTest, ClientBackoffMustNotExceedItsMaximum) {
  const std::string message =
      ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
client:
  retry_backoff_ms: 5000
  retry_backoff_max_ms: 1000
)");
  EXPECT_EQ(message,
            "routing.yaml:3:3: client: retry_backoff_ms (5000) is greater than "
            "retry_backoff_max_ms (1000)");
  // Against the default of the other one.
  EXPECT_EQ(ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
client: { max_attempts: 3, retry_backoff_max_ms: 50 }
)"),
            "routing.yaml:2:28: client: retry_backoff_ms (100) is greater than "
            "retry_backoff_max_ms (50)");
}

TEST_F(RoutingTableTest, ClientSectionMustBeAMap) {
  EXPECT_EQ(ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
client: [1, 2]
)"),
            "routing.yaml:2:9: client: expected a map of client settings, got a sequence");
}

// ---- Migrations ----------------------------------------------------------------------------

TEST_F(RoutingTableTest, MigrationsAcceptEveryPhase) {
  auto table = MustParse(R"(
environments:
  prod: { clusters: { a: { backend: redis }, b: { backend: redis } } }
migrations:
  t1: { from: a, to: b, phase: A }
  t2: { from: a, to: b, phase: dual_write }
  t3: { from: b, to: a, phase: cutover }
  t4: { from: a, to: b, phase: B }
)");
  ASSERT_NE(table, nullptr);
  ASSERT_EQ(table->migrations().size(), 4u);
  EXPECT_EQ(table->migrations().at("t1").phase, MigrationPhase::kA);
  EXPECT_EQ(table->migrations().at("t2").phase, MigrationPhase::kDualWrite);
  EXPECT_EQ(table->migrations().at("t3").phase, MigrationPhase::kCutover);
  EXPECT_EQ(table->migrations().at("t3").from, "b");
  EXPECT_EQ(table->migrations().at("t4").phase, MigrationPhase::kB);
  EXPECT_EQ(MigrationPhaseName(MigrationPhase::kDualWrite), "dual_write");
  EXPECT_EQ(MigrationPhaseName(MigrationPhase::kB), "B");
}

TEST_F(RoutingTableTest, MigrationErrors) {
  const std::string message = ParseError(R"(environments:
  prod: { clusters: { a: { backend: redis }, b: { backend: redis } } }
migrations:
  t1: { from: a, to: b, phase: dualwrite }
  t2: { from: a, to: c, phase: A }
  t3: { from: a, phase: A }
  t4: { from: a, to: a, phase: B }
  "t5-*": { from: a, to: b, phase: B }
  t6: a
  t7: { from: a, to: b, phase: B, mode: fast }
)");
  EXPECT_EQ(message,
            "routing.yaml:4:32: migrations.t1.phase: unknown phase 'dualwrite' (did you mean "
            "'dual_write'? phases: A, dual_write, cutover, B)\n"
            "routing.yaml:5:22: migrations.t2.to: unknown cluster 'c' (clusters: a, b)\n"
            "routing.yaml:6:7: migrations.t3: missing required key 'to'\n"
            "routing.yaml:7:22: migrations.t4.to: the topic already is on 'a': 'to' must name "
            "another cluster than 'from'\n"
            "routing.yaml:8:3: migrations.t5-*: a migration moves one topic: globs are not "
            "allowed here\n"
            "routing.yaml:9:7: migrations.t6: expected a map with from, to and phase, got the "
            "scalar 'a'\n"
            "routing.yaml:10:35: migrations.t7.mode: unknown key 'mode' (allowed: from, to, "
            "phase)");
}

// ---- Every kind of invalid file ------------------------------------------------------------

TEST_F(RoutingTableTest, YamlSyntaxErrorNamesLineAndColumn) {
  const std::string message = ParseError("environments:\n  prod: { clusters: [a, b }\n");
  EXPECT_THAT(message, StartsWith("routing.yaml:2:"));
  EXPECT_THAT(message, HasSubstr("invalid YAML: "));
  EXPECT_EQ(ParseError("environments:\n\tprod: {}\n"),
            "routing.yaml:2:6: invalid YAML: illegal map value");
}

TEST_F(RoutingTableTest, EmptyDocument) {
  EXPECT_EQ(ParseError(""), "routing.yaml: the routing table is empty: 'environments' is required");
  EXPECT_EQ(ParseError("# only a comment\n"),
            "routing.yaml: the routing table is empty: 'environments' is required");
}

TEST_F(RoutingTableTest, TopLevelMustBeAMap) {
  EXPECT_EQ(ParseError("- a\n- b\n"),
            "routing.yaml:1:1: expected a map with 'environments' at the top level, got a "
            "sequence");
}

TEST_F(RoutingTableTest, OnlyOneDocument) {
  EXPECT_EQ(ParseError(R"(environments: { dev: { clusters: { a: { backend: redis } } } }
---
environments: { dev: { clusters: { a: { backend: redis } } } }
)"),
            "routing.yaml:3:1: a routing table is one YAML document, this file has 2 (remove the "
            "'---' separators)");
}

TEST_F(RoutingTableTest, UnknownKeysSuggestTheClosestAllowedKey) {
  EXPECT_EQ(ParseError(R"(enviroments:
  dev: { clusters: { a: { backend: redis } } }
)"),
            "routing.yaml:1:1: enviroments: unknown key 'enviroments' (did you mean "
            "'environments'?)\n"
            "routing.yaml:1:1: missing required key 'environments' (or 'transport: { sidecar: "
            "ADDRESS }')");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backend: redis } }
    topcs: { orders: a }
    default: a
)"),
            "routing.yaml:4:5: environments.dev.topcs: unknown key 'topcs' (did you mean "
            "'topics'?)\n"
            "routing.yaml:5:5: environments.dev.default: unknown key 'default' (allowed: "
            "clusters, topics, default_cluster)");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backend: redis } }
    topics: { orders: { clustr: a } }
)"),
            "routing.yaml:4:23: environments.dev.topics.orders: missing required key 'cluster'\n"
            "routing.yaml:4:25: environments.dev.topics.orders.clustr: unknown key 'clustr' (did "
            "you mean 'cluster'?)");
}

TEST_F(RoutingTableTest, WrongNodeTypes) {
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: [a, b]
)"),
            "routing.yaml:3:15: environments.dev.clusters: expected a map of cluster names to "
            "cluster entries, got a sequence");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backend: redis } }
    topics: orders
)"),
            "routing.yaml:4:13: environments.dev.topics: expected a map of topics (or globs) to "
            "clusters, got the scalar 'orders'");
  EXPECT_EQ(ParseError(R"(environments:
  dev: production
)"),
            "routing.yaml:2:8: environments.dev: expected a map with clusters, topics and "
            "default_cluster, got the scalar 'production'");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: redis }
)"),
            "routing.yaml:3:20: environments.dev.clusters.a: expected a map with 'backend' and "
            "the backend's properties, got the scalar 'redis'");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backend: [redis] } }
)"),
            "routing.yaml:3:31: environments.dev.clusters.a.backend: expected a backend name, "
            "got a sequence");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backend: redis } }
    topics: { orders: [a] }
)"),
            "routing.yaml:4:23: environments.dev.topics.orders: expected a cluster name "
            "(`orders: <cluster>`) or a map with 'cluster', got a sequence");
  EXPECT_EQ(ParseError(R"(version: seven
environments: { dev: { clusters: { a: { backend: redis } } } }
)"),
            "routing.yaml:1:10: version: expected a non-negative integer, got 'seven'");
  EXPECT_EQ(ParseError(R"(environments:
  [dev]: { clusters: { a: { backend: redis } } }
)"),
            "routing.yaml:2:3: environments: map keys must be plain strings, got a sequence");
}

TEST_F(RoutingTableTest, MissingRequiredKeys) {
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    topics: { orders: a }
)"),
            "routing.yaml:3:5: environments.dev: missing required key 'clusters'\n"
            "routing.yaml:3:23: environments.dev.topics.orders: unknown cluster 'a' (clusters of "
            "dev: (none))");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
)"),
            "routing.yaml:2:3: environments.dev: the environment is empty: 'clusters' is "
            "required");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { db: 1 } }
)"),
            "routing.yaml:3:20: environments.dev.clusters.a: missing required key 'backend' "
            "(registered backends: kafka, native, redis)");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters: { a: { backnd: redis } }
)"),
            "routing.yaml:3:20: environments.dev.clusters.a: missing required key 'backend' "
            "(found 'backnd': did you mean 'backend'?)");
  EXPECT_EQ(ParseError(R"(environments:
  dev:
    clusters:
      a:
)"),
            "routing.yaml:4:7: environments.dev.clusters.a: the cluster entry is empty: "
            "'backend' is required (registered backends: kafka, native, redis)");
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      k: { backend: kafka }
)"),
            "routing.yaml:4:7: environments.prod.clusters.k: missing required property "
            "'bootstrap' of backend 'kafka'");
}

TEST_F(RoutingTableTest, UnknownBackendListsTheRegisteredOnes) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      k: { backend: kafak, bootstrap: "k1:9092" }
)"),
            "routing.yaml:4:21: environments.prod.clusters.k.backend: unknown backend 'kafak' "
            "(did you mean 'kafka'?) (registered backends: kafka, native, redis)");
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      k: { backend: rabbitmq }
)"),
            "routing.yaml:4:21: environments.prod.clusters.k.backend: unknown backend 'rabbitmq' "
            "(registered backends: kafka, native, redis)");
}

TEST_F(RoutingTableTest, BackendPropertiesAreCheckedAgainstTheBackendTable) {
  const std::string message = ParseError(R"(environments:
  prod:
    clusters:
      k:
        backend: kafka
        bootstrap: ""
        acks: everyone
        linger_ms: 5s
        batch_size: 128MiB
        partitions: -1
        tls: yes
        bootstrapp: x
        librdkafka: { session.timeout.ms: 6000, nested: { a: 1 } }
)");
  EXPECT_EQ(message,
            "routing.yaml:6:20: environments.prod.clusters.k.bootstrap: must not be empty "
            "(required by backend 'kafka')\n"
            "routing.yaml:7:15: environments.prod.clusters.k.acks: unknown value 'everyone' "
            "(allowed: all, 1, 0)\n"
            "routing.yaml:8:20: environments.prod.clusters.k.linger_ms: expected an integer "
            "number of milliseconds between 0 and 10000, got '5s'\n"
            "routing.yaml:9:21: environments.prod.clusters.k.batch_size: 134217728 (128MiB) is "
            "out of range: must be between 1 and 67108864 (64MiB)\n"
            "routing.yaml:10:21: environments.prod.clusters.k.partitions: -1 is out of range: "
            "must be between 1 and 1024\n"
            "routing.yaml:11:14: environments.prod.clusters.k.tls: expected true or false, got "
            "'yes'\n"
            "routing.yaml:12:9: environments.prod.clusters.k.bootstrapp: unknown property "
            "'bootstrapp' of backend 'kafka' (did you mean 'bootstrap'?)\n"
            "routing.yaml:13:57: environments.prod.clusters.k.librdkafka.nested: expected a "
            "scalar value, got a map");
}

TEST_F(RoutingTableTest, MapAndListPropertiesFromYaml) {
  auto table = MustParse(R"(
environments:
  prod:
    clusters:
      k:
        backend: kafka
        bootstrap: k1:9092
        batch_size: 512KiB
        librdkafka:
          session.timeout.ms: 6000
          enable.idempotence: true
        librdkafka.client.id: flat-form
      n1: { backend: native, endpoints: "h1:1, h2:2" }
      n2: { backend: native, endpoints: [h1:1, h2:2] }
)");
  ASSERT_NE(table, nullptr);
  const EnvironmentConfig& env = table->environments().at("prod");
  const ClusterConfig& kafka = env.clusters.at("k");
  EXPECT_EQ(kafka.GetInt("batch_size"), 512 * 1024);
  EXPECT_THAT(kafka.GetMap("librdkafka"),
              ElementsAre(Pair("client.id", "flat-form"), Pair("enable.idempotence", "true"),
                          Pair("session.timeout.ms", "6000")));
  EXPECT_EQ(env.clusters.at("n1").properties.at("endpoints"), "h1:1,h2:2");
  EXPECT_EQ(env.clusters.at("n1").GetList("endpoints"), env.clusters.at("n2").GetList("endpoints"));
}

TEST_F(RoutingTableTest, TopicPointingAtAnUnknownCluster) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      kafka-main: { backend: kafka, bootstrap: "k1:9092,k2:9092" }
      native-a:   { backend: native, endpoints: ["10.0.0.5:9876"] }
    topics:
      sms-otp: kafka-main
      payments: native-b
      order-events: { cluster: kafka-mian }
)"),
            "routing.yaml:8:17: environments.prod.topics.payments: unknown cluster 'native-b' "
            "(clusters of prod: kafka-main, native-a)\n"
            "routing.yaml:9:32: environments.prod.topics.order-events.cluster: unknown cluster "
            "'kafka-mian' (clusters of prod: kafka-main, native-a)");
}

TEST_F(RoutingTableTest, ClustersOfAnotherEnvironmentAreUnknown) {
  EXPECT_EQ(ParseError(R"(environments:
  test: { clusters: { t: { backend: redis } } }
  prod: { clusters: { p: { backend: redis } }, topics: { orders: t } }
)"),
            "routing.yaml:3:66: environments.prod.topics.orders: unknown cluster 't' (clusters "
            "of prod: p)");
}

TEST_F(RoutingTableTest, ABrokenClusterIsNotAlsoReportedAsUnknownByItsTopics) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters: { k: { backend: kafka } }
    topics: { orders: k }
    default_cluster: k
)"),
            "routing.yaml:3:17: environments.prod.clusters.k: missing required property "
            "'bootstrap' of backend 'kafka'");
}

TEST_F(RoutingTableTest, DefaultClusterAndDefaultEnvironmentMustExist) {
  EXPECT_EQ(ParseError(R"(default_environment: production
environments:
  prod:
    clusters: { a: { backend: redis } }
    default_cluster: b
)"),
            "routing.yaml:1:22: default_environment: unknown environment 'production' "
            "(environments: prod)\n"
            "routing.yaml:5:22: environments.prod.default_cluster: unknown cluster 'b' (clusters "
            "of prod: a)");
}

TEST_F(RoutingTableTest, InvalidTopicNamesAndGlobs) {
  const std::string long_name(250, 'x');
  const std::string message = ParseError(R"(environments:
  prod:
    clusters: { a: { backend: redis } }
    topics:
      "order events": a
      "sms-[0-9]*": a
      ".": a
      )" + long_name + R"(: a
      "x*": a
)");
  EXPECT_EQ(
      message,
      "routing.yaml:5:7: environments.prod.topics[\"order events\"]: topic name 'order "
      "events' has an invalid character at position 5 (allowed: letters, digits, '.', '_', "
      "'-')\n"
      "routing.yaml:6:7: environments.prod.topics[\"sms-[0-9]*\"]: topic glob 'sms-[0-9]*' has "
      "an invalid character at position 4 (allowed: letters, digits, '.', '_', '-', '*', "
      "'?')\n"
      "routing.yaml:7:7: environments.prod.topics[\".\"]: topic name '.' is reserved\n"
      "routing.yaml:8:7: environments.prod.topics." +
          long_name + ": topic name '" + long_name.substr(0, 40) +
          "...' is 250 characters long (at most 249)");
}

TEST_F(RoutingTableTest, DuplicatedKeysAreErrors) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      a: { backend: redis }
      a: { backend: kafka, bootstrap: "k:1" }
    topics:
      orders: a
      orders: a
  prod:
    clusters: { b: { backend: redis, db: 1, db: 2 } }
)"),
            "routing.yaml:5:7: environments.prod.clusters.a: duplicate key (first defined at "
            "line 4, column 7)\n"
            "routing.yaml:8:7: environments.prod.topics.orders: duplicate key (first defined at "
            "line 7, column 7)\n"
            "routing.yaml:9:3: environments.prod: duplicate key (first defined at line 2, column "
            "3)");
}

TEST_F(RoutingTableTest, DuplicatedPropertyKeysAreErrors) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters: { b: { backend: redis, db: 1, db: 2 } }
client: { max_attempts: 3, max_attempts: 4 }
)"),
            "routing.yaml:3:45: environments.prod.clusters.b.db: duplicate key (first defined "
            "at line 3, column 38)\n"
            "routing.yaml:4:28: client.max_attempts: duplicate key (first defined at line 4, "
            "column 11)");
}

TEST_F(RoutingTableTest, MapPropertyGivenTwiceThroughBothForms) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      k:
        backend: kafka
        bootstrap: "k:1"
        librdkafka: { acks: all }
        librdkafka.acks: "1"
)"),
            "routing.yaml:8:9: environments.prod.clusters.k[\"librdkafka.acks\"]: set more than "
            "once (first at routing.yaml:7:23)");
}

TEST_F(RoutingTableTest, EmptyEnvironments) {
  EXPECT_EQ(ParseError("environments: {}\n"),
            "routing.yaml:1:15: environments: no environments defined: at least one is required");
  EXPECT_EQ(ParseError("environments:\n"),
            "routing.yaml:1:1: environments: no environments defined: at least one is required");
  EXPECT_EQ(ParseError("environments:\n  dev:\n    clusters: {}\n"),
            "routing.yaml:3:15: environments.dev.clusters: no clusters defined: at least one is "
            "required");
}

TEST_F(RoutingTableTest, InvalidEnvironmentAndClusterNames) {
  EXPECT_EQ(ParseError(R"(environments:
  "my env":
    clusters: { "a/b": { backend: redis } }
)"),
            "routing.yaml:2:3: environments[\"my env\"]: environment name 'my env' has an "
            "invalid character at position 2 (allowed: letters, digits, '.', '_', '-')\n"
            "routing.yaml:3:17: environments[\"my env\"].clusters.a/b: cluster name 'a/b' has an "
            "invalid character at position 1 (allowed: letters, digits, '.', '_', '-')");
}

TEST_F(RoutingTableTest, MergeKeysAreRejected) {
  EXPECT_EQ(ParseError(R"(environments:
  prod:
    clusters:
      a: &base { backend: redis, db: 1 }
      b: { <<: *base, db: 2 }
)"),
            "routing.yaml:5:10: environments.prod.clusters.b: missing required key 'backend' "
            "(registered backends: kafka, native, redis)\n"
            "routing.yaml:5:12: environments.prod.clusters.b: merge keys ('<<') are not "
            "supported: write the entries out");
}

TEST_F(RoutingTableTest, AliasExpansionIsBounded) {
  // Ten nested levels of ten aliases each: 10^10 list items once expanded.
  std::string value = "&l0 [x, x, x, x, x, x, x, x, x, x]";
  for (int i = 1; i < 10; ++i) {
    std::string next = "&l" + std::to_string(i) + " [" + value;
    for (int j = 1; j < 10; ++j) next += ", *l" + std::to_string(i - 1);
    value = next + "]";
  }
  const std::string message = ParseError(
      "environments:\n  dev:\n    clusters:\n      a: { backend: native, endpoints: " + value +
      " }\n");
  EXPECT_THAT(message, HasSubstr("property values expand to more than 100000 nodes"));
}

TEST_F(RoutingTableTest, AllErrorsAreReportedUpToALimit) {
  std::string yaml =
      "environments:\n  prod:\n    clusters: { a: { backend: redis } }\n"
      "    topics:\n";
  for (int i = 0; i < 25; ++i) yaml += "      t" + std::to_string(i) + ": missing\n";
  const std::string message = ParseError(yaml);
  const size_t lines = static_cast<size_t>(std::count(message.begin(), message.end(), '\n')) + 1;
  EXPECT_EQ(lines, RoutingTable::kMaxReportedErrors + 1);
  EXPECT_THAT(message, StartsWith("routing.yaml:5:11: environments.prod.topics.t0: unknown "
                                  "cluster 'missing'"));
  EXPECT_THAT(message, ::testing::EndsWith("\nrouting.yaml: 5 more errors not shown"));
}

// ---- LoadFile ------------------------------------------------------------------------------

class LoadFileTest : public RoutingTableTest {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/msgsdk-routing-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(LoadFileTest, LoadsAndNamesTheFileInErrors) {
  const std::string good = Write("routing.yaml", kDesignExample);
  auto table = RoutingTable::LoadFile(good, *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->source(), good);
  EXPECT_EQ((*table)->environments().at("prod").topics[0].source, good + ":9:7");

  const std::string bad = Write("bad.yaml", "environments:\n  dev: {}\n");
  auto failed = RoutingTable::LoadFile(bad, *registry_);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.status().message(),
            bad + ":2:8: environments.dev: missing required key 'clusters'");
}

TEST_F(LoadFileTest, MissingFileIsNotFound) {
  const std::string path = dir_ + "/absent.yaml";
  auto table = RoutingTable::LoadFile(path, *registry_);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(table.status().message(), "routing table '" + path + "': no such file");
  auto nested = RoutingTable::LoadFile(Write("file", "x") + "/routing.yaml", *registry_);
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.status().code(), StatusCode::kNotFound);
}

TEST_F(LoadFileTest, DirectoryIsRejected) {
  auto table = RoutingTable::LoadFile(dir_, *registry_);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(), "routing table '" + dir_ + "' is a directory");
}

TEST_F(LoadFileTest, UnreadableFileIsPermissionDenied) {
  const std::string path = Write("secret.yaml", kDesignExample);
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const std::string expected = "routing table '" + path + "': permission denied";
  auto check = [&] {
    auto table = RoutingTable::LoadFile(path, *registry_);
    return !table.ok() && table.status().code() == StatusCode::kPermissionDenied &&
           table.status().message() == expected;
  };
  if (::geteuid() != 0) {
    EXPECT_TRUE(check());
    return;
  }
  // Root reads any file: check from a child that gives up root first.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    constexpr uid_t kNobody = 65534;
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(2);
    ::_exit(check() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "1: LoadFile did not report \"" << expected << "\"; 2: could not drop root";
}

}  // namespace
}  // namespace msgsdk::core
