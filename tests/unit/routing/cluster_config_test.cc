#include "core/cluster_config.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/routing/diagnostics.h"

namespace msgsdk::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using Type = PropertySpec::Type;

RawEntry Entry(std::string key, RawValue value) {
  return RawEntry{std::move(key), std::move(value), "f:1:1"};
}

RawEntry Scalar(std::string key, std::string value) {
  return Entry(std::move(key), RawValue::Scalar(std::move(value), "f:1:5"));
}

RawValue Sequence(std::vector<std::string> items) {
  RawValue value;
  value.kind = RawValue::Kind::kSequence;
  value.location = "f:2:5";
  for (std::string& item : items) value.items.push_back(RawValue::Scalar(std::move(item)));
  return value;
}

RawValue Map(std::vector<std::pair<std::string, RawValue>> entries) {
  RawValue value;
  value.kind = RawValue::Kind::kMap;
  value.location = "f:3:5";
  for (auto& [key, item] : entries) {
    value.entries.push_back(RawEntry{std::move(key), std::move(item), "f:3:7"});
  }
  return value;
}

// One property of the given type, validated alone.
Result<std::map<std::string, std::string>> One(PropertySpec spec, RawEntry entry) {
  return ValidateProperties({std::move(entry)}, PropertyTable{std::move(spec)}, "c", "f:1:1",
                            "backend 'x'");
}

std::string Value(PropertySpec spec, const std::string& text) {
  const std::string name = spec.name;
  auto result = One(std::move(spec), Scalar(name, text));
  if (!result.ok()) return "error: " + result.status().message();
  return result->at(name);
}

TEST(ValidatePropertiesTest, Strings) {
  EXPECT_EQ(Value({.name = "s"}, " keep spaces "), " keep spaces ");
  EXPECT_EQ(Value({.name = "s"}, ""), "");
  EXPECT_EQ(Value({.name = "s", .required = true}, ""),
            "error: f:1:5: c.s: must not be empty (required by backend 'x')");
}

TEST(ValidatePropertiesTest, IntegersAndRanges) {
  const PropertySpec spec{.name = "n", .type = Type::kInt, .min = -5, .max = 10};
  EXPECT_EQ(Value(spec, "10"), "10");
  EXPECT_EQ(Value(spec, "-5"), "-5");
  EXPECT_EQ(Value(spec, " 7 "), "7");
  EXPECT_EQ(Value(spec, "11"), "error: f:1:5: c.n: 11 is out of range: must be between -5 and 10");
  EXPECT_EQ(Value(spec, "1.5"),
            "error: f:1:5: c.n: expected an integer between -5 and 10, got '1.5'");
  EXPECT_EQ(Value(spec, "0x10"),
            "error: f:1:5: c.n: expected an integer between -5 and 10, got '0x10'");
  EXPECT_EQ(Value({.name = "n", .type = Type::kInt}, "99999999999999999999"),
            "error: f:1:5: c.n: expected an integer, got '99999999999999999999'");
  EXPECT_EQ(Value({.name = "n", .type = Type::kInt, .min = 1}, "0"),
            "error: f:1:5: c.n: 0 is out of range: must be at least 1");
  EXPECT_EQ(Value({.name = "n", .type = Type::kInt, .max = 1}, "2"),
            "error: f:1:5: c.n: 2 is out of range: must be at most 1");
}

TEST(ValidatePropertiesTest, Booleans) {
  const PropertySpec spec{.name = "b", .type = Type::kBool};
  EXPECT_EQ(Value(spec, "true"), "true");
  EXPECT_EQ(Value(spec, "False"), "false");
  EXPECT_EQ(Value(spec, "TRUE"), "true");
  EXPECT_EQ(Value(spec, "yes"), "error: f:1:5: c.b: expected true or false, got 'yes'");
  EXPECT_EQ(Value(spec, "1"), "error: f:1:5: c.b: expected true or false, got '1'");
}

TEST(ValidatePropertiesTest, DurationsAreIntegerMilliseconds) {
  const PropertySpec spec{.name = "d_ms", .type = Type::kDuration, .min = 0, .max = 60000};
  EXPECT_EQ(Value(spec, "1500"), "1500");
  EXPECT_EQ(Value(spec, "1s"),
            "error: f:1:5: c.d_ms: expected an integer number of milliseconds between 0 and "
            "60000, got '1s'");
  EXPECT_EQ(Value(spec, "60001"),
            "error: f:1:5: c.d_ms: 60001 is out of range: must be between 0 and 60000");
}

TEST(ValidatePropertiesTest, BytesAcceptBinarySuffixes) {
  const PropertySpec spec{.name = "size", .type = Type::kBytes, .min = 1, .max = int64_t{2} << 30};
  EXPECT_EQ(Value(spec, "1048576"), "1048576");
  EXPECT_EQ(Value(spec, "512KiB"), "524288");
  EXPECT_EQ(Value(spec, "4MiB"), "4194304");
  EXPECT_EQ(Value(spec, "4 MiB"), "4194304");
  EXPECT_EQ(Value(spec, "2GiB"), "2147483648");
  EXPECT_EQ(Value(spec, "3GiB"),
            "error: f:1:5: c.size: 3221225472 (3GiB) is out of range: must be between 1 and "
            "2147483648 (2GiB)");
  EXPECT_EQ(Value(spec, "0KiB"),
            "error: f:1:5: c.size: 0 is out of range: must be between 1 and 2147483648 (2GiB)");
  for (const std::string bad : {"4MB", "4mib", "1.5MiB", "-1", "MiB", "", "99999999999GiB"}) {
    EXPECT_EQ(Value(spec, bad),
              "error: f:1:5: c.size: expected a byte count such as 65536, 64KiB, 4MiB or 1GiB "
              "between 1 and 2147483648 (2GiB), got '" +
                  bad + "'");
  }
}

TEST(ValidatePropertiesTest, Enums) {
  const PropertySpec spec{.name = "acks", .type = Type::kEnum, .allowed = {"all", "leader"}};
  EXPECT_EQ(Value(spec, "leader"), "leader");
  EXPECT_EQ(Value(spec, "leadr"),
            "error: f:1:5: c.acks: unknown value 'leadr' (did you mean 'leader'? allowed: all, "
            "leader)");
  EXPECT_EQ(Value(spec, "none"),
            "error: f:1:5: c.acks: unknown value 'none' (allowed: all, leader)");
}

TEST(ValidatePropertiesTest, ListsFromSequencesOrCommaSeparatedStrings) {
  const PropertySpec spec{.name = "hosts", .type = Type::kList};
  EXPECT_EQ(Value(spec, "a:1, b:2 ,c:3"), "a:1,b:2,c:3");
  EXPECT_EQ(Value(spec, ""), "");
  EXPECT_EQ(Value(spec, "a,,b"),
            "error: f:1:5: c.hosts: empty item in the comma-separated list 'a,,b'");
  auto result = One(spec, Entry("hosts", Sequence({"a:1", " b:2 "})));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->at("hosts"), "a:1,b:2");
  result = One(spec, Entry("hosts", Sequence({"a,b"})));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:2:5: c.hosts[0]: list items cannot contain ',': 'a,b'");
  RawValue nested = Sequence({});
  nested.items.push_back(Sequence({"x"}));
  result = One(spec, Entry("hosts", nested));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:2:5: c.hosts[0]: expected a string, got a sequence");
  result =
      One({.name = "hosts", .type = Type::kList, .required = true}, Entry("hosts", Sequence({})));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "f:2:5: c.hosts: must not be empty (required by backend 'x')");
}

TEST(ValidatePropertiesTest, MapsBecomeDottedProperties) {
  const PropertyTable table{{.name = "extra", .type = Type::kMap},
                            {.name = "n", .type = Type::kInt}};
  auto result = ValidateProperties(
      {Entry("extra", Map({{"a.b", RawValue::Scalar("1")}, {"c", RawValue::Scalar("x")}})),
       Scalar("extra.d", "flat")},
      table, "c", "f:1:1", "backend 'x'");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_THAT(*result,
              ElementsAre(Pair("extra.a.b", "1"), Pair("extra.c", "x"), Pair("extra.d", "flat")));
  ClusterConfig config{.name = "k", .backend = "x", .properties = *result};
  EXPECT_THAT(config.GetMap("extra"),
              ElementsAre(Pair("a.b", "1"), Pair("c", "x"), Pair("d", "flat")));
  EXPECT_THAT(config.GetMap("ext"), IsEmpty());

  result = ValidateProperties({Scalar("extra", "a=1")}, table, "c", "f:1:1", "backend 'x'");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "f:1:5: c.extra: expected a map of scalar values, got a scalar 'a=1'");
  result = ValidateProperties({Entry("extra", Map({{"a", Map({})}}))}, table, "c", "f:1:1",
                              "backend 'x'");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:3:5: c.extra.a: expected a scalar value, got a map");
}

TEST(ValidatePropertiesTest, DefaultsFilledAndRequiredChecked) {
  const PropertyTable table{
      {.name = "host", .type = Type::kString, .required = true},
      {.name = "port", .type = Type::kInt, .default_value = "9876", .min = 1, .max = 65535},
      {.name = "size", .type = Type::kBytes, .default_value = "1MiB"},
      {.name = "opt", .type = Type::kString},
  };
  auto result = ValidateProperties({Scalar("host", "h")}, table, "c", "f:1:1", "backend 'x'");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_THAT(*result,
              ElementsAre(Pair("host", "h"), Pair("port", "9876"), Pair("size", "1048576")));
  result = ValidateProperties({}, table, "envs.e.clusters.c", "f:9:3", "backend 'x'");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "f:9:3: envs.e.clusters.c: missing required property 'host' of backend 'x'");
}

TEST(ValidatePropertiesTest, NullValuesAndWrongShapes) {
  RawValue null_value;
  null_value.kind = RawValue::Kind::kNull;
  null_value.location = "f:4:4";
  auto result = One({.name = "n", .type = Type::kInt}, Entry("n", null_value));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:4:4: c.n: has no value: expected an integer");
  result = One({.name = "n", .type = Type::kInt}, Entry("n", Sequence({"1"})));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:2:5: c.n: expected an integer, got a sequence");
  result = One({.name = "s"}, Entry("s", Map({})));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:3:5: c.s: expected a string, got a map");
}

TEST(ValidatePropertiesTest, UnknownPropertiesAndEveryErrorReported) {
  const PropertyTable table{{.name = "bootstrap"}, {.name = "linger_ms", .type = Type::kDuration}};
  auto result =
      ValidateProperties({Scalar("bootstrp", "x"), Scalar("zzz", "1"), Scalar("linger_ms", "soon")},
                         table, "c", "f:1:1", "backend 'kafka'");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "f:1:1: c.bootstrp: unknown property 'bootstrp' of backend 'kafka' (did you mean "
            "'bootstrap'?)\n"
            "f:1:1: c.zzz: unknown property 'zzz' of backend 'kafka' (known: bootstrap, "
            "linger_ms)\n"
            "f:1:5: c.linger_ms: expected an integer number of milliseconds, got 'soon'");
}

TEST(ValidatePropertiesTest, DuplicatesFromNonYamlSources) {
  auto result = ValidateProperties({Scalar("a", "1"), Scalar("a", "2")},
                                   PropertyTable{{.name = "a"}}, "c", "", "client settings");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "f:1:1: c.a: set more than once (first at f:1:1)");
}

TEST(ValidatePropertiesTest, InvalidDefaultIsAnInternalError) {
  auto result = ValidateProperties(
      {}, PropertyTable{{.name = "n", .type = Type::kInt, .default_value = "many"}}, "c", "",
      "backend 'x'");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("the default 'many' of property 'n'"));
}

TEST(ValidateClusterConfigTest, BuildsTheClusterConfig) {
  auto config = ValidateClusterConfig("main", "redis", {Scalar("db", "3")},
                                      {{.name = "db", .type = Type::kInt}}, "p", "f:7:3");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "main");
  EXPECT_EQ(config->backend, "redis");
  EXPECT_EQ(config->source, "f:7:3");
  EXPECT_THAT(config->properties, ElementsAre(Pair("db", "3")));
}

TEST(ClusterConfigTest, TypedGettersAndFallbacks) {
  ClusterConfig config;
  config.properties = {{"s", "text"},    {"n", "-42"},    {"b", "true"}, {"f", "false"},
                       {"d_ms", "1500"}, {"list", "a,b"}, {"empty", ""}, {"bad", "x"}};
  EXPECT_EQ(config.GetString("s"), "text");
  EXPECT_EQ(config.GetString("absent", "fb"), "fb");
  EXPECT_EQ(config.GetInt("n"), -42);
  EXPECT_EQ(config.GetInt("bad", 7), 7);
  EXPECT_EQ(config.GetInt("absent", 9), 9);
  EXPECT_TRUE(config.GetBool("b"));
  EXPECT_FALSE(config.GetBool("f", true));
  EXPECT_TRUE(config.GetBool("bad", true));
  EXPECT_EQ(config.GetDuration("d_ms"), std::chrono::milliseconds(1500));
  EXPECT_EQ(config.GetDuration("absent", std::chrono::milliseconds(3)),
            std::chrono::milliseconds(3));
  EXPECT_EQ(config.GetList("list"), (std::vector<std::string>{"a", "b"}));
  EXPECT_THAT(config.GetList("empty"), IsEmpty());
  EXPECT_THAT(config.GetList("absent"), IsEmpty());
}

TEST(ValidatePropertyTableTest, AcceptsAWellFormedTable) {
  EXPECT_TRUE(
      ValidatePropertyTable(
          {{.name = "a", .required = true},
           {.name = "t_ms", .type = Type::kDuration, .default_value = "5", .min = 0, .max = 10},
           {.name = "m", .type = Type::kMap},
           {.name = "e", .type = Type::kEnum, .default_value = "x", .allowed = {"x", "y"}}})
          .ok());
}

TEST(ValidatePropertyTableTest, RejectsBrokenTables) {
  auto message = [](const PropertyTable& table) {
    Status status = ValidatePropertyTable(table);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    return status.message();
  };
  EXPECT_THAT(message({{.name = "a"}, {.name = "a"}}), HasSubstr("'a': defined more than once"));
  EXPECT_THAT(message({{.name = ""}}), HasSubstr("names are 1 or more"));
  EXPECT_THAT(message({{.name = "backend"}}), HasSubstr("the routing table's own key"));
  EXPECT_THAT(message({{.name = "timeout", .type = Type::kDuration}}),
              HasSubstr("names end in \"_ms\""));
  EXPECT_THAT(message({{.name = "e", .type = Type::kEnum}}), HasSubstr("needs allowed values"));
  EXPECT_THAT(message({{.name = "n", .type = Type::kInt, .min = 5, .max = 1}}),
              HasSubstr("min is greater than max"));
  EXPECT_THAT(message({{.name = "n", .type = Type::kInt, .default_value = "0", .min = 1}}),
              HasSubstr("invalid default: 0 is out of range"));
  EXPECT_THAT(message({{.name = "r", .default_value = "x", .required = true}}),
              HasSubstr("required property cannot have a default"));
  EXPECT_THAT(message({{.name = "m", .type = Type::kMap}, {.name = "m.x"}}),
              HasSubstr("'m.x': clashes with the entries of map property 'm'"));
}

TEST(FormatBytesTest, UsesTheLargestExactUnit) {
  EXPECT_EQ(FormatBytes(0), "0");
  EXPECT_EQ(FormatBytes(1000), "1000");
  EXPECT_EQ(FormatBytes(1024), "1KiB");
  EXPECT_EQ(FormatBytes(1536), "1536");
  EXPECT_EQ(FormatBytes(4 << 20), "4MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3GiB");
}

TEST(DiagnosticsTest, EditDistanceAndSuggestions) {
  using diagnostics::ClosestMatch;
  using diagnostics::EditDistance;
  EXPECT_EQ(EditDistance("kafka-mian", "kafka-main"), 1u);
  EXPECT_EQ(EditDistance("topcs", "topics"), 1u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("abc", "abc"), 0u);
  EXPECT_EQ(ClosestMatch("clustr", {"clusters", "cluster"}), "cluster");
  EXPECT_EQ(ClosestMatch("xyz", {"clusters", "topics"}), std::nullopt);
  // Two edits turn any two-letter name into any other: no suggestion from so little.
  EXPECT_EQ(ClosestMatch("ab", {"xy"}), std::nullopt);
  EXPECT_EQ(diagnostics::FieldPath("a.b", "c"), "a.b.c");
  EXPECT_EQ(diagnostics::FieldPath("a", "x.y"), "a[\"x.y\"]");
  EXPECT_EQ(diagnostics::FieldPath("", "top"), "top");
}

}  // namespace
}  // namespace msgsdk::core
