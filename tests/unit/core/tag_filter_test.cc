#include "core/tag_filter.h"

#include <gtest/gtest.h>

namespace msgsdk::core {
namespace {

TEST(TagFilterTest, StarAndEmptyMatchEverything) {
  for (const char* expression : {"*", "", "  *  "}) {
    auto filter = TagFilter::Parse(expression);
    ASSERT_TRUE(filter.ok()) << expression;
    EXPECT_TRUE(filter->MatchesAll());
    EXPECT_TRUE(filter->Matches("anything"));
    EXPECT_TRUE(filter->Matches(""));
  }
}

TEST(TagFilterTest, OrOfTags) {
  auto filter = TagFilter::Parse("created || paid||created");
  ASSERT_TRUE(filter.ok());
  EXPECT_EQ(filter->tags(), (std::vector<std::string>{"created", "paid"}));
  EXPECT_TRUE(filter->Matches("created"));
  EXPECT_TRUE(filter->Matches("paid"));
  EXPECT_FALSE(filter->Matches("shipped"));
  EXPECT_FALSE(filter->Matches(""));
}

TEST(TagFilterTest, RejectsMalformedExpressions) {
  for (const char* expression : {"a ||", "|| a", "a || * ", "a b", "a | b", "a ||  || b"}) {
    auto filter = TagFilter::Parse(expression);
    EXPECT_EQ(filter.status().code(), StatusCode::kInvalidArgument) << expression;
    EXPECT_NE(filter.status().message().find(expression), std::string::npos);
  }
}

}  // namespace
}  // namespace msgsdk::core
