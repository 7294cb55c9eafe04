#include "backends/redis/redis_state.h"

#include <unistd.h>

#include <algorithm>

#include "backends/redis/redis_codec.h"

namespace msgsdk::redis {
namespace {

std::string HostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof(buffer) - 1) != 0 || buffer[0] == '\0') return "host";
  return buffer;
}

}  // namespace

std::string SanitizeName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == ':' || c == '@';
    out += ok ? c : '_';
  }
  return out;
}

BackendState::BackendState(RedisOptions opts)
    : options(std::move(opts)),
      instance_name(SanitizeName(HostName() + "-" + std::to_string(::getpid()))) {}

RedisBackendStats BackendState::Snapshot() const {
  RedisBackendStats stats;
  stats.sends_ok = sends_ok.load();
  stats.sends_failed = sends_failed.load();
  stats.connection_failures = connection_failures.load();
  stats.delivered = delivered.load();
  stats.acked = acked.load();
  stats.claimed = claimed.load();
  stats.trimmed_pending = trimmed_pending.load();
  stats.backlog_warnings = backlog_warnings.load();
  stats.max_backlog_percent = max_backlog_percent.load();
  return stats;
}

ConnectionSettings BackendState::Settings(std::string_view role) const {
  return SettingsFromOptions(options,
                             SanitizeName("msgsdk:" + instance_name + ":" + std::string(role)));
}

void BackendState::NoteTopic(const std::string& topic) {
  std::lock_guard<std::mutex> lock(topics_mu_);
  topics_.insert(topic);
}

std::vector<std::string> BackendState::Topics() const {
  std::lock_guard<std::mutex> lock(topics_mu_);
  return {topics_.begin(), topics_.end()};
}

std::string BackendState::StreamOf(const std::string& topic, int32_t partition) const {
  return StreamKey(options.key_prefix, topic, partition);
}

std::chrono::milliseconds Backoff::Next() {
  constexpr int64_t kBaseMs = 50;
  constexpr int64_t kMaxMs = 2000;
  const int64_t ceiling = std::min(kMaxMs, kBaseMs << std::min(attempt_, 10));
  ++attempt_;
  // Between half and all of the ceiling, so that many clients do not reconnect in lockstep.
  std::uniform_int_distribution<int64_t> jitter(ceiling / 2, ceiling);
  return std::chrono::milliseconds(jitter(random_));
}

}  // namespace msgsdk::redis
