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

// Where a connection's replies live. hiredis builds every reply object through the
// arena's functions instead of a calloc and a malloc per element (an XREADGROUP reply of
// 512 entries has about 5,000 elements), and the arena is rewound, not freed, once the last
// reply handed out is released. Owned by one Connection; same thread only.
class ReplyArena {
 public:
  ReplyArena() = default;
  ReplyArena(const ReplyArena&) = delete;
  ReplyArena& operator=(const ReplyArena&) = delete;

  // 8-byte aligned; nullptr when out of memory (hiredis then fails the read with OOM).
  void* Allocate(size_t size) {
    size = (size + 7) & ~size_t{7};
    if (current_ < blocks_.size() && blocks_[current_].size - used_ >= size) {
      char* at = blocks_[current_].data.get() + used_;
      used_ += size;
      return at;
    }
    return AllocateSlow(size);
  }
  // A reply built in the arena was handed out / released.
  void Acquire() { ++live_; }
  void Release() {
    if (--live_ == 0) Rewind();
  }

 private:
  struct FreeDeleter {
    void operator()(char* block) const;
  };
  struct Block {
    std::unique_ptr<char, FreeDeleter> data;
    size_t size = 0;
  };
  void* AllocateSlow(size_t size);
  void Rewind();

  std::vector<Block> blocks_;
  size_t bytes_ = 0;    // in all blocks
  size_t current_ = 0;  // the block being filled
  size_t used_ = 0;     // bytes of it in use
  int64_t live_ = 0;
};

// Releases a reply into the arena of its connection.
struct ReplyDeleter {
  ReplyArena* arena = nullptr;
  void operator()(redisReply* reply) const;
};
// A reply; valid until the connection that read it is destroyed, whatever happens to the
// connection meanwhile (replies are released, never kept, by the code that reads them).
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
  // The buffer AppendEncoded appends to, for commands encoded in place (the caller checks
  // connected() first). Written out by the next ReadReply, dropped with the connection.
  std::string& output() { return output_; }
  // Writes what is queued now, without reading a reply (a failure drops the connection).
  Status Flush(std::string_view command, std::string_view key = {});

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
  ReplyArena arena_;
  // Commands queued for the next write: one buffer reused for the life of the connection,
  // written with send(2) directly (hiredis's own buffer would be allocated, grown and freed
  // on every pipelined batch).
  std::string output_;
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

// Names the calling thread (shown by top -H, ps -L and debuggers; at most 15 characters).
void NameThisThread(const char* name);

// Reply helpers: string content of a string/status reply ("" otherwise).
std::string_view ReplyString(const redisReply* reply);
bool IsArray(const redisReply* reply);
bool IsNil(const redisReply* reply);

}  // namespace msgsdk::redis
