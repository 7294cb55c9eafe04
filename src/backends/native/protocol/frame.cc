#include "backends/native/protocol/frame.h"

#include <cstdio>

#include <google/protobuf/message_lite.h>

#include "backends/native/storage/coding.h"

namespace msgsdk::native::protocol {
namespace {

bool IsKnownRequestType(uint8_t type) {
  return type >= static_cast<uint8_t>(FrameType::kGetOrCreateTopic) &&
         type <= static_cast<uint8_t>(FrameType::kResetOffsets);
}

std::string Hex(uint8_t byte) {
  char text[8];
  std::snprintf(text, sizeof(text), "0x%02x", byte);
  return text;
}

}  // namespace

std::string FrameTypeName(uint8_t type) {
  const bool response = (type & kResponseBit) != 0;
  const uint8_t request = type & ~kResponseBit;
  if (!IsKnownRequestType(request)) return "unknown type " + Hex(type);
  static constexpr const char* kNames[] = {
      "",          "GetOrCreateTopic", "Produce",    "Fetch",       "CommitOffset", "QueryOffset",
      "JoinGroup", "Heartbeat",        "LeaveGroup", "ResetOffsets"};
  std::string name = kNames[request];
  if (response) name += "Response";
  return name;
}

void EncodeFrameHeader(const FrameHeader& header, char* out) {
  EncodeFixed32(out, header.body_size);
  out[4] = static_cast<char>(header.version);
  out[5] = static_cast<char>(header.type);
  EncodeFixed64(out + 6, header.request_id);
}

Result<FrameHeader> DecodeFrameHeader(const char* data, FrameDirection direction,
                                      uint32_t max_body_bytes) {
  FrameHeader header;
  header.body_size = DecodeFixed32(data);
  header.version = static_cast<uint8_t>(data[4]);
  header.type = static_cast<uint8_t>(data[5]);
  header.request_id = DecodeFixed64(data + 6);
  const auto where = [&header] {
    return "frame header (request id " + std::to_string(header.request_id) + ")";
  };
  if (header.version != kProtocolVersion) {
    return InvalidArgumentError(where() + ": protocol version " + std::to_string(header.version) +
                                " is not supported (this side speaks version " +
                                std::to_string(kProtocolVersion) + ")");
  }
  const bool want_response = direction == FrameDirection::kResponse;
  if (header.is_response() != want_response || !IsKnownRequestType(header.type & ~kResponseBit)) {
    return InvalidArgumentError(where() + ": " + FrameTypeName(header.type) + " (type byte " +
                                Hex(header.type) + ") is not a known " +
                                (want_response ? "response" : "request") + " type");
  }
  if (header.body_size > max_body_bytes) {
    return InvalidArgumentError(where() + ": " + FrameTypeName(header.type) + " body of " +
                                std::to_string(header.body_size) + " bytes exceeds the limit of " +
                                std::to_string(max_body_bytes) + " bytes");
  }
  return header;
}

Status AppendFrame(uint8_t type, uint64_t request_id, const google::protobuf::MessageLite& body,
                   std::string* out) {
  const size_t size = body.ByteSizeLong();
  if (size > kMaxFrameBodyLimit) {
    return InvalidArgumentError(FrameTypeName(type) + " body of " + std::to_string(size) +
                                " bytes exceeds the protocol limit of " +
                                std::to_string(kMaxFrameBodyLimit) + " bytes");
  }
  const size_t start = out->size();
  out->resize(start + kFrameHeaderSize + size);
  char* frame = out->data() + start;
  EncodeFrameHeader({.body_size = static_cast<uint32_t>(size),
                     .version = kProtocolVersion,
                     .type = type,
                     .request_id = request_id},
                    frame);
  if (!body.SerializeToArray(frame + kFrameHeaderSize, static_cast<int>(size))) {
    out->resize(start);
    return InternalError("cannot serialise the " + FrameTypeName(type) + " body");
  }
  return OkStatus();
}

size_t BeginFrame(std::string* out) {
  const size_t start = out->size();
  out->resize(start + kFrameHeaderSize);
  return start;
}

Status EndFrame(uint8_t type, uint64_t request_id, size_t start, std::string* out) {
  const size_t size = out->size() - start - kFrameHeaderSize;
  if (size > kMaxFrameBodyLimit) {
    out->resize(start);
    return InvalidArgumentError(FrameTypeName(type) + " body of " + std::to_string(size) +
                                " bytes exceeds the protocol limit of " +
                                std::to_string(kMaxFrameBodyLimit) + " bytes");
  }
  EncodeFrameHeader({.body_size = static_cast<uint32_t>(size),
                     .version = kProtocolVersion,
                     .type = type,
                     .request_id = request_id},
                    out->data() + start);
  return OkStatus();
}

Status ParseFrameBody(const Frame& frame, google::protobuf::MessageLite* out) {
  if (!out->ParseFromArray(frame.body.data(), static_cast<int>(frame.body.size()))) {
    return MalformedBody(frame);
  }
  return OkStatus();
}

Status MalformedBody(const Frame& frame) {
  return InvalidArgumentError("malformed " + FrameTypeName(frame.header.type) + " body (" +
                              std::to_string(frame.body.size()) + " bytes, request id " +
                              std::to_string(frame.header.request_id) + ")");
}

void FrameDecoder::Append(std::string_view bytes) {
  if (!error_.ok()) return;
  // Drop what was consumed before growing, so a long-lived connection's buffer stays bounded
  // by the largest frame.
  if (consumed_ > 0 && (consumed_ == buffer_.size() || consumed_ >= buffer_.size() / 2)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Frame>> FrameDecoder::Next() {
  if (!error_.ok()) return error_;
  if (!pending_) {
    if (buffered() < kFrameHeaderSize) return std::optional<Frame>();
    auto header = DecodeFrameHeader(buffer_.data() + consumed_, direction_, max_body_bytes_);
    if (!header.ok()) {
      error_ = header.status();
      return error_;
    }
    pending_ = *header;
    consumed_ += kFrameHeaderSize;
  }
  if (buffered() < pending_->body_size) return std::optional<Frame>();
  Frame frame{.header = *pending_, .body = buffer_.substr(consumed_, pending_->body_size)};
  consumed_ += pending_->body_size;
  pending_.reset();
  return std::optional<Frame>(std::move(frame));
}

Status FrameDecoder::Finish() const {
  if (!error_.ok()) return error_;
  if (pending_) {
    return InvalidArgumentError("truncated " + FrameTypeName(pending_->type) +
                                " frame (request id " + std::to_string(pending_->request_id) +
                                "): the stream ended after " + std::to_string(buffered()) + " of " +
                                std::to_string(pending_->body_size) + " body bytes");
  }
  if (buffered() > 0) {
    return InvalidArgumentError("truncated frame header: the stream ended after " +
                                std::to_string(buffered()) + " of " +
                                std::to_string(kFrameHeaderSize) + " header bytes");
  }
  return OkStatus();
}

Status StatusFromWire(int32_t code, const std::string& message) {
  if (code == 0) return OkStatus();
  if (code < 0 || code > static_cast<int32_t>(StatusCode::kUnauthenticated)) {
    return UnknownError("status code " + std::to_string(code) + " from the peer: " + message);
  }
  return {static_cast<StatusCode>(code), message};
}

}  // namespace msgsdk::native::protocol
