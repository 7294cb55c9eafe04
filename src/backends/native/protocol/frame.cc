#include "backends/native/protocol/frame.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

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

std::span<char> FrameDecoder::ReadSpace() {
  read_into_body_ = receiving_body() && body_received_ < pending_->body_size;
  if (read_into_body_) {
    // Grown as the body arrives (its capacity was reserved, so this never moves it); a
    // recycled body may already be long enough.
    const size_t body_size = pending_->body_size;
    if (body_.size() == body_received_) {
      body_.resize(std::min(body_size, body_received_ + kReadBytes));
    }
    return {body_.data() + body_received_, std::min(body_.size(), body_size) - body_received_};
  }
  if (begin_ == end_) begin_ = end_ = 0;
  if (capacity_ - end_ < kReadBytes) {
    const size_t held = end_ - begin_;
    if (begin_ > 0 && capacity_ - held >= kReadBytes) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, held);
    } else {
      // Small frames only: bounded by the largest of them plus one read.
      const size_t capacity = std::max(2 * capacity_, held + kReadBytes);
      auto grown = std::make_unique_for_overwrite<char[]>(capacity);
      if (held > 0) std::memcpy(grown.get(), buffer_.get() + begin_, held);
      buffer_ = std::move(grown);
      capacity_ = capacity;
    }
    begin_ = 0;
    end_ = held;
  }
  return {buffer_.get() + end_, std::min(kReadBytes, capacity_ - end_)};
}

void FrameDecoder::Commit(size_t bytes) {
  if (read_into_body_) {
    body_received_ += bytes;
  } else {
    end_ += bytes;
  }
}

void FrameDecoder::Append(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::span<char> space = ReadSpace();
    const size_t n = std::min(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), n);
    Commit(n);
    bytes.remove_prefix(n);
  }
}

Result<std::optional<Frame>> FrameDecoder::Next() {
  if (!error_.ok()) return error_;
  if (!pending_) {
    if (end_ - begin_ < kFrameHeaderSize) return std::optional<Frame>();
    auto header = DecodeFrameHeader(buffer_.get() + begin_, direction_, max_body_bytes_);
    if (!header.ok()) {
      error_ = header.status();
      return error_;
    }
    pending_ = *header;
    begin_ += kFrameHeaderSize;
    // Reserved, not touched: the pages are used only as the body arrives. (Not grown from a
    // recycled body too small for it: that would copy its stale bytes.) A sixteenth more, so
    // that once recycled it also takes the next frame when that is a little larger (the
    // answers to a stream of fetches differ by a few bytes).
    if (receiving_body() && body_.capacity() < pending_->body_size) {
      body_ = std::string();
      body_.reserve(pending_->body_size + pending_->body_size / 16);
    }
  }
  Frame frame{.header = *pending_};
  if (receiving_body()) {
    // Bytes that arrived in the buffer (with the header, or before the body was expected)
    // are the start of the body.
    const size_t held = std::min<size_t>(end_ - begin_, pending_->body_size - body_received_);
    if (held > 0) {
      if (body_.size() < body_received_ + held) body_.resize(body_received_ + held);
      std::memcpy(body_.data() + body_received_, buffer_.get() + begin_, held);
      body_received_ += held;
      begin_ += held;
    }
    if (body_received_ < pending_->body_size) return std::optional<Frame>();
    body_.resize(pending_->body_size);  // a recycled body may have been longer
    frame.body = std::move(body_);
    body_ = std::string();
    body_received_ = 0;
  } else {
    if (end_ - begin_ < pending_->body_size) return std::optional<Frame>();
    frame.body.assign(buffer_.get() + begin_, pending_->body_size);
    begin_ += pending_->body_size;
  }
  pending_.reset();
  return std::optional<Frame>(std::move(frame));
}

void FrameDecoder::Recycle(std::string&& body) {
  // Not while a body is being received into body_, nor to replace a larger one.
  if (body_received_ > 0 || body.capacity() <= body_.capacity() ||
      body.capacity() > kRecycledBodyBytes) {
    return;
  }
  body_ = std::move(body);
  // Its old bytes count as room (ReadSpace reads into them without zeroing them first).
  body_.resize(body_.capacity());
}

void FrameDecoder::Reset() {
  begin_ = end_ = 0;
  pending_.reset();
  body_ = std::string();
  body_received_ = 0;
  error_ = OkStatus();
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
