#include "backends/native/protocol/frame.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "testing/status_macros.h"

namespace msgsdk::native::protocol {
namespace {

constexpr uint32_t kMaxBody = 1 << 20;

std::string ProduceFrame(uint64_t request_id, int messages) {
  wire::ProduceRequest request;
  request.set_topic("orders");
  for (int i = 0; i < messages; ++i) {
    auto* entry = request.add_entries();
    entry->set_queue(i % 3);
    Message message{.key = "k" + std::to_string(i),
                    .tag = "created",
                    .properties = {{"trace", "t" + std::to_string(i)}},
                    .body = std::string("\0\xff body ", 8) + std::to_string(i)};
    message.message_id = "id-" + std::to_string(i);
    message.born_at = Timestamp(std::chrono::milliseconds(1700000000000 + i));
    ToWire(message, /*with_delivery=*/false, entry->mutable_message());
  }
  std::string out;
  EXPECT_TRUE(
      AppendFrame(static_cast<uint8_t>(FrameType::kProduce), request_id, request, &out).ok());
  return out;
}

std::string RawHeader(uint32_t body_size, uint8_t version, uint8_t type, uint64_t request_id) {
  std::string out(kFrameHeaderSize, '\0');
  EncodeFrameHeader(
      {.body_size = body_size, .version = version, .type = type, .request_id = request_id},
      out.data());
  return out;
}

TEST(FrameTest, RoundTripsABatchedProduceFrame) {
  const std::string bytes = ProduceFrame(42, 100);
  FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
  decoder.Append(bytes);
  auto frame = decoder.Next();
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  ASSERT_TRUE(frame->has_value());
  EXPECT_EQ((*frame)->header.request_id, 42u);
  EXPECT_EQ((*frame)->header.request_type(), FrameType::kProduce);
  EXPECT_FALSE((*frame)->header.is_response());
  wire::ProduceRequest request;
  MSGSDK_ASSERT_OK(ParseFrameBody(**frame, &request));
  ASSERT_EQ(request.entries_size(), 100);
  Message back = FromWire(std::move(*request.mutable_entries(7)->mutable_message()), "orders");
  EXPECT_EQ(back.topic, "orders");
  EXPECT_EQ(back.key, "k7");
  EXPECT_EQ(back.body, std::string("\0\xff body ", 8) + "7");
  EXPECT_EQ(back.properties.at("trace"), "t7");
  EXPECT_EQ(back.message_id, "id-7");
  EXPECT_EQ(back.born_at, Timestamp(std::chrono::milliseconds(1700000000007)));
  EXPECT_FALSE(back.deliver_at.has_value());
  EXPECT_EQ(decoder.buffered(), 0u);
  MSGSDK_EXPECT_OK(decoder.Finish());
}

TEST(FrameTest, PipelinedFramesArriveOneByteAtATime) {
  std::string stream;
  for (uint64_t id = 1; id <= 5; ++id) stream += ProduceFrame(id, static_cast<int>(id));
  FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
  std::vector<uint64_t> ids;
  for (char byte : stream) {
    decoder.Append(std::string_view(&byte, 1));
    while (true) {
      auto frame = decoder.Next();
      ASSERT_TRUE(frame.ok()) << frame.status().ToString();
      if (!frame->has_value()) break;
      ids.push_back((*frame)->header.request_id);
    }
  }
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  MSGSDK_EXPECT_OK(decoder.Finish());
}

// Large and small frames mixed, read the way the broker and the client read a socket
// (straight into the decoder's ReadSpace) in reads of several sizes: large bodies are
// received in place, whole and in order, wherever the reads cut the stream; the same when
// every body is handed back (Recycle) and the next large ones are received into it.
TEST(FrameTest, LargeBodiesReceivedInPlaceArriveWholeWhateverTheReadSizes) {
  std::vector<std::string> frames;
  std::string stream;
  for (int i = 0; i < 12; ++i) {
    // 3 to 2,000 messages: bodies from under a hundred bytes to well over kInPlaceBodyBytes,
    // growing and shrinking (a recycled body is too small, or longer than the next one).
    const int messages = i % 3 == 0 ? 2000 - 150 * i : (i % 3 == 1 ? 3 + i : 700 + 100 * i);
    frames.push_back(ProduceFrame(static_cast<uint64_t>(i), messages));
    stream += frames.back();
  }
  ASSERT_GT(frames[0].size(), 2 * FrameDecoder::kInPlaceBodyBytes);
  for (bool recycle : {false, true})
    for (size_t read_size : {size_t{1}, size_t{13}, size_t{4096}, size_t{65536}, size_t{1} << 20}) {
      FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
      std::vector<std::string> bodies;
      size_t at = 0;
      while (at < stream.size()) {
        const std::span<char> space = decoder.ReadSpace();
        ASSERT_FALSE(space.empty());
        const size_t n = std::min({space.size(), read_size, stream.size() - at});
        std::memcpy(space.data(), stream.data() + at, n);
        decoder.Commit(n);
        at += n;
        while (true) {
          auto frame = decoder.Next();
          ASSERT_TRUE(frame.ok()) << frame.status().ToString();
          if (!frame->has_value()) break;
          EXPECT_EQ((*frame)->header.request_id, bodies.size());
          if (recycle) {
            bodies.push_back((*frame)->body);
            decoder.Recycle(std::move((*frame)->body));
          } else {
            bodies.push_back(std::move((*frame)->body));
          }
        }
      }
      ASSERT_EQ(bodies.size(), frames.size())
          << "reads of " << read_size << ", recycle " << recycle;
      for (size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(bodies[i], frames[i].substr(kFrameHeaderSize)) << "frame " << i;
      }
      EXPECT_EQ(decoder.buffered(), 0u);
      MSGSDK_EXPECT_OK(decoder.Finish());
    }
}

// A header that claims a large body allocates nothing it has not received: a peer that
// announces a large frame and stops costs what it sent.
TEST(FrameTest, ALargeBodyIsReportedTruncatedWithWhatArrived) {
  const std::string bytes = ProduceFrame(5, 2000);
  FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
  decoder.Append(std::string_view(bytes).substr(0, kFrameHeaderSize + 100));
  auto frame = decoder.Next();
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  EXPECT_FALSE(frame->has_value());
  EXPECT_EQ(decoder.buffered(), 100u);
  const Status finish = decoder.Finish();
  EXPECT_EQ(finish.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(finish.message().find("after 100 of " +
                                  std::to_string(bytes.size() - kFrameHeaderSize) + " body bytes"),
            std::string::npos)
      << finish.ToString();
}

TEST(FrameTest, TruncatedFrameIsReportedAtTheEndOfTheStream) {
  const std::string bytes = ProduceFrame(9, 10);
  for (size_t cut : {size_t{1}, kFrameHeaderSize - 1, kFrameHeaderSize, bytes.size() - 1}) {
    FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
    decoder.Append(std::string_view(bytes).substr(0, cut));
    auto frame = decoder.Next();
    ASSERT_TRUE(frame.ok()) << frame.status().ToString();
    EXPECT_FALSE(frame->has_value()) << "cut at " << cut;
    Status finish = decoder.Finish();
    EXPECT_EQ(finish.code(), StatusCode::kInvalidArgument) << "cut at " << cut;
    EXPECT_NE(finish.message().find("truncated"), std::string::npos) << finish.ToString();
  }
}

TEST(FrameTest, OversizedFrameIsRefusedFromItsHeader) {
  FrameDecoder decoder(FrameDirection::kRequest, 1000);
  decoder.Append(RawHeader(1001, kProtocolVersion, static_cast<uint8_t>(FrameType::kFetch), 7));
  auto frame = decoder.Next();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(frame.status().message().find("1001 bytes exceeds the limit of 1000"),
            std::string::npos)
      << frame.status().ToString();
  EXPECT_NE(frame.status().message().find("request id 7"), std::string::npos);
  // The error sticks: a stream out of step cannot be resynchronised.
  decoder.Append(ProduceFrame(8, 1));
  EXPECT_FALSE(decoder.Next().ok());
}

TEST(FrameTest, UnknownTypesAndWrongDirectionAreRefused) {
  for (uint8_t type : {uint8_t{0}, uint8_t{10}, uint8_t{0x7f}, uint8_t{0xff}}) {
    FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
    decoder.Append(RawHeader(0, kProtocolVersion, type, 1));
    auto frame = decoder.Next();
    ASSERT_FALSE(frame.ok()) << "type " << int(type);
    EXPECT_NE(frame.status().message().find("not a known request type"), std::string::npos)
        << frame.status().ToString();
  }
  // A response where a request is expected, and the reverse.
  FrameDecoder broker_side(FrameDirection::kRequest, kMaxBody);
  broker_side.Append(RawHeader(0, kProtocolVersion, ResponseType(FrameType::kFetch), 1));
  EXPECT_FALSE(broker_side.Next().ok());
  FrameDecoder client_side(FrameDirection::kResponse, kMaxBody);
  client_side.Append(RawHeader(0, kProtocolVersion, static_cast<uint8_t>(FrameType::kFetch), 1));
  EXPECT_FALSE(client_side.Next().ok());
  FrameDecoder ok_side(FrameDirection::kResponse, kMaxBody);
  ok_side.Append(RawHeader(0, kProtocolVersion, ResponseType(FrameType::kFetch), 1));
  auto frame = ok_side.Next();
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(frame->has_value());
  EXPECT_EQ(FrameTypeName((*frame)->header.type), "FetchResponse");
}

TEST(FrameTest, OtherProtocolVersionsAreRefusedByName) {
  FrameDecoder decoder(FrameDirection::kRequest, kMaxBody);
  decoder.Append(RawHeader(0, 2, static_cast<uint8_t>(FrameType::kProduce), 3));
  auto frame = decoder.Next();
  ASSERT_FALSE(frame.ok());
  EXPECT_NE(frame.status().message().find("protocol version 2 is not supported"), std::string::npos)
      << frame.status().ToString();
}

TEST(FrameTest, MalformedBodyGivesInvalidArgumentNotACrash) {
  // Garbage bodies of every length up to 64 bytes: some parse (Protobuf is lenient with
  // unknown fields), none may crash, and a failure names the frame.
  for (size_t size = 1; size <= 64; ++size) {
    std::string garbage(size, '\0');
    for (size_t i = 0; i < size; ++i) garbage[i] = static_cast<char>((i * 97 + size * 31) | 0x80);
    Frame frame{.header = {.body_size = static_cast<uint32_t>(size),
                           .type = static_cast<uint8_t>(FrameType::kProduce),
                           .request_id = 5},
                .body = garbage};
    wire::ProduceRequest request;
    Status status = ParseFrameBody(frame, &request);
    if (!status.ok()) {
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(status.message().find("malformed Produce body"), std::string::npos)
          << status.ToString();
    }
  }
  // A length-delimited field that claims more bytes than there are.
  Frame truncated{.header = {.type = static_cast<uint8_t>(FrameType::kFetch), .request_id = 6},
                  .body = std::string("\x0a\x7f"
                                      "abc",
                                      5)};
  wire::FetchRequest fetch;
  Status status = ParseFrameBody(truncated, &fetch);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("request id 6"), std::string::npos);
}

TEST(FrameTest, StatusesCrossTheWire) {
  wire::Status wire_status;
  ToWire(NotFoundError("topic 'x' does not exist"), &wire_status);
  Status back = FromWire(wire_status);
  EXPECT_EQ(back.code(), StatusCode::kNotFound);
  EXPECT_EQ(back.message(), "topic 'x' does not exist");
  EXPECT_TRUE(StatusFromWire(0, "").ok());
  EXPECT_EQ(StatusFromWire(99, "new").code(), StatusCode::kUnknown);
  EXPECT_EQ(StatusFromWire(-1, "neg").code(), StatusCode::kUnknown);
}

}  // namespace
}  // namespace msgsdk::native::protocol
