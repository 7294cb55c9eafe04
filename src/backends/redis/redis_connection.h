#pragma once

// One blocking hiredis connection: connect (trying each endpoint, AUTH, SELECT, CLIENT
// SETNAME), send commands singly or pipelined, map every failure through MapRedisError.
// A connection failure drops the connection; the next EnsureConnected() makes a new one.
// Not thread-safe, except Interrupt(), which another thread may call at any time.

#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/redis/redis_errors.h"
#include "backends/redis/redis_options.h"
#include "msgsdk/result.h"

struct redisContext;
struct redisReply;

namespace msgsdk::redis {

struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ConnectionSettings {
  std::string cluster;
  std::vector<Endpoint> endpoints;
  std::string user;
  std::string password;
  int database = 0;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{3000};
  // CLIENT SETNAME, so operators see who is connected (CLIENT LIST); empty: not set.
  std::string client_name;
};

ConnectionSettings SettingsFromOptions(const RedisOptions& options, std::string client_name);

class Connection {
 public:
  // `extra_read_timeout` is added to the command timeout of reads (for BLOCK commands).
  explicit Connection(ConnectionSettings settings,
                      std::chrono::milliseconds extra_read_timeout = std::chrono::milliseconds(0));
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects unless connected: each endpoint in order, the first that accepts the
  // handshake (and, when several are configured, reports itself a primary) wins.
  // Authentication and configuration errors are returned at once, without trying others.
  Status EnsureConnected();
  bool connected() const { return context_ != nullptr; }
  void Disconnect();

  // Thread-safe: a blocked or later call fails at once (the socket is shut down, and so is
  // every socket connected afterwards). Used to stop a reader parked in XREADGROUP BLOCK.
  void Interrupt();

  // Sends one command and waits for its reply. Error replies come back as their Status;
  // a connection failure also drops the connection. `key` names the key in messages.
  Result<ReplyPtr> Command(const std::vector<std::string_view>& args, std::string_view key = {});

  // Pipelining: queue encoded commands (AppendCommand/EncodeXadd output) locally, then read
  // one reply per queued command; the first ReadReply writes everything queued.
  Status AppendEncoded(std::string_view command);
  Result<ReplyPtr> ReadReply(std::string_view command, std::string_view key = {});

  // The endpoint currently connected to (or the first configured one).
  std::string endpoint() const;
  const ConnectionSettings& settings() const { return settings_; }

  // Maps a failure with this connection's scope (cluster, endpoint, user).
  Status MapError(const RawRedisError& error, std::string_view command,
                  std::string_view key = {}) const;

 private:
  Status ConnectTo(size_t index);
  Status ContextFailure(std::string_view command, std::string_view key);

  ConnectionSettings settings_;
  std::chrono::milliseconds extra_read_timeout_;
  redisContext* context_ = nullptr;
  size_t endpoint_index_ = 0;
  // Guards fd_ against Interrupt() racing with a reconnect that reuses the descriptor.
  std::mutex fd_mu_;
  int fd_ = -1;
  bool interrupted_ = false;
};

// Blocks SIGPIPE in the calling thread for its lifetime (hiredis writes with write(2), and
// a peer that vanished must not kill the process), then swallows a SIGPIPE it caused and
// restores the mask. Used around calls made on the application's threads.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_mask_{};
  bool changed_mask_ = false;
  bool was_pending_ = false;
};

// Blocks SIGPIPE for the rest of the calling thread's life (the backend's own threads).
void BlockSigpipeInThisThread();

// Reply helpers: string content of a string/status reply ("" otherwise).
std::string_view ReplyString(const redisReply* reply);
bool IsArray(const redisReply* reply);
bool IsNil(const redisReply* reply);

}  // namespace msgsdk::redis
