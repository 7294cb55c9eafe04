#include "backends/redis/redis_backend.h"

#include <algorithm>
#include <charconv>

#include <hiredis/hiredis.h>

#include "backends/redis/redis_backend_impl.h"
#include "backends/redis/redis_codec.h"
#include "backends/redis/redis_log.h"

namespace msgsdk::redis {
namespace {

using Clock = std::chrono::steady_clock;

// A lasting backlog is logged at most this often per stream and group (the counter counts
// every check that finds it).
constexpr auto kBacklogLogInterval = std::chrono::minutes(1);

const redisReply* Element(const redisReply* reply, size_t i) {
  if (!IsArray(reply) || i >= reply->elements) return nullptr;
  return reply->element[i];
}

const redisReply* Field(const redisReply* flat, std::string_view name) {
  if (!IsArray(flat)) return nullptr;
  for (size_t i = 0; i + 1 < flat->elements; i += 2) {
    if (ReplyString(flat->element[i]) == name) return flat->element[i + 1];
  }
  return nullptr;
}

std::optional<int64_t> Integer(const redisReply* reply) {
  if (reply == nullptr) return std::nullopt;
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  const std::string_view text = ReplyString(reply);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "7.0.15" >= 6.2?
bool VersionAtLeast(std::string_view version, int major, int minor) {
  int got_major = 0;
  int got_minor = 0;
  const char* begin = version.data();
  const char* end = version.data() + version.size();
  auto [next, ec] = std::from_chars(begin, end, got_major);
  if (ec != std::errc()) return true;  // Unknown format: do not refuse a server we cannot read.
  if (next < end && *next == '.') std::from_chars(next + 1, end, got_minor);
  return got_major > major || (got_major == major && got_minor >= minor);
}

// The unread entries of a group whose lag Redis cannot compute (deletions in the middle of
// the stream): estimated from the entry times between the group's position and the end.
int64_t EstimateUnread(const redisReply* group, const redisReply* stream) {
  const auto length = Integer(Field(stream, "length")).value_or(0);
  if (length <= 0) return 0;
  const auto delivered = ParseEntryId(ReplyString(Field(group, "last-delivered-id")));
  const auto last = ParseEntryId(ReplyString(Field(stream, "last-generated-id")));
  const auto first = ParseEntryId(ReplyString(Element(Field(stream, "first-entry"), 0)));
  if (!delivered || !last) return length;
  if (*delivered >= *last) return 0;
  if (!first || *delivered < *first) return length;
  const double span = static_cast<double>(last->ms - first->ms) + 1.0;
  const auto rest = static_cast<double>(last->ms - delivered->ms);
  return std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(length) * rest / span), 0,
                             length);
}

class RedisBackendFactory final : public core::BackendFactory {
 public:
  std::string name() const override { return "redis"; }
  const core::PropertyTable& properties() const override { return RedisPropertyTable(); }
  Result<core::BackendPtr> Create(const core::ClusterConfig& config) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<RedisBackend> backend, RedisBackend::Create(config));
    return core::BackendPtr(std::move(backend));
  }
};

}  // namespace

std::unique_ptr<core::BackendFactory> MakeRedisBackendFactory() {
  return std::make_unique<RedisBackendFactory>();
}

Result<std::shared_ptr<RedisBackend>> RedisBackend::Create(const core::ClusterConfig& config) {
  MSGSDK_ASSIGN_OR_RETURN(RedisOptions options, ParseRedisOptions(config));
  std::shared_ptr<RedisBackend> backend(
      new RedisBackend(std::make_shared<BackendState>(std::move(options))));
  MSGSDK_RETURN_IF_ERROR(backend->Probe());
  backend->writer_->Start();
  if (backend->state_->options.maxlen > 0) {
    backend->monitor_ = std::thread([raw = backend.get()] { raw->MonitorLoop(); });
  }
  return backend;
}

RedisBackend::RedisBackend(std::shared_ptr<BackendState> state)
    : state_(std::move(state)),
      writer_(std::make_shared<Writer>(state_)),
      admin_connection_(state_->Settings("admin")) {
  capabilities_.backend = "redis";
  capabilities_.timer_messages = false;
  capabilities_.transactions = false;
  capabilities_.broadcast = true;
  capabilities_.server_side_tag_filter = false;
  capabilities_.replay = true;
}

RedisBackend::~RedisBackend() {
  Close(Clock::now() + state_->options.command_timeout).IgnoreError();
}

Status RedisBackend::Probe() {
  ScopedSigpipeBlock sigpipe_guard;
  std::lock_guard<std::mutex> lock(admin_mu_);
  Status status = admin_connection_.EnsureConnected();
  if (!status.ok()) {
    if (status.IsRetriable()) {
      LogWarning(status.message() + "; connecting again when the cluster is used");
      return OkStatus();
    }
    return status;
  }
  auto info = admin_connection_.Command({"INFO", "server"});
  if (!info.ok()) return OkStatus();  // INFO may be refused by an ACL: not needed to run.
  const std::string_view text = ReplyString(info->get());
  const size_t at = text.find("redis_version:");
  if (at == std::string_view::npos) return OkStatus();
  std::string_view version = text.substr(at + 14);
  version = version.substr(0, version.find_first_of("\r\n"));
  if (!VersionAtLeast(version, 6, 2)) {
    return FailedPreconditionError("redis cluster '" + state_->options.cluster + "' at " +
                                   admin_connection_.endpoint() + " runs Redis " +
                                   std::string(version) +
                                   "; the redis backend needs Redis >= 6.2 (XAUTOCLAIM)");
  }
  return OkStatus();
}

Result<std::unique_ptr<core::BackendProducer>> RedisBackend::CreateProducer(
    const std::string& topic) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      return FailedPreconditionError("redis cluster '" + state_->options.cluster +
                                     "' is closed: cannot create a producer of topic '" + topic +
                                     "'");
    }
  }
  state_->NoteTopic(topic);
  return std::unique_ptr<core::BackendProducer>(
      std::make_unique<RedisProducer>(state_, writer_, topic));
}

Result<std::unique_ptr<core::BackendConsumer>> RedisBackend::Subscribe(
    const core::SubscriptionSpec& spec, core::DeliverySink& sink) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      return FailedPreconditionError("redis cluster '" + state_->options.cluster +
                                     "' is closed: cannot subscribe to topic '" + spec.topic + "'");
    }
  }
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RedisConsumer> consumer,
                          RedisConsumer::Start(state_, spec, sink));
  return std::unique_ptr<core::BackendConsumer>(std::move(consumer));
}

Status RedisBackend::ResetOffsets(const std::string& topic, const std::string& group,
                                  const ResetTarget& target) {
  std::string id;
  switch (target.kind) {
    case ResetTarget::Kind::kEarliest:
      id = "0";
      break;
    case ResetTarget::Kind::kLatest:
      id = "$";
      break;
    case ResetTarget::Kind::kTimestamp: {
      // Everything stored before the timestamp counts as delivered.
      const int64_t ms = ToUnixMillis(target.timestamp);
      id = ms <= 0 ? std::string("0") : std::to_string(ms - 1) + "-18446744073709551615";
      break;
    }
  }
  const std::string context = "resetting group '" + group + "' of topic '" + topic +
                              "' on redis cluster '" + state_->options.cluster + "'";
  ScopedSigpipeBlock sigpipe_guard;
  std::lock_guard<std::mutex> lock(admin_mu_);
  Connection& connection = admin_connection_;
  const std::string broadcast_prefix = group + "@";
  for (int32_t p = 0; p < state_->options.partitions; ++p) {
    const std::string stream = state_->StreamOf(topic, p);
    auto exists = connection.Command({"EXISTS", stream}, stream);
    if (!exists.ok()) return exists.status().WithContext(context);
    std::vector<std::string> groups;
    if (Integer(exists->get()).value_or(0) > 0) {
      auto info = connection.Command({"XINFO", "GROUPS", stream}, stream);
      if (!info.ok()) return info.status().WithContext(context);
      for (size_t i = 0; IsArray(info->get()) && i < (*info)->elements; ++i) {
        const std::string name(ReplyString(Field((*info)->element[i], "name")));
        if (name == group || name.starts_with(broadcast_prefix)) groups.push_back(name);
      }
    }
    if (groups.empty()) {
      // No subscription yet: the group starts where it was reset to.
      auto created =
          connection.Command({"XGROUP", "CREATE", stream, group, id, "MKSTREAM"}, stream);
      if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
        return created.status().WithContext(context);
      }
      continue;
    }
    for (const std::string& name : groups) {
      auto set = connection.Command({"XGROUP", "SETID", stream, name, id}, stream);
      if (!set.ok()) return set.status().WithContext(context);
    }
  }
  return OkStatus();
}

Result<std::vector<core::PartitionPosition>> RedisBackend::Positions(
    const core::SubscriptionSpec& spec) {
  const std::string group =
      RedisGroupName(spec.group, spec.mode == SubscriptionMode::kBroadcast, spec.member_id);
  const std::string context = "positions of group '" + group + "' of topic '" + spec.topic +
                              "' on redis cluster '" + state_->options.cluster + "'";
  // The offset after an entry id; 0 before the first ("0-0").
  auto after = [](std::string_view text) -> int64_t {
    const std::optional<EntryId> id = ParseEntryId(text);
    if (!id || (id->ms == 0 && id->seq == 0)) return 0;
    return EntryIdToOffset(*id) + 1;
  };
  ScopedSigpipeBlock sigpipe_guard;
  std::lock_guard<std::mutex> lock(admin_mu_);
  Connection& connection = admin_connection_;
  std::vector<core::PartitionPosition> positions;
  for (int32_t p = 0; p < state_->options.partitions; ++p) {
    const std::string stream = state_->StreamOf(spec.topic, p);
    core::PartitionPosition position{.partition = p};
    auto exists = connection.Command({"EXISTS", stream}, stream);
    if (!exists.ok()) return exists.status().WithContext(context);
    if (Integer(exists->get()).value_or(0) == 0) {
      positions.push_back(position);
      continue;
    }
    auto info = connection.Command({"XINFO", "STREAM", stream}, stream);
    if (!info.ok()) return info.status().WithContext(context);
    position.end = after(ReplyString(Field(info->get(), "last-generated-id")));
    // Entries trimmed by maxlen are gone: the stream starts at its first entry (at its end
    // when it holds none).
    const std::optional<EntryId> first =
        ParseEntryId(ReplyString(Element(Field(info->get(), "first-entry"), 0)));
    position.start = first ? EntryIdToOffset(*first) : position.end;
    auto groups = connection.Command({"XINFO", "GROUPS", stream}, stream);
    if (!groups.ok()) return groups.status().WithContext(context);
    for (size_t i = 0; IsArray(groups->get()) && i < (*groups)->elements; ++i) {
      const redisReply* entry = (*groups)->element[i];
      if (ReplyString(Field(entry, "name")) != group) continue;
      position.committed = after(ReplyString(Field(entry, "last-delivered-id")));
      if (Integer(Field(entry, "pending")).value_or(0) > 0) {
        // The first entry delivered and not acknowledged is where the group stands.
        auto pending = connection.Command({"XPENDING", stream, group}, stream);
        if (!pending.ok()) return pending.status().WithContext(context);
        const redisReply* reply = pending->get();
        if (IsArray(reply) && reply->elements >= 2) {
          const std::optional<EntryId> first = ParseEntryId(ReplyString(reply->element[1]));
          if (first) position.committed = EntryIdToOffset(*first);
        }
      }
      break;
    }
    positions.push_back(position);
  }
  return positions;
}

Status RedisBackend::CheckBacklog() {
  if (state_->options.maxlen <= 0) return OkStatus();
  int64_t max_percent = 0;
  for (const std::string& topic : state_->Topics()) {
    for (int32_t p = 0; p < state_->options.partitions; ++p) {
      MSGSDK_RETURN_IF_ERROR(CheckStreamBacklog(state_->StreamOf(topic, p), max_percent));
    }
  }
  state_->max_backlog_percent.store(max_percent);
  return OkStatus();
}

Status RedisBackend::CheckStreamBacklog(const std::string& stream, int64_t& max_percent) {
  ScopedSigpipeBlock sigpipe_guard;
  std::lock_guard<std::mutex> lock(admin_mu_);
  Connection& connection = admin_connection_;
  auto exists = connection.Command({"EXISTS", stream}, stream);
  if (!exists.ok()) return exists.status();
  if (Integer(exists->get()).value_or(0) == 0) return OkStatus();
  auto groups = connection.Command({"XINFO", "GROUPS", stream}, stream);
  if (!groups.ok()) return groups.status();
  if (!IsArray(groups->get()) || (*groups)->elements == 0) return OkStatus();
  auto info = connection.Command({"XINFO", "STREAM", stream}, stream);
  if (!info.ok()) return info.status();

  const int64_t maxlen = state_->options.maxlen;
  for (size_t i = 0; i < (*groups)->elements; ++i) {
    const redisReply* group = (*groups)->element[i];
    const std::string name(ReplyString(Field(group, "name")));
    const int64_t pending = Integer(Field(group, "pending")).value_or(0);
    const auto lag = Integer(Field(group, "lag"));
    const int64_t unread = lag.has_value() ? *lag : EstimateUnread(group, info->get());
    const int64_t backlog = unread + pending;
    const int64_t percent = backlog * 100 / maxlen;
    max_percent = std::max(max_percent, percent);
    if (percent < state_->options.backlog_warn_percent) continue;
    state_->backlog_warnings.fetch_add(1);
    const auto now = Clock::now();
    std::string warned_key = stream;
    warned_key.append("/").append(name);
    auto [it, first] = last_warned_.try_emplace(std::move(warned_key), now);
    if (!first && now - it->second < kBacklogLogInterval) continue;
    it->second = now;
    std::string text = "redis cluster '";
    text.append(state_->options.cluster).append("': group '").append(name).append("' on '");
    text.append(stream).append("' has ").append(std::to_string(unread)).append(" unread and ");
    text.append(std::to_string(pending)).append(" unacknowledged entries, ");
    text.append(std::to_string(percent)).append("% of maxlen ").append(std::to_string(maxlen));
    text.append(
        ": entries will be trimmed before they are consumed; add consumers or raise "
        "maxlen");
    LogWarning(text);
  }
  return OkStatus();
}

void RedisBackend::MonitorLoop() {
  BlockSigpipeInThisThread();
  FailureLog failures;
  std::unique_lock<std::mutex> lock(mu_);
  while (!closed_) {
    cv_.wait_for(lock, state_->options.backlog_check_interval, [&] { return closed_; });
    if (closed_) break;
    lock.unlock();
    Status status = CheckBacklog();
    if (status.ok()) {
      failures.Success("backlog check");
    } else {
      failures.Failure("backlog check: " + status.ToString());
    }
    lock.lock();
  }
}

Status RedisBackend::Close(core::Deadline deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return OkStatus();
    closed_ = true;
  }
  cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  Status result;
  {
    // Subscriptions still open are closed with the backend (their owner's Close then
    // returns at once).
    std::lock_guard<std::mutex> lock(state_->consumers_mu);
    for (core::BackendConsumer* consumer : state_->consumers) {
      Status status = consumer->Close(deadline);
      if (result.ok() && !status.ok()) result = status;
    }
  }
  writer_->Stop(deadline);
  {
    std::lock_guard<std::mutex> lock(admin_mu_);
    admin_connection_.Disconnect();
  }
  return result;
}

}  // namespace msgsdk::redis
