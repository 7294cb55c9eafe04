#include "backends/redis/redis_errors.h"

#include <cerrno>
#include <cstring>
#include <string>

#include <hiredis/hiredis.h>

namespace msgsdk::redis {
namespace {

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// "redis cluster 'main' at 127.0.0.1:6379"
std::string Where(const ErrorScope& scope) {
  std::string out = "redis";
  if (!scope.cluster.empty()) {
    out += " cluster '";
    out += scope.cluster;
    out += "'";
  }
  if (!scope.endpoint.empty()) {
    out += " at ";
    out += scope.endpoint;
  }
  return out;
}

// " (XADD on key 'msgsdk:orders:0')"
std::string What(const ErrorScope& scope) {
  if (scope.command.empty()) return {};
  std::string out = " (";
  out += scope.command;
  if (!scope.key.empty()) {
    out += " on key '";
    out += scope.key;
    out += "'";
  }
  out += ")";
  return out;
}

std::string UserName(const ErrorScope& scope) {
  return scope.user.empty() ? std::string("default") : std::string(scope.user);
}

// hiredis formats errno into its error text at the moment of failure, while errno itself
// may have been overwritten by later cleanup: the text is the better witness.
int ErrnoOf(const RawRedisError& error) {
  const std::string_view text = error.text;
  if (Contains(text, "refused")) return ECONNREFUSED;
  if (Contains(text, "timed out")) return ETIMEDOUT;
  if (Contains(text, "Resource temporarily unavailable")) return EAGAIN;
  if (Contains(text, "reset by peer")) return ECONNRESET;
  if (Contains(text, "Broken pipe")) return EPIPE;
  if (Contains(text, "No such file")) return ENOENT;
  return error.sys_errno;
}

Status MapConnectionError(const RawRedisError& error, const ErrorScope& scope) {
  const bool connecting = scope.command == "CONNECT";
  const std::string where = Where(scope);
  const std::string detail =
      error.text.empty() ? std::string("unknown error") : std::string(error.text);
  switch (error.context_error) {
    case REDIS_ERR_EOF:
      return UnavailableError(where + ": the server closed the connection" + What(scope));
    case REDIS_ERR_PROTOCOL:
      return InternalError(
          where + ": protocol error" + What(scope) + ": " + detail +
          (connecting ? std::string() : std::string(" (is the endpoint a Redis server?)")));
    case REDIS_ERR_OOM:
      return ResourceExhaustedError(where + ": out of memory in the client" + What(scope));
    default:
      break;
  }
  switch (ErrnoOf(error)) {
    case ECONNREFUSED:
      return UnavailableError("cannot connect to " + where +
                              ": connection refused (is redis-server running there?)");
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ETIMEDOUT:
    case EINPROGRESS:
      if (connecting) {
        return UnavailableError("cannot connect to " + where +
                                ": no answer within connect_timeout_ms");
      }
      return DeadlineExceededError(where + ": no reply within command_timeout_ms" + What(scope));
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ENOTCONN:
    case ESHUTDOWN:
      return UnavailableError(where + ": connection lost" + What(scope) + ": " + detail);
    case ENOENT:
      if (connecting) {
        return UnavailableError("cannot connect to " + where + ": no such socket file");
      }
      break;
    default:
      break;
  }
  if (connecting) return UnavailableError("cannot connect to " + where + ": " + detail);
  return UnavailableError(where + ": connection error" + What(scope) + ": " + detail);
}

Status MapReplyError(const RawRedisError& error, const ErrorScope& scope) {
  const std::string_view text = error.text;
  const std::string where = Where(scope);
  const std::string reply(text);
  if (StartsWith(text, "NOAUTH")) {
    return UnauthenticatedError(where +
                                " requires authentication: set `password` (and `user` "
                                "for an ACL user) in the cluster entry");
  }
  if (StartsWith(text, "WRONGPASS") || StartsWith(text, "ERR invalid password") ||
      StartsWith(text, "ERR invalid username-password")) {
    return UnauthenticatedError(where + " rejected the credentials of user '" + UserName(scope) +
                                "': wrong `password`, unknown `user`, or the user is disabled");
  }
  if (StartsWith(text, "ERR AUTH") || StartsWith(text, "ERR Client sent AUTH")) {
    return UnauthenticatedError(where +
                                " has no password configured but the cluster entry sets "
                                "`password`: remove it or configure requirepass: " +
                                reply);
  }
  if (StartsWith(text, "NOPERM")) {
    return PermissionDeniedError(where + ": ACL user '" + UserName(scope) + "' is not allowed" +
                                 What(scope) + ": " + reply);
  }
  if (StartsWith(text, "WRONGTYPE")) {
    return FailedPreconditionError(
        where + ": key '" + std::string(scope.key) + "' holds a value that is not a stream" +
        What(scope) +
        "; another application uses this key: remove it or choose another "
        "`key_prefix`");
  }
  if (StartsWith(text, "BUSYGROUP")) {
    return AlreadyExistsError(where + ": consumer group already exists" + What(scope));
  }
  if (StartsWith(text, "NOGROUP")) {
    return NotFoundError(where + ": the consumer group or the stream does not exist" + What(scope) +
                         ": " + reply);
  }
  if (StartsWith(text, "LOADING")) {
    return UnavailableError(where + " is loading its dataset into memory" + What(scope));
  }
  if (StartsWith(text, "BUSY") || StartsWith(text, "MASTERDOWN") || StartsWith(text, "TRYAGAIN")) {
    return UnavailableError(where + " is busy" + What(scope) + ": " + reply);
  }
  if (StartsWith(text, "READONLY")) {
    return UnavailableError(where + " is a read-only replica" + What(scope) +
                            ": point `endpoint` at the primary or list it in `endpoints`");
  }
  if (StartsWith(text, "MISCONF")) {
    return UnavailableError(where + " refuses writes because it cannot persist" + What(scope) +
                            ": " + reply);
  }
  if (StartsWith(text, "OOM")) {
    return ResourceExhaustedError(where + " is out of memory (maxmemory reached)" + What(scope) +
                                  ": set `maxlen` to trim streams or raise maxmemory");
  }
  if (StartsWith(text, "MOVED") || StartsWith(text, "ASK") || StartsWith(text, "CROSSSLOT") ||
      StartsWith(text, "CLUSTERDOWN")) {
    return FailedPreconditionError(where +
                                   " runs in cluster mode, which this backend does not "
                                   "support: point `endpoint` at a standalone server (" +
                                   reply + ")");
  }
  if (StartsWith(text, "ERR unknown command") || Contains(text, "unknown subcommand")) {
    return UnimplementedError(where + " does not know a command this backend needs" + What(scope) +
                              " (Redis >= 6.2 is required): " + reply);
  }
  if (Contains(text, "DB index is out of range") || Contains(text, "invalid DB index")) {
    return InvalidArgumentError(where + ": `database` does not exist on the server: " + reply);
  }
  return InternalError(where + " answered with an error" + What(scope) + ": " + reply);
}

}  // namespace

Status MapRedisError(const RawRedisError& error, const ErrorScope& scope) {
  if (error.context_error != 0) return MapConnectionError(error, scope);
  return MapReplyError(error, scope);
}

}  // namespace msgsdk::redis
