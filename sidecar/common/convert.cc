#include "sidecar/common/convert.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace msgsdk::sidecar {
namespace {

int64_t ToUnixMillis(Timestamp time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

Timestamp FromUnixMillis(int64_t millis) {
  return Timestamp(
      std::chrono::duration_cast<Timestamp::duration>(std::chrono::milliseconds(millis)));
}

// A code outside the canonical range is reported as kUnknown rather than trusted.
StatusCode CodeFromWire(int code) {
  if (code < 0 || code > static_cast<int>(StatusCode::kUnauthenticated))
    return StatusCode::kUnknown;
  return static_cast<StatusCode>(code);
}

// The fields of a delivered or published message that are not strings.
void ScalarsFromProto(const v1::Message& in, Message& out) {
  if (in.deliver_at_unix_ms() != 0) out.deliver_at = FromUnixMillis(in.deliver_at_unix_ms());
  if (in.born_at_unix_ms() != 0) out.born_at = FromUnixMillis(in.born_at_unix_ms());
  out.delivery_attempt = in.delivery_attempt();
  out.partition = in.partition();
  out.offset = in.offset();
  if (in.stored_at_unix_ms() != 0) out.stored_at = FromUnixMillis(in.stored_at_unix_ms());
}

}  // namespace

void AppendField(int field_number, const google::protobuf::MessageLite& message, std::string& out) {
  const size_t size = message.ByteSizeLong();
  // The longest varint encoding of a 32-bit value is 5 bytes; wire type 2 is length-delimited.
  uint8_t prefix[10];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(field_number << 3) | 2, prefix);
  end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size),
                                                                      end);
  out.append(reinterpret_cast<const char*>(prefix), static_cast<size_t>(end - prefix));
  const size_t offset = out.size();
  out.resize(offset + size);
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + offset));
}

grpc::ByteBuffer ToByteBuffer(std::string bytes) {
  // The slice owns the bytes from here on: gRPC frees them when it no longer needs them.
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* data) { delete static_cast<std::string*>(data); },
      owned);
  return grpc::ByteBuffer(&slice, 1);
}

RepeatedFieldReader::RepeatedFieldReader(grpc::ByteBuffer& bytes, int field_number)
    : reader_(&bytes), input_(&reader_), tag_(static_cast<uint32_t>(field_number << 3) | 2) {}

bool RepeatedFieldReader::Next(google::protobuf::MessageLite& entry) {
  if (failed_) return false;
  while (true) {
    const uint32_t tag = input_.ReadTag();
    if (tag == 0) return false;  // the end (a broken tag is caught by the caller's count)
    if (tag != tag_) {
      if (!google::protobuf::internal::WireFormatLite::SkipField(&input_, tag)) {
        failed_ = true;
        return false;
      }
      continue;
    }
    uint32_t length = 0;
    if (!input_.ReadVarint32(&length)) {
      failed_ = true;
      return false;
    }
    const auto limit = input_.PushLimit(static_cast<int>(length));
    entry.Clear();
    failed_ = !entry.MergePartialFromCodedStream(&input_) || !input_.ConsumedEntireMessage();
    input_.PopLimit(limit);
    return !failed_;
  }
}

grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return OkStatus();
  return Status(CodeFromWire(status.error_code()), status.error_message());
}

void ToProto(const Status& status, v1::Status* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(status.message());
}

Status FromProto(const v1::Status& status) {
  if (status.code() == 0) return OkStatus();
  return Status(CodeFromWire(status.code()), status.message());
}

namespace {

// Copies the fields of a const Message, moves those of a Message&&. Empty strings are not set:
// a proto3 string reads empty either way, and setting one still allocates its string.
template <typename MessageRef>
void ToProtoImpl(MessageRef&& message, v1::Message* out) {
  constexpr bool kMove = !std::is_lvalue_reference_v<MessageRef>;
  auto pass = [](auto& field) -> decltype(auto) {
    if constexpr (kMove) {
      return std::move(field);
    } else {
      return std::as_const(field);
    }
  };
  if (!message.key.empty()) out->set_key(pass(message.key));
  if (!message.tag.empty()) out->set_tag(pass(message.tag));
  if (!message.properties.empty()) {
    auto& properties = *out->mutable_properties();
    for (auto& [name, value] : message.properties) properties[name] = pass(value);
  }
  if (!message.body.empty()) out->set_body(pass(message.body));
  if (message.deliver_at) out->set_deliver_at_unix_ms(ToUnixMillis(*message.deliver_at));
  if (!message.message_id.empty()) out->set_message_id(pass(message.message_id));
  if (message.born_at != Timestamp{}) out->set_born_at_unix_ms(ToUnixMillis(message.born_at));
  if (!message.topic.empty()) out->set_topic(pass(message.topic));
  out->set_delivery_attempt(message.delivery_attempt);
  if (!message.cluster.empty()) out->set_cluster(pass(message.cluster));
  out->set_partition(message.partition);
  out->set_offset(message.offset);
  if (message.stored_at != Timestamp{}) out->set_stored_at_unix_ms(ToUnixMillis(message.stored_at));
}

}  // namespace

void ToProto(const Message& message, v1::Message* out) { ToProtoImpl(message, out); }
void ToProto(Message&& message, v1::Message* out) { ToProtoImpl(std::move(message), out); }

Message FromProto(const v1::Message& in) {
  Message out{.topic = in.topic(),
              .key = in.key(),
              .tag = in.tag(),
              .properties = Properties(in.properties().begin(), in.properties().end()),
              .body = in.body(),
              .message_id = in.message_id(),
              .cluster = in.cluster()};
  ScalarsFromProto(in, out);
  return out;
}

void FromProto(const v1::Message& in, Message* out) {
  out->topic = in.topic();
  out->key = in.key();
  out->tag = in.tag();
  out->properties.clear();
  out->properties.insert(in.properties().begin(), in.properties().end());
  out->body = in.body();
  out->deliver_at.reset();
  out->message_id = in.message_id();
  out->born_at = Timestamp{};
  out->cluster = in.cluster();
  out->stored_at = Timestamp{};
  ScalarsFromProto(in, *out);
}

// The strings of a v1::Message are std::strings also on an arena: moving takes their buffers.
Message FromProto(v1::Message&& in) {
  Message out{.topic = std::move(*in.mutable_topic()),
              .key = std::move(*in.mutable_key()),
              .tag = std::move(*in.mutable_tag()),
              .body = std::move(*in.mutable_body()),
              .message_id = std::move(*in.mutable_message_id()),
              .cluster = std::move(*in.mutable_cluster())};
  for (auto& [name, value] : *in.mutable_properties()) {
    out.properties.emplace(name, std::move(value));
  }
  ScalarsFromProto(in, out);
  return out;
}

void ToProto(const Result<SendReceipt>& receipt, v1::PublishResult* out) {
  if (!receipt.ok()) {
    ToProto(receipt.status(), out->mutable_status());
    return;
  }
  out->mutable_status()->set_code(0);
  out->set_message_id(receipt->message_id);
  out->set_cluster(receipt->cluster);
  out->set_partition(receipt->partition);
  out->set_offset(receipt->offset);
}

Result<SendReceipt> FromProto(const v1::PublishResult& result) {
  Status status = FromProto(result.status());
  if (!status.ok()) return status;
  return SendReceipt{.message_id = result.message_id(),
                     .cluster = result.cluster(),
                     .partition = result.partition(),
                     .offset = result.offset()};
}

Result<SendReceipt> FromProto(v1::PublishResult&& result) {
  Status status = FromProto(result.status());
  if (!status.ok()) return status;
  return SendReceipt{.message_id = std::move(*result.mutable_message_id()),
                     .cluster = std::move(*result.mutable_cluster()),
                     .partition = result.partition(),
                     .offset = result.offset()};
}

void ToProto(const ResetTarget& target, v1::ResetOffsetsRequest* out) {
  switch (target.kind) {
    case ResetTarget::Kind::kEarliest:
      out->set_target(v1::ResetOffsetsRequest::EARLIEST);
      break;
    case ResetTarget::Kind::kLatest:
      out->set_target(v1::ResetOffsetsRequest::LATEST);
      break;
    case ResetTarget::Kind::kTimestamp:
      out->set_target(v1::ResetOffsetsRequest::TIMESTAMP);
      out->set_timestamp_unix_ms(ToUnixMillis(target.timestamp));
      break;
  }
}

Result<ResetTarget> FromProto(const v1::ResetOffsetsRequest& request) {
  switch (request.target()) {
    case v1::ResetOffsetsRequest::EARLIEST:
      return ResetTarget{.kind = ResetTarget::Kind::kEarliest};
    case v1::ResetOffsetsRequest::LATEST:
      return ResetTarget{.kind = ResetTarget::Kind::kLatest};
    case v1::ResetOffsetsRequest::TIMESTAMP:
      return ResetTarget{.kind = ResetTarget::Kind::kTimestamp,
                         .timestamp = FromUnixMillis(request.timestamp_unix_ms())};
    default:
      return InvalidArgumentError("ResetOffsetsRequest.target: unknown target " +
                                  std::to_string(request.target()));
  }
}

void ToProto(const TopicRoute& route, v1::GetRouteResponse* out) {
  out->set_topic(route.topic);
  out->set_environment(route.environment);
  out->set_cluster(route.cluster);
  out->set_matched_by(route.matched_by);
  v1::Capabilities* capabilities = out->mutable_capabilities();
  capabilities->set_backend(route.capabilities.backend);
  capabilities->set_timer_messages(route.capabilities.timer_messages);
  capabilities->set_transactions(route.capabilities.transactions);
  capabilities->set_broadcast(route.capabilities.broadcast);
  capabilities->set_server_side_tag_filter(route.capabilities.server_side_tag_filter);
  capabilities->set_replay(route.capabilities.replay);
}

TopicRoute FromProto(const v1::GetRouteResponse& route) {
  const v1::Capabilities& capabilities = route.capabilities();
  return TopicRoute{.topic = route.topic(),
                    .environment = route.environment(),
                    .cluster = route.cluster(),
                    .matched_by = route.matched_by(),
                    .capabilities = Capabilities{
                        .backend = capabilities.backend(),
                        .timer_messages = capabilities.timer_messages(),
                        .transactions = capabilities.transactions(),
                        .broadcast = capabilities.broadcast(),
                        .server_side_tag_filter = capabilities.server_side_tag_filter(),
                        .replay = capabilities.replay(),
                    }};
}

Result<SubscribeOptions> FromProto(const v1::Start& start) {
  SubscribeOptions options;
  switch (start.mode()) {
    case v1::CLUSTERING:
      options.mode = SubscriptionMode::kClustering;
      break;
    case v1::BROADCAST:
      options.mode = SubscriptionMode::kBroadcast;
      break;
    default:
      return InvalidArgumentError("Start.mode: unknown subscription mode " +
                                  std::to_string(start.mode()));
  }
  switch (start.start_from()) {
    case v1::EARLIEST:
      options.start_from = StartPosition::kEarliest;
      break;
    case v1::LATEST:
      options.start_from = StartPosition::kLatest;
      break;
    default:
      return InvalidArgumentError("Start.start_from: unknown start position " +
                                  std::to_string(start.start_from()));
  }
  options.ordered = start.ordered();
  options.tag_filter = start.tag_filter().empty() ? "*" : start.tag_filter();
  if (start.max_attempts() < 0) {
    return InvalidArgumentError("Start.max_attempts must not be negative, got " +
                                std::to_string(start.max_attempts()));
  }
  options.max_attempts = start.max_attempts();
  if (start.retry_backoff_ms() < 0 || start.retry_backoff_max_ms() < 0) {
    return InvalidArgumentError(
        "Start.retry_backoff_ms and retry_backoff_max_ms must not be "
        "negative");
  }
  options.retry_backoff = std::chrono::milliseconds(start.retry_backoff_ms());
  options.retry_backoff_max = std::chrono::milliseconds(start.retry_backoff_max_ms());
  options.instance_id = start.instance_id();
  return options;
}

void ToProto(const std::string& topic, const std::string& group, const SubscribeOptions& options,
             v1::Start* out) {
  out->set_topic(topic);
  out->set_group(group);
  out->set_mode(options.mode == SubscriptionMode::kBroadcast ? v1::BROADCAST : v1::CLUSTERING);
  out->set_ordered(options.ordered);
  out->set_tag_filter(options.tag_filter);
  out->set_start_from(options.start_from == StartPosition::kLatest ? v1::LATEST : v1::EARLIEST);
  out->set_max_attempts(options.max_attempts);
  out->set_retry_backoff_ms(options.retry_backoff.count());
  out->set_retry_backoff_max_ms(options.retry_backoff_max.count());
  out->set_instance_id(options.instance_id);
}

void ToProto(const MigrationProgress& progress, v1::MigrationProgress* out) {
  out->set_topic(progress.topic);
  out->set_phase(progress.phase);
  out->set_generation(progress.generation);
  out->set_producers(progress.producers);
  out->set_producers_settled(progress.producers_settled);
  out->set_shadow_sent(progress.shadow_sent);
  out->set_shadow_failed(progress.shadow_failed);
  out->set_last_shadow_error(progress.last_shadow_error);
  for (const std::string& line : progress.draining) out->add_draining(line);
}

MigrationProgress FromProto(const v1::MigrationProgress& progress) {
  return MigrationProgress{.topic = progress.topic(),
                           .phase = progress.phase(),
                           .generation = progress.generation(),
                           .producers = progress.producers(),
                           .producers_settled = progress.producers_settled(),
                           .shadow_sent = progress.shadow_sent(),
                           .shadow_failed = progress.shadow_failed(),
                           .last_shadow_error = progress.last_shadow_error(),
                           .draining = {progress.draining().begin(), progress.draining().end()}};
}

void ToProto(const RoutingState& state, v1::RoutingState* out) {
  out->set_version(state.version);
  out->set_source(state.source);
  out->set_applied(state.applied);
  out->set_rejected(state.rejected);
  out->set_last_rejection(state.last_rejection);
  out->set_pending(state.pending);
  out->set_client(state.client);
  for (const MigrationProgress& progress : state.migrations) {
    ToProto(progress, out->add_migrations());
  }
}

RoutingState FromProto(const v1::RoutingState& state) {
  RoutingState out{.client = state.client(),
                   .version = state.version(),
                   .source = state.source(),
                   .applied = state.applied(),
                   .rejected = state.rejected(),
                   .last_rejection = state.last_rejection(),
                   .pending = state.pending()};
  for (const v1::MigrationProgress& migration : state.migrations()) {
    out.migrations.push_back(FromProto(migration));
  }
  return out;
}

}  // namespace msgsdk::sidecar
