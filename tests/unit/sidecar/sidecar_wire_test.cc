// The hand-written parts of the sidecar's wire handling: a Publish request and answer encoded
// an entry at a time (AppendField) read by the generated parser, and a PublishResponse written
// by the generated serializer read an entry at a time (RepeatedFieldReader), as the sidecar
// transport and msgsdk-sidecar exchange them with clients that use the generated code.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {
namespace {

TEST(SidecarWireTest, AnEncodedRequestIsWhatTheGeneratedParserReads) {
  v1::PublishRequest topic_only;
  topic_only.set_topic("orders");
  std::string bytes = topic_only.SerializeAsString();
  const std::string large_body(300, 'b');  // a length of more than one varint byte
  for (const Message& message :
       {Message{.key = "order-1", .tag = "created", .body = "first"},
        Message{.properties = {{"trace", "abc"}, {"tenant", "t1"}}, .body = large_body},
        Message{.body = std::string("\0binary\xff", 8)}}) {
    v1::Message encoded;
    ToProto(message, &encoded);
    AppendField(v1::PublishRequest::kMessagesFieldNumber, encoded, bytes);
  }
  v1::PublishRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.topic(), "orders");
  ASSERT_EQ(parsed.messages_size(), 3);
  EXPECT_EQ(parsed.messages(0).key(), "order-1");
  EXPECT_EQ(parsed.messages(0).tag(), "created");
  EXPECT_EQ(parsed.messages(0).body(), "first");
  EXPECT_EQ(parsed.messages(1).body(), large_body);
  EXPECT_EQ(parsed.messages(1).properties().at("tenant"), "t1");
  EXPECT_EQ(parsed.messages(2).body(), std::string("\0binary\xff", 8));
}

// The client copies each delivery into a message a handler thread gave back: nothing of the
// message before may be left.
TEST(SidecarWireTest, ADeliveryCopiedIntoAUsedMessageLeavesNothingOfIt) {
  const auto at = [](int64_t ms) { return Timestamp(std::chrono::milliseconds(ms)); };
  Message used{.topic = "old-topic",
               .key = "old-key",
               .tag = "old-tag",
               .properties = {{"old", "1"}},
               .body = std::string(1000, 'o'),
               .deliver_at = at(5),
               .message_id = "old-id",
               .born_at = at(6),
               .delivery_attempt = 9,
               .cluster = "old-cluster",
               .partition = 9,
               .offset = 99,
               .stored_at = at(7)};
  const Message bare{.topic = "orders", .body = "x", .partition = 2, .offset = 3};
  const Message full{.topic = "orders",
                     .key = "k",
                     .tag = "t",
                     .properties = {{"a", "b"}},
                     .body = "body",
                     .deliver_at = at(1000),
                     .message_id = "id",
                     .born_at = at(2000),
                     .delivery_attempt = 2,
                     .cluster = "main",
                     .partition = 1,
                     .offset = 7,
                     .stored_at = at(3000)};
  for (const Message& sent : {bare, full}) {
    v1::Message encoded;
    ToProto(sent, &encoded);
    Message into = used;
    FromProto(encoded, &into);
    const Message fresh = FromProto(encoded);
    EXPECT_EQ(into.topic, fresh.topic);
    EXPECT_EQ(into.key, fresh.key);
    EXPECT_EQ(into.tag, fresh.tag);
    EXPECT_EQ(into.properties, fresh.properties);
    EXPECT_EQ(into.body, fresh.body);
    EXPECT_EQ(into.deliver_at, fresh.deliver_at);
    EXPECT_EQ(into.message_id, fresh.message_id);
    EXPECT_EQ(into.born_at, fresh.born_at);
    EXPECT_EQ(into.delivery_attempt, fresh.delivery_attempt);
    EXPECT_EQ(into.cluster, fresh.cluster);
    EXPECT_EQ(into.partition, fresh.partition);
    EXPECT_EQ(into.offset, fresh.offset);
    EXPECT_EQ(into.stored_at, fresh.stored_at);
    EXPECT_EQ(into.body, sent.body);
    EXPECT_EQ(into.deliver_at, sent.deliver_at);
  }
}

TEST(SidecarWireTest, AnAnswerIsReadOneResultAtATime) {
  v1::PublishResponse response;
  ToProto(Result<SendReceipt>(SendReceipt{
              .message_id = std::string(32, 'a'), .cluster = "main", .partition = 3, .offset = 7}),
          response.add_results());
  ToProto(Result<SendReceipt>(InvalidArgumentError("empty body")), response.add_results());
  ToProto(Result<SendReceipt>(SendReceipt{
              .message_id = std::string(32, 'c'), .cluster = "main", .partition = -1, .offset = 9}),
          response.add_results());
  std::string bytes = response.SerializeAsString();
  // A field a later version of the answer may add is skipped.
  bytes += std::string("\x12\x03new", 5);
  grpc::ByteBuffer buffer = ToByteBuffer(bytes);

  RepeatedFieldReader reader(buffer, v1::PublishResponse::kResultsFieldNumber);
  v1::PublishResult result;
  ASSERT_TRUE(reader.Next(result));
  Result<SendReceipt> first = FromProto(result);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->message_id, std::string(32, 'a'));
  EXPECT_EQ(first->partition, 3);
  EXPECT_EQ(first->offset, 7);
  ASSERT_TRUE(reader.Next(result));
  EXPECT_EQ(FromProto(result).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(reader.Next(result));
  Result<SendReceipt> third = FromProto(result);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->partition, -1);  // a negative varint
  EXPECT_EQ(third->offset, 9);
  EXPECT_FALSE(reader.Next(result));
  EXPECT_FALSE(reader.failed());
}

TEST(SidecarWireTest, ABrokenAnswerIsReportedAsBroken) {
  v1::PublishResponse response;
  ToProto(Result<SendReceipt>(SendReceipt{.message_id = "id", .cluster = "main"}),
          response.add_results());
  std::string bytes = response.SerializeAsString();
  bytes.resize(bytes.size() - 2);  // cut inside the result
  grpc::ByteBuffer buffer = ToByteBuffer(bytes);
  RepeatedFieldReader reader(buffer, v1::PublishResponse::kResultsFieldNumber);
  v1::PublishResult result;
  EXPECT_FALSE(reader.Next(result));
  EXPECT_TRUE(reader.failed());
}

}  // namespace
}  // namespace msgsdk::sidecar
