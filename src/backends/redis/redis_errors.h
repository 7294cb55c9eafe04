#pragma once

// Every failure of hiredis or of the Redis server becomes a Status in exactly one place,
// MapRedisError, so that the codes and wording stay consistent across the backend.

#include <string_view>

#include "msgsdk/status.h"

namespace msgsdk::redis {

// What was being done when a failure happened; every field may be empty.
struct ErrorScope {
  // Routing-table name of the cluster ("redis-main").
  std::string_view cluster;
  // "127.0.0.1:6379" or "unix:/run/redis.sock".
  std::string_view endpoint;
  // The command name ("XADD"), or "CONNECT" while establishing a connection.
  std::string_view command;
  // The key the command was about (a stream key), if any.
  std::string_view key;
  // The ACL user in use (for authentication errors).
  std::string_view user;
};

// One raw failure: either a connection-level error of hiredis (context_error != 0, with
// the errno seen right after the failing call) or an error reply of the server
// (context_error == 0, `text` is the reply such as "WRONGTYPE Operation against ...").
struct RawRedisError {
  int context_error = 0;
  int sys_errno = 0;
  std::string_view text;
};

// The one mapping from hiredis/Redis failures to Status:
//   connection refused, reset, closed, unreachable          -> kUnavailable
//   connect timeout                                          -> kUnavailable
//   command timeout                                          -> kDeadlineExceeded
//   NOAUTH, WRONGPASS, AUTH without a server password        -> kUnauthenticated
//   NOPERM (ACL)                                             -> kPermissionDenied
//   WRONGTYPE                                                -> kFailedPrecondition naming the key
//   BUSYGROUP                                                -> kAlreadyExists
//   NOGROUP                                                  -> kNotFound
//   LOADING, BUSY, MASTERDOWN, TRYAGAIN, READONLY, MISCONF   -> kUnavailable
//   OOM                                                      -> kResourceExhausted
//   MOVED, ASK, CROSSSLOT, CLUSTERDOWN (cluster mode)        -> kFailedPrecondition
//   unknown command                                          -> kUnimplemented (server too old)
//   DB index out of range                                    -> kInvalidArgument
//   anything else                                            -> kInternal
Status MapRedisError(const RawRedisError& error, const ErrorScope& scope);

}  // namespace msgsdk::redis
