#include "backends/redis/redis_consumer.h"

#include <algorithm>
#include <charconv>
#include <random>
#include <set>
#include <span>

#include <hiredis/hiredis.h>

#include "backends/redis/redis_codec.h"

namespace msgsdk::redis {
namespace {

using Clock = std::chrono::steady_clock;

// Ids per XACK / renewal command.
constexpr size_t kIdsPerCommand = 512;
// Consumers without pending entries that have not read for this long (and at least ten
// claim_idle_ms) are removed from the group: they are instances that are gone for good.
constexpr std::chrono::milliseconds kDeadConsumerIdle = std::chrono::hours(1);
constexpr std::chrono::milliseconds kDeadConsumerScan = std::chrono::minutes(10);
// Entries handed back at close look idle this long, so any member may claim them at once.
constexpr int64_t kHandBackIdleMs = 24LL * 3600 * 1000;

// Resets the idle time of the given entries, but only of those this consumer still owns:
// an entry another member took over (because this one stalled) stays with that member.
// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3..] entry ids. Returns how many
// were kept.
constexpr std::string_view kRenewEntriesScript = R"lua(
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] ~= nil and p[1][2] == ARGV[2] then kept[#kept + 1] = ARGV[i] end
end
local n = #kept
if n > 0 then
  kept[n + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(kept))
end
return n
)lua";

// Heartbeats a member (score: expiry on the server's clock), forgets expired members and
// returns the live ones. KEYS[1] members set; ARGV[1] member token; ARGV[2] lease ms.
constexpr std::string_view kMembershipScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], lease * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
)lua";

// Heartbeats a member and renews the leases it holds; returns the (1-based) positions among
// KEYS[2..] of the leases it no longer holds. KEYS[1] members set; KEYS[2..] lease keys;
// ARGV[1] member token; ARGV[2] lease ms.
constexpr std::string_view kRenewLeasesScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 10)
local lost = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], lease)
  else
    lost[#lost + 1] = i - 1
  end
end
return lost
)lua";

// Deletes a lease if this member still holds it. KEYS[1] lease key; ARGV[1] member token.
constexpr std::string_view kReleaseLeaseScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// Consumer names in use in this process, so that two subscriptions of one group never share
// a consumer name (they would re-read and hand back each other's pending entries).
std::mutex& NamesMutex() {
  static std::mutex mu;
  return mu;
}
std::set<std::string>& NamesInUse() {
  static std::set<std::string> names;
  return names;
}

std::string AcquireConsumerName(const std::string& scope, const std::string& base,
                                std::string& key) {
  std::lock_guard<std::mutex> lock(NamesMutex());
  for (int n = 1;; ++n) {
    std::string name = n == 1 ? base : base + "-" + std::to_string(n);
    std::string candidate = scope;
    candidate.append("\n").append(name);
    if (NamesInUse().insert(candidate).second) {
      key = std::move(candidate);
      return name;
    }
  }
}

void ReleaseConsumerName(const std::string& key) {
  std::lock_guard<std::mutex> lock(NamesMutex());
  NamesInUse().erase(key);
}

std::string RandomHex() {
  std::random_device device;
  const uint64_t value = (static_cast<uint64_t>(device()) << 32) ^ device();
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 0; i < 16; ++i) out[static_cast<size_t>(i)] = kDigits[(value >> (4 * i)) & 0xF];
  return out;
}

const redisReply* Element(const redisReply* reply, size_t i) {
  if (!IsArray(reply) || i >= reply->elements) return nullptr;
  return reply->element[i];
}

int64_t ReplyInteger(const redisReply* reply) {
  if (reply == nullptr) return 0;
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  const std::string_view text = ReplyString(reply);
  int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + (c - '0');
  }
  return value;
}

// Flat [name, value, name, value...] arrays (XINFO replies) as a lookup.
const redisReply* Field(const redisReply* flat, std::string_view name) {
  if (!IsArray(flat)) return nullptr;
  for (size_t i = 0; i + 1 < flat->elements; i += 2) {
    if (ReplyString(flat->element[i]) == name) return flat->element[i + 1];
  }
  return nullptr;
}

std::string EntryIdOf(const redisReply* entry) {
  return std::string(ReplyString(Element(entry, 0)));
}

}  // namespace

std::vector<HeldEntries::Slot>::iterator HeldEntries::Find(const EntryId& id) {
  return std::lower_bound(slots_.begin(), slots_.end(), id,
                          [](const Slot& slot, const EntryId& wanted) { return slot.id < wanted; });
}

bool HeldEntries::Insert(const EntryId& id) {
  if (slots_.empty() || slots_.back().id < id) {
    // The common case: new entries come in stream order.
    slots_.push_back(Slot{id, true});
    ++held_;
    return true;
  }
  const auto it = Find(id);
  if (it != slots_.end() && it->id == id) {
    if (it->held) return false;
    it->held = true;
  } else {
    slots_.insert(it, Slot{id, true});
  }
  ++held_;
  return true;
}

bool HeldEntries::Erase(const EntryId& id) {
  const auto it = Find(id);
  if (it == slots_.end() || it->id != id || !it->held) return false;
  it->held = false;
  --held_;
  // Dropped in bulk once most slots are free: amortised O(1) per entry, and an entry held
  // for long (a handler retrying) cannot make the vector grow without bound.
  constexpr size_t kSlack = 64;
  if (slots_.size() > 2 * held_ + kSlack) {
    std::erase_if(slots_, [](const Slot& slot) { return !slot.held; });
  }
  return true;
}

void HeldEntries::Clear() {
  slots_.clear();
  held_ = 0;
}

void HeldEntries::AppendTo(std::vector<EntryId>& out) const {
  for (const Slot& slot : slots_) {
    if (slot.held) out.push_back(slot.id);
  }
}

Status CreateGroups(Connection& connection, const std::vector<std::string>& streams,
                    const std::string& group, std::string_view start_id) {
  MSGSDK_RETURN_IF_ERROR(connection.EnsureConnected());
  for (const std::string& stream : streams) {
    std::string command;
    AppendCommand(command, {"XGROUP", "CREATE", stream, group, start_id, "MKSTREAM"});
    MSGSDK_RETURN_IF_ERROR(connection.AppendEncoded(command));
  }
  Status first_error;
  for (const std::string& stream : streams) {
    auto reply = connection.ReadReply("XGROUP CREATE", stream);
    if (reply.ok() || reply.status().code() == StatusCode::kAlreadyExists) continue;
    if (!connection.connected()) return reply.status();
    if (first_error.ok()) first_error = reply.status();
  }
  return first_error;
}

Result<std::unique_ptr<RedisConsumer>> RedisConsumer::Start(std::shared_ptr<BackendState> state,
                                                            const core::SubscriptionSpec& spec,
                                                            core::DeliverySink& sink) {
  const bool broadcast = spec.mode == SubscriptionMode::kBroadcast;
  const std::string member =
      SanitizeName(spec.member_id.empty() ? state->instance_name : spec.member_id);
  const std::string group = RedisGroupName(spec.group, broadcast, member);
  std::string scope;
  for (const Endpoint& endpoint : state->options.endpoints) {
    scope.append(endpoint.ToString()).append(",");
  }
  scope.append("/").append(std::to_string(state->options.database)).append("/");
  scope.append(state->StreamOf(spec.topic, 0)).append("/").append(group);
  std::string name_key;
  const std::string consumer = AcquireConsumerName(scope, member, name_key);
  // A broadcast group has a single member: nothing to share.
  const bool exclusive = !broadcast && state->options.exclusive_streams;

  std::unique_ptr<RedisConsumer> created(
      new RedisConsumer(std::move(state), spec, sink, group, consumer, name_key, exclusive));
  {
    ScopedSigpipeBlock sigpipe_guard;
    const std::string_view start = spec.start_from == StartPosition::kLatest ? "$" : "0";
    Status status = CreateGroups(created->worker_connection_, created->streams_, group, start);
    if (!status.ok()) {
      return status.WithContext("subscribing group '" + spec.group + "' to topic '" + spec.topic +
                                "'");
    }
  }
  created->state_->NoteTopic(spec.topic);
  RedisConsumer* self = created.get();
  self->reader_ = std::thread([self] { self->ReaderLoop(); });
  self->worker_ = std::thread([self] { self->WorkerLoop(); });
  {
    std::lock_guard<std::mutex> lock(self->state_->consumers_mu);
    self->state_->consumers.insert(self);
  }
  return created;
}

RedisConsumer::RedisConsumer(std::shared_ptr<BackendState> state, core::SubscriptionSpec spec,
                             core::DeliverySink& sink, std::string group, std::string consumer,
                             std::string name_key, bool exclusive)
    : state_(std::move(state)),
      options_(state_->options),
      spec_(std::move(spec)),
      sink_(sink),
      group_(std::move(group)),
      consumer_(std::move(consumer)),
      name_key_(std::move(name_key)),
      exclusive_(exclusive),
      lease_token_(consumer_ + "#" + RandomHex()),
      rebalance_interval_(
          std::max<std::chrono::milliseconds>(options_.lease / 3, std::chrono::milliseconds(10))),
      reader_connection_(state_->Settings("reader:" + consumer_),
                         state_->options.block + std::chrono::milliseconds(100)),
      worker_connection_(state_->Settings("acker:" + consumer_)),
      read_count_(std::to_string(options_.read_batch)),
      reader_what_("reader of group '" + group_ + "' on topic '" + spec_.topic + "'"),
      worker_what_("worker of group '" + group_ + "'") {
  const auto partitions = static_cast<size_t>(options_.partitions);
  streams_.reserve(partitions);
  for (size_t p = 0; p < partitions; ++p) {
    streams_.push_back(state_->StreamOf(spec_.topic, static_cast<int32_t>(p)));
    stream_index_.emplace(streams_.back(), static_cast<int32_t>(p));
    lease_keys_.push_back(streams_.back() + ":lease:" + group_);
  }
  members_key_ = options_.key_prefix + ":" + spec_.topic + ":members:" + group_;
  claim_cursor_.assign(partitions, "0-0");
  held_.resize(partitions);
  // Without exclusive streams every member reads every stream from the start.
  reading_.assign(partitions, !exclusive_);
  owned_.assign(partitions, !exclusive_);
}

RedisConsumer::~RedisConsumer() {
  {
    // Waits if the backend is closing this consumer right now.
    std::lock_guard<std::mutex> lock(state_->consumers_mu);
    state_->consumers.erase(this);
  }
  Close(Clock::now() + options_.command_timeout).IgnoreError();
}

bool RedisConsumer::stopping() { return stopping_.load(std::memory_order_acquire); }

std::vector<int32_t> RedisConsumer::owned_partitions() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int32_t> owned;
  for (size_t p = 0; p < owned_.size(); ++p) {
    if (owned_[p]) owned.push_back(static_cast<int32_t>(p));
  }
  return owned;
}

void RedisConsumer::SetOwned(size_t partition, bool owned) {
  reading_[partition] = owned;
  std::lock_guard<std::mutex> lock(mu_);
  owned_[partition] = owned;
  if (!owned) held_[partition].Clear();
}

bool RedisConsumer::WaitCapacity() {
  constexpr auto kSlice = std::chrono::milliseconds(100);
  while (!stopping()) {
    const auto deadline = Clock::now() + kSlice;
    if (sink_.WaitForCapacity(deadline)) return true;
    if (Clock::now() < deadline) {
      // Refused before its deadline: the subscription is closing; wait for our own Close.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, deadline, [&] { return stopping_.load(); });
    }
  }
  return false;
}

bool RedisConsumer::HasCapacityNow() { return sink_.WaitForCapacity(Clock::now()); }

int32_t RedisConsumer::PartitionOf(std::string_view stream) const {
  const auto it = stream_index_.find(std::string(stream));
  return it == stream_index_.end() ? -1 : it->second;
}

// ---- Reader ------------------------------------------------------------------------------

void RedisConsumer::ReaderLoop() {
  BlockSigpipeInThisThread();
  NameThisThread("redis-reader");
  Backoff backoff;
  bool recover = true;
  auto next_claim = Clock::now();
  auto next_gc = Clock::now();
  auto next_rebalance = Clock::now();
  const auto claim_interval = std::clamp<std::chrono::milliseconds>(
      options_.claim_idle / 2, std::chrono::milliseconds(5), std::chrono::seconds(5));
  const std::string_view start = spec_.start_from == StartPosition::kLatest ? "$" : "0";

  while (!stopping()) {
    Status status;
    if (read_ahead_) {
      // Every other command of this connection waits until the read asked for ahead of time
      // has been answered and delivered (its reply comes first).
      const auto now = Clock::now();
      const bool other_work =
          recover || now >= next_gc || now >= next_claim || (exclusive_ && now >= next_rebalance);
      if (!reader_connection_.connected()) {
        read_ahead_ = false;
      } else if (other_work) {
        status = ReadNew(options_.block, /*read_ahead=*/false);
      }
    }
    if (status.ok() && !reader_connection_.connected()) {
      read_ahead_ = false;
      status = reader_connection_.EnsureConnected();
      if (status.ok()) status = LearnReaderClientId();
      // Whatever this consumer read just before a connection was lost may be pending
      // without having reached the core: read its own pending entries again.
      recover = true;
    }
    if (status.ok() && exclusive_ && Clock::now() >= next_rebalance) {
      status = Rebalance();
      next_rebalance = Clock::now() + rebalance_interval_;
    }
    if (status.ok() && recover) {
      status = RecoverOwnPending();
      if (status.ok()) recover = false;
    }
    if (status.ok() && Clock::now() >= next_gc) {
      status = CollectDeadConsumers();
      next_gc = Clock::now() + kDeadConsumerScan;
    }
    if (status.ok() && Clock::now() >= next_claim) {
      bool more = false;
      status = ClaimIdle(more);
      next_claim = more ? Clock::now() : Clock::now() + claim_interval;
    }
    if (status.ok()) {
      auto wake = next_claim;
      if (exclusive_) wake = std::min(wake, next_rebalance);
      if (std::find(reading_.begin(), reading_.end(), true) == reading_.end()) {
        // No stream to read (exclusive streams, all held by other members): wait for the
        // next rebalance.
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_until(lock, wake, [&] { return stopping_.load(); });
        continue;
      }
      if (!WaitCapacity()) break;
      const auto until_wake =
          std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now());
      // BLOCK 0 would mean "forever": always at least 1 ms.
      const auto block = std::clamp(until_wake, std::chrono::milliseconds(1), options_.block);
      status = ReadNew(block, /*read_ahead=*/true);
    }
    if (status.ok()) {
      reader_log_.Success(reader_what_);
      backoff.Reset();
      continue;
    }
    if (stopping()) break;
    if (status.code() == StatusCode::kNotFound && reader_connection_.connected()) {
      // NOGROUP: the stream was deleted, or the server restarted without its data.
      LogWarning("redis cluster '" + options_.cluster + "': group '" + group_ + "' of topic '" +
                 spec_.topic + "' is gone (" + status.message() + "); creating it again");
      status = CreateGroups(reader_connection_, streams_, group_, start);
      if (status.ok()) continue;
    }
    if (status.code() == StatusCode::kUnavailable) {
      // READONLY after a failover, LOADING...: a new connection may find the primary.
      reader_connection_.Disconnect();
      state_->connection_failures.fetch_add(1, std::memory_order_relaxed);
    }
    reader_log_.Failure("reader of group '" + group_ + "' on topic '" + spec_.topic +
                        "': " + status.ToString());
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff.Next(), [&] { return stopping_.load(); });
  }
}

Result<RedisConsumer::Counts> RedisConsumer::PendingCounts(Connection& connection,
                                                           const std::string& stream,
                                                           std::string_view first,
                                                           std::string_view last, size_t count) {
  const std::string n = std::to_string(count);
  MSGSDK_ASSIGN_OR_RETURN(
      ReplyPtr reply,
      connection.Command({"XPENDING", stream, group_, first, last, n, consumer_}, stream));
  Counts counts;
  const redisReply* list = reply.get();
  for (size_t i = 0; IsArray(list) && i < list->elements; ++i) {
    const redisReply* item = list->element[i];
    if (!IsArray(item) || item->elements < 4) continue;
    counts[std::string(ReplyString(item->element[0]))] = ReplyInteger(item->element[3]);
  }
  return counts;
}

size_t RedisConsumer::DeliverEntries(int32_t partition, const redisReply* entries,
                                     const Counts* counts) {
  if (partition < 0 || !IsArray(entries) || entries->elements == 0) return 0;
  const std::string& stream = streams_[static_cast<size_t>(partition)];
  // Decoded into the records the core hands back spent (see DeliverySink::DeliverSwapping):
  // no allocation per message in a steady stream, and nothing this thread allocated is freed
  // on a handler thread.
  size_t decoded = 0;
  entry_ids_.clear();
  std::vector<EntryId> gone;
  for (size_t i = 0; i < entries->elements; ++i) {
    const redisReply* entry = entries->element[i];
    if (!IsArray(entry) || entry->elements < 2) continue;
    const std::string_view id_text = ReplyString(entry->element[0]);
    const auto id = ParseEntryId(id_text);
    if (!id) continue;
    const redisReply* values = entry->element[1];
    if (!IsArray(values)) {
      // A pending entry whose data was trimmed away (MAXLEN) or deleted: nothing to deliver.
      gone.push_back(*id);
      continue;
    }
    fields_.clear();
    for (size_t f = 0; f + 1 < values->elements; f += 2) {
      fields_.emplace_back(ReplyString(values->element[f]), ReplyString(values->element[f + 1]));
    }
    core::Delivery& delivery = core::RecordToDecodeInto(deliveries_, decoded++);
    DecodeEntryInto(stream, *id, fields_, delivery.message);
    delivery.message.topic.assign(spec_.topic);
    delivery.message.partition = partition;
    delivery.message.offset = EntryIdToOffset(*id);
    delivery.message.delivery_attempt = 0;
    if (counts != nullptr) {
      // Redis counts this delivery too; the core wants the deliveries before it.
      const auto it = counts->find(std::string(id_text));
      if (it != counts->end() && it->second > 1) {
        delivery.message.delivery_attempt = static_cast<int>(it->second - 1);
      }
    }
    delivery.receipt.assign(id_text.data(), id_text.size());
    entry_ids_.push_back(*id);
  }
  size_t kept = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HeldEntries& held = held_[static_cast<size_t>(partition)];
    // Entries the core already holds (re-read or re-claimed) must not reach it twice; they
    // move behind with their buffers.
    for (size_t i = 0; i < decoded; ++i) {
      if (!held.Insert(entry_ids_[i])) continue;
      if (kept != i) deliveries_[kept].swap(deliveries_[i]);
      ++kept;
    }
    for (const EntryId& id : gone) acks_.emplace_back(partition, id);
  }
  if (!gone.empty()) {
    state_->trimmed_pending.fetch_add(static_cast<int64_t>(gone.size()));
    LogWarning("redis cluster '" + options_.cluster + "': " + std::to_string(gone.size()) +
               " pending entries of group '" + group_ + "' on '" + stream +
               "' were deleted (trimmed by maxlen?) before being acknowledged");
    cv_.notify_all();
  }
  if (kept > 0) {
    state_->delivered.fetch_add(static_cast<int64_t>(kept), std::memory_order_relaxed);
    sink_.DeliverSwapping(std::span(deliveries_.data(), kept));
  }
  return kept;
}

Status RedisConsumer::RecoverOwnPending() {
  const size_t partitions = streams_.size();
  std::vector<std::string> cursor(partitions, "0");
  std::vector<bool> done(partitions, false);
  for (size_t p = 0; p < partitions; ++p) done[p] = !reading_[p];
  const std::string& count = read_count_;
  while (!stopping()) {
    std::vector<size_t> open;
    for (size_t p = 0; p < partitions; ++p) {
      if (!done[p]) open.push_back(p);
    }
    if (open.empty()) return OkStatus();
    if (!WaitCapacity()) return OkStatus();
    std::vector<std::string_view> args = {"XREADGROUP", "GROUP", group_,   consumer_,
                                          "COUNT",      count,   "STREAMS"};
    for (const size_t p : open) args.emplace_back(streams_[p]);
    for (const size_t p : open) args.emplace_back(cursor[p]);
    MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply, reader_connection_.Command(args, streams_[open[0]]));
    std::vector<bool> answered(partitions, false);
    for (size_t s = 0; IsArray(reply.get()) && s < reply->elements; ++s) {
      const redisReply* item = reply->element[s];
      const int32_t partition = PartitionOf(ReplyString(Element(item, 0)));
      const redisReply* entries = Element(item, 1);
      if (partition < 0) continue;
      const auto p = static_cast<size_t>(partition);
      answered[p] = true;
      if (!IsArray(entries) || entries->elements == 0) {
        done[p] = true;
        continue;
      }
      const std::string first = EntryIdOf(entries->element[0]);
      cursor[p] = EntryIdOf(entries->element[entries->elements - 1]);
      MSGSDK_ASSIGN_OR_RETURN(Counts counts, PendingCounts(reader_connection_, streams_[p], first,
                                                           cursor[p], entries->elements));
      DeliverEntries(partition, entries, &counts);
    }
    for (const size_t p : open) {
      if (!answered[p]) done[p] = true;
    }
  }
  return OkStatus();
}

Status RedisConsumer::ClaimIdle(bool& more) {
  more = false;
  const std::string min_idle = std::to_string(options_.claim_idle.count());
  const std::string count = std::to_string(options_.read_batch);
  for (size_t p = 0; p < streams_.size() && !stopping(); ++p) {
    if (!reading_[p]) continue;
    // Claimed entries become this consumer's: take only what the core can hold now.
    if (!HasCapacityNow()) {
      more = true;
      return OkStatus();
    }
    MSGSDK_ASSIGN_OR_RETURN(
        ReplyPtr reply, reader_connection_.Command({"XAUTOCLAIM", streams_[p], group_, consumer_,
                                                    min_idle, claim_cursor_[p], "COUNT", count},
                                                   streams_[p]));
    const std::string_view next = ReplyString(Element(reply.get(), 0));
    claim_cursor_[p] = next.empty() ? std::string("0-0") : std::string(next);
    if (claim_cursor_[p] != "0-0") more = true;
    const redisReply* deleted = Element(reply.get(), 2);
    if (IsArray(deleted) && deleted->elements > 0) {
      state_->trimmed_pending.fetch_add(static_cast<int64_t>(deleted->elements));
      LogWarning("redis cluster '" + options_.cluster + "': " + std::to_string(deleted->elements) +
                 " pending entries of group '" + group_ + "' on '" + streams_[p] +
                 "' were deleted (trimmed by maxlen?) before being acknowledged");
    }
    const redisReply* entries = Element(reply.get(), 1);
    if (!IsArray(entries) || entries->elements == 0) continue;
    size_t held = 0;
    {
      // Entries this consumer already holds may lie in the same id range.
      std::lock_guard<std::mutex> lock(mu_);
      held = held_[p].size();
    }
    MSGSDK_ASSIGN_OR_RETURN(
        Counts counts,
        PendingCounts(reader_connection_, streams_[p], EntryIdOf(entries->element[0]),
                      EntryIdOf(entries->element[entries->elements - 1]),
                      entries->elements + held));
    const size_t delivered = DeliverEntries(static_cast<int32_t>(p), entries, &counts);
    if (delivered > 0) {
      state_->claimed.fetch_add(static_cast<int64_t>(delivered), std::memory_order_relaxed);
    }
  }
  return OkStatus();
}

Status RedisConsumer::ClaimAll(size_t partition) {
  const std::string& stream = streams_[partition];
  const std::string count = std::to_string(options_.read_batch);
  std::string cursor = "0-0";
  while (!stopping()) {
    if (!WaitCapacity()) return OkStatus();
    MSGSDK_ASSIGN_OR_RETURN(
        ReplyPtr reply,
        reader_connection_.Command(
            {"XAUTOCLAIM", stream, group_, consumer_, "0", cursor, "COUNT", count}, stream));
    const redisReply* entries = Element(reply.get(), 1);
    if (IsArray(entries) && entries->elements > 0) {
      MSGSDK_ASSIGN_OR_RETURN(
          Counts counts,
          PendingCounts(reader_connection_, stream, EntryIdOf(entries->element[0]),
                        EntryIdOf(entries->element[entries->elements - 1]), entries->elements));
      const size_t delivered = DeliverEntries(static_cast<int32_t>(partition), entries, &counts);
      if (delivered > 0) {
        state_->claimed.fetch_add(static_cast<int64_t>(delivered), std::memory_order_relaxed);
      }
    }
    const std::string_view next = ReplyString(Element(reply.get(), 0));
    if (next.empty() || next == "0-0") return OkStatus();
    cursor = std::string(next);
  }
  return OkStatus();
}

Status RedisConsumer::CollectDeadConsumers() {
  const auto idle_limit =
      std::max<std::chrono::milliseconds>(kDeadConsumerIdle, options_.claim_idle * 10);
  for (const std::string& stream : streams_) {
    if (stopping()) return OkStatus();
    MSGSDK_ASSIGN_OR_RETURN(
        ReplyPtr reply, reader_connection_.Command({"XINFO", "CONSUMERS", stream, group_}, stream));
    for (size_t i = 0; IsArray(reply.get()) && i < reply->elements; ++i) {
      const redisReply* info = reply->element[i];
      const std::string name(ReplyString(Field(info, "name")));
      if (name.empty() || name == consumer_) continue;
      if (ReplyInteger(Field(info, "pending")) != 0) continue;
      if (ReplyInteger(Field(info, "idle")) < idle_limit.count()) continue;
      // Pending is 0, so deleting loses nothing; a live consumer is never idle this long.
      auto deleted =
          reader_connection_.Command({"XGROUP", "DELCONSUMER", stream, group_, name}, stream);
      if (!deleted.ok() && !reader_connection_.connected()) return deleted.status();
    }
  }
  return OkStatus();
}

Status RedisConsumer::SendRead(std::chrono::milliseconds block) {
  char block_ms[24];
  const std::string_view block_text(
      block_ms,
      static_cast<size_t>(std::to_chars(block_ms, block_ms + sizeof(block_ms), block.count()).ptr -
                          block_ms));
  std::vector<std::string_view> args = {"XREADGROUP", "GROUP", group_,     consumer_, "COUNT",
                                        read_count_,  "BLOCK", block_text, "STREAMS"};
  size_t streams = 0;
  read_key_ = {};
  for (size_t p = 0; p < streams_.size(); ++p) {
    if (!reading_[p]) continue;
    args.emplace_back(streams_[p]);
    read_key_ = streams_[p];
    ++streams;
  }
  if (streams != 1) read_key_ = {};
  for (size_t i = 0; i < streams; ++i) args.emplace_back(">");
  MSGSDK_RETURN_IF_ERROR(reader_connection_.EnsureConnected());
  AppendCommand(reader_connection_.output(), args);
  return reader_connection_.Flush("XREADGROUP", read_key_);
}

Status RedisConsumer::ReadNew(std::chrono::milliseconds block, bool read_ahead) {
  if (!read_ahead_) {
    if (stopping()) return OkStatus();
    MSGSDK_RETURN_IF_ERROR(SendRead(block));
  }
  read_ahead_ = false;
  MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply, reader_connection_.ReadReply("XREADGROUP", read_key_));
  bool full = false;
  for (size_t s = 0; IsArray(reply.get()) && s < reply->elements; ++s) {
    const redisReply* entries = Element(reply->element[s], 1);
    full =
        full || (IsArray(entries) && entries->elements >= static_cast<size_t>(options_.read_batch));
  }
  Status ahead;
  if (read_ahead && full && !stopping() && HasCapacityNow()) {
    // A full batch: more is likely waiting. Ask for it before handing this batch to the core,
    // so the server reads the next one while the core takes this one.
    ahead = SendRead(block);
    read_ahead_ = ahead.ok();
  }
  for (size_t s = 0; IsArray(reply.get()) && s < reply->elements; ++s) {
    const redisReply* item = reply->element[s];
    DeliverEntries(PartitionOf(ReplyString(Element(item, 0))), Element(item, 1), nullptr);
  }
  return ahead;
}

Status RedisConsumer::Rebalance() {
  std::vector<int32_t> lost;
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost.swap(lost_);
  }
  for (const int32_t partition : lost) {
    const auto p = static_cast<size_t>(partition);
    if (!reading_[p]) continue;
    LogWarning("redis cluster '" + options_.cluster + "': consumer '" + consumer_ +
               "' lost its lease on '" + streams_[p] + "' for group '" + group_ +
               "' (it did not renew it within lease_ms); another member reads it now");
    MSGSDK_RETURN_IF_ERROR(GiveUp(p, /*release=*/false));
  }

  const std::string lease_ms = std::to_string(options_.lease.count());
  MSGSDK_ASSIGN_OR_RETURN(
      ReplyPtr reply,
      reader_connection_.Command(
          {"EVAL", kMembershipScript, "1", members_key_, lease_token_, lease_ms}, members_key_));
  std::vector<std::string> members;
  for (size_t i = 0; IsArray(reply.get()) && i < reply->elements; ++i) {
    members.emplace_back(ReplyString(reply->element[i]));
  }
  if (std::find(members.begin(), members.end(), lease_token_) == members.end()) {
    members.push_back(lease_token_);
  }
  // Every member sorts the same set the same way, so they agree on who reads what.
  std::sort(members.begin(), members.end());
  const size_t count = members.size();
  const auto index = static_cast<size_t>(std::find(members.begin(), members.end(), lease_token_) -
                                         members.begin());

  for (size_t p = 0; p < streams_.size(); ++p) {
    if (reading_[p] && p % count != index) MSGSDK_RETURN_IF_ERROR(GiveUp(p, /*release=*/true));
  }
  for (size_t p = 0; p < streams_.size() && !stopping(); ++p) {
    if (reading_[p] || p % count != index) continue;
    bool acquired = false;
    MSGSDK_RETURN_IF_ERROR(Acquire(p, acquired));
  }
  return OkStatus();
}

Status RedisConsumer::Acquire(size_t partition, bool& acquired) {
  acquired = false;
  const std::string lease_ms = std::to_string(options_.lease.count());
  MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply,
                          reader_connection_.Command(
                              {"SET", lease_keys_[partition], lease_token_, "NX", "PX", lease_ms},
                              lease_keys_[partition]));
  // Nil: the previous owner has not given it up yet (or its lease has not expired).
  if (IsNil(reply.get())) return OkStatus();
  acquired = true;
  SetOwned(partition, true);
  // The previous owner's unacknowledged entries come first, before anything newer.
  return ClaimAll(partition);
}

Status RedisConsumer::GiveUp(size_t partition, bool release) {
  SetOwned(partition, false);
  sink_.Revoke({static_cast<int32_t>(partition)});
  if (!release) return OkStatus();
  // The core finished with the partition: its acknowledgements are all queued now. Write
  // them before handing the rest back, so the next owner does not get them again.
  AckList acks;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !worker_flushing_; });
    for (auto it = acks_.begin(); it != acks_.end();) {
      if (static_cast<size_t>(it->first) == partition) {
        acks.push_back(std::move(*it));
        it = acks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  MSGSDK_RETURN_IF_ERROR(FlushAcks(reader_connection_, acks));
  int64_t handed_back = 0;
  MSGSDK_RETURN_IF_ERROR(HandBack(reader_connection_, {partition},
                                  Clock::now() + options_.command_timeout, handed_back));
  auto released = reader_connection_.Command(
      {"EVAL", kReleaseLeaseScript, "1", lease_keys_[partition], lease_token_},
      lease_keys_[partition]);
  return released.ok() ? OkStatus() : released.status();
}

// ---- Acknowledgements and the worker -----------------------------------------------------

void RedisConsumer::Ack(const core::Delivery& delivery) {
  const int32_t partition = delivery.message.partition;
  if (partition < 0 || static_cast<size_t>(partition) >= streams_.size()) return;
  const auto id = ParseEntryId(delivery.receipt);
  if (!id) return;  // not a receipt of this backend
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    held_[static_cast<size_t>(partition)].Erase(*id);
    // The worker only sleeps on an empty queue: one wake-up per batch, not per ack.
    wake = acks_.empty();
    acks_.emplace_back(partition, *id);
  }
  if (wake) cv_.notify_all();
}

Status RedisConsumer::FlushAcks(Connection& connection, AckList& acks) {
  if (acks.empty()) return OkStatus();
  MSGSDK_RETURN_IF_ERROR(connection.EnsureConnected());
  // XACK <stream> <group> <id>... per partition (at most kIdsPerCommand ids each), encoded in
  // place into the connection's buffer and written in one go.
  std::vector<size_t> per_partition(streams_.size(), 0);
  for (const auto& [partition, id] : acks) ++per_partition[static_cast<size_t>(partition)];
  std::string& output = connection.output();
  std::vector<size_t> commands;  // partition of each pipelined command
  for (size_t p = 0; p < per_partition.size(); ++p) {
    size_t left = per_partition[p];
    size_t in_command = 0;
    for (const auto& [partition, id] : acks) {
      if (left == 0) break;
      if (static_cast<size_t>(partition) != p) continue;
      if (in_command == 0) {
        in_command = std::min(left, kIdsPerCommand);
        AppendArrayHeader(output, 3 + in_command);
        AppendBulk(output, "XACK");
        AppendBulk(output, streams_[p]);
        AppendBulk(output, group_);
        commands.push_back(p);
      }
      AppendBulk(output, id);
      --in_command;
      --left;
    }
  }
  for (const size_t p : commands) {
    auto reply = connection.ReadReply("XACK", streams_[p]);
    if (!reply.ok()) {
      if (!connection.connected()) return reply.status();
      // NOGROUP: the group is gone and nothing is pending any more; anything else is logged
      // and those entries are redelivered later, which at-least-once allows.
      if (reply.status().code() != StatusCode::kNotFound) {
        worker_log_.Failure("acknowledging on '" + streams_[p] + "': " + reply.status().ToString());
      }
    }
  }
  state_->acked.fetch_add(static_cast<int64_t>(acks.size()), std::memory_order_relaxed);
  acks.clear();
  return OkStatus();
}

Status RedisConsumer::RenewHeld() {
  std::vector<std::vector<EntryId>> held(streams_.size());
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t p = 0; p < held_.size(); ++p) {
      held_[p].AppendTo(held[p]);
      any = any || !held[p].empty();
    }
  }
  if (!any) return OkStatus();
  MSGSDK_RETURN_IF_ERROR(worker_connection_.EnsureConnected());
  std::string& output = worker_connection_.output();
  std::vector<size_t> commands;
  for (size_t p = 0; p < held.size(); ++p) {
    for (size_t begin = 0; begin < held[p].size(); begin += kIdsPerCommand) {
      const size_t end = std::min(held[p].size(), begin + kIdsPerCommand);
      // EVAL <script> 1 <stream> <group> <consumer> <id>...
      AppendArrayHeader(output, 6 + (end - begin));
      AppendBulk(output, "EVAL");
      AppendBulk(output, kRenewEntriesScript);
      AppendBulk(output, "1");
      AppendBulk(output, streams_[p]);
      AppendBulk(output, group_);
      AppendBulk(output, consumer_);
      for (size_t i = begin; i < end; ++i) AppendBulk(output, held[p][i]);
      commands.push_back(p);
    }
  }
  Status first_error;
  for (const size_t p : commands) {
    auto reply = worker_connection_.ReadReply("EVAL (renew pending)", streams_[p]);
    if (!reply.ok()) {
      if (!worker_connection_.connected()) return reply.status();
      if (first_error.ok()) first_error = reply.status();
    }
  }
  return first_error;
}

Status RedisConsumer::RenewLeases() {
  std::vector<size_t> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t p = 0; p < owned_.size(); ++p) {
      if (owned_[p]) owned.push_back(p);
    }
  }
  const std::string lease_ms = std::to_string(options_.lease.count());
  const std::string keys = std::to_string(owned.size() + 1);
  std::vector<std::string_view> args = {"EVAL", kRenewLeasesScript, keys, members_key_};
  for (const size_t p : owned) args.emplace_back(lease_keys_[p]);
  args.emplace_back(lease_token_);
  args.emplace_back(lease_ms);
  MSGSDK_ASSIGN_OR_RETURN(ReplyPtr reply, worker_connection_.Command(args, members_key_));
  std::vector<int32_t> lost;
  for (size_t i = 0; IsArray(reply.get()) && i < reply->elements; ++i) {
    const int64_t position = ReplyInteger(reply->element[i]);
    if (position >= 1 && static_cast<size_t>(position) <= owned.size()) {
      lost.push_back(static_cast<int32_t>(owned[static_cast<size_t>(position) - 1]));
    }
  }
  if (!lost.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    lost_.insert(lost_.end(), lost.begin(), lost.end());
  }
  return OkStatus();
}

Status RedisConsumer::LearnReaderClientId() {
  auto reply = reader_connection_.Command({"CLIENT", "ID"});
  if (!reply.ok()) {
    reader_client_id_ = 0;
    return reply.status().code() == StatusCode::kPermissionDenied ? OkStatus() : reply.status();
  }
  reader_client_id_ = ReplyInteger(reply->get());
  return OkStatus();
}

bool RedisConsumer::KillReaderOnServer() {
  const int64_t id = reader_client_id_.load();
  if (id <= 0 || !worker_connection_.EnsureConnected().ok()) return false;
  const std::string id_text = std::to_string(id);
  auto reply = worker_connection_.Command({"CLIENT", "KILL", "ID", id_text});
  // "No such client": the server already closed it, which is just as good.
  return reply.ok() || (reply.status().code() != StatusCode::kPermissionDenied &&
                         worker_connection_.connected());
}

Status RedisConsumer::HandBack(Connection& connection, const std::vector<size_t>& partitions,
                               core::Deadline deadline, int64_t& handed_back) {
  handed_back = 0;
  MSGSDK_RETURN_IF_ERROR(connection.EnsureConnected());
  const std::string idle =
      std::to_string(std::max<int64_t>(kHandBackIdleMs, options_.claim_idle.count() * 2));
  constexpr size_t kPage = 512;
  const std::string page = std::to_string(kPage);
  for (const size_t p : partitions) {
    const std::string& stream = streams_[p];
    std::string start = "-";
    while (Clock::now() < deadline) {
      MSGSDK_ASSIGN_OR_RETURN(
          ReplyPtr reply,
          connection.Command({"XPENDING", stream, group_, start, "+", page, consumer_}, stream));
      if (!IsArray(reply.get()) || reply->elements == 0) break;
      std::vector<std::string_view> args = {"XCLAIM", stream, group_, consumer_, "0"};
      std::string last;
      int64_t ids = 0;
      for (size_t i = 0; i < reply->elements; ++i) {
        const std::string_view id = ReplyString(Element(reply->element[i], 0));
        if (id.empty()) continue;
        args.emplace_back(id);
        last = std::string(id);
        ++ids;
      }
      if (ids == 0) break;
      args.insert(args.end(), {"IDLE", idle, "JUSTID"});
      auto claimed = connection.Command(args, stream);
      if (!claimed.ok()) return claimed.status();
      handed_back += ids;
      if (reply->elements < kPage) break;
      start = "(" + last;
    }
  }
  return OkStatus();
}

void RedisConsumer::WorkerLoop() {
  BlockSigpipeInThisThread();
  NameThisThread("redis-acker");
  Backoff backoff;
  auto interval =
      std::max<std::chrono::milliseconds>(options_.claim_idle / 3, std::chrono::milliseconds(2));
  if (exclusive_) interval = std::min(interval, rebalance_interval_);
  auto next_renew = Clock::now();
  AckList acks;
  while (true) {
    core::Deadline final_deadline{};
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, next_renew, [&] { return !acks_.empty() || final_phase_; });
      acks.insert(acks.end(), std::make_move_iterator(acks_.begin()),
                  std::make_move_iterator(acks_.end()));
      acks_.clear();
      if (final_phase_) {
        final_deadline = final_deadline_;
        // FinishWorker writes everything, including what was just taken.
        acks_.swap(acks);
      } else {
        worker_flushing_ = !acks.empty();
      }
    }
    if (final_deadline != core::Deadline{}) {
      FinishWorker(final_deadline);
      return;
    }
    Status status = FlushAcks(worker_connection_, acks);
    if (!status.ok() && !worker_connection_.connected()) {
      // The connection may simply have gone stale (a server restart while it was idle):
      // acknowledgements are idempotent, so try once more on a fresh one right away.
      status = FlushAcks(worker_connection_, acks);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!status.ok()) {
        // Back to the queue (in front): written on the next attempt.
        acks_.insert(acks_.begin(), std::make_move_iterator(acks.begin()),
                     std::make_move_iterator(acks.end()));
        acks.clear();
      }
      worker_flushing_ = false;
    }
    cv_.notify_all();
    if (status.ok() && Clock::now() >= next_renew) {
      if (exclusive_) status = RenewLeases();
      if (status.ok()) status = RenewHeld();
      next_renew = Clock::now() + interval;
    }
    if (status.ok()) {
      worker_log_.Success(worker_what_);
      backoff.Reset();
      continue;
    }
    if (status.code() == StatusCode::kUnavailable) worker_connection_.Disconnect();
    worker_log_.Failure("worker of group '" + group_ + "' on topic '" + spec_.topic +
                        "': " + status.ToString());
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff.Next(), [&] { return final_phase_; });
  }
}

void RedisConsumer::FinishWorker(core::Deadline deadline) {
  Backoff backoff;
  AckList acks;
  Status status;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      acks.insert(acks.end(), std::make_move_iterator(acks_.begin()),
                  std::make_move_iterator(acks_.end()));
      acks_.clear();
    }
    status = FlushAcks(worker_connection_, acks);
    if (status.ok() || Clock::now() >= deadline) break;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, std::min(deadline, Clock::now() + backoff.Next()));
  }
  if (!acks.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    final_status_ =
        UnavailableError("redis cluster '" + options_.cluster +
                         "': " + std::to_string(acks.size()) + " acknowledgements of group '" +
                         group_ + "' could not be written before the close deadline (" +
                         status.message() + "); those messages will be delivered again");
    return;
  }
  // The reader's socket is shut down on this side, but the server may not have noticed yet:
  // until it does, a producer's XADD can still answer the reader's blocked XREADGROUP and
  // make entries pending on this consumer after they were handed back.
  const bool reader_gone = KillReaderOnServer();
  int64_t handed_back = 0;
  if (Clock::now() < deadline) {
    // Every stream: entries read before this member lost a stream may still be pending.
    std::vector<size_t> all(streams_.size());
    for (size_t p = 0; p < all.size(); ++p) all[p] = p;
    status = HandBack(worker_connection_, all, deadline, handed_back);
    if (!status.ok()) {
      LogWarning("redis cluster '" + options_.cluster +
                 "': handing back the pending entries of consumer '" + consumer_ + "' failed (" +
                 status.ToString() + "); other members take them over after claim_idle_ms");
    }
  }
  if (exclusive_ && worker_connection_.connected()) {
    // Leave the group's membership and free the streams, so others take them over now. Every
    // lease, not only the ones known as held: a SET NX whose reply the close interrupted may
    // have taken one (the script deletes only leases that carry this member's token).
    for (const std::string& lease_key : lease_keys_) {
      std::string command;
      AppendCommand(command, {"EVAL", kReleaseLeaseScript, "1", lease_key, lease_token_});
      if (!worker_connection_.AppendEncoded(command).ok()) break;
    }
    for (const std::string& lease_key : lease_keys_) {
      if (!worker_connection_.connected()) break;
      worker_connection_.ReadReply("EVAL (release lease)", lease_key).status().IgnoreError();
    }
    if (worker_connection_.connected()) {
      worker_connection_.Command({"ZREM", members_key_, lease_token_}, members_key_)
          .status()
          .IgnoreError();
    }
  }
  if (reader_gone && status.ok() && handed_back == 0 && Clock::now() < deadline) {
    // Nothing pending: the consumer can go, so groups do not collect names of past instances.
    // (Not when the reader's end is unknown: a late answer could still make entries pending
    // on it, and deleting the consumer would drop them; dead-consumer collection removes it.)
    for (const std::string& stream : streams_) {
      auto reply =
          worker_connection_.Command({"XGROUP", "DELCONSUMER", stream, group_, consumer_}, stream);
      if (!reply.ok() && !worker_connection_.connected()) break;
    }
  }
}

Status RedisConsumer::Close(core::Deadline deadline) {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  if (closed_) return close_status_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (!reader_.joinable()) {
    // Never started (the groups could not be created): nothing was delivered.
    ReleaseConsumerName(name_key_);
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    return close_status_;
  }
  reader_connection_.Interrupt();
  reader_.join();

  std::vector<int32_t> partitions(streams_.size());
  for (size_t p = 0; p < partitions.size(); ++p) partitions[p] = static_cast<int32_t>(p);
  sink_.Revoke(partitions);

  {
    std::lock_guard<std::mutex> lock(mu_);
    final_phase_ = true;
    final_deadline_ = deadline;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  ReleaseConsumerName(name_key_);
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  close_status_ = final_status_;
  return close_status_;
}

}  // namespace msgsdk::redis
