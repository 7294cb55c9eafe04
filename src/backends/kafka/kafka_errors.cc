#include "backends/kafka/kafka_errors.h"

#include <string>

#include <librdkafka/rdkafka.h>

namespace msgsdk::kafka {
namespace {

StatusCode CodeFor(RdKafka::ErrorCode code) {
  using E = RdKafka::ErrorCode;
  switch (code) {
    case E::ERR_NO_ERROR:
      return StatusCode::kOk;

    // The record was not acknowledged in time, or no broker could be reached: the cluster is
    // (for now) unavailable; sending again later may succeed.
    case E::ERR__MSG_TIMED_OUT:
    case E::ERR__TRANSPORT:
    case E::ERR__ALL_BROKERS_DOWN:
    case E::ERR__RESOLVE:
    case E::ERR__NODE_UPDATE:
    case E::ERR__WAIT_COORD:
    case E::ERR__ISR_INSUFF:
    case E::ERR__UNKNOWN_BROKER:
    case E::ERR__RETRY:
    case E::ERR_LEADER_NOT_AVAILABLE:
    case E::ERR_NOT_LEADER_FOR_PARTITION:
    case E::ERR_BROKER_NOT_AVAILABLE:
    case E::ERR_REPLICA_NOT_AVAILABLE:
    case E::ERR_NETWORK_EXCEPTION:
    case E::ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case E::ERR_COORDINATOR_NOT_AVAILABLE:
    case E::ERR_NOT_COORDINATOR:
    case E::ERR_NOT_ENOUGH_REPLICAS:
    case E::ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case E::ERR_NOT_CONTROLLER:
    case E::ERR_KAFKA_STORAGE_ERROR:
    case E::ERR_FENCED_LEADER_EPOCH:
    case E::ERR_UNKNOWN_LEADER_EPOCH:
    case E::ERR_OFFSET_NOT_AVAILABLE:
    case E::ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case E::ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
    case E::ERR_LISTENER_NOT_FOUND:
    case E::ERR_STALE_CTRL_EPOCH:
    case E::ERR_STALE_BROKER_EPOCH:
    case E::ERR_REASSIGNMENT_IN_PROGRESS:
    case E::ERR_FETCH_SESSION_ID_NOT_FOUND:
    case E::ERR_INVALID_FETCH_SESSION_EPOCH:
    case E::ERR_UNSTABLE_OFFSET_COMMIT:
      return StatusCode::kUnavailable;

    case E::ERR__TIMED_OUT:
    case E::ERR__TIMED_OUT_QUEUE:
    case E::ERR_REQUEST_TIMED_OUT:
      return StatusCode::kDeadlineExceeded;

    case E::ERR_UNKNOWN_TOPIC_OR_PART:
    case E::ERR__UNKNOWN_TOPIC:
    case E::ERR__UNKNOWN_PARTITION:
    case E::ERR__UNKNOWN_GROUP:
    case E::ERR__NOENT:
    case E::ERR__NO_OFFSET:
    case E::ERR_GROUP_ID_NOT_FOUND:
    case E::ERR_LOG_DIR_NOT_FOUND:
    case E::ERR_RESOURCE_NOT_FOUND:
    case E::ERR_DELEGATION_TOKEN_NOT_FOUND:
      return StatusCode::kNotFound;

    case E::ERR_TOPIC_ALREADY_EXISTS:
    case E::ERR_DUPLICATE_RESOURCE:
    case E::ERR__EXISTING_SUBSCRIPTION:
      return StatusCode::kAlreadyExists;

    // Bad input: a record too large, an invalid name or setting. Retrying unchanged won't help.
    case E::ERR_MSG_SIZE_TOO_LARGE:
    case E::ERR_INVALID_MSG_SIZE:
    case E::ERR_RECORD_LIST_TOO_LARGE:
    case E::ERR_INVALID_RECORD:
    case E::ERR_INVALID_TIMESTAMP:
    case E::ERR_TOPIC_EXCEPTION:
    case E::ERR_INVALID_REQUIRED_ACKS:
    case E::ERR_INVALID_GROUP_ID:
    case E::ERR_INVALID_SESSION_TIMEOUT:
    case E::ERR_INVALID_COMMIT_OFFSET_SIZE:
    case E::ERR_OFFSET_METADATA_TOO_LARGE:
    case E::ERR_INVALID_PARTITIONS:
    case E::ERR_INVALID_REPLICATION_FACTOR:
    case E::ERR_INVALID_REPLICA_ASSIGNMENT:
    case E::ERR_INVALID_CONFIG:
    case E::ERR_INVALID_REQUEST:
    case E::ERR_POLICY_VIOLATION:
    case E::ERR_INVALID_TRANSACTION_TIMEOUT:
    case E::ERR_INVALID_PRINCIPAL_TYPE:
    case E::ERR_INCONSISTENT_GROUP_PROTOCOL:
    case E::ERR__INVALID_ARG:
    case E::ERR__INVALID_TYPE:
    case E::ERR__KEY_SERIALIZATION:
    case E::ERR__VALUE_SERIALIZATION:
    case E::ERR__UNKNOWN_PROTOCOL:
      return StatusCode::kInvalidArgument;

    case E::ERR_TOPIC_AUTHORIZATION_FAILED:
    case E::ERR_GROUP_AUTHORIZATION_FAILED:
    case E::ERR_CLUSTER_AUTHORIZATION_FAILED:
    case E::ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case E::ERR_DELEGATION_TOKEN_AUTHORIZATION_FAILED:
    case E::ERR_DELEGATION_TOKEN_AUTH_DISABLED:
    case E::ERR_DELEGATION_TOKEN_OWNER_MISMATCH:
    case E::ERR_DELEGATION_TOKEN_REQUEST_NOT_ALLOWED:
    case E::ERR_SECURITY_DISABLED:
    case E::ERR_TOPIC_DELETION_DISABLED:
      return StatusCode::kPermissionDenied;

    case E::ERR__AUTHENTICATION:
    case E::ERR__SSL:
    case E::ERR_SASL_AUTHENTICATION_FAILED:
    case E::ERR_UNSUPPORTED_SASL_MECHANISM:
    case E::ERR_ILLEGAL_SASL_STATE:
    case E::ERR_DELEGATION_TOKEN_EXPIRED:
    case E::ERR_UNACCEPTABLE_CREDENTIAL:
    case E::ERR_PRINCIPAL_DESERIALIZATION_FAILURE:
      return StatusCode::kUnauthenticated;

    case E::ERR__QUEUE_FULL:
    case E::ERR_THROTTLING_QUOTA_EXCEEDED:
    case E::ERR_GROUP_MAX_SIZE_REACHED:
    case E::ERR__CRIT_SYS_RESOURCE:
      return StatusCode::kResourceExhausted;

    // A group generation or producer epoch moved under us (rebalance, fencing, idempotence
    // sequence trouble): the operation lost a race and may be retried.
    case E::ERR_ILLEGAL_GENERATION:
    case E::ERR_UNKNOWN_MEMBER_ID:
    case E::ERR_REBALANCE_IN_PROGRESS:
    case E::ERR_MEMBER_ID_REQUIRED:
    case E::ERR_FENCED_INSTANCE_ID:
    case E::ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case E::ERR_DUPLICATE_SEQUENCE_NUMBER:
    case E::ERR_INVALID_PRODUCER_EPOCH:
    case E::ERR_UNKNOWN_PRODUCER_ID:
    case E::ERR_INVALID_PRODUCER_ID_MAPPING:
    case E::ERR_CONCURRENT_TRANSACTIONS:
    case E::ERR_TRANSACTION_COORDINATOR_FENCED:
    case E::ERR_INVALID_TXN_STATE:
    case E::ERR__ASSIGNMENT_LOST:
    case E::ERR__OUTDATED:
    case E::ERR__MAX_POLL_EXCEEDED:
      return StatusCode::kAborted;

    case E::ERR__STATE:
    case E::ERR__PREV_IN_PROGRESS:
    case E::ERR__IN_PROGRESS:
    case E::ERR__CONFLICT:
    case E::ERR__NOT_CONFIGURED:
    case E::ERR__FENCED:
    case E::ERR__READ_ONLY:
    case E::ERR_NON_EMPTY_GROUP:
    case E::ERR_GROUP_SUBSCRIBED_TO_TOPIC:
    case E::ERR_OPERATION_NOT_ATTEMPTED:
    case E::ERR_PRODUCER_FENCED:
      return StatusCode::kFailedPrecondition;

    case E::ERR_OFFSET_OUT_OF_RANGE:
    case E::ERR__AUTO_OFFSET_RESET:
    case E::ERR__PARTITION_EOF:
    case E::ERR__UNDERFLOW:
      return StatusCode::kOutOfRange;

    case E::ERR__UNSUPPORTED_FEATURE:
    case E::ERR__NOT_IMPLEMENTED:
    case E::ERR_UNSUPPORTED_VERSION:
    case E::ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case E::ERR_UNSUPPORTED_COMPRESSION_TYPE:
      return StatusCode::kUnimplemented;

    // Sends cancelled because the producer was closed before they completed.
    case E::ERR__PURGE_QUEUE:
    case E::ERR__PURGE_INFLIGHT:
    case E::ERR__DESTROY:
    case E::ERR__INTR:
      return StatusCode::kCancelled;

    case E::ERR__BAD_MSG:
    case E::ERR__BAD_COMPRESSION:
    case E::ERR_INVALID_MSG:  // a record failed its CRC check
    case E::ERR__KEY_DESERIALIZATION:
    case E::ERR__VALUE_DESERIALIZATION:
    case E::ERR__GAPLESS_GUARANTEE:
    case E::ERR__INCONSISTENT:
      return StatusCode::kDataLoss;

    // A fatal error leaves the librdkafka instance unusable (idempotence broken for good).
    case E::ERR__FATAL:
    case E::ERR__FS:
    case E::ERR__FAIL:
      return StatusCode::kInternal;

    default:
      return StatusCode::kUnknown;
  }
}

}  // namespace

Status KafkaStatus(RdKafka::ErrorCode code, std::string_view context, std::string_view detail) {
  const StatusCode status_code = CodeFor(code);
  if (status_code == StatusCode::kOk) return OkStatus();
  std::string message(context);
  if (!message.empty()) message += ": ";
  if (!detail.empty()) {
    message += detail;
  } else {
    message += RdKafka::err2str(code);
  }
  message += " (";
  message += rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code));
  message += ")";
  return Status(status_code, std::move(message));
}

Status KafkaStatus(RdKafka::ErrorCode code, std::string_view context) {
  return KafkaStatus(code, context, {});
}

}  // namespace msgsdk::kafka
