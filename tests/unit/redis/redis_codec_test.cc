#include "backends/redis/redis_codec.h"

#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace msgsdk::redis {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(RedisCodecTest, ParsesEntryIds) {
  ASSERT_TRUE(ParseEntryId("1700000000000-3").has_value());
  EXPECT_EQ(*ParseEntryId("1700000000000-3"), (EntryId{1700000000000, 3}));
  EXPECT_EQ(*ParseEntryId("42"), (EntryId{42, 0}));
  EXPECT_EQ(ParseEntryId("0-0")->ToString(), "0-0");
  EXPECT_FALSE(ParseEntryId("").has_value());
  EXPECT_FALSE(ParseEntryId("abc-1").has_value());
  EXPECT_FALSE(ParseEntryId("1-").has_value());
  EXPECT_FALSE(ParseEntryId("1-2-3").has_value());
  EXPECT_FALSE(ParseEntryId("-1").has_value());
}

TEST(RedisCodecTest, OffsetIsMsShiftedBySeqBits) {
  EXPECT_EQ(EntryIdToOffset({0, 0}), 0);
  EXPECT_EQ(EntryIdToOffset({1, 0}), 1 << 20);
  EXPECT_EQ(EntryIdToOffset({1700000000000, 5}), (int64_t{1700000000000} << 20) | 5);
}

TEST(RedisCodecTest, OffsetIsMonotonicAndSaturates) {
  const EntryId ids[] = {{1, 0},          {1, 1}, {1, (1 << 20) - 1}, {1, 1 << 20},
                         {1, 1ULL << 40}, {2, 0}, {1700000000000, 0}, {1ULL << 43, 0},
                         {1ULL << 60, 7}};
  for (size_t i = 1; i < std::size(ids); ++i) {
    EXPECT_LE(EntryIdToOffset(ids[i - 1]), EntryIdToOffset(ids[i])) << ids[i].ToString();
    EXPECT_GE(EntryIdToOffset(ids[i]), 0);
  }
  EXPECT_EQ(EntryIdToOffset({UINT64_MAX, UINT64_MAX}), std::numeric_limits<int64_t>::max());
}

TEST(RedisCodecTest, StreamKeys) {
  EXPECT_EQ(StreamKey("msgsdk", "order-events", 3), "msgsdk:order-events:3");
}

TEST(RedisCodecTest, Fnv1a64KnownVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(RedisCodecTest, PartitionForKeyIsStableAndInRange) {
  EXPECT_EQ(PartitionForKey("order-42", 1), 0);
  EXPECT_EQ(PartitionForKey("foobar", 4), static_cast<int32_t>(0x85944171f73967e8ULL % 4));
  for (int i = 0; i < 200; ++i) {
    const int32_t p = PartitionForKey("key-" + std::to_string(i), 7);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, 7);
    EXPECT_EQ(p, PartitionForKey("key-" + std::to_string(i), 7));
  }
}

TEST(RedisCodecTest, GroupNames) {
  EXPECT_EQ(RedisGroupName("billing", false, "host-1"), "billing");
  EXPECT_EQ(RedisGroupName("billing", true, "host-1"), "billing@host-1");
}

TEST(RedisCodecTest, AppendCommandWritesResp) {
  std::string out;
  AppendCommand(out, {"XACK", "s", std::string_view("a\0b", 3)});
  EXPECT_EQ(out, std::string("*3\r\n$4\r\nXACK\r\n$1\r\ns\r\n$3\r\na\0b\r\n", 30));
}

TEST(RedisCodecTest, AppendsCommandsPieceByPiece) {
  std::string out;
  AppendArrayHeader(out, 3);
  AppendBulk(out, "XACK");
  AppendBulk(out, EntryId{1700000000000, 12});
  AppendBulk(out, EntryId{0, 0});
  EXPECT_EQ(out, "*3\r\n$4\r\nXACK\r\n$16\r\n1700000000000-12\r\n$3\r\n0-0\r\n");
  out.clear();
  AppendBulk(out, EntryId{UINT64_MAX, UINT64_MAX});
  EXPECT_EQ(out, "$41\r\n18446744073709551615-18446744073709551615\r\n");
}

TEST(RedisCodecTest, EncodesXaddWithAllFields) {
  Message m;
  m.message_id = "0123456789abcdef0123456789abcdef";
  m.key = "order-42";
  m.tag = "created";
  m.properties = {{"trace", "t-1"}, {"z", ""}};
  m.body = std::string("x\0y", 3);
  m.born_at = FromUnixMillis(1700000000123);
  std::string expected;
  AppendCommand(expected,
                {"XADD",       "msgsdk:t:1", "MAXLEN",   "~",   "1000",    "*",    "id",
                 m.message_id, "key",        "order-42", "tag", "created", "born", "1700000000123",
                 "prop.trace", "t-1",        "prop.z",   "",    "body",    m.body});
  EXPECT_EQ(EncodeXadd("msgsdk:t:1", 1000, m), expected);
}

TEST(RedisCodecTest, EncodesXaddWithoutOptionalFields) {
  Message m;
  m.message_id = "id1";
  m.born_at = FromUnixMillis(5);
  std::string expected;
  AppendCommand(expected, {"XADD", "k", "*", "id", "id1", "born", "5", "body", ""});
  EXPECT_EQ(EncodeXadd("k", 0, m), expected);
}

TEST(RedisCodecTest, DecodesWhatItEncodes) {
  const FieldList fields = {{"id", "0123456789abcdef0123456789abcdef"},
                            {"key", "order-42"},
                            {"tag", "created"},
                            {"born", "1700000000123"},
                            {"prop.trace", "t-1"},
                            {"prop.key", "property named key"},
                            {"body", std::string_view("x\0y", 3)}};
  const Message m = DecodeEntry("msgsdk:t:0", {1700000000200, 1}, fields);
  EXPECT_EQ(m.message_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(m.key, "order-42");
  EXPECT_EQ(m.tag, "created");
  EXPECT_EQ(m.body, std::string("x\0y", 3));
  EXPECT_EQ(ToUnixMillis(m.born_at), 1700000000123);
  EXPECT_EQ(ToUnixMillis(m.stored_at), 1700000000200);
  EXPECT_FALSE(m.deliver_at.has_value());
  EXPECT_THAT(m.properties, ElementsAre(Pair("key", "property named key"), Pair("trace", "t-1")));
}

TEST(RedisCodecTest, DecodesAnEntryWithOnlyABody) {
  const Message m = DecodeEntry("msgsdk:t:0", {1700000000200, 7}, {{"body", "hello"}});
  EXPECT_EQ(m.body, "hello");
  EXPECT_TRUE(m.key.empty());
  EXPECT_TRUE(m.tag.empty());
  EXPECT_TRUE(m.properties.empty());
  EXPECT_EQ(m.born_at, m.stored_at);
  EXPECT_EQ(m.message_id, SyntheticMessageId("msgsdk:t:0", {1700000000200, 7}));
  EXPECT_EQ(m.message_id.size(), 32u);
  EXPECT_EQ(m.message_id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(RedisCodecTest, ForeignFieldsBecomeProperties) {
  const Message m = DecodeEntry("s", {1, 0},
                                {{"user", "bob"},
                                 {"born", "not a number"},
                                 {"deliver_at", "1700000000000"},
                                 {"prop.user", "wins"}});
  EXPECT_TRUE(m.body.empty());
  EXPECT_THAT(m.properties, ElementsAre(Pair("born", "not a number"), Pair("user", "wins")));
  ASSERT_TRUE(m.deliver_at.has_value());
  EXPECT_EQ(ToUnixMillis(*m.deliver_at), 1700000000000);
}

TEST(RedisCodecTest, DecodingIntoAUsedMessageLeavesNothingOfIt) {
  // A consumer decodes each entry into a record that held an earlier message.
  Message used = DecodeEntry("msgsdk:t:0", {1700000000200, 1},
                             {{"id", "0123456789abcdef0123456789abcdef"},
                              {"key", "order-42"},
                              {"tag", "created"},
                              {"deliver_at", "1700000000999"},
                              {"prop.trace", "t-1"},
                              {"body", "an earlier body"}});
  used.cluster = "an earlier cluster";
  const FieldList only_a_body = {{"body", "hello"}};
  DecodeEntryInto("msgsdk:t:1", {1700000000300, 7}, only_a_body, used);
  const Message fresh = DecodeEntry("msgsdk:t:1", {1700000000300, 7}, only_a_body);
  EXPECT_EQ(used.key, fresh.key);
  EXPECT_EQ(used.tag, fresh.tag);
  EXPECT_EQ(used.properties, fresh.properties);
  EXPECT_EQ(used.body, fresh.body);
  EXPECT_EQ(used.deliver_at, fresh.deliver_at);
  EXPECT_EQ(used.message_id, fresh.message_id);
  EXPECT_EQ(used.born_at, fresh.born_at);
  EXPECT_EQ(used.stored_at, fresh.stored_at);
  EXPECT_EQ(used.cluster, fresh.cluster);
}

TEST(RedisCodecTest, SyntheticIdsAreDeterministicTimeOrderedAndDistinct) {
  const std::string a = SyntheticMessageId("msgsdk:t:0", {1700000000000, 0});
  EXPECT_EQ(a, SyntheticMessageId("msgsdk:t:0", {1700000000000, 0}));
  EXPECT_NE(a, SyntheticMessageId("msgsdk:t:1", {1700000000000, 0}));
  EXPECT_LT(a, SyntheticMessageId("msgsdk:t:0", {1700000000001, 0}));
  EXPECT_EQ(a.substr(0, 12), "018bcfe56800");
}

TEST(RedisCodecTest, MillisecondsClampInsteadOfOverflowing) {
  EXPECT_EQ(ToUnixMillis(FromUnixMillis(1700000000123)), 1700000000123);
  EXPECT_GT(FromUnixMillis(std::numeric_limits<int64_t>::max()), FromUnixMillis(0));
  EXPECT_LT(FromUnixMillis(std::numeric_limits<int64_t>::min()), FromUnixMillis(0));
}

}  // namespace
}  // namespace msgsdk::redis
