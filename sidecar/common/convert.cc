#include "sidecar/common/convert.h"

#include <chrono>
#include <string>
#include <utility>

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

template <typename ProtoMessage>
Message FromProtoImpl(ProtoMessage&& in) {
  Message out;
  out.key = std::move(*in.mutable_key());
  out.tag = std::move(*in.mutable_tag());
  for (auto& [name, value] : *in.mutable_properties())
    out.properties.emplace(name, std::move(value));
  out.body = std::move(*in.mutable_body());
  if (in.deliver_at_unix_ms() != 0) out.deliver_at = FromUnixMillis(in.deliver_at_unix_ms());
  out.message_id = std::move(*in.mutable_message_id());
  if (in.born_at_unix_ms() != 0) out.born_at = FromUnixMillis(in.born_at_unix_ms());
  out.topic = std::move(*in.mutable_topic());
  out.delivery_attempt = in.delivery_attempt();
  out.cluster = std::move(*in.mutable_cluster());
  out.partition = in.partition();
  out.offset = in.offset();
  if (in.stored_at_unix_ms() != 0) out.stored_at = FromUnixMillis(in.stored_at_unix_ms());
  return out;
}

}  // namespace

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

void ToProto(const Message& message, v1::Message* out) {
  out->set_key(message.key);
  out->set_tag(message.tag);
  auto& properties = *out->mutable_properties();
  for (const auto& [name, value] : message.properties) properties[name] = value;
  out->set_body(message.body);
  if (message.deliver_at) out->set_deliver_at_unix_ms(ToUnixMillis(*message.deliver_at));
  out->set_message_id(message.message_id);
  if (message.born_at != Timestamp{}) out->set_born_at_unix_ms(ToUnixMillis(message.born_at));
  out->set_topic(message.topic);
  out->set_delivery_attempt(message.delivery_attempt);
  out->set_cluster(message.cluster);
  out->set_partition(message.partition);
  out->set_offset(message.offset);
  if (message.stored_at != Timestamp{}) out->set_stored_at_unix_ms(ToUnixMillis(message.stored_at));
}

Message FromProto(const v1::Message& message) { return FromProtoImpl(v1::Message(message)); }
Message FromProto(v1::Message&& message) { return FromProtoImpl(std::move(message)); }

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
