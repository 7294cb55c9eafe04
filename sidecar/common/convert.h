#pragma once

// msgsdk types <-> the msgsdk.v1 wire types. Shared by the sidecar server and the SDK's
// sidecar transport, so both sides map every field and every status the same way.

#include <string>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/status.h>

#include "msgsdk/client.h"
#include "msgsdk/message.h"
#include "msgsdk/options.h"
#include "msgsdk/producer.h"
#include "msgsdk/result.h"
#include "msgsdk/v1/messaging.pb.h"

namespace msgsdk::sidecar {

// Appends `message` to `out` as one length-delimited field `field_number` of an enclosing
// message being encoded by hand: the field's key, the length, the message. A message's encoding
// is the concatenation of its fields', so a batch's requests and answers are written one entry
// at a time, each while its data is at hand, and read by any protobuf implementation.
void AppendField(int field_number, const google::protobuf::MessageLite& message, std::string& out);

// A ByteBuffer that takes `bytes` over without copying them.
grpc::ByteBuffer ToByteBuffer(std::string bytes);

// Reads the entries of one repeated message field from the encoding of the enclosing message,
// one at a time into a message the caller reuses (its strings keep their buffers), instead of
// building the enclosing message with an object per entry. Other fields are skipped.
class RepeatedFieldReader {
 public:
  // `bytes` must outlive the reader.
  RepeatedFieldReader(grpc::ByteBuffer& bytes, int field_number);
  // The next entry into `entry`; false at the end, or if the encoding is broken (failed()).
  bool Next(google::protobuf::MessageLite& entry);
  bool failed() const { return failed_; }

 private:
  grpc::ProtoBufferReader reader_;
  google::protobuf::io::CodedInputStream input_;
  const uint32_t tag_;
  bool failed_ = false;
};

// Status codes are the same numbers on both sides (gRPC's canonical codes).
grpc::Status ToGrpc(const Status& status);
Status FromGrpc(const grpc::Status& status);
void ToProto(const Status& status, v1::Status* out);
Status FromProto(const v1::Status& status);

// Every Message field; timestamps as Unix milliseconds (0: unset).
void ToProto(const Message& message, v1::Message* out);
// Moves the strings of `message` (the body can be large).
void ToProto(Message&& message, v1::Message* out);
Message FromProto(const v1::Message& message);
// Overwrites every field of `out`, keeping its strings' buffers (for a message reused from one
// delivery to the next).
void FromProto(const v1::Message& message, Message* out);
// Moves the strings out of `message` (the body can be large).
Message FromProto(v1::Message&& message);

void ToProto(const Result<SendReceipt>& receipt, v1::PublishResult* out);
Result<SendReceipt> FromProto(const v1::PublishResult& result);
// Moves the strings out of `result`.
Result<SendReceipt> FromProto(v1::PublishResult&& result);

void ToProto(const ResetTarget& target, v1::ResetOffsetsRequest* out);
Result<ResetTarget> FromProto(const v1::ResetOffsetsRequest& request);

void ToProto(const TopicRoute& route, v1::GetRouteResponse* out);
TopicRoute FromProto(const v1::GetRouteResponse& route);

void ToProto(const MigrationProgress& progress, v1::MigrationProgress* out);
MigrationProgress FromProto(const v1::MigrationProgress& progress);

void ToProto(const RoutingState& state, v1::RoutingState* out);
RoutingState FromProto(const v1::RoutingState& state);

// The subscription a Start asks for; kInvalidArgument naming the field for values out of range.
Result<SubscribeOptions> FromProto(const v1::Start& start);
void ToProto(const std::string& topic, const std::string& group, const SubscribeOptions& options,
             v1::Start* out);

}  // namespace msgsdk::sidecar
