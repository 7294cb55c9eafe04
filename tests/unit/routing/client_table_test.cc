#include "core/routing/client_table.h"

#include <cstdlib>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/routing/fake_backends.h"

namespace msgsdk::core {
namespace {

using testing::FakeRegistry;
using ::testing::HasSubstr;
using Kind = RoutingTableOrigin::Kind;
using Reason = EnvironmentChoice::Reason;

constexpr char kTwoEnvironments[] = R"(
environments:
  test: { clusters: { t: { backend: redis } }, default_cluster: t }
  prod: { clusters: { p: { backend: redis } }, default_cluster: p }
)";

// Sets (or unsets, with nullopt) an environment variable for the life of the object.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;  // NOLINT(concurrency-mt-unsafe)
    Set(value);
  }
  ~ScopedVariable() { Set(saved_); }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;

 private:
  void Set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::unsetenv(name_);  // NOLINT(concurrency-mt-unsafe)
    }
  }
  const char* name_;
  std::optional<std::string> saved_;
};

class ClientTableTest : public ::testing::Test {
 protected:
  ScopedVariable config_{"MSGSDK_CONFIG", std::nullopt};
  ScopedVariable env_{"MSGSDK_ENV", std::nullopt};
  ScopedVariable data_dir_{"MSGSDK_DATA_DIR", std::nullopt};
  std::shared_ptr<BackendRegistry> registry_ = FakeRegistry();
};

TEST_F(ClientTableTest, OptionsComeBeforeTheEnvironmentVariables) {
  ScopedVariable config("MSGSDK_CONFIG", "/etc/msgsdk/routing.yaml");
  RoutingTableOrigin origin = FindRoutingTable({.config_path = "mine.yaml"});
  EXPECT_EQ(origin.kind, Kind::kOptionsPath);
  EXPECT_EQ(origin.path, "mine.yaml");
  origin = FindRoutingTable({.config_path = "mine.yaml", .config_yaml = "environments: {}"});
  EXPECT_EQ(origin.kind, Kind::kOptionsYaml);
  origin = FindRoutingTable({});
  EXPECT_EQ(origin.kind, Kind::kConfigVariable);
  EXPECT_EQ(origin.path, "/etc/msgsdk/routing.yaml");
  EXPECT_EQ(RoutingTableOriginName(origin.kind), "MSGSDK_CONFIG");
}

TEST_F(ClientTableTest, BuiltInDefaultTakesItsDataDirectoryInOrder) {
  RoutingTableOrigin origin = FindRoutingTable({});
  EXPECT_EQ(origin.kind, Kind::kBuiltInDefault);
  EXPECT_EQ(origin.path, "./msgsdk-data");
  ScopedVariable data_dir("MSGSDK_DATA_DIR", "/var/lib/msgsdk");
  EXPECT_EQ(FindRoutingTable({}).path, "/var/lib/msgsdk");
  EXPECT_EQ(FindRoutingTable({.data_dir = "here"}).path, "here");

  auto table = LoadRoutingTable({.data_dir = "here"}, *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  const ClusterConfig& cluster = (*table)->environments().at("local").clusters.at("embedded");
  EXPECT_EQ(cluster.GetString("data_dir"), "here");
}

TEST_F(ClientTableTest, EmptyVariablesCountAsUnset) {
  ScopedVariable config("MSGSDK_CONFIG", "");
  ScopedVariable data_dir("MSGSDK_DATA_DIR", "");
  ScopedVariable env("MSGSDK_ENV", "");
  RoutingTableOrigin origin = FindRoutingTable({});
  EXPECT_EQ(origin.kind, Kind::kBuiltInDefault);
  EXPECT_EQ(origin.path, "./msgsdk-data");
  auto table = LoadRoutingTable({.config_yaml = kTwoEnvironments}, *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  auto choice = ChooseClientEnvironment(**table, {});
  ASSERT_FALSE(choice.ok());
  EXPECT_EQ(choice.status().code(), StatusCode::kNotFound);
}

TEST_F(ClientTableTest, LoadsTheYamlOfTheOptions) {
  auto table = LoadRoutingTable({.config_yaml = kTwoEnvironments}, *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ((*table)->source(), "<ClientOptions.config_yaml>");
  EXPECT_EQ((*table)->environments().size(), 2u);
}

TEST_F(ClientTableTest, MissingFileNamesIt) {
  auto table = LoadRoutingTable({.config_path = "/nonexistent/routing.yaml"}, *registry_);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr("/nonexistent/routing.yaml"));
}

TEST_F(ClientTableTest, EnvironmentChoiceSaysWhy) {
  auto table = LoadRoutingTable({.config_yaml = kTwoEnvironments}, *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  {
    ScopedVariable env("MSGSDK_ENV", "test");
    auto choice = ChooseClientEnvironment(**table, {.environment = "prod"});
    ASSERT_TRUE(choice.ok()) << choice.status().ToString();
    EXPECT_EQ(choice->environment->name, "prod");
    EXPECT_EQ(choice->reason, Reason::kOptions);
    choice = ChooseClientEnvironment(**table, {});
    ASSERT_TRUE(choice.ok()) << choice.status().ToString();
    EXPECT_EQ(choice->environment->name, "test");
    EXPECT_EQ(choice->reason, Reason::kEnvVariable);
  }
  auto unknown = ChooseClientEnvironment(**table, {.environment = "staging"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("environment 'staging' is not defined"));

  auto with_default = LoadRoutingTable(
      {.config_yaml = std::string("default_environment: prod\n") + kTwoEnvironments}, *registry_);
  ASSERT_TRUE(with_default.ok()) << with_default.status().ToString();
  auto choice = ChooseClientEnvironment(**with_default, {});
  ASSERT_TRUE(choice.ok()) << choice.status().ToString();
  EXPECT_EQ(choice->environment->name, "prod");
  EXPECT_EQ(choice->reason, Reason::kDefaultEnvironment);

  auto built_in = LoadRoutingTable({.data_dir = "d"}, *registry_);
  ASSERT_TRUE(built_in.ok()) << built_in.status().ToString();
  choice = ChooseClientEnvironment(**built_in, {});
  ASSERT_TRUE(choice.ok()) << choice.status().ToString();
  EXPECT_EQ(choice->environment->name, "local");
  // The built-in table names "local" as its default environment.
  EXPECT_EQ(choice->reason, Reason::kDefaultEnvironment);
}

TEST_F(ClientTableTest, OnlyEnvironmentIsChosenWithoutADefault) {
  auto table = LoadRoutingTable(
      {.config_yaml = "environments:\n  solo: { clusters: { a: { backend: redis } } }\n"},
      *registry_);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  auto choice = ChooseClientEnvironment(**table, {});
  ASSERT_TRUE(choice.ok()) << choice.status().ToString();
  EXPECT_EQ(choice->environment->name, "solo");
  EXPECT_EQ(choice->reason, Reason::kOnlyEnvironment);
}

}  // namespace
}  // namespace msgsdk::core
