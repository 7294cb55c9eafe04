#pragma once

/// @file
/// Status and Result: how every msgsdk operation reports success or failure.
/// No exception crosses the msgsdk API; failures come back as a Status whose code
/// is one of the canonical gRPC codes, so the sidecar maps them one to one.

#include <cstdint>
#include <string>
#include <string_view>

namespace msgsdk {

/// The canonical gRPC status codes (same numbers as grpc::StatusCode).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
  /// A backend lacks a capability (timer messages, transactions, ...). Same code as
  /// kUnimplemented on the wire; the message names the backend and the capability.
  kUnsupported = kUnimplemented,
};

/// "OK", "INVALID_ARGUMENT", ... as gRPC spells them.
std::string_view StatusCodeName(StatusCode code);

/// The outcome of an operation: a code and a message that says what was wrong and where.
/// Thread-safety: a value type; const methods may be called concurrently.
class [[nodiscard]] Status {
 public:
  /// An OK status.
  Status() = default;
  Status(StatusCode code, std::string message);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// True when the same call may succeed if retried later unchanged (the peer was
  /// unavailable, a deadline passed, a resource was momentarily exhausted, a conflict aborted).
  bool IsRetriable() const;

  /// "INVALID_ARGUMENT: topic 'a b': ...", or "OK".
  std::string ToString() const;

  /// A copy with `context + ": "` put before the message (no-op for OK).
  Status WithContext(std::string_view context) const;

  /// Explicitly ignores a status (for the rare place where the outcome truly does not matter).
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return {}; }
Status CancelledError(std::string message);
Status UnknownError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status UnsupportedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);

}  // namespace msgsdk
