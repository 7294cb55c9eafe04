#include "core/names.h"

#include <gtest/gtest.h>

#include "msgsdk/message.h"

namespace msgsdk::core {
namespace {

TEST(NamesTest, AcceptsLettersDigitsDotUnderscoreDash) {
  EXPECT_TRUE(ValidateName("topic", "order-events.v2_eu").ok());
  EXPECT_TRUE(ValidateName("topic", std::string(249, 'a')).ok());
}

TEST(NamesTest, RejectsWithWhatAndWhere) {
  Status empty = ValidateName("group", "");
  EXPECT_EQ(empty.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.message(), "group name is empty");
  Status space = ValidateName("topic", "a b");
  EXPECT_NE(space.message().find("position 1"), std::string::npos);
  EXPECT_FALSE(ValidateName("topic", std::string(250, 'a')).ok());
  EXPECT_FALSE(ValidateName("topic", "..").ok());
  EXPECT_FALSE(ValidateName("topic", "a/b").ok());
}

TEST(NamesTest, SystemTopicsAreReadOnlyForProducers) {
  EXPECT_EQ(DeadLetterTopic("billing"), "__dlq.billing");
  EXPECT_TRUE(ValidateName("topic", DeadLetterTopic("billing")).ok());
  Status status = ValidateProducerTopic(DeadLetterTopic("billing"));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("reserved"), std::string::npos);
}

}  // namespace
}  // namespace msgsdk::core
