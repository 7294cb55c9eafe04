#pragma once

// Raw hiredis for the benchmarks' baselines: what a careful hand-written client does, with
// arguments passed as pointers and lengths (no copies) and replies read in pipelines.

#include <sys/time.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "msgsdk/msgsdk.h"

namespace msgsdk::bench {

struct RedisContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using RedisContextPtr = std::unique_ptr<redisContext, RedisContextDeleter>;

struct RedisReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// A connection to 127.0.0.1:`port` whose replies time out after 30 s.
inline Result<RedisContextPtr> ConnectRedis(int port) {
  const timeval timeout{.tv_sec = 30, .tv_usec = 0};
  RedisContextPtr context(redisConnectWithTimeout("127.0.0.1", port, timeout));
  const std::string where = "127.0.0.1:" + std::to_string(port);
  if (context == nullptr) return InternalError("no memory for a connection to " + where);
  if (context->err != 0) {
    return UnavailableError("connecting to " + where + ": " + context->errstr);
  }
  if (redisSetTimeout(context.get(), timeout) != REDIS_OK) {
    return InternalError("setting the reply timeout on " + where);
  }
  return context;
}

// Queues one command (hiredis buffers it until the first reply is read). At most 16
// arguments.
inline void AppendRedis(redisContext* context, std::initializer_list<std::string_view> args) {
  const char* argv[16];
  size_t lengths[16];
  size_t n = 0;
  for (const std::string_view arg : args) {
    if (n == 16) break;
    argv[n] = arg.data();
    lengths[n++] = arg.size();
  }
  redisAppendCommandArgv(context, static_cast<int>(n), argv, lengths);
}

inline void AppendRedis(redisContext* context, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data());
}

// The next reply; an error reply is an error naming `what`.
inline Result<RedisReplyPtr> NextRedisReply(redisContext* context, const std::string& what) {
  void* raw = nullptr;
  if (redisGetReply(context, &raw) != REDIS_OK) {
    return UnavailableError(what + ": " + context->errstr);
  }
  RedisReplyPtr reply(static_cast<redisReply*>(raw));
  if (reply->type == REDIS_REPLY_ERROR) {
    return InternalError(what + ": " + std::string(reply->str, reply->len));
  }
  return reply;
}

// One command and its reply.
inline Result<RedisReplyPtr> RedisCommand(redisContext* context,
                                          const std::vector<std::string>& args) {
  AppendRedis(context, args);
  return NextRedisReply(context, args.front() + " " + (args.size() > 1 ? args[1] : ""));
}

// "<prefix>:0" .. "<prefix>:<partitions - 1>": the streams of a topic, as the backend names
// them.
inline std::vector<std::string> StreamNames(const std::string& prefix, int partitions) {
  std::vector<std::string> names;
  for (int p = 0; p < partitions; ++p) names.push_back(prefix + ":" + std::to_string(p));
  return names;
}

// Acknowledges the entries of one XREADGROUP reply of `group`, as a reader does once it handled
// them: one pipelined XACK per stream with the entries' ids (pointing into the reply, no
// copies), each entry's body field handed to `on_body` first. Returns how many entries the
// reply held, or the first XACK failure.
template <typename OnBody>
Result<size_t> AckReadEntries(redisContext* context, const redisReply& reply,
                              std::string_view group, OnBody on_body) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  size_t received = 0;
  size_t acks = 0;
  for (size_t s = 0; s < reply.elements; ++s) {
    const redisReply* stream = reply.element[s];
    const redisReply* entries = stream->element[1];
    if (entries->elements == 0) continue;
    argv.assign({"XACK", stream->element[0]->str, group.data()});
    lengths.assign({4, stream->element[0]->len, group.size()});
    for (size_t e = 0; e < entries->elements; ++e) {
      const redisReply* entry = entries->element[e];
      argv.push_back(entry->element[0]->str);
      lengths.push_back(entry->element[0]->len);
      const redisReply* fields = entry->element[1];
      for (size_t f = 0; f + 1 < fields->elements; f += 2) {
        if (std::string_view(fields->element[f]->str, fields->element[f]->len) == "body") {
          on_body(std::string_view(fields->element[f + 1]->str, fields->element[f + 1]->len));
        }
      }
    }
    received += entries->elements;
    redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data());
    ++acks;
  }
  for (size_t i = 0; i < acks; ++i) {
    MSGSDK_RETURN_IF_ERROR(NextRedisReply(context, "raw XACK").status());
  }
  return received;
}

}  // namespace msgsdk::bench
