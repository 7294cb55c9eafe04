// The `msgsdk` program as a user runs it: a child process per command, its standard output,
// standard error and exit status. Messages go through an embedded native cluster in a
// temporary data directory.

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/child_process.h"
#include "testing/temp_dir.h"

namespace msgsdk {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr auto kProcessTimeout = std::chrono::seconds(60);

constexpr char kRoutingTable[] = R"(version: 7
default_environment: prod
environments:
  prod:
    clusters:
      native-a: { backend: native, endpoints: ["10.0.0.5:9876"] }
      native-b: { backend: native, endpoints: ["10.0.0.6:9876", "10.0.0.7:9876"] }
    topics:
      order-events: { cluster: native-a }
      "sms-*": native-b
    default_cluster: native-a
  dev:
    clusters: { local: { backend: native, embedded: true, data_dir: ./dev-data } }
    default_cluster: local
  bare:
    clusters: { only: { backend: native, embedded: true } }
    topics: { known: only }
migrations:
  order-events: { from: native-a, to: native-b, phase: dual_write }
)";

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// The value of `name=` in a line of `msgsdk send` or `msgsdk tail` (up to the next space).
std::string Field(const std::string& line, const std::string& name) {
  const std::string prefix = name + "=";
  size_t start = 0;
  if (line.rfind(prefix, 0) == 0) {
    start = prefix.size();
  } else if (const size_t at = line.find(' ' + prefix); at != std::string::npos) {
    start = at + 1 + prefix.size();
  } else {
    return "<no " + name + ">";
  }
  return line.substr(start, line.find(' ', start) - start);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Every child gets exactly the configuration a test gives it.
    for (const char* name : {"MSGSDK_CONFIG", "MSGSDK_ENV", "MSGSDK_DATA_DIR", "MSGSDK_SIDECAR"}) {
      ::unsetenv(name);  // NOLINT(concurrency-mt-unsafe): before any thread of the test
    }
  }

  // Runs `msgsdk args...` to completion.
  Outcome Run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
              const std::string& stdin_path = "") {
    std::vector<std::string> argv = {MSGSDK_CLI_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string err_path = (dir_.path() / ("stderr-" + std::to_string(++runs_))).string();
    Outcome outcome;
    auto child = testing::ChildProcess::Start(argv, env, err_path, stdin_path);
    if (!child.ok()) {
      ADD_FAILURE() << child.status().ToString();
      return outcome;
    }
    auto out = child->ReadToEnd(kProcessTimeout);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (out.ok()) outcome.out = *out;
    auto exit_code = child->Wait(kProcessTimeout);
    EXPECT_TRUE(exit_code.ok()) << exit_code.status().ToString();
    if (exit_code.ok()) outcome.exit_code = *exit_code;
    std::ifstream err(err_path);
    outcome.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
    return outcome;
  }

  // Runs a message command on the test's embedded cluster.
  Outcome RunOnData(const std::vector<std::string>& args, const std::string& stdin_path = "") {
    return Run(args, {"MSGSDK_DATA_DIR=" + data_dir()}, stdin_path);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_.path() / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string data_dir() const { return (dir_.path() / "data").string(); }

  // The message ids of `msgsdk send` or `msgsdk tail` output, in order.
  static std::vector<std::string> MessageIds(const std::string& out) {
    std::vector<std::string> ids;
    for (const std::string& line : Lines(out)) ids.push_back(Field(line, "message_id"));
    return ids;
  }

  testing::TempDir dir_{"msgsdk-cli-test"};
  int runs_ = 0;
};

// ---- config validate -------------------------------------------------------------------------

TEST_F(CliTest, ConfigValidateSummarisesAValidFile) {
  const std::string path = Write("routing.yaml", kRoutingTable);
  const Outcome result = Run({"config", "validate", path});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(path + ": valid routing table\n"));
  EXPECT_THAT(result.out, HasSubstr("  version: 7\n"));
  EXPECT_THAT(result.out, HasSubstr("  default environment: prod\n"));
  EXPECT_THAT(result.out, HasSubstr("  environments: 3\n"));
  EXPECT_THAT(result.out,
              HasSubstr("    prod: 2 clusters, 2 topic rules, default cluster native-a\n"));
  EXPECT_THAT(result.out, HasSubstr("      native-b: backend native (" + path + ":7:7)\n"));
  EXPECT_THAT(result.out, HasSubstr("    bare: 1 cluster, 1 topic rule, default cluster (none)\n"));
  EXPECT_THAT(result.out, HasSubstr("  migrations: 1\n"));
  EXPECT_THAT(result.out, HasSubstr("    order-events: native-a -> native-b, phase dual_write"));
  EXPECT_THAT(result.err, IsEmpty());

  // Without FILE: the file a client would load.
  const Outcome from_variable = Run({"config", "validate"}, {"MSGSDK_CONFIG=" + path});
  EXPECT_EQ(from_variable.exit_code, 0) << from_variable.err;
  EXPECT_THAT(from_variable.out, StartsWith(path + ": valid routing table\n"));
  const Outcome nothing = Run({"config", "validate"});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("give FILE, --config or MSGSDK_CONFIG"));
}

TEST_F(CliTest, ConfigValidateListsEveryErrorWithFileAndLine) {
  const std::string path = Write("bad.yaml", R"(environments:
  prod:
    clusters:
      native-a: { backend: native, flush_mode: sometimes }
    topics:
      order-events: native-x
    default_clustr: native-a
)");
  const Outcome result = Run({"config", "validate", path});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, IsEmpty());
  const std::vector<std::string> lines = Lines(result.err);
  ASSERT_EQ(lines.size(), 4u) << result.err;
  EXPECT_THAT(lines[0], StartsWith(path + ":4:48: environments.prod.clusters.native-a.flush_mode"));
  EXPECT_THAT(lines[1], StartsWith(path + ":6:21: environments.prod.topics.order-events"));
  EXPECT_THAT(lines[1], HasSubstr("unknown cluster 'native-x'"));
  EXPECT_THAT(lines[2], StartsWith(path + ":7:5: environments.prod.default_clustr"));
  EXPECT_THAT(lines[2], HasSubstr("did you mean 'default_cluster'?"));
  EXPECT_EQ(lines[3], "msgsdk: " + path + " is not a valid routing table");
}

TEST_F(CliTest, ConfigValidateMissingFileNamesIt) {
  const std::string path = (dir_.path() / "absent.yaml").string();
  const Outcome result = Run({"config", "validate", path});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("NOT_FOUND: routing table '" + path + "': no such file"));
}

// ---- route -----------------------------------------------------------------------------------

TEST_F(CliTest, RouteExplainsExactGlobAndDefaultRules) {
  const std::string path = Write("routing.yaml", kRoutingTable);
  const Outcome exact = Run({"route", "order-events", "--config", path});
  EXPECT_EQ(exact.exit_code, 0) << exact.err;
  EXPECT_THAT(exact.out, HasSubstr("topic:        order-events\n"));
  EXPECT_THAT(exact.out, HasSubstr("environment:  prod (the table's default_environment)\n"));
  EXPECT_THAT(exact.out, HasSubstr("cluster:      native-a (defined at " + path + ":6:7)\n"));
  EXPECT_THAT(exact.out, HasSubstr("backend:      native\n"));
  EXPECT_THAT(exact.out,
              HasSubstr("matched by:   exact topic entry \"order-events\" (" + path + ":9:7)\n"));
  EXPECT_THAT(exact.out, HasSubstr("migration:    from native-a to native-b, phase dual_write"));
  EXPECT_THAT(exact.out, HasSubstr("routing:      version 7, " + path + " (--config)\n"));
  EXPECT_THAT(exact.out, HasSubstr("  endpoints  10.0.0.5:9876\n"));

  const Outcome glob = Run({"route", "sms-login", "--config", path});
  EXPECT_EQ(glob.exit_code, 0) << glob.err;
  EXPECT_THAT(glob.out, HasSubstr("cluster:      native-b"));
  EXPECT_THAT(glob.out, HasSubstr("matched by:   glob \"sms-*\" (" + path + ":10:7)\n"));
  EXPECT_THAT(glob.out, HasSubstr("migration:    none\n"));
  EXPECT_THAT(glob.out, HasSubstr("  endpoints  10.0.0.6:9876,10.0.0.7:9876\n"));

  const Outcome fallback = Run({"route", "audit", "--config", path});
  EXPECT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_THAT(fallback.out, HasSubstr("cluster:      native-a"));
  EXPECT_THAT(fallback.out, HasSubstr("matched by:   the environment's default_cluster"));
}

TEST_F(CliTest, RouteChoosesTheEnvironmentLikeAClient) {
  const std::string path = Write("routing.yaml", kRoutingTable);
  const Outcome by_variable =
      Run({"route", "order-events"}, {"MSGSDK_CONFIG=" + path, "MSGSDK_ENV=dev"});
  EXPECT_EQ(by_variable.exit_code, 0) << by_variable.err;
  EXPECT_THAT(by_variable.out, HasSubstr("environment:  dev (chosen by MSGSDK_ENV)\n"));
  EXPECT_THAT(by_variable.out, HasSubstr("cluster:      local"));
  EXPECT_THAT(by_variable.out,
              HasSubstr("routing:      version 7, " + path + " (MSGSDK_CONFIG)\n"));
  EXPECT_THAT(by_variable.out, HasSubstr("  data_dir  ./dev-data\n"));
  // The migration names clusters of another environment.
  EXPECT_THAT(by_variable.out, HasSubstr("note: native-a is not a cluster of environment dev"));

  // --env wins over MSGSDK_ENV, and may come before the subcommand.
  const Outcome by_flag =
      Run({"--env", "prod", "route", "order-events"}, {"MSGSDK_CONFIG=" + path, "MSGSDK_ENV=dev"});
  EXPECT_EQ(by_flag.exit_code, 0) << by_flag.err;
  EXPECT_THAT(by_flag.out, HasSubstr("environment:  prod (chosen by --env)\n"));
  EXPECT_THAT(by_flag.out, HasSubstr("cluster:      native-a"));

  const Outcome unknown = Run({"route", "order-events", "--env", "staging", "--config", path});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND: environment 'staging' is not defined in " + path));
}

TEST_F(CliTest, RouteOfAnUnroutedTopicFails) {
  const std::string path = Write("routing.yaml", kRoutingTable);
  const Outcome result = Run({"route", "unknown-topic", "--config", path, "--env", "bare"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, IsEmpty());
  EXPECT_THAT(result.err, HasSubstr("NOT_FOUND: topic 'unknown-topic' has no route in "
                                    "environment 'bare'"));
  const Outcome invalid = Run({"route", "no spaces", "--config", path});
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_THAT(invalid.err, HasSubstr("INVALID_ARGUMENT: topic name 'no spaces'"));
}

TEST_F(CliTest, RouteOfAnInvalidTablePrintsItsErrors) {
  const std::string path =
      Write("bad.yaml", "environments:\n  prod:\n    clusters: { a: { backend: nativ } }\n");
  const Outcome result = Run({"route", "orders"}, {"MSGSDK_CONFIG=" + path});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, IsEmpty());
  EXPECT_THAT(result.err, StartsWith(path + ":3:"));
  EXPECT_THAT(result.err, HasSubstr("unknown backend 'nativ'"));
  EXPECT_THAT(result.err, HasSubstr("running clients keep their last good version"));
}

TEST_F(CliTest, RouteWithoutConfigurationIsTheBuiltInCluster) {
  const Outcome result = Run({"route", "orders", "--data-dir", data_dir()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("environment:  local (the table's default_environment)\n"));
  EXPECT_THAT(result.out, HasSubstr("cluster:      embedded"));
  EXPECT_THAT(result.out, HasSubstr("storing in " + data_dir() + "\n"));
  EXPECT_THAT(result.out, HasSubstr("  data_dir  " + data_dir() + "\n"));
  EXPECT_THAT(result.out, HasSubstr("more at their defaults; --all-properties lists them"));
  const Outcome all = Run({"route", "orders", "--data-dir", data_dir(), "--all-properties"});
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_THAT(all.out, HasSubstr("  flush_mode "));
  EXPECT_THAT(all.out, HasSubstr("group_commit (default)\n"));
}

#if defined(MSGSDK_TEST_REDIS_BACKEND)
TEST_F(CliTest, RouteNeverPrintsSecrets) {
  const std::string path = Write("routing.yaml", R"(environments:
  prod:
    clusters:
      r: { backend: redis, endpoint: "10.0.0.9:6379", user: app, password: hunter2-secret }
    default_cluster: r
)");
  const Outcome result = Run({"route", "orders", "--config", path, "--all-properties"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("  endpoint "));
  EXPECT_THAT(result.out, HasSubstr("10.0.0.9:6379"));
  EXPECT_THAT(result.out, HasSubstr("  password "));
  EXPECT_THAT(result.out, HasSubstr("<hidden>"));
  EXPECT_THAT(result.out, Not(HasSubstr("hunter2")));
}
#endif

// ---- send, tail, reset -----------------------------------------------------------------------

TEST_F(CliTest, SendThenTailRoundTripsEveryField) {
  const Outcome first =
      RunOnData({"send", "orders", "--key", "order-42", "--tag", "created", "--property",
                 "channel=web", "--property", "note=two words", "first body"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::vector<std::string> sent = Lines(first.out);
  ASSERT_EQ(sent.size(), 1u) << first.out;
  EXPECT_THAT(sent[0], StartsWith("message_id="));
  EXPECT_EQ(Field(sent[0], "cluster"), "embedded");
  EXPECT_THAT(Field(sent[0], "partition"), Not(IsEmpty()));
  EXPECT_THAT(Field(sent[0], "offset"), Not(IsEmpty()));

  // BODY "-": standard input, any bytes.
  constexpr char kBody[] = "line one\nline \"two\"\x01\xff";
  const std::string body_path = Write("body.bin", std::string(kBody, sizeof(kBody) - 1));
  const Outcome second = RunOnData({"send", "orders", "--key", "order-42", "-"}, body_path);
  ASSERT_EQ(second.exit_code, 0) << second.err;

  const Outcome tail = RunOnData({"tail", "orders", "--group", "audit", "--count", "2"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  const std::vector<std::string> lines = Lines(tail.out);
  ASSERT_EQ(lines.size(), 2u) << tail.out;
  // One key: one partition, in send order.
  EXPECT_EQ(MessageIds(tail.out),
            (std::vector<std::string>{MessageIds(first.out)[0], MessageIds(second.out)[0]}));
  EXPECT_EQ(Field(lines[0], "partition"), Field(sent[0], "partition"));
  EXPECT_EQ(Field(lines[0], "offset"), Field(sent[0], "offset"));
  EXPECT_EQ(Field(lines[0], "delivery_attempt"), "1");
  EXPECT_THAT(Field(lines[0], "born_at"), AllOf(StartsWith("20"), HasSubstr("T")));
  EXPECT_THAT(lines[0], HasSubstr(" key=\"order-42\" tag=\"created\" "
                                  "properties={\"channel\":\"web\",\"note\":\"two words\"} "
                                  "body=\"first body\""));
  EXPECT_THAT(lines[1], HasSubstr(" key=\"order-42\" tag=\"\" properties={} "
                                  "body=\"line one\\nline \\\"two\\\"\\x01\\xff\""));
}

TEST_F(CliTest, SendCountSendsCopiesAndTailStopsWhenIdle) {
  const Outcome sent = RunOnData({"send", "events", "--count", "3", "same"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  const std::vector<std::string> ids = MessageIds(sent.out);
  ASSERT_EQ(ids.size(), 3u) << sent.out;
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[1], ids[2]);

  // No --count: everything there is, then the idle timeout ends it normally. The timeout
  // leaves the first delivery time on a loaded machine; it counts from the subscription.
  const Outcome tail = RunOnData({"tail", "events", "--group", "g", "--timeout-ms", "1000"});
  EXPECT_EQ(tail.exit_code, 0) << tail.err;
  std::vector<std::string> received = MessageIds(tail.out);
  std::sort(received.begin(), received.end());
  EXPECT_EQ(received, ids);
  EXPECT_THAT(tail.err, HasSubstr("no message for 1000 ms: 3 messages from topic 'events'"));
}

TEST_F(CliTest, TailBeyondTheCountLeavesMessagesToTheGroup) {
  const Outcome sent = RunOnData({"send", "jobs", "--key", "k", "--count", "5", "job"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  const std::vector<std::string> ids = MessageIds(sent.out);
  const Outcome first = RunOnData({"tail", "jobs", "--group", "workers", "--count", "2"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const Outcome rest = RunOnData({"tail", "jobs", "--group", "workers", "--count", "3"});
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  std::vector<std::string> received = MessageIds(first.out);
  for (const std::string& id : MessageIds(rest.out)) received.push_back(id);
  EXPECT_EQ(received, ids);  // one key: send order, nothing lost, nothing twice
}

TEST_F(CliTest, ResetToEarliestReplays) {
  const Outcome sent = RunOnData({"send", "payments", "--count", "3", "pay"});
  ASSERT_EQ(sent.exit_code, 0) << sent.err;
  std::vector<std::string> ids = MessageIds(sent.out);
  std::sort(ids.begin(), ids.end());
  auto tail_all = [&] {
    const Outcome tail = RunOnData({"tail", "payments", "--group", "billing", "--count", "3"});
    EXPECT_EQ(tail.exit_code, 0) << tail.err;
    std::vector<std::string> received = MessageIds(tail.out);
    std::sort(received.begin(), received.end());
    return received;
  };
  EXPECT_EQ(tail_all(), ids);

  // Consumed: a group that expects more times out and says so.
  const Outcome drained =
      RunOnData({"tail", "payments", "--group", "billing", "--count", "1", "--timeout-ms", "200"});
  EXPECT_EQ(drained.exit_code, 1);
  EXPECT_THAT(drained.out, IsEmpty());
  EXPECT_THAT(drained.err, HasSubstr("DEADLINE_EXCEEDED: no message for 200 ms: 0 messages"));

  const Outcome reset = RunOnData({"reset", "payments", "billing", "--to", "earliest"});
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_EQ(reset.out, "group 'billing' on topic 'payments' reset to earliest\n");
  EXPECT_EQ(tail_all(), ids);

  // A time before every message replays them all too, in either form.
  for (const std::string to : {"2001-09-09T01:46:40.5Z", "1000000000500"}) {
    const Outcome by_time = RunOnData({"reset", "payments", "billing", "--to", to});
    ASSERT_EQ(by_time.exit_code, 0) << by_time.err;
    EXPECT_EQ(by_time.out,
              "group 'billing' on topic 'payments' reset to 2001-09-09T01:46:40.500Z\n");
    EXPECT_EQ(tail_all(), ids) << to;
  }
}

// ---- migrate -----------------------------------------------------------------------------------

TEST_F(CliTest, MigrateStepsThroughThePhasesAndEditsOnlyTheEntry) {
  const std::string clusters =
      "# the payments team's routing\n"
      "version: 3\n"
      "environments:\n"
      "  prod:\n"
      "    clusters:\n"
      "      a: { backend: native, data_dir: " +
      (dir_.path() / "a").string() +
      " }\n"
      "      b: { backend: native, data_dir: " +
      (dir_.path() / "b").string() +
      " }\n"
      "    default_cluster: a\n"
      "migrations:\n";
  const std::string path =
      Write("routing.yaml", clusters + "  payments: { from: a, to: b, phase: A }\n");
  // Never blind: the reports of the running clients decide, or --no-clients says there are none.
  const Outcome blind = Run({"--config", path, "migrate", "advance", "payments"});
  EXPECT_EQ(blind.exit_code, 1);
  EXPECT_THAT(blind.err, HasSubstr("--client-sidecar"));

  const Outcome status = Run({"--config", path, "migrate", "status", "payments", "--no-clients"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("topic payments: a -> b, phase A, generation 0 (routing "
                                    "version 3)"));
  EXPECT_THAT(status.out, HasSubstr("next: move to dual_write"));

  auto advance = [&](const std::string& verb) {
    const Outcome step = Run({"--config", path, "migrate", verb, "payments", "--no-clients"});
    EXPECT_EQ(step.exit_code, 0) << step.err;
    return step.out;
  };
  EXPECT_THAT(advance("advance"), HasSubstr("wrote version 4: topic 'payments' in dual_write"));
  EXPECT_THAT(advance("advance"), HasSubstr("wrote version 5: topic 'payments' in cutover"));
  // The cutover's drain offsets: the ends of `a` (nothing was sent: 0 everywhere).
  EXPECT_THAT(advance("advance"), HasSubstr("drain: { 0: 0"));
  EXPECT_THAT(advance("rollback"), HasSubstr("wrote version 7: topic 'payments' in dual_write"));
  std::ifstream file(path);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "# the payments team's routing\nversion: 7\n" +
                      clusters.substr(clusters.find("environments:")) +
                      "  payments: { from: a, to: b, phase: dual_write, generation: 3 }\n");

  const Outcome unknown = Run({"--config", path, "migrate", "status", "orders", "--no-clients"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no migrations entry for topic 'orders'"));
}

TEST_F(CliTest, BadTimestampIsAUsageErrorNamingTheArgument) {
  for (const std::string to : {"2026-13-01T00:00:00Z", "2026-11-23T10:00:00", "yesterday"}) {
    const Outcome result = RunOnData({"reset", "payments", "billing", "--to", to});
    EXPECT_EQ(result.exit_code, 2) << to;
    EXPECT_THAT(result.err, HasSubstr("--to: expected earliest, latest, an ISO-8601 UTC time"))
        << to;
    EXPECT_THAT(result.err, HasSubstr("got \"" + to + "\"")) << to;
  }
  const Outcome missing = RunOnData({"reset", "payments", "billing"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--to is required"));
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(Run({}).exit_code, 2);
  EXPECT_EQ(Run({"sned", "orders", "x"}).exit_code, 2);
  EXPECT_EQ(Run({"route", "orders", "--bogus"}).exit_code, 2);
  EXPECT_EQ(RunOnData({"tail", "orders"}).exit_code, 2);  // --group is required
  const Outcome property = RunOnData({"send", "orders", "--property", "novalue", "body"});
  EXPECT_EQ(property.exit_code, 2);
  EXPECT_THAT(property.err, HasSubstr("--property: expected NAME=VALUE, got \"novalue\""));
  const Outcome help = Run({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Exit status: 0 done, 1 the operation failed"));
}

TEST_F(CliTest, FailedOperationExitsWithOneAndTheStatus) {
  // Producers may not write the SDK's own topics.
  const Outcome result = RunOnData({"send", "__dlq.billing", "body"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.out, IsEmpty());
  EXPECT_THAT(result.err, HasSubstr("msgsdk: send: INVALID_ARGUMENT:"));
}

}  // namespace
}  // namespace msgsdk
