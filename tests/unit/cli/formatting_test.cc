#include "cli/formatting.h"

#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace msgsdk::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::HasSubstr;

Timestamp Millis(int64_t millis) { return Timestamp(milliseconds(millis)); }

TEST(EscapeTextTest, KeepsPrintableTextAndEscapesTheRest) {
  EXPECT_EQ(EscapeText("plain text: 42!"), "plain text: 42!");
  EXPECT_EQ(EscapeText("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(EscapeText("one\ntwo\r\tthree"), "one\\ntwo\\r\\tthree");
  EXPECT_EQ(EscapeText(std::string("\x00\x1b[31m\x7f", 7)), "\\x00\\x1b[31m\\x7f");
  EXPECT_EQ(Quoted("x\ny"), "\"x\\ny\"");
}

TEST(EscapeTextTest, KeepsWellFormedUtf8Only) {
  EXPECT_EQ(EscapeText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6");
  EXPECT_EQ(EscapeText("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(EscapeText("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(EscapeText("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeText("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(EscapeText("\xc2\x85 \xc2\xa0"), "\\xc2\\x85 \xc2\xa0");  // C1 control; NBSP kept
}

TEST(TimestampTest, ParsesIso8601Utc) {
  auto parsed = ParseTimestamp("2026-11-23T10:00:00Z");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1795428000000));
  parsed = ParseTimestamp("2026-11-23T10:00:00.25Z");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1795428000250));
  parsed = ParseTimestamp("2026-11-23t10:00:00.000000001z");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1795428000000) + nanoseconds(1));
  parsed = ParseTimestamp("2024-02-29T23:59:59Z");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1709251199000));
}

TEST(TimestampTest, ParsesUnixMilliseconds) {
  auto parsed = ParseTimestamp("1795428000000");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1795428000000));
  parsed = ParseTimestamp("0");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Timestamp{});
}

TEST(TimestampTest, RejectsWhatIsNotATime) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c :
       {Case{"", ""}, Case{"yesterday", ""}, Case{"2026-11-23", ""},
        Case{"2026-11-23T10:00:00", "the time must be UTC, ending in Z"},
        Case{"2026-11-23T10:00:00+01:00", "the time must be UTC, ending in Z"},
        Case{"2026-11-23 10:00:00Z", ""}, Case{"2026-02-30T10:00:00Z", "no such date"},
        Case{"2026-13-01T00:00:00Z", "no such date"},
        Case{"2026-11-23T24:00:00Z", "no such time of day"},
        Case{"2026-11-23T10:00:60Z", "no such time of day"},
        Case{"2026-11-23T10:00:00.Z", "no digits after the decimal point"},
        Case{"2026-11-23T10:00:00.1234567890Z", "at most 9 fractional digits"},
        Case{"1969-12-31T23:59:59Z", "out of range"}, Case{"2263-01-01T00:00:00Z", "out of range"},
        Case{"99999999999999999999", "out of range"}, Case{"-5", ""},
        Case{"2026-11-23T10:00:00Zjunk", ""}}) {
    auto parsed = ParseTimestamp(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr(std::string("got \"") + c.text + "\"" + (*c.why ? ": " : "") + c.why))
        << c.text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("an ISO-8601 UTC time")) << c.text;
  }
}

TEST(TimestampTest, FormatsAsIso8601WithMilliseconds) {
  EXPECT_EQ(FormatTimestamp(Millis(1795428000250)), "2026-11-23T10:00:00.250Z");
  EXPECT_EQ(FormatTimestamp(Timestamp{}), "1970-01-01T00:00:00.000Z");
  auto parsed = ParseTimestamp(FormatTimestamp(Millis(1709251199999)));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, Millis(1709251199999));
}

TEST(ResetTargetTest, ReadsPositionsAndTimes) {
  auto target = ParseResetTarget("earliest");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->kind, ResetTarget::Kind::kEarliest);
  target = ParseResetTarget("latest");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->kind, ResetTarget::Kind::kLatest);
  target = ParseResetTarget("1795428000000");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->kind, ResetTarget::Kind::kTimestamp);
  EXPECT_EQ(target->timestamp, Millis(1795428000000));
  target = ParseResetTarget("Earliest");
  ASSERT_FALSE(target.ok());
  EXPECT_THAT(target.status().message(),
              HasSubstr("expected earliest, latest, an ISO-8601 UTC time"));
}

TEST(PropertyTest, SplitsAtTheFirstEquals) {
  auto property = ParseProperty("trace=a=b");
  ASSERT_TRUE(property.ok());
  EXPECT_EQ(property->first, "trace");
  EXPECT_EQ(property->second, "a=b");
  property = ParseProperty("empty=");
  ASSERT_TRUE(property.ok());
  EXPECT_EQ(property->second, "");
  EXPECT_FALSE(ParseProperty("=value").ok());
  EXPECT_FALSE(ParseProperty("novalue").ok());
}

TEST(MessageLineTest, HoldsEveryField) {
  Message message{.key = "k 1",
                  .tag = "created",
                  .properties = {{"a", "1"}, {"b\"", "x\ny"}},
                  .body = "hi\x01",
                  .message_id = "0123abcd",
                  .born_at = Millis(1795428000250),
                  .delivery_attempt = 2,
                  .cluster = "main",
                  .partition = 3,
                  .offset = 17,
                  .stored_at = Millis(1795428000251)};
  EXPECT_EQ(FormatMessage(message),
            "message_id=0123abcd cluster=main partition=3 offset=17 delivery_attempt=2 "
            "born_at=2026-11-23T10:00:00.250Z stored_at=2026-11-23T10:00:00.251Z key=\"k 1\" "
            "tag=\"created\" properties={\"a\":\"1\",\"b\\\"\":\"x\\ny\"} body=\"hi\\x01\"");
  EXPECT_EQ(
      FormatReceipt({.message_id = "0123abcd", .cluster = "main", .partition = 3, .offset = 17}),
      "message_id=0123abcd cluster=main partition=3 offset=17");
}

TEST(SecretPropertyTest, MatchesPasswordsSecretsAndSasl) {
  for (const char* name :
       {"password", "librdkafka.sasl.password", "librdkafka.sasl.mechanisms", "client_secret",
        "auth_token", "librdkafka.ssl.key.pem", "PASSWORD", "aws.credentials"}) {
    EXPECT_TRUE(IsSecretProperty(name)) << name;
  }
  for (const char* name :
       {"bootstrap", "endpoint", "endpoints", "user", "data_dir", "key_prefix"}) {
    EXPECT_FALSE(IsSecretProperty(name)) << name;
  }
}

}  // namespace
}  // namespace msgsdk::cli
