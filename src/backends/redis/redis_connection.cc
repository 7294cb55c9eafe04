#include "backends/redis/redis_connection.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

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

// ---- hiredis reply objects in a ReplyArena ----
// The same objects hiredis makes by default (redisReply, strings NUL-terminated), allocated
// from the arena that the reader's privdata points to.

constexpr size_t kArenaBlock = size_t{64} * 1024;
// What a rewound arena keeps for the next replies; blocks beyond are freed.
constexpr size_t kArenaKeep = size_t{1024} * 1024;

ReplyArena* ArenaOf(const redisReadTask* task) {
  // The root task of a reply carries the reader's privdata (not every hiredis release copies
  // it into the tasks of nested elements).
  while (task->parent != nullptr) task = task->parent;
  return static_cast<ReplyArena*>(task->privdata);
}

// A reply object with `extra` bytes right after it (a string's bytes, an array's elements;
// `*tail` points to them), linked into its parent: one arena allocation per element.
redisReply* NewReply(const redisReadTask* task, int type, size_t extra, char** tail) {
  constexpr size_t kHead = (sizeof(redisReply) + 7) & ~size_t{7};
  char* memory = static_cast<char*>(ArenaOf(task)->Allocate(kHead + extra));
  if (memory == nullptr) return nullptr;
  auto* reply = new (memory) redisReply{};
  reply->type = type;
  if (tail != nullptr) *tail = memory + kHead;
  if (task->parent != nullptr) {
    auto* parent = static_cast<redisReply*>(task->parent->obj);
    parent->element[task->idx] = reply;
  }
  return reply;
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
  char* bytes = nullptr;
  redisReply* reply = NewReply(task, task->type, len + 1, &bytes);
  if (reply == nullptr) return nullptr;
  std::memcpy(bytes, str, len);
  bytes[len] = '\0';
  reply->str = bytes;
  reply->len = len;
  return reply;
}

void* CreateArray(const redisReadTask* task, int elements) {
  const size_t count = elements > 0 ? static_cast<size_t>(elements) : 0;
  char* array = nullptr;
  redisReply* reply = NewReply(task, REDIS_REPLY_ARRAY, count * sizeof(redisReply*), &array);
  if (reply == nullptr) return nullptr;
  reply->elements = count;
  if (count > 0) {
    std::memset(array, 0, count * sizeof(redisReply*));
    reply->element = reinterpret_cast<redisReply**>(array);
  }
  return reply;
}

void* CreateInteger(const redisReadTask* task, long long value) {  // NOLINT(google-runtime-int)
  redisReply* reply = NewReply(task, REDIS_REPLY_INTEGER, 0, nullptr);
  if (reply != nullptr) reply->integer = value;
  return reply;
}

void* CreateNil(const redisReadTask* task) { return NewReply(task, REDIS_REPLY_NIL, 0, nullptr); }

// The arena owns everything: partial replies left by a failed read go with the next rewind.
void FreeObject(void* /*reply*/) {}

redisReplyObjectFunctions arena_reply_functions = {CreateString, CreateArray, CreateInteger,
                                                   CreateNil, FreeObject};

}  // namespace

void ReplyArena::FreeDeleter::operator()(char* block) const { std::free(block); }

void* ReplyArena::AllocateSlow(size_t size) {
  for (; current_ < blocks_.size(); ++current_, used_ = 0) {
    Block& block = blocks_[current_];
    if (block.size - used_ >= size) {
      char* at = block.data.get() + used_;
      used_ += size;
      return at;
    }
  }
  const size_t block_size = std::max(size, kArenaBlock);
  // malloc: nothing may throw through hiredis's C frames.
  char* data = static_cast<char*>(std::malloc(block_size));
  if (data == nullptr) return nullptr;
  blocks_.push_back(Block{std::unique_ptr<char, FreeDeleter>(data), block_size});
  bytes_ += block_size;
  current_ = blocks_.size() - 1;
  used_ = size;
  return data;
}

void ReplyArena::Rewind() {
  current_ = 0;
  used_ = 0;
  // A huge reply's memory is not kept for the life of the connection (even when it took the
  // first block): the next reply starts a new block.
  while (bytes_ > kArenaKeep && !blocks_.empty()) {
    bytes_ -= blocks_.back().size;
    blocks_.pop_back();
  }
}

void ReplyDeleter::operator()(redisReply* reply) const {
  if (reply != nullptr && arena != nullptr) arena->Release();
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
  output_.clear();
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
  context_->reader->fn = &arena_reply_functions;
  context_->reader->privdata = &arena_;
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
  AppendCommand(output_, args);
  return ReadReply(args.empty() ? std::string_view() : args[0], key);
}

Status Connection::AppendEncoded(std::string_view command) {
  if (context_ == nullptr) {
    return UnavailableError("redis cluster '" + settings_.cluster + "': not connected to " +
                            endpoint());
  }
  output_.append(command);
  return OkStatus();
}

Status Connection::Flush(std::string_view command, std::string_view key) {
  if (context_ == nullptr) {
    return UnavailableError("redis cluster '" + settings_.cluster + "': not connected to " +
                            endpoint());
  }
  // As few send(2) calls as the kernel allows.
  size_t written = 0;
  while (written < output_.size()) {
    // MSG_NOSIGNAL: a peer that went away is an EPIPE here, never a SIGPIPE.
    const ssize_t n =
        ::send(context_->fd, output_.data() + written, output_.size() - written, MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // What hiredis reports for a failed write (EAGAIN: the send timeout expired).
    const int saved_errno = n < 0 ? errno : EPIPE;
    char text[128];
    RawRedisError error;
    error.context_error = REDIS_ERR_IO;
    error.sys_errno = saved_errno;
    error.text = strerror_r(saved_errno, text, sizeof(text));
    Status status = MapError(error, command, key);
    Disconnect();
    return status;
  }
  output_.clear();
  return OkStatus();
}

Result<ReplyPtr> Connection::ReadReply(std::string_view command, std::string_view key) {
  if (context_ == nullptr) {
    return UnavailableError("redis cluster '" + settings_.cluster + "': not connected to " +
                            endpoint());
  }
  if (!output_.empty()) MSGSDK_RETURN_IF_ERROR(Flush(command, key));
  void* raw = nullptr;
  errno = 0;
  // A reply that comes with a failure is left in the arena (rewound with the next release).
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    return ContextFailure(command, key);
  }
  arena_.Acquire();
  ReplyPtr reply(static_cast<redisReply*>(raw), ReplyDeleter{&arena_});
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

void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

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
