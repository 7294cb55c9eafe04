#include "backends/kafka/kafka_mapping.h"

#include <charconv>
#include <chrono>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "backends/kafka/kafka_errors.h"

namespace msgsdk::kafka {
namespace {

TEST(KafkaMappingTest, UserPropertiesThatLookReservedAreEscaped) {
  EXPECT_EQ(PropertyHeaderName("trace-id"), "trace-id");
  EXPECT_EQ(PropertyHeaderName("msgsdk-id"), "msgsdk-prop-msgsdk-id");
  EXPECT_EQ(PropertyHeaderName("msgsdk-prop-x"), "msgsdk-prop-msgsdk-prop-x");
  EXPECT_EQ(PropertyHeaderName("Msgsdk-id"), "Msgsdk-id") << "header names are case-sensitive";
}

TEST(KafkaMappingTest, TimestampsKeepMicroseconds) {
  const Timestamp t = Timestamp(std::chrono::microseconds(1700000000123456));
  EXPECT_EQ(ToEpochMicros(t), 1700000000123456);
  EXPECT_EQ(ToEpochMillis(t), 1700000000123);
  EXPECT_EQ(FromEpochMicros(ToEpochMicros(t)), t);
}

TEST(KafkaMappingTest, DecimalHeadersParseAsFromCharsDoes) {
  auto from_chars = [](std::string_view text) -> std::optional<int64_t> {
    int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
    return value;
  };
  const std::vector<std::string> texts = {"0",
                                          "7",
                                          "-7",
                                          "12345678",
                                          "123456789",
                                          "1700000000123456",
                                          "-1700000000123456",
                                          "999999999999999999",
                                          "9223372036854775807",
                                          "-9223372036854775808",
                                          "9223372036854775808",
                                          "99999999999999999999",
                                          "00000000000000000001",
                                          "",
                                          "-",
                                          "+5",
                                          " 5",
                                          "5 ",
                                          "17000000001234x6",
                                          "1700000:00123456",
                                          "170000000/123456",
                                          "12a",
                                          "1-2",
                                          "\xff" "2345678",
                                          "1234567\xff"};
  for (const std::string& text : texts) {
    EXPECT_EQ(ParseDecimalInt64(text), from_chars(text)) << "'" << text << "'";
  }
  // Every digit in every position of an 8-digit chunk, and one bad byte in each position.
  for (int position = 0; position < 16; ++position) {
    for (int c = 0; c < 256; ++c) {
      std::string text = "1700000000123456";
      text[static_cast<size_t>(position)] = static_cast<char>(c);
      EXPECT_EQ(ParseDecimalInt64(text), from_chars(text))
          << "position " << position << " byte " << c;
    }
  }
}

TEST(KafkaMappingTest, DecimalHeadersAreWrittenAsToCharsDoes) {
  auto to_chars = [](int64_t value) {
    char digits[kMaxDecimalInt64Length];
    return std::string(digits, std::to_chars(digits, digits + sizeof(digits), value).ptr);
  };
  auto written = [](int64_t value) {
    char digits[kMaxDecimalInt64Length];
    return std::string(digits, WriteDecimalInt64(value, digits));
  };
  std::vector<int64_t> values = {0,
                                 7,
                                 -7,
                                 99999999,
                                 100000000,
                                 999999999999999,
                                 1000000000000000,
                                 1700000000123456,
                                 1000000099999999,
                                 9999999999999999,
                                 10000000000000000,
                                 -1700000000123456,
                                 std::numeric_limits<int64_t>::max(),
                                 std::numeric_limits<int64_t>::min()};
  // Every 8-digit half, through a spread of values with every digit in every position.
  for (int64_t low = 0; low < 100000000; low += 9973) values.push_back(1000000000000000 + low);
  for (int64_t high = 10000000; high < 100000000; high += 10007) {
    values.push_back(high * 100000000 + 12345678);
  }
  for (const int64_t value : values) EXPECT_EQ(written(value), to_chars(value)) << value;
}

TEST(KafkaMappingTest, EncodedHeadersCarryEverySdkField) {
  Message m;
  m.message_id = "0123456789abcdef0123456789abcdef";
  m.tag = "created";
  m.born_at = FromEpochMicros(1700000000123456);
  m.properties = {{"trace", "t-1"}, {"msgsdk-id", "user value"}};
  rd_kafka_headers_t* headers = EncodeHeaders(m);
  auto value = [&](const char* name) {
    const void* v = nullptr;
    size_t size = 0;
    if (rd_kafka_header_get_last(headers, name, &v, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return std::string("<absent>");
    }
    return std::string(static_cast<const char*>(v), size);
  };
  EXPECT_EQ(value("msgsdk-id"), m.message_id);
  EXPECT_EQ(value("msgsdk-tag"), "created");
  EXPECT_EQ(value("msgsdk-born-at"), "1700000000123456");
  EXPECT_EQ(value("msgsdk-deliver-at"), "<absent>");
  EXPECT_EQ(value("trace"), "t-1");
  EXPECT_EQ(value("msgsdk-prop-msgsdk-id"), "user value");
  EXPECT_EQ(rd_kafka_header_cnt(headers), 5u);
  rd_kafka_headers_destroy(headers);

  m.tag.clear();
  headers = EncodeHeaders(m);
  EXPECT_EQ(value("msgsdk-tag"), "<absent>") << "no tag: no header";
  rd_kafka_headers_destroy(headers);
}

TEST(KafkaMappingTest, SynthesizedIdsAreStableAndDistinct) {
  const std::string id = SynthesizeMessageId("orders", 3, 42, 1700000000123);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(id, SynthesizeMessageId("orders", 3, 42, 1700000000123));
  EXPECT_EQ(id.substr(0, 12), "018bcfe5687b") << "the timestamp leads, so ids sort by time";
  std::set<std::string> ids;
  for (int64_t offset = 0; offset < 1000; ++offset) {
    ids.insert(SynthesizeMessageId("orders", 3, offset, 1700000000123));
    ids.insert(SynthesizeMessageId("orders", 4, offset, 1700000000123));
    ids.insert(SynthesizeMessageId("orders-2", 3, offset, 1700000000123));
  }
  EXPECT_EQ(ids.size(), 3000u);
}

TEST(KafkaErrorsTest, CodesMapToStatusesThatSayWhatToDo) {
  EXPECT_TRUE(KafkaStatus(RdKafka::ERR_NO_ERROR, "x").ok());
  const Status timed_out = KafkaStatus(RdKafka::ERR__MSG_TIMED_OUT, "send to topic 't'");
  EXPECT_EQ(timed_out.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(timed_out.IsRetriable());
  EXPECT_NE(timed_out.message().find("send to topic 't': "), std::string::npos);
  EXPECT_NE(timed_out.message().find("(_MSG_TIMED_OUT)"), std::string::npos);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR_UNKNOWN_TOPIC_OR_PART, "t").code(), StatusCode::kNotFound);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR_MSG_SIZE_TOO_LARGE, "t").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED, "t").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR_SASL_AUTHENTICATION_FAILED, "t").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR__QUEUE_FULL, "t").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR_REBALANCE_IN_PROGRESS, "t").code(), StatusCode::kAborted);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR__PURGE_QUEUE, "t").code(), StatusCode::kCancelled);
  EXPECT_EQ(KafkaStatus(RdKafka::ERR__FATAL, "t").code(), StatusCode::kInternal);
  const Status detailed = KafkaStatus(RdKafka::ERR__TRANSPORT, "c", "Connection refused");
  EXPECT_EQ(detailed.message(), "c: Connection refused (_TRANSPORT)");
}

}  // namespace
}  // namespace msgsdk::kafka
