#include "backends/native/protocol/wire_codec.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "backends/native/storage/message_codec.h"
#include "testing/status_macros.h"

// The hand-written codec against the generated code of broker.proto: what one side writes the
// other reads, and on valid and mangled input alike the decoders accept exactly what the
// generated parser accepts, with the same result.

namespace msgsdk::native::protocol {
namespace {

Message SampleMessage(int i) {
  Message message{
      .key = i % 3 == 0 ? "" : "key-" + std::to_string(i),
      .tag = i % 4 == 0 ? "" : "created",
      .properties = {},
      .body = std::string("\0\xff body ", 8) + std::string(static_cast<size_t>(i), 'b')};
  if (i % 2 == 1) message.properties = {{"trace", "t" + std::to_string(i)}, {"", ""}};
  if (i % 5 == 2) message.deliver_at = Timestamp(std::chrono::milliseconds(1800000000000 + i));
  message.message_id = i % 7 == 6 ? "" : "0123456789abcdef0123456789abc" + std::to_string(i);
  message.born_at = Timestamp(std::chrono::nanoseconds(1700000000000000000 + i));
  return message;
}

// What a delivered message carries on top.
Message DeliveredMessage(int i) {
  Message message = SampleMessage(i);
  message.partition = i % 9;
  message.offset = i == 0 ? 0 : int64_t{1} << (i % 40);
  message.stored_at = i % 6 == 0 ? Timestamp() : Timestamp(std::chrono::milliseconds(1700000 + i));
  return message;
}

Frame MakeFrame(FrameType type, bool response, std::string body) {
  return Frame{.header = {.body_size = static_cast<uint32_t>(body.size()),
                          .type = response ? ResponseType(type) : static_cast<uint8_t>(type),
                          .request_id = 77},
               .body = std::move(body)};
}

// Field by field: Message has no equality, and a difference should say where it is.
std::string Difference(const Message& a, const Message& b) {
  if (a.topic != b.topic) return "topic";
  if (a.key != b.key) return "key";
  if (a.tag != b.tag) return "tag";
  if (a.properties != b.properties) return "properties";
  if (a.body != b.body) return "body";
  if (a.deliver_at != b.deliver_at) return "deliver_at";
  if (a.message_id != b.message_id) return "message_id";
  if (a.born_at != b.born_at) return "born_at";
  if (a.delivery_attempt != b.delivery_attempt) return "delivery_attempt";
  if (a.cluster != b.cluster) return "cluster";
  if (a.partition != b.partition) return "partition";
  if (a.offset != b.offset) return "offset";
  if (a.stored_at != b.stored_at) return "stored_at";
  return "";
}

bool SameStatus(const Status& a, const Status& b) {
  return a.code() == b.code() && a.message() == b.message();
}

// ---- Raw protobuf bytes, for inputs the generated serializer never writes ---------------------

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out += static_cast<char>(value | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
  return out;
}

std::string Field(uint32_t number, uint32_t wire_type, const std::string& payload) {
  std::string out = Varint((number << 3) | wire_type);
  if (wire_type == 2) out += Varint(payload.size());
  return out + payload;
}

// ---- The generated parser's view of a body, next to the codec's -------------------------------

struct ProduceView {
  bool ok = false;
  std::string topic;
  std::vector<int32_t> queues;
  std::vector<Message> messages;
};

ProduceView GeneratedProduce(const Frame& frame) {
  ProduceView view;
  wire::ProduceRequest request;
  view.ok = ParseFrameBody(frame, &request).ok();
  if (!view.ok) return view;
  view.topic = request.topic();
  for (auto& entry : *request.mutable_entries()) {
    view.queues.push_back(entry.queue());
    view.messages.push_back(FromWire(std::move(*entry.mutable_message()), request.topic()));
  }
  return view;
}

ProduceView CodecProduce(const Frame& frame, ProduceRequestReader& reader) {
  ProduceView view;
  view.ok = reader.Read(frame).ok();
  if (!view.ok) return view;
  view.topic = reader.topic();
  for (size_t i = 0; i < reader.size(); ++i) {
    view.queues.push_back(reader.queue(i));
    view.messages.push_back(reader.CopyMessage(i));
  }
  return view;
}

std::string Compare(const ProduceView& generated, const ProduceView& codec) {
  if (generated.ok != codec.ok) {
    return std::string("generated ") + (generated.ok ? "accepts" : "refuses") + ", codec " +
           (codec.ok ? "accepts" : "refuses");
  }
  if (!generated.ok) return "";
  if (generated.topic != codec.topic) return "topic";
  if (generated.queues != codec.queues) return "queues";
  if (generated.messages.size() != codec.messages.size()) return "entry count";
  for (size_t i = 0; i < generated.messages.size(); ++i) {
    const std::string difference = Difference(generated.messages[i], codec.messages[i]);
    if (!difference.empty()) return "entry " + std::to_string(i) + ": " + difference;
  }
  return "";
}

struct FetchView {
  Status status;  // the decoder's result: the response status, or malformed
  bool malformed = false;
  std::vector<FetchedQueue> queues;
  std::vector<std::vector<Message>> messages;  // each queue's
};

FetchView GeneratedFetch(const Frame& frame, const std::string& topic) {
  FetchView view;
  wire::FetchResponse response;
  if (!ParseFrameBody(frame, &response).ok()) {
    view.malformed = true;
    return view;
  }
  view.status = FromWire(response.status());
  for (auto& data : *response.mutable_queues()) {
    FetchedQueue& queue = view.queues.emplace_back();
    queue.queue = data.queue();
    queue.status = FromWire(data.status());
    std::vector<Message>& messages = view.messages.emplace_back();
    for (auto& message : *data.mutable_messages()) {
      messages.push_back(FromWire(std::move(message), topic));
    }
    queue.next_offset = data.next_offset();
    queue.max_offset = data.max_offset();
    queue.min_offset = data.min_offset();
  }
  return view;
}

// Every field set, none as the decoder would leave it.
Message UsedMessage() {
  Message message;
  message.topic = "a topic of an earlier fetch";
  message.key = "an earlier key";
  message.tag = "an earlier tag";
  message.properties = {{"earlier", "property"}};
  message.body = std::string(300, 'b');
  message.deliver_at = FromUnixNanos(123);
  message.message_id = "an earlier id";
  message.born_at = FromUnixNanos(456);
  message.delivery_attempt = 7;
  message.cluster = "an earlier cluster";
  message.partition = 99;
  message.offset = 999;
  message.stored_at = FromUnixNanos(789);
  return message;
}

// Decoded into slots that held messages before, as a consumer's recycled records do.
FetchView CodecFetch(const Frame& frame, const std::string& topic) {
  FetchView view;
  std::vector<std::unique_ptr<Message>> slots;
  size_t asked = 0;
  view.malformed =
      !DecodeFetchResponse(frame, topic, &view.status, &view.queues, [&](size_t i) -> Message& {
         EXPECT_EQ(i, asked++) << "slots asked out of order";
         slots.push_back(std::make_unique<Message>(UsedMessage()));
         return *slots.back();
       }).ok();
  size_t next = 0;
  for (const FetchedQueue& queue : view.queues) {
    EXPECT_EQ(queue.first_message, next) << "queue " << queue.queue;
    std::vector<Message>& messages = view.messages.emplace_back();
    for (size_t i = queue.first_message; i < queue.first_message + queue.message_count; ++i) {
      if (i < slots.size()) messages.push_back(*slots[i]);
    }
    next = queue.first_message + queue.message_count;
  }
  return view;
}

std::string Compare(const FetchView& generated, const FetchView& codec) {
  if (generated.malformed != codec.malformed) {
    return std::string("generated ") + (generated.malformed ? "refuses" : "accepts") + ", codec " +
           (codec.malformed ? "refuses" : "accepts");
  }
  if (generated.malformed) return "";
  if (!SameStatus(generated.status, codec.status)) return "status";
  if (!generated.status.ok()) return "";  // the queues are not looked at then
  if (generated.queues.size() != codec.queues.size()) return "queue count";
  for (size_t q = 0; q < generated.queues.size(); ++q) {
    const FetchedQueue& a = generated.queues[q];
    const FetchedQueue& b = codec.queues[q];
    if (a.queue != b.queue || !SameStatus(a.status, b.status) || a.next_offset != b.next_offset ||
        a.max_offset != b.max_offset || a.min_offset != b.min_offset) {
      return "queue " + std::to_string(q);
    }
    const std::vector<Message>& a_messages = generated.messages[q];
    const std::vector<Message>& b_messages = codec.messages[q];
    if (a_messages.size() != b_messages.size() || b.message_count != b_messages.size())
      return "message count of queue " + std::to_string(q);
    for (size_t i = 0; i < a_messages.size(); ++i) {
      const std::string difference = Difference(a_messages[i], b_messages[i]);
      if (!difference.empty()) {
        return "queue " + std::to_string(q) + " message " + std::to_string(i) + ": " + difference;
      }
    }
  }
  return "";
}

struct ProduceResultsView {
  Status status;
  bool malformed = false;
  std::vector<ProduceOutcome> results;
};

ProduceResultsView GeneratedProduceResults(const Frame& frame) {
  ProduceResultsView view;
  wire::ProduceResponse response;
  if (!ParseFrameBody(frame, &response).ok()) {
    view.malformed = true;
    return view;
  }
  view.status = FromWire(response.status());
  for (const auto& result : response.results()) {
    view.results.push_back(
        {.queue = result.queue(), .offset = result.offset(), .status = FromWire(result.status())});
  }
  return view;
}

ProduceResultsView CodecProduceResults(const Frame& frame) {
  ProduceResultsView view;
  view.malformed = !DecodeProduceResponse(frame, &view.status, &view.results).ok();
  return view;
}

std::string Compare(const ProduceResultsView& generated, const ProduceResultsView& codec) {
  if (generated.malformed != codec.malformed) {
    return std::string("generated ") + (generated.malformed ? "refuses" : "accepts") + ", codec " +
           (codec.malformed ? "refuses" : "accepts");
  }
  if (generated.malformed) return "";
  if (!SameStatus(generated.status, codec.status)) return "status";
  if (!generated.status.ok()) return "";
  if (generated.results.size() != codec.results.size()) return "result count";
  for (size_t i = 0; i < generated.results.size(); ++i) {
    const ProduceOutcome& a = generated.results[i];
    const ProduceOutcome& b = codec.results[i];
    if (a.queue != b.queue || a.offset != b.offset || !SameStatus(a.status, b.status)) {
      return "result " + std::to_string(i);
    }
  }
  return "";
}

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kDigits[(static_cast<uint8_t>(c) >> 4) & 0xf];
    out += kDigits[static_cast<uint8_t>(c) & 0xf];
    out += ' ';
  }
  return out;
}

// ---- Encoders against the generated parser ----------------------------------------------------

TEST(WireCodecTest, AProduceFrameBuiltByHandParsesWithTheGeneratedCode) {
  ProduceFrameBuilder builder("orders");
  std::vector<Message> sent;
  for (int i = 0; i < 50; ++i) {
    sent.push_back(SampleMessage(i));
    MSGSDK_ASSERT_OK(builder.Add(i == 7 ? -1 : i % 8, sent.back()));
  }
  EXPECT_EQ(builder.entries(), 50u);
  std::string frame = builder.TakeFrame();
  EXPECT_EQ(builder.entries(), 0u);
  MSGSDK_ASSERT_OK(SealFrame(static_cast<uint8_t>(FrameType::kProduce), 9, &frame));

  FrameDecoder decoder(FrameDirection::kRequest, 1 << 20);
  decoder.Append(frame);
  auto decoded = decoder.Next();
  ASSERT_TRUE(decoded.ok() && decoded->has_value()) << decoded.status().ToString();
  EXPECT_EQ((*decoded)->header.request_id, 9u);
  const ProduceView view = GeneratedProduce(**decoded);
  ASSERT_TRUE(view.ok);
  EXPECT_EQ(view.topic, "orders");
  ASSERT_EQ(view.messages.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(view.queues[i], i == 7 ? -1 : static_cast<int32_t>(i % 8));
    Message expected = sent[i];
    expected.topic = "orders";
    expected.partition = 0;  // not sent with a produce entry
    expected.offset = 0;
    expected.stored_at = FromUnixNanos(0);
    EXPECT_EQ(Difference(view.messages[i], expected), "") << "entry " << i;
  }
  // The builder's next frame starts afresh, for the same topic.
  MSGSDK_ASSERT_OK(builder.Add(1, SampleMessage(1)));
  std::string next = builder.TakeFrame();
  MSGSDK_ASSERT_OK(SealFrame(static_cast<uint8_t>(FrameType::kProduce), 10, &next));
  const ProduceView second =
      GeneratedProduce(MakeFrame(FrameType::kProduce, false, next.substr(kFrameHeaderSize)));
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(second.topic, "orders");
  EXPECT_EQ(second.messages.size(), 1u);
}

TEST(WireCodecTest, StringsThatAreNotUtf8FailTheirSendAlone) {
  ProduceFrameBuilder builder("t");
  const size_t empty = builder.size();
  for (const Message& bad :
       {Message{.key = "\xff"}, Message{.tag = "\xc0\x80"},
        Message{.properties = {{"ok", "\xed\xa0\x80"}}}, Message{.properties = {{"\xf5", "v"}}}}) {
    Status status = builder.Add(0, bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("UTF-8"), std::string::npos) << status.ToString();
  }
  EXPECT_EQ(builder.entries(), 0u);
  EXPECT_EQ(builder.size(), empty);
  // Bodies are bytes: anything goes.
  MSGSDK_EXPECT_OK(builder.Add(0, Message{.body = "\xff\xfe\x00"}));
}

TEST(WireCodecTest, Utf8ValidationFollowsTheStandard) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, long enough for the eight-byte path"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  EXPECT_TRUE(IsValidUtf8("nul" + std::string(1, '\0') + "inside"));
  for (const char* bad :
       {"\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xc3", "abcdefgh\xe2\x82", "\xe2\x28\xa1"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

TEST(WireCodecTest, ProduceResponsesRoundTrip) {
  std::vector<ProduceOutcome> results = {
      {.queue = 0, .offset = 0, .status = OkStatus()},
      {.queue = 3, .offset = 123456789012, .status = OkStatus()},
      {.queue = 0, .offset = 0, .status = InvalidArgumentError("too big")},
      {.queue = 7, .offset = 1, .status = DataLossError("")},
  };
  std::string body;
  AppendProduceResponseBody(results, &body);
  const Frame frame = MakeFrame(FrameType::kProduce, true, body);
  const ProduceResultsView generated = GeneratedProduceResults(frame);
  ASSERT_FALSE(generated.malformed);
  ASSERT_EQ(generated.results.size(), results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(generated.results[i].queue, results[i].queue);
    EXPECT_EQ(generated.results[i].offset, results[i].offset);
    EXPECT_TRUE(SameStatus(generated.results[i].status, results[i].status)) << i;
  }
  EXPECT_EQ(Compare(generated, CodecProduceResults(frame)), "");

  // A refused request: the response's own status comes back.
  wire::ProduceResponse refused;
  ToWire(NotFoundError("Produce: topic 'x' does not exist"), refused.mutable_status());
  const Frame refused_frame = MakeFrame(FrameType::kProduce, true, refused.SerializeAsString());
  std::vector<ProduceOutcome> none;
  Status status;
  MSGSDK_ASSERT_OK(DecodeProduceResponse(refused_frame, &status, &none));
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "Produce: topic 'x' does not exist");
}

TEST(WireCodecTest, QueueDataBuiltByHandParsesWithTheGeneratedCode) {
  std::vector<Message> stored;
  stored.reserve(20);
  for (int i = 0; i < 20; ++i) stored.push_back(DeliveredMessage(i));
  std::string body;
  AppendQueueData(0, OkStatus(), stored, 20, 25, 3, &body);
  AppendQueueData(5, DataLossError("crc mismatch in segment 3"), std::vector<Message>{}, 17, 0, 0,
                  &body);
  AppendQueueData(-1, OkStatus(), std::vector<Message>{}, 0, 0, 0, &body);
  const Frame frame = MakeFrame(FrameType::kFetch, true, body);
  const FetchView generated = GeneratedFetch(frame, "orders");
  ASSERT_FALSE(generated.malformed);
  ASSERT_EQ(generated.queues.size(), 3u);
  ASSERT_EQ(generated.messages[0].size(), stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    Message expected = stored[i];
    expected.topic = "orders";
    EXPECT_EQ(Difference(generated.messages[0][i], expected), "") << i;
  }
  EXPECT_EQ(generated.queues[0].next_offset, 20);
  EXPECT_EQ(generated.queues[0].max_offset, 25);
  EXPECT_EQ(generated.queues[0].min_offset, 3);
  EXPECT_EQ(generated.queues[1].queue, 5);
  EXPECT_EQ(generated.queues[1].status.code(), StatusCode::kDataLoss);
  EXPECT_EQ(generated.queues[1].status.message(), "crc mismatch in segment 3");
  EXPECT_EQ(generated.queues[2].queue, -1);
  EXPECT_EQ(Compare(generated, CodecFetch(frame, "orders")), "");
}

TEST(WireCodecTest, QueueDataFromRecordsInPlaceIsTheSameAsFromMessages) {
  std::vector<Message> stored;
  std::vector<std::string> records;
  for (int i = 0; i < 20; ++i) {
    Message message = DeliveredMessage(i);
    message.topic = "orders";
    RecordMeta meta{.commit_log_offset = 1000 * i,
                    .queue = message.partition,
                    .queue_offset = message.offset,
                    .stored_at = message.stored_at};
    auto size = RecordSize(message, 1 << 20);
    ASSERT_TRUE(size.ok());
    std::string& record = records.emplace_back(*size, '\0');
    EncodeRecord(message, meta, record.size(), record.data());
    stored.push_back(std::move(message));
  }
  std::vector<RecordInPlace> in_place(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(DecodeRecordInPlace(records[i], &in_place[i])) << i;
  }
  std::string from_messages;
  std::string from_records;
  AppendQueueData(3, OkStatus(), stored, 20, 25, 1, &from_messages);
  AppendQueueData(3, OkStatus(), in_place, 20, 25, 1, &from_records);
  EXPECT_EQ(from_records, from_messages);
  from_messages.clear();
  from_records.clear();
  AppendQueueData(4, DataLossError("gone"), std::vector<Message>{}, 7, 0, 0, &from_messages);
  AppendQueueData(4, DataLossError("gone"), std::vector<RecordInPlace>{}, 7, 0, 0, &from_records);
  EXPECT_EQ(from_records, from_messages);
}

// ---- Decoders against the generated serializer and hand-made bytes ---------------------------

std::string GeneratedProduceBody(int entries) {
  wire::ProduceRequest request;
  request.set_topic("payments");
  for (int i = 0; i < entries; ++i) {
    auto* entry = request.add_entries();
    entry->set_queue(i % 2 == 0 ? i : -i);
    ToWire(SampleMessage(i), /*with_delivery=*/false, entry->mutable_message());
  }
  return request.SerializeAsString();
}

TEST(WireCodecTest, TheReaderKeepsFieldsAsViewsIntoTheFrame) {
  ProduceRequestReader reader;
  const Frame frame = MakeFrame(FrameType::kProduce, false, GeneratedProduceBody(5));
  MSGSDK_ASSERT_OK(reader.Read(frame));
  ASSERT_EQ(reader.size(), 5u);
  const char* begin = frame.body.data();
  const char* end = begin + frame.body.size();
  for (size_t i = 0; i < reader.size(); ++i) {
    const RecordFields& fields = reader.fields(i);
    const Message copy = reader.CopyMessage(i);
    EXPECT_EQ(fields.topic, "payments");
    EXPECT_EQ(fields.key, copy.key);
    EXPECT_EQ(fields.tag, copy.tag);
    EXPECT_EQ(fields.body, copy.body);
    EXPECT_EQ(fields.message_id, copy.message_id);
    EXPECT_EQ(fields.born_at, copy.born_at);
    EXPECT_EQ(fields.deliver_at, copy.deliver_at);
    EXPECT_EQ(fields.properties == nullptr ? Properties{} : *fields.properties, copy.properties);
    if (!fields.body.empty()) {
      EXPECT_GE(fields.body.data(), begin);
      EXPECT_LE(fields.body.data() + fields.body.size(), end);
    }
  }
}

TEST(WireCodecTest, TheReaderReadsWhatTheGeneratedCodeWrites) {
  ProduceRequestReader reader;
  for (int entries : {0, 1, 30}) {
    const Frame frame = MakeFrame(FrameType::kProduce, false, GeneratedProduceBody(entries));
    EXPECT_EQ(Compare(GeneratedProduce(frame), CodecProduce(frame, reader)), "")
        << entries << " entries";
    EXPECT_EQ(reader.size(), static_cast<size_t>(entries));
  }
  // Reused storage holds nothing of the previous request.
  const Frame small = MakeFrame(FrameType::kProduce, false, GeneratedProduceBody(2));
  EXPECT_EQ(Compare(GeneratedProduce(small), CodecProduce(small, reader)), "");
  reader.Trim(0);
  EXPECT_EQ(reader.size(), 0u);
  EXPECT_EQ(Compare(GeneratedProduce(small), CodecProduce(small, reader)), "");

  wire::FetchResponse fetch;
  for (int q = 0; q < 3; ++q) {
    auto* data = fetch.add_queues();
    data->set_queue(q);
    for (int i = 0; i < 10 * q; ++i) ToWire(DeliveredMessage(i), true, data->add_messages());
    data->set_next_offset(int64_t{10} * q);
    data->set_max_offset(100);
  }
  ToWire(UnavailableError("disk"), fetch.mutable_queues(1)->mutable_status());
  const Frame fetch_frame = MakeFrame(FrameType::kFetch, true, fetch.SerializeAsString());
  EXPECT_EQ(Compare(GeneratedFetch(fetch_frame, "t"), CodecFetch(fetch_frame, "t")), "");

  wire::FetchResponse failed;
  ToWire(NotFoundError("Fetch: topic 't' does not exist"), failed.mutable_status());
  const Frame failed_frame = MakeFrame(FrameType::kFetch, true, failed.SerializeAsString());
  const FetchView failed_view = CodecFetch(failed_frame, "t");
  EXPECT_FALSE(failed_view.malformed);
  EXPECT_EQ(failed_view.status.code(), StatusCode::kNotFound);
  std::vector<FetchedQueue> queues;
  Status status;
  Message slot;
  Status malformed =
      DecodeFetchResponse(MakeFrame(FrameType::kFetch, true,
                                    std::string("\x12\x05"
                                                "ab")),
                          "t", &status, &queues, [&](size_t) -> Message& { return slot; });
  EXPECT_EQ(malformed.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.message().find("malformed FetchResponse body"), std::string::npos)
      << malformed.ToString();
}

TEST(WireCodecTest, DecodersFollowProtobufRulesForUnusualEncodings) {
  const std::string message = Field(1, 2, "k") + Field(4, 2, "body") + Field(7, 0, Varint(5));
  const std::string entry = Field(1, 0, Varint(3)) + Field(2, 2, message);
  const std::vector<std::pair<std::string, std::string>> bodies = {
      // The topic after the entries, twice (the last wins).
      {"topic last", Field(2, 2, entry) + Field(1, 2, "a") + Field(1, 2, "b")},
      // An entry's message in two parts, which merge; its queue twice.
      {"merged message",
       Field(1, 2, "t") +
           Field(2, 2,
                 Field(2, 2, Field(1, 2, "k1") + Field(3, 2, Field(1, 2, "p"))) +
                     Field(1, 0, Varint(4)) +
                     Field(2, 2, Field(2, 2, "tag") + Field(3, 2, Field(2, 2, "v"))) +
                     Field(1, 0, Varint(5)))},
      // Unknown fields of every wire type, a group holding a group among them.
      {"unknown fields",
       Field(1, 2, "t") + Field(9, 0, Varint(1)) + Field(10, 1, "12345678") + Field(11, 5, "1234") +
           Field(12, 2, "skip me") + Varint((13 << 3) | 3) + Field(1, 0, Varint(1)) +
           Varint((14 << 3) | 3) + Varint((14 << 3) | 4) + Varint((13 << 3) | 4) +
           Field(2, 2, entry + Field(99, 2, "x") + Field(2, 2, message + Field(15, 5, "abcd")))},
      // A known field number with another wire type is an unknown field.
      {"wrong wire type", Field(1, 2, "t") + Field(1, 0, Varint(7)) +
                              Field(2, 2, Field(1, 2, "not a queue") + Field(2, 2, message))},
      // Non-canonical varints: padded tags and sizes, a 10-byte negative queue.
      {"padded varints", std::string("\x8a\x00", 2) + std::string("\x01t") +
                             Field(2, 2, Field(1, 0, Varint(uint64_t(-1))) + Field(2, 2, message))},
      // Refusals: a truncated field, an unmatched end group, a zero tag, a bad wire type,
      // a group closed by another field number, invalid UTF-8 in a key and in a property.
      {"truncated", Field(1, 2, "t") + Field(2, 2, entry).substr(0, 5)},
      {"end group", Field(1, 2, "t") + Varint((3 << 3) | 4)},
      {"zero tag", Field(1, 2, "t") + std::string(1, '\0')},
      {"wire type 6", Field(1, 2, "t") + Varint((3 << 3) | 6)},
      {"mismatched group", Varint((3 << 3) | 3) + Varint((4 << 3) | 4)},
      {"bad utf8 key", Field(2, 2, Field(2, 2, Field(1, 2, "\xff")))},
      {"bad utf8 property", Field(2, 2, Field(2, 2, Field(3, 2, Field(2, 2, "\xc0\x80"))))},
      {"bad utf8 topic", Field(1, 2, "\xe0\x80\x80")},
      {"varint too long", Field(2, 2, Field(1, 0, std::string(10, '\xff') + '\x01'))},
  };
  ProduceRequestReader reader;
  for (const auto& [name, body] : bodies) {
    const Frame frame = MakeFrame(FrameType::kProduce, false, body);
    const ProduceView generated = GeneratedProduce(frame);
    EXPECT_EQ(Compare(generated, CodecProduce(frame, reader)), "") << name;
    if (name == "merged message") {
      ASSERT_TRUE(generated.ok);
      EXPECT_EQ(generated.queues[0], 5);
      EXPECT_EQ(generated.messages[0].key, "k1");
      EXPECT_EQ(generated.messages[0].tag, "tag");
    }
  }
  // Groups nested beyond the parser's limit.
  std::string deep = Field(1, 2, "t");
  for (int i = 0; i < 120; ++i) deep += Varint((5 << 3) | 3);
  for (int i = 0; i < 120; ++i) deep += Varint((5 << 3) | 4);
  const Frame deep_frame = MakeFrame(FrameType::kProduce, false, deep);
  EXPECT_EQ(Compare(GeneratedProduce(deep_frame), CodecProduce(deep_frame, reader)), "");
  EXPECT_FALSE(reader.Read(deep_frame).ok());
  Status malformed = reader.Read(MakeFrame(FrameType::kProduce, false, bodies[5].second));
  EXPECT_EQ(malformed.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.message().find("malformed Produce body"), std::string::npos)
      << malformed.ToString();
}

// Mangled copies of valid bodies (bytes flipped, cut, dropped, inserted): each decoder accepts
// exactly what the generated parser accepts, and finds the same content.
TEST(WireCodecTest, DecodersAgreeWithTheGeneratedParserOnMangledInput) {
  std::mt19937 random(20261204);
  const auto mangle = [&random](std::string body) {
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = random() % body.size();
      switch (random() % 5) {
        case 0:
          body[at] = static_cast<char>(body[at] ^ (1 << (random() % 8)));
          break;
        case 1:
          body[at] = static_cast<char>(random());
          break;
        case 2:
          body.resize(at);
          break;
        case 3:
          body.erase(at, 1 + random() % 4);
          break;
        default:
          body.insert(at, 1, static_cast<char>(random()));
          break;
      }
    }
    return body;
  };

  std::vector<Message> stored;
  stored.reserve(6);
  for (int i = 0; i < 6; ++i) stored.push_back(DeliveredMessage(i * 3 + 1));
  ProduceFrameBuilder builder("topic");
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(builder.Add(i, SampleMessage(i * 5 + 1)).ok());
  const std::string produce = builder.TakeFrame().substr(kFrameHeaderSize);
  std::string fetch;
  AppendQueueData(1, OkStatus(), stored, 19, 30, 2, &fetch);
  AppendQueueData(2, InternalError("bad"), std::vector<Message>{}, 4, 0, 0, &fetch);
  std::string results;
  AppendProduceResponseBody({{.queue = 1, .offset = 2, .status = OkStatus()},
                             {.queue = 0, .offset = 0, .status = InternalError("no")}},
                            &results);

  ProduceRequestReader reader;
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    const Frame p = MakeFrame(FrameType::kProduce, false, mangle(produce));
    const ProduceView generated = GeneratedProduce(p);
    ASSERT_EQ(Compare(generated, CodecProduce(p, reader)), "")
        << "produce round " << round << ": " << Hex(p.body);
    accepted += generated.ok ? 1 : 0;
    const Frame f = MakeFrame(FrameType::kFetch, true, mangle(fetch));
    ASSERT_EQ(Compare(GeneratedFetch(f, "t"), CodecFetch(f, "t")), "")
        << "fetch round " << round << ": " << Hex(f.body);
    const Frame r = MakeFrame(FrameType::kProduce, true, mangle(results));
    ASSERT_EQ(Compare(GeneratedProduceResults(r), CodecProduceResults(r)), "")
        << "results round " << round << ": " << Hex(r.body);
  }
  // Both outcomes were exercised.
  EXPECT_GT(accepted, 100);
  EXPECT_LT(accepted, 2900);
}

}  // namespace
}  // namespace msgsdk::native::protocol
