#include "backends/native/storage/message_codec.h"

#include <string>

#include "gtest/gtest.h"

#include "backends/native/storage/coding.h"

namespace msgsdk::native {
namespace {

Message FullMessage() {
  Message m;
  m.topic = "orders";
  m.key = "order-42";
  m.tag = "created";
  m.properties = {{"trace", "abc"}, {"empty", ""}, {"bin", std::string("\0\x01\xFF", 3)}};
  m.body = std::string("payload\0with\0nuls", 17);
  m.deliver_at = Timestamp(std::chrono::nanoseconds(1700000123456789012));
  m.message_id = "0123456789abcdef0123456789abcdef";
  m.born_at = Timestamp(std::chrono::nanoseconds(1700000000000000001));
  return m;
}

std::string Encode(const Message& m, const RecordMeta& meta) {
  auto size = RecordSize(m, 1 << 20);
  EXPECT_TRUE(size.ok()) << size.status().ToString();
  std::string record(*size, '\0');
  EncodeRecord(m, meta, record.size(), record.data());
  return record;
}

TEST(MessageCodecTest, RoundTripsEveryField) {
  const Message m = FullMessage();
  RecordMeta meta;
  meta.commit_log_offset = 123456;
  meta.queue = 7;
  meta.queue_offset = 99;
  meta.stored_at = Timestamp(std::chrono::milliseconds(1700000000500));
  const std::string record = Encode(m, meta);

  uint32_t size = 0;
  ASSERT_EQ(CheckRecord(record.data(), record.size(), &size), RecordCheck::kOk);
  EXPECT_EQ(size, record.size());

  Message out;
  RecordMeta out_meta;
  ASSERT_TRUE(DecodeRecord(record, &out, &out_meta).ok());
  EXPECT_EQ(out.topic, m.topic);
  EXPECT_EQ(out.key, m.key);
  EXPECT_EQ(out.tag, m.tag);
  EXPECT_EQ(out.properties, m.properties);
  EXPECT_EQ(out.body, m.body);
  EXPECT_EQ(out.deliver_at, m.deliver_at);
  EXPECT_EQ(out.message_id, m.message_id);
  EXPECT_EQ(out.born_at, m.born_at);
  EXPECT_EQ(out.stored_at, meta.stored_at);
  EXPECT_EQ(out.partition, 7);
  EXPECT_EQ(out.offset, 99);
  EXPECT_EQ(out_meta.commit_log_offset, 123456);
  EXPECT_EQ(out_meta.queue, 7);
  EXPECT_EQ(out_meta.queue_offset, 99);

  RecordView view;
  ASSERT_TRUE(DecodeRecordView(record, &view));
  EXPECT_EQ(view.topic, "orders");
  EXPECT_EQ(view.tag, "created");
  EXPECT_EQ(view.meta.queue_offset, 99);
}

TEST(MessageCodecTest, EmptyMessageHasTheMinimumSize) {
  Message m;
  auto size = RecordSize(m, 100);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, kMinRecordSize);
  const std::string record = Encode(m, RecordMeta{});
  Message out;
  out.deliver_at = Timestamp{};
  RecordMeta meta;
  ASSERT_TRUE(DecodeRecord(record, &out, &meta).ok());
  EXPECT_FALSE(out.deliver_at.has_value());
  EXPECT_TRUE(out.body.empty());
}

TEST(MessageCodecTest, RefusesWhatDoesNotFit) {
  Message m;
  m.topic = "t";
  m.body = std::string(101, 'x');
  auto size = RecordSize(m, 100);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(size.status().message().find("max_message_bytes"), std::string::npos);

  m.body.clear();
  m.key = std::string(70000, 'k');
  size = RecordSize(m, 100);
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.status().message().find("key"), std::string::npos);

  m.key.clear();
  m.properties["big"] = std::string(kMaxRecordOverhead, 'v');
  size = RecordSize(m, 100);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kInvalidArgument);
}

TEST(MessageCodecTest, CheckRecordFindsEveryKindOfDamage) {
  const std::string record = Encode(FullMessage(), RecordMeta{});
  uint32_t size = 0;

  EXPECT_EQ(CheckRecord(record.data(), 10, &size), RecordCheck::kTruncated);
  EXPECT_EQ(CheckRecord(record.data(), record.size() - 1, &size), RecordCheck::kTruncated);

  std::string bad = record;
  EncodeFixed32(bad.data(), 3);
  EXPECT_EQ(CheckRecord(bad.data(), bad.size(), &size), RecordCheck::kBadSize);

  bad = record;
  bad[9] ^= 0x01;
  EXPECT_EQ(CheckRecord(bad.data(), bad.size(), &size), RecordCheck::kBadMagic);

  for (size_t i = 16; i < record.size(); i += 7) {
    bad = record;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    EXPECT_EQ(CheckRecord(bad.data(), bad.size(), &size), RecordCheck::kBadCrc) << "byte " << i;
  }
}

TEST(MessageCodecTest, MalformedPayloadIsDataLoss) {
  std::string record = Encode(FullMessage(), RecordMeta{});
  // Claim more properties than there are: the decoder must stop at the record's end.
  // header, born_at, deliver_at, then topic, id, key and tag (length-prefixed).
  const size_t count_at = kRecordHeaderSize + 8 + 8 + (2 + 6) + (2 + 32) + (2 + 8) + (2 + 7);
  EncodeFixed32(record.data() + count_at, 1000000);
  Message out;
  RecordMeta meta;
  const Status status = DecodeRecord(record, &out, &meta);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
}

TEST(MessageCodecTest, TimestampsKeepNanoseconds) {
  const Timestamp ts(std::chrono::nanoseconds(1234567890123456789));
  EXPECT_EQ(FromUnixNanos(ToUnixNanos(ts)), ts);
}

}  // namespace
}  // namespace msgsdk::native
