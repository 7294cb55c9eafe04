#include "core/backend_registry.h"

#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/routing/fake_backends.h"

namespace msgsdk::core {
namespace {

using ::testing::ElementsAre;
using testing::FakeFactory;
using ::testing::HasSubstr;

TEST(BackendRegistryTest, RegisterFindAndNames) {
  BackendRegistry registry;
  EXPECT_TRUE(registry.Names().empty());
  ASSERT_TRUE(registry.Register(std::make_unique<FakeFactory>("redis", PropertyTable{})).ok());
  ASSERT_TRUE(
      registry.Register(std::make_unique<FakeFactory>("kafka", testing::FakeKafkaTable())).ok());
  EXPECT_THAT(registry.Names(), ElementsAre("kafka", "redis"));
  auto factory = registry.Find("kafka");
  ASSERT_TRUE(factory.ok()) << factory.status().ToString();
  EXPECT_EQ((*factory)->name(), "kafka");
  EXPECT_EQ((*factory)->properties().size(), testing::FakeKafkaTable().size());
}

TEST(BackendRegistryTest, FindMissListsTheRegisteredNames) {
  BackendRegistry registry;
  auto missing = registry.Find("kafka");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "unknown backend 'kafka' (registered backends: (none))");

  ASSERT_TRUE(registry.Register(std::make_unique<FakeFactory>("native", PropertyTable{})).ok());
  ASSERT_TRUE(registry.Register(std::make_unique<FakeFactory>("redis", PropertyTable{})).ok());
  missing = registry.Find("redsi");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "unknown backend 'redsi' (did you mean 'redis'?) (registered backends: native, "
            "redis)");
}

TEST(BackendRegistryTest, DuplicateNameIsAlreadyExists) {
  BackendRegistry registry;
  ASSERT_TRUE(registry.Register(std::make_unique<FakeFactory>("redis", PropertyTable{})).ok());
  Status status = registry.Register(std::make_unique<FakeFactory>("redis", PropertyTable{}));
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(), "a backend named 'redis' is already registered");
}

TEST(BackendRegistryTest, RejectsNullNamelessAndBrokenFactories) {
  BackendRegistry registry;
  EXPECT_EQ(registry.Register(nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Register(std::make_unique<FakeFactory>("", PropertyTable{})).code(),
            StatusCode::kInvalidArgument);
  Status status = registry.Register(std::make_unique<FakeFactory>(
      "broken", PropertyTable{{.name = "timeout", .type = PropertySpec::Type::kDuration}}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("backend 'broken': invalid property table: property "
                                          "'timeout'"));
  EXPECT_TRUE(registry.Names().empty());
}

}  // namespace
}  // namespace msgsdk::core
