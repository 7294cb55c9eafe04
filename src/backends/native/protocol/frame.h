#pragma once

// Framing of the msgsdk-broker protocol. Every request and response is one frame:
//
//   offset  size  field
//   0       4     body size in bytes (what follows the header), little-endian
//   4       1     protocol version (kProtocolVersion)
//   5       1     frame type: a request type, or the request type | kResponseBit
//   6       8     request id, little-endian: chosen by the client, echoed in the response,
//                 so that many requests can be in flight on one connection (pipelining)
//   14      ...   body: the Protobuf message of the type (broker.proto)
//
// A receiver checks the header before it buffers the body, so an oversized or unknown frame
// is refused after 14 bytes. Responses may come back in any order; a client matches them by
// request id.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <google/protobuf/message_lite.h>

#include "msgsdk/result.h"
#include "msgsdk/status.h"

namespace msgsdk::native::protocol {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 14;
inline constexpr uint8_t kResponseBit = 0x80;
// The largest body any configuration accepts (a receiver's own limit is usually lower).
inline constexpr uint32_t kMaxFrameBodyLimit = 1u << 30;

enum class FrameType : uint8_t {
  kGetOrCreateTopic = 1,
  kProduce = 2,
  kFetch = 3,
  kCommitOffset = 4,
  kQueryOffset = 5,
  kJoinGroup = 6,
  kHeartbeat = 7,
  kLeaveGroup = 8,
  kResetOffsets = 9,
};

// Which frames a receiver accepts: a broker reads requests, a client reads responses.
enum class FrameDirection { kRequest, kResponse };

struct FrameHeader {
  uint32_t body_size = 0;
  uint8_t version = kProtocolVersion;
  // The raw type byte (a FrameType, with kResponseBit on responses).
  uint8_t type = 0;
  uint64_t request_id = 0;

  FrameType request_type() const { return static_cast<FrameType>(type & ~kResponseBit); }
  bool is_response() const { return (type & kResponseBit) != 0; }
};

struct Frame {
  FrameHeader header;
  std::string body;
};

// "Produce", "FetchResponse", or "unknown type 0x2a".
std::string FrameTypeName(uint8_t type);
inline uint8_t ResponseType(FrameType type) { return static_cast<uint8_t>(type) | kResponseBit; }

void EncodeFrameHeader(const FrameHeader& header, char* out);

// Checks the kFrameHeaderSize bytes at `data`: the version, a type known for `direction`,
// and body_size <= max_body_bytes. kInvalidArgument naming what is wrong (and the request id,
// so a log line can be matched to the client's).
Result<FrameHeader> DecodeFrameHeader(const char* data, FrameDirection direction,
                                      uint32_t max_body_bytes);

// Appends a whole frame (header and serialised body) to `out`. kInvalidArgument if the body
// exceeds kMaxFrameBodyLimit; kInternal if it cannot be serialised.
Status AppendFrame(uint8_t type, uint64_t request_id, const google::protobuf::MessageLite& body,
                   std::string* out);

// A frame written in place, for bodies encoded without the generated code: BeginFrame
// reserves the header at the end of `out` and returns where the frame starts; the body is
// appended after it; EndFrame writes the header for the bytes appended since. kInvalidArgument
// (and the frame removed) if the body exceeds kMaxFrameBodyLimit.
size_t BeginFrame(std::string* out);
Status EndFrame(uint8_t type, uint64_t request_id, size_t start, std::string* out);
// EndFrame of a frame that is the whole of `frame`.
inline Status SealFrame(uint8_t type, uint64_t request_id, std::string* frame) {
  return EndFrame(type, request_id, 0, frame);
}

// Parses a frame's body as `out`. kInvalidArgument naming the frame type, request id and size
// if it is not a valid message of that type.
Status ParseFrameBody(const Frame& frame, google::protobuf::MessageLite* out);
// The kInvalidArgument of a body that is not a valid message of its frame's type.
Status MalformedBody(const Frame& frame);

// Splits a byte stream into frames. Either read from the socket straight into the decoder
// (ReadSpace, then Commit what arrived) or feed it bytes read elsewhere (Append); then take
// frames until Next gives none. Small frames are gathered in one buffer; the body of a large
// frame is received in place, in the string Next hands out, so its bytes are copied once,
// by the kernel, instead of three times. The first malformed header makes the stream
// unusable: that error is returned from then on (a peer out of step cannot be
// resynchronised). Memory grows with the bytes received, never ahead of them: a header
// claiming a large body costs nothing until the body arrives.
// Thread-safety: not thread-safe.
class FrameDecoder {
 public:
  // Bodies from this size on are received in place.
  static constexpr size_t kInPlaceBodyBytes = size_t{64} * 1024;
  // The largest body kept by Recycle.
  static constexpr size_t kRecycledBodyBytes = size_t{16} << 20;

  FrameDecoder(FrameDirection direction, uint32_t max_body_bytes)
      : direction_(direction), max_body_bytes_(max_body_bytes) {}

  // Where the next bytes of the stream go (never empty), valid until the next call.
  std::span<char> ReadSpace();
  // `bytes` bytes were written at the start of the last ReadSpace().
  void Commit(size_t bytes);
  // Copies `bytes` in: ReadSpace and Commit for bytes that arrived elsewhere.
  void Append(std::string_view bytes);
  // The next complete frame, std::nullopt if more bytes are needed, or the stream's error.
  Result<std::optional<Frame>> Next();
  // Hands back the body of a frame Next returned, once the caller is done with it: the next
  // large frame is received into its memory, which saves allocating (and, in the kernel,
  // faulting in) and zeroing as much again. Kept only up to kRecycledBodyBytes.
  void Recycle(std::string&& body);
  // Whether Recycle would take a body now: no large body is being received.
  bool CanRecycle() const { return body_received_ == 0; }
  // At the end of the stream: kInvalidArgument if it stopped inside a frame (a truncated
  // frame), naming how many bytes of how many arrived.
  Status Finish() const;
  // Bytes received but not yet returned as frames (a header already read not included).
  size_t buffered() const { return (end_ - begin_) + body_received_; }
  // Forgets everything received (a new connection starts a new stream).
  void Reset();

 private:
  // The buffer of small frames grows by this much at least, and reads fill at most this
  // much of it.
  static constexpr size_t kReadBytes = size_t{64} * 1024;

  bool receiving_body() const { return pending_ && pending_->body_size >= kInPlaceBodyBytes; }

  const FrameDirection direction_;
  const uint32_t max_body_bytes_;
  std::unique_ptr<char[]> buffer_;  // [begin_, end_) received, not yet returned
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  std::optional<FrameHeader> pending_;  // the header of the frame being received
  // A large pending frame's body: body_received_ bytes, then room (a recycled body's old
  // bytes included, as far as its size goes).
  std::string body_;
  size_t body_received_ = 0;
  bool read_into_body_ = false;  // where the last ReadSpace pointed
  Status error_;
};

// Status <-> wire::Status, for response bodies. Declared with a template so this header does
// not pull in the generated code: `WireStatus` is msgsdk::native::wire::Status.
template <typename WireStatus>
void ToWire(const Status& status, WireStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(status.message());
}
// A code outside the canonical range becomes kUnknown (a newer peer), keeping the message.
Status StatusFromWire(int32_t code, const std::string& message);
template <typename WireStatus>
Status FromWire(const WireStatus& status) {
  return StatusFromWire(status.code(), status.message());
}

}  // namespace msgsdk::native::protocol
