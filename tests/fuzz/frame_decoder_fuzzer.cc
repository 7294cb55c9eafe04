// libFuzzer target for what msgsdk-broker and its clients read from the network: the frame
// decoder, every frame body of either direction, and the message conversion behind them. The
// hand-written decoders of the bulk bodies (wire_codec.h) run next to the generated parser and
// must accept exactly what it accepts, with as many entries: a disagreement is a crash.
//
// The first input byte chooses the direction (bit 0) and how the rest is cut into the chunks
// a socket would deliver (bits 1-7: 1 to 128 bytes per read), so the decoder's buffering of
// split headers and bodies is exercised as well as its checks.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "backends/native/protocol/frame.h"
#include "backends/native/protocol/wire_codec.h"

namespace {

using msgsdk::native::protocol::Frame;
using msgsdk::native::protocol::FrameDecoder;
using msgsdk::native::protocol::FrameDirection;
using msgsdk::native::protocol::FrameType;
using msgsdk::native::protocol::ParseFrameBody;
namespace wire = msgsdk::native::wire;

// A receiver's limit, low enough that the fuzzer reaches "too large" quickly.
constexpr uint32_t kMaxBody = 1 << 16;

template <typename Body>
bool Parse(const Frame& frame, Body& body) {
  return ParseFrameBody(frame, &body).ok();
}

void ConvertMessages(wire::ProduceRequest& request) {
  for (auto& entry : *request.mutable_entries()) {
    msgsdk::Message message =
        msgsdk::native::protocol::FromWire(std::move(*entry.mutable_message()), request.topic());
    wire::Message back;
    msgsdk::native::protocol::ToWire(message, /*with_delivery=*/false, &back);
  }
}

void ConvertMessages(wire::FetchResponse& response) {
  for (auto& queue : *response.mutable_queues()) {
    for (auto& in : *queue.mutable_messages()) {
      msgsdk::Message message = msgsdk::native::protocol::FromWire(std::move(in), "fuzz");
      wire::Message back;
      msgsdk::native::protocol::ToWire(message, /*with_delivery=*/true, &back);
    }
  }
}

void Agree(bool agree) {
  if (!agree) __builtin_trap();
}

// The decoders of wire_codec.h next to the generated parser's result.
void CompareProduceRequest(const Frame& frame, bool generated_ok,
                           const wire::ProduceRequest& request) {
  static msgsdk::native::protocol::ProduceRequestReader reader;
  const bool ok = reader.Read(frame).ok();
  Agree(ok == generated_ok);
  if (ok) {
    Agree(reader.topic() == request.topic());
    Agree(reader.size() == static_cast<size_t>(request.entries_size()));
    // The fields the broker stores, read in place, are the generated parser's.
    for (size_t i = 0; i < reader.size(); ++i) {
      const wire::ProduceEntry& entry = request.entries(static_cast<int>(i));
      const wire::Message& message = entry.message();
      const msgsdk::native::RecordFields& fields = reader.fields(i);
      Agree(reader.queue(i) == entry.queue());
      Agree(fields.topic == request.topic());
      Agree(fields.key == message.key());
      Agree(fields.tag == message.tag());
      Agree(fields.body == message.body());
      Agree(fields.message_id == message.message_id());
      Agree(msgsdk::native::ToUnixNanos(fields.born_at) == message.born_at_ns());
      Agree(fields.deliver_at.has_value() == message.has_deliver_at_ns());
      if (fields.deliver_at) {
        Agree(msgsdk::native::ToUnixNanos(*fields.deliver_at) == message.deliver_at_ns());
      }
      const size_t properties = fields.properties == nullptr ? 0 : fields.properties->size();
      Agree(properties == static_cast<size_t>(message.properties_size()));
      if (fields.properties != nullptr) {
        for (const auto& [name, value] : *fields.properties) {
          const auto it = message.properties().find(name);
          Agree(it != message.properties().end() && it->second == value);
        }
      }
    }
  }
}

void CompareProduceResponse(const Frame& frame, bool generated_ok,
                            const wire::ProduceResponse& response) {
  msgsdk::Status status;
  std::vector<msgsdk::native::protocol::ProduceOutcome> results;
  const bool ok = msgsdk::native::protocol::DecodeProduceResponse(frame, &status, &results).ok();
  Agree(ok == generated_ok);
  if (ok) {
    Agree(status.code() == msgsdk::native::protocol::FromWire(response.status()).code());
    Agree(results.size() == static_cast<size_t>(response.results_size()));
  }
}

void CompareFetchResponse(const Frame& frame, bool generated_ok,
                          const wire::FetchResponse& response) {
  msgsdk::Status status;
  std::vector<msgsdk::native::protocol::FetchedQueue> queues;
  // Kept from one input to the next, as a consumer recycles its records.
  static std::deque<msgsdk::Message> slots;
  size_t asked = 0;
  const bool ok = msgsdk::native::protocol::DecodeFetchResponse(frame, "fuzz", &status, &queues,
                                                                [&](size_t i) -> msgsdk::Message& {
                                                                  Agree(i == asked++);
                                                                  if (i == slots.size())
                                                                    slots.emplace_back();
                                                                  return slots[i];
                                                                })
                      .ok();
  Agree(ok == generated_ok);
  if (ok) {
    Agree(status.code() == msgsdk::native::protocol::FromWire(response.status()).code());
    Agree(queues.size() == static_cast<size_t>(response.queues_size()));
    size_t next = 0;
    for (size_t q = 0; q < queues.size(); ++q) {
      const wire::QueueData& data = response.queues(static_cast<int>(q));
      Agree(queues[q].first_message == next);
      Agree(queues[q].message_count == static_cast<size_t>(data.messages_size()));
      next += queues[q].message_count;
      Agree(queues[q].next_offset == data.next_offset());
      Agree(queues[q].max_offset == data.max_offset());
      Agree(queues[q].min_offset == data.min_offset());
    }
  }
}

// Parses the body the way the receiving side would, and converts what it carries.
void Handle(const Frame& frame) {
  const bool response = frame.header.is_response();
  switch (frame.header.request_type()) {
    case FrameType::kGetOrCreateTopic: {
      wire::GetOrCreateTopicRequest request;
      wire::GetOrCreateTopicResponse reply;
      response ? Parse(frame, reply) : Parse(frame, request);
      break;
    }
    case FrameType::kProduce: {
      wire::ProduceRequest request;
      wire::ProduceResponse reply;
      if (response) {
        CompareProduceResponse(frame, Parse(frame, reply), reply);
      } else {
        const bool parsed = Parse(frame, request);
        CompareProduceRequest(frame, parsed, request);
        if (parsed) ConvertMessages(request);
      }
      break;
    }
    case FrameType::kFetch: {
      wire::FetchRequest request;
      wire::FetchResponse reply;
      if (!response) {
        Parse(frame, request);
      } else {
        const bool parsed = Parse(frame, reply);
        CompareFetchResponse(frame, parsed, reply);
        if (parsed) ConvertMessages(reply);
      }
      break;
    }
    case FrameType::kCommitOffset: {
      wire::CommitOffsetRequest request;
      wire::CommitOffsetResponse reply;
      response ? Parse(frame, reply) : Parse(frame, request);
      break;
    }
    case FrameType::kQueryOffset: {
      wire::QueryOffsetRequest request;
      wire::QueryOffsetResponse reply;
      response ? Parse(frame, reply) : Parse(frame, request);
      break;
    }
    case FrameType::kJoinGroup:
    case FrameType::kHeartbeat:
    case FrameType::kLeaveGroup: {
      wire::GroupRequest request;
      wire::GroupResponse reply;
      response ? Parse(frame, reply) : Parse(frame, request);
      break;
    }
    case FrameType::kResetOffsets: {
      wire::ResetOffsetsRequest request;
      wire::ResetOffsetsResponse reply;
      response ? Parse(frame, reply) : Parse(frame, request);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const FrameDirection direction =
      (data[0] & 1) != 0 ? FrameDirection::kRequest : FrameDirection::kResponse;
  const size_t chunk = 1 + (data[0] >> 1);
  FrameDecoder decoder(direction, kMaxBody);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (size_t at = 0; at < stream.size(); at += chunk) {
    decoder.Append(stream.substr(at, chunk));
    while (true) {
      auto next = decoder.Next();
      if (!next.ok() || !next->has_value()) break;
      Handle(**next);
    }
  }
  decoder.Finish().IgnoreError();
  return 0;
}
