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

TEST(MessageCodecTest, RecordsFromFieldsAndInPlaceDecodingMatchTheMessage) {
  const Message m = FullMessage();
  RecordMeta meta;
  meta.commit_log_offset = 4096;
  meta.queue = 3;
  meta.queue_offset = 12;
  meta.stored_at = Timestamp(std::chrono::milliseconds(1700000000700));
  const std::string record = Encode(m, meta);

  // The same bytes from views of copies of the fields (as the broker encodes a request).
  const std::string topic = m.topic, id = m.message_id, key = m.key, tag = m.tag, body = m.body;
  const Properties properties = m.properties;
  const RecordFields fields{topic, id, key, tag, &properties, body, m.born_at, m.deliver_at};
  auto size = RecordSize(fields, 1 << 20);
  ASSERT_TRUE(size.ok());
  std::string from_fields(*size, '\0');
  EncodeRecordBody(fields, from_fields.size(), from_fields.data());
  SealRecord(meta, from_fields.size(), from_fields.data());
  EXPECT_EQ(from_fields, record);

  RecordInPlace in_place;
  ASSERT_TRUE(DecodeRecordInPlace(record, &in_place));
  EXPECT_EQ(in_place.topic, m.topic);
  EXPECT_EQ(in_place.key, m.key);
  EXPECT_EQ(in_place.tag, m.tag);
  EXPECT_EQ(in_place.body, m.body);
  EXPECT_EQ(in_place.message_id, m.message_id);
  EXPECT_EQ(in_place.born_at, m.born_at);
  EXPECT_EQ(in_place.deliver_at, m.deliver_at);
  EXPECT_EQ(in_place.meta.commit_log_offset, 4096);
  EXPECT_EQ(in_place.meta.queue, 3);
  EXPECT_EQ(in_place.meta.queue_offset, 12);
  EXPECT_EQ(in_place.meta.stored_at, meta.stored_at);
  EXPECT_EQ(in_place.properties.count, 3u);
  Properties read;
  in_place.properties.ForEach(
      [&](std::string_view name, std::string_view value) { read.emplace(name, value); });
  EXPECT_EQ(read, m.properties);
  // Views into the record itself.
  EXPECT_GE(in_place.body.data(), record.data());
  EXPECT_LE(in_place.body.data() + in_place.body.size(), record.data() + record.size());

  // No fields at all: no properties pointer, empty strings.
  const RecordFields empty{.topic = "t"};
  size = RecordSize(empty, 100);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, kMinRecordSize + 1);
  std::string minimal(*size, '\0');
  EncodeRecord(Message{.topic = "t"}, meta, minimal.size(), minimal.data());
  ASSERT_TRUE(DecodeRecordInPlace(minimal, &in_place));
  EXPECT_EQ(in_place.properties.count, 0u);
  EXPECT_TRUE(in_place.body.empty());

  // Whatever is cut short or has bytes after its body is refused.
  for (size_t cut = 1; cut < 8; ++cut) {
    EXPECT_FALSE(
        DecodeRecordInPlace(std::string_view(record).substr(0, record.size() - cut), &in_place))
        << cut;
  }
}

TEST(MessageCodecTest, CopyingARecordIntoAUsedMessageLeavesNothingOfIt) {
  // A consumer copies each record into a delivery that held an earlier message.
  Message used = FullMessage();
  used.delivery_attempt = 3;
  used.cluster = "an earlier cluster";
  Message bare;
  bare.topic = "payments";
  bare.message_id = "fedcba9876543210fedcba9876543210";
  RecordMeta meta;
  meta.queue = 2;
  meta.queue_offset = 5;
  meta.stored_at = Timestamp(std::chrono::milliseconds(1700000000700));
  const std::string record = Encode(bare, meta);
  RecordInPlace in_place;
  ASSERT_TRUE(DecodeRecordInPlace(record, &in_place));

  CopyRecord(in_place, &used);
  EXPECT_EQ(used.topic, "payments");
  EXPECT_EQ(used.key, "");
  EXPECT_EQ(used.tag, "");
  EXPECT_TRUE(used.properties.empty());
  EXPECT_EQ(used.body, "");
  EXPECT_FALSE(used.deliver_at.has_value());
  EXPECT_EQ(used.message_id, bare.message_id);
  EXPECT_EQ(used.born_at, bare.born_at);
  EXPECT_EQ(used.delivery_attempt, 0);
  EXPECT_EQ(used.cluster, "");
  EXPECT_EQ(used.partition, 2);
  EXPECT_EQ(used.offset, 5);
  EXPECT_EQ(used.stored_at, meta.stored_at);
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
