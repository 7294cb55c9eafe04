#include "backends/redis/redis_connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <ctime>

#include <hiredis/hiredis.h>

#include "backends/redis/redis_codec.h"

namespace msgsdk::redis {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

void ReplyDeleter::operator()(redisReply* reply) const {
  if (reply != nullptr) freeReplyObject(reply);
}

ConnectionSettings SettingsFromOptions(const RedisOptions& options, std::string client_name) {
  ConnectionSettings settings;
  settings.cluster = options.cluster;
  settings.endpoints = options.endpoints;
  settings.user = options.user;
  settings.password = options.password;
  settings.database = options.database;
  settings.connect_timeout = options.connect_timeout;
  settings.command_timeout = options.command_timeout;
  settings.client_name = std::move(client_name);
  return settings;
}

Connection::Connection(ConnectionSettings settings, std::chrono::milliseconds extra_read_timeout)
    : settings_(std::move(settings)), extra_read_timeout_(extra_read_timeout) {}

Connection::~Connection() { Disconnect(); }

std::string Connection::endpoint() const {
  if (settings_.endpoints.empty()) return {};
  return settings_.endpoints[endpoint_index_ % settings_.endpoints.size()].ToString();
}

Status Connection::MapError(const RawRedisError& error, std::string_view command,
                            std::string_view key) const {
  const std::string where = endpoint();
  ErrorScope scope;
  scope.cluster = settings_.cluster;
  scope.endpoint = where;
  scope.command = command;
  scope.key = key;
  scope.user = settings_.user;
  return MapRedisError(error, scope);
}

void Connection::Disconnect() {
  if (context_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    fd_ = -1;
  }
  redisFree(context_);
  context_ = nullptr;
}

void Connection::Interrupt() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  interrupted_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Status Connection::ContextFailure(std::string_view command, std::string_view key) {
  const int saved_errno = errno;
  RawRedisError error;
  error.context_error = context_ != nullptr ? context_->err : REDIS_ERR_OTHER;
  error.sys_errno = saved_errno;
  const std::string text = context_ != nullptr ? std::string(context_->errstr) : std::string();
  error.text = text;
  Status status = MapError(error, command, key);
  Disconnect();
  return status;
}

Status Connection::EnsureConnected() {
  if (context_ != nullptr) return OkStatus();
  if (settings_.endpoints.empty()) {
    return InvalidArgumentError("redis cluster '" + settings_.cluster + "' has no endpoint");
  }
  Status last;
  const size_t count = settings_.endpoints.size();
  // Start with the endpoint that worked last: after a failover it is the new primary.
  const size_t start = endpoint_index_ % count;
  for (size_t i = 0; i < count; ++i) {
    const size_t index = (start + i) % count;
    Status status = ConnectTo(index);
    if (status.ok()) return status;
    const bool try_next = status.code() == StatusCode::kUnavailable ||
                          status.code() == StatusCode::kDeadlineExceeded ||
                          status.code() == StatusCode::kFailedPrecondition;
    if (!try_next) return status;
    last = status;
  }
  endpoint_index_ = start;
  return last;
}

Status Connection::ConnectTo(size_t index) {
  Disconnect();
  endpoint_index_ = index;
  const Endpoint& target = settings_.endpoints[index];
  const timeval connect_tv = ToTimeval(settings_.connect_timeout);
  redisContext* context =
      target.unix_path.empty()
          ? redisConnectWithTimeout(target.host.c_str(), target.port, connect_tv)
          : redisConnectUnixWithTimeout(target.unix_path.c_str(), connect_tv);
  if (context == nullptr) {
    return ResourceExhaustedError("redis cluster '" + settings_.cluster +
                                  "': cannot allocate a connection to " + target.ToString());
  }
  context_ = context;
  if (context_->err != 0) return ContextFailure("CONNECT", {});
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    fd_ = context_->fd;
    if (interrupted_) ::shutdown(fd_, SHUT_RDWR);
  }
  // The handshake runs under the connect timeout, later commands under the command timeout.
  if (redisSetTimeout(context_, connect_tv) != REDIS_OK) return ContextFailure("CONNECT", {});
  redisEnableKeepAlive(context_);

  if (!settings_.password.empty() || !settings_.user.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!settings_.user.empty()) auth.emplace_back(settings_.user);
    auth.emplace_back(settings_.password);
    auto reply = Command(auth);
    if (!reply.ok()) {
      Disconnect();
      return reply.status();
    }
  }
  if (settings_.database != 0) {
    const std::string db = std::to_string(settings_.database);
    auto reply = Command({"SELECT", db});
    if (!reply.ok()) {
      Disconnect();
      return reply.status();
    }
  }
  if (!settings_.client_name.empty()) {
    // Only a courtesy to operators: an ACL that forbids CLIENT must not stop the backend.
    // Any other failure (NOAUTH: a password is required but none is configured) does.
    auto reply = Command({"CLIENT", "SETNAME", settings_.client_name});
    if (!reply.ok() && reply.status().code() != StatusCode::kPermissionDenied) {
      Disconnect();
      return reply.status();
    }
  } else {
    auto reply = Command({"PING"});
    if (!reply.ok()) {
      Disconnect();
      return reply.status();
    }
  }
  if (settings_.endpoints.size() > 1) {
    auto reply = Command({"ROLE"});
    if (!reply.ok()) {
      Disconnect();
      return reply.status();
    }
    const redisReply* role = reply->get();
    if (!IsArray(role) || role->elements == 0 || ReplyString(role->element[0]) != "master") {
      Disconnect();
      return FailedPreconditionError("redis cluster '" + settings_.cluster +
                                     "': " + target.ToString() + " is not a primary (ROLE)");
    }
  }
  const timeval command_tv = ToTimeval(settings_.command_timeout + extra_read_timeout_);
  if (redisSetTimeout(context_, command_tv) != REDIS_OK) return ContextFailure("CONNECT", {});
  return OkStatus();
}

Result<ReplyPtr> Connection::Command(const std::vector<std::string_view>& args,
                                     std::string_view key) {
  MSGSDK_RETURN_IF_ERROR(EnsureConnected());
  std::string encoded;
  AppendCommand(encoded, args);
  MSGSDK_RETURN_IF_ERROR(AppendEncoded(encoded));
  return ReadReply(args.empty() ? std::string_view() : args[0], key);
}

Status Connection::AppendEncoded(std::string_view command) {
  if (context_ == nullptr) {
    return UnavailableError("redis cluster '" + settings_.cluster + "': not connected to " +
                            endpoint());
  }
  if (redisAppendFormattedCommand(context_, command.data(), command.size()) != REDIS_OK) {
    return ContextFailure("APPEND", {});
  }
  return OkStatus();
}

Result<ReplyPtr> Connection::ReadReply(std::string_view command, std::string_view key) {
  if (context_ == nullptr) {
    return UnavailableError("redis cluster '" + settings_.cluster + "': not connected to " +
                            endpoint());
  }
  void* raw = nullptr;
  errno = 0;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    if (raw != nullptr) freeReplyObject(raw);
    return ContextFailure(command, key);
  }
  ReplyPtr reply(static_cast<redisReply*>(raw));
  if (reply->type == REDIS_REPLY_ERROR) {
    RawRedisError error;
    error.text = std::string_view(reply->str, reply->len);
    return MapError(error, command, key);
  }
  return reply;
}

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  if (pthread_sigmask(SIG_BLOCK, &sigpipe, &old_mask_) == 0) {
    changed_mask_ = sigismember(&old_mask_, SIGPIPE) != 1;
  }
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  if (!changed_mask_) return;
  if (!was_pending_) {
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1) {
      sigset_t sigpipe;
      sigemptyset(&sigpipe);
      sigaddset(&sigpipe, SIGPIPE);
      const timespec zero{};
      while (sigtimedwait(&sigpipe, nullptr, &zero) == -1 && errno == EINTR) {
      }
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

void BlockSigpipeInThisThread() {
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
}

std::string_view ReplyString(const redisReply* reply) {
  if (reply == nullptr) return {};
  if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
    return {reply->str, reply->len};
  }
  return {};
}

bool IsArray(const redisReply* reply) {
  return reply != nullptr && reply->type == REDIS_REPLY_ARRAY;
}

bool IsNil(const redisReply* reply) { return reply == nullptr || reply->type == REDIS_REPLY_NIL; }

}  // namespace msgsdk::redis
