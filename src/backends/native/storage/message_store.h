#pragma once

// The native backend's storage engine, in the spirit of RocketMQ:
//  - one append-only commit log split into segment files, every record with a CRC32C;
//  - per (topic, queue) an index of fixed-size entries (commit-log offset, size, tag hash,
//    store time) so a queue is read in order and filtered by tag without touching bodies;
//  - consumer-group offsets in a journal, group-committed like messages and folded into an
//    atomically replaced snapshot;
//  - recovery after a crash: a torn or corrupt tail of the log is truncated, indexes are
//    trimmed to the log and rebuilt from it;
//  - retention by age and by size: whole sealed segments are deleted, oldest first, and each
//    queue's first offset moves up past the messages they held (offsets never change).
// A MessageStore owns its data directory exclusively (an flock on <data_dir>/LOCK).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/native/storage/message_codec.h"
#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

enum class FlushMode {
  // A send is acknowledged after the fdatasync that covers it; concurrent sends share one.
  // Readable once written, as in kPeriodic: readers never wait for the disk (a machine crash
  // can take back a record that was read, never one that was acknowledged).
  kGroupCommit,
  // Acknowledged once written to the page cache; fdatasync every flush_interval.
  kPeriodic,
};

// What the store deletes. Only whole sealed commit-log segments go, oldest first; the active
// segment (the one appends go to) never does, so the log can exceed max_bytes by up to one
// segment, and a message lives at least until its segment is sealed.
struct RetentionPolicy {
  // A sealed segment is deleted once the newest record in it was stored at least this long
  // ago. 0: kept forever.
  std::chrono::milliseconds max_age{0};
  // Sealed segments are deleted, oldest first, while the commit log holds more bytes than
  // this. 0: unlimited.
  uint64_t max_bytes = 0;
  // How often the background check runs.
  std::chrono::milliseconds check_interval{60000};

  bool enabled() const { return max_age.count() > 0 || max_bytes > 0; }
  friend bool operator==(const RetentionPolicy&, const RetentionPolicy&) = default;
};

// What one retention check deleted.
struct RetentionReport {
  int32_t segments_deleted = 0;
  int64_t bytes_deleted = 0;
  // Of those, deleted because of their age (the others: the size limit).
  int32_t segments_expired = 0;
  // The commit log's first offset afterwards, and its size.
  int64_t log_start = 0;
  int64_t log_bytes = 0;
  // Queues whose first offset moved: they lost the messages in [previous_start, start).
  struct QueueStart {
    std::string topic;
    int32_t queue = 0;
    int64_t previous_start = 0;
    int64_t start = 0;
  };
  std::vector<QueueStart> queues;
};

// One line for the operator's log: what a retention check deleted and which queues lost
// messages (the first few).
std::string DescribeRetention(const RetentionReport& report);

struct StoreOptions {
  std::filesystem::path data_dir;
  FlushMode flush_mode = FlushMode::kGroupCommit;
  // kPeriodic: how often the log is fdatasync'ed.
  std::chrono::milliseconds flush_interval{200};
  // A commit-log segment is sealed and a new one started once it would exceed this size.
  uint64_t segment_bytes = 1ULL << 30;
  // Entries per index file of a queue.
  uint32_t index_entries_per_file = 1u << 20;
  // How much of the commit log's tail stays in the page cache; older pages are dropped as
  // the log grows, so that appends reuse the memory just freed (see CommitLog::LimitCache).
  // Readers further behind read from the disk. 0: the kernel decides.
  uint64_t log_cache_bytes = 256ULL << 20;
  // Largest accepted record body (bytes).
  uint32_t max_message_bytes = 4u << 20;
  // Queues of a topic created implicitly by its first send or subscription.
  int32_t default_queues = 8;
  // kPeriodic: how often the consumer-offsets journal is fdatasync'ed after a commit (a commit
  // is written to it before it completes). kGroupCommit: unused, a commit completes after the
  // fdatasync that covers it.
  std::chrono::milliseconds offset_flush_interval{100};
  // How often the queue indexes are synced and the checkpoint recovery replays the log from
  // is written (also on Close): after a crash, at most about this much of the log is
  // re-indexed.
  std::chrono::milliseconds index_checkpoint_interval{1000};
  // An AppendBatch that finds the writer idle (nothing pending or being written) writes its
  // records and makes them readable on the calling thread, instead of handing them to the
  // writer and waiting for its answer: what a broker's I/O thread does, so that a produce
  // request on a quiet broker is stored without two thread wake-ups. kPeriodic: their
  // callbacks run there too. kGroupCommit: the syncer runs them after its fdatasync, so a
  // caller waits for the write (a page-cache copy), never for the disk.
  bool append_on_caller_when_idle = false;
  // Called after each batch of appends became readable, before their callbacks run, on the
  // thread that wrote it (the writer's, or a caller's: append_on_caller_when_idle): how a
  // broker wakes its long-polling readers once per batch rather than once per message. Must
  // not block.
  std::function<void()> on_published;
  // What is deleted, and when; see RetentionPolicy. Changeable while open (SetRetention).
  RetentionPolicy retention;
  // Called on the retention thread after each background check that deleted something (the
  // report) or failed (the status), for the operator's log. Must not block for long.
  std::function<void(const Result<RetentionReport>&)> on_retention;
  // The wall clock: store times are taken from it and retention ages measured against it.
  // Empty: std::chrono::system_clock. Tests inject one to age records without waiting.
  std::function<Timestamp()> clock;
};

// Stable 64-bit hash of a tag, stored in index entries (FNV-1a; never changes across versions).
uint64_t TagHash(std::string_view tag);

// Where an appended message was stored.
struct AppendResult {
  int32_t queue = 0;
  int64_t queue_offset = 0;       // position within the queue, 0-based, dense
  int64_t commit_log_offset = 0;  // byte position in the commit log
  Timestamp stored_at{};          // whole milliseconds; never decreases along a queue
};

// Called exactly once per Append, on the store's writer thread, once the message is durable
// per the flush mode (or failed); after Close, at once on the caller's thread with
// kFailedPrecondition. Must not block and must not throw.
using AppendCallback = std::function<void(Result<AppendResult>)>;

struct ReadResult {
  // In queue order. Each has topic, key, tag, properties, body, deliver_at, message_id,
  // born_at, stored_at, partition (= queue) and offset (= queue offset) set.
  std::vector<Message> messages;
  // Where the next read of this queue should start (past messages skipped by the filter).
  int64_t next_offset = 0;
  // The queue's end (offset of the next message to be stored).
  int64_t max_offset = 0;
  // The queue's first retained offset when it was read. A read asking for less started
  // there: the messages in between were deleted by retention.
  int64_t min_offset = 0;
};

// What MessageStore::ReadInPlace read: the records as views into the commit log's memory,
// valid as long as this object lives (it keeps the segments they lie in mapped, and owns
// copies of records that could not be read through a mapping). Movable.
struct InPlaceReadResult {
  // In queue order; meta.queue and meta.queue_offset are the message's position.
  std::vector<RecordInPlace> records;
  // As in ReadResult.
  int64_t next_offset = 0;
  int64_t max_offset = 0;
  int64_t min_offset = 0;
  // What the views point into.
  std::vector<std::shared_ptr<const void>> pinned;
  std::vector<std::unique_ptr<char[]>> copies;
};

struct TopicInfo {
  std::string name;
  int32_t queues = 0;
};

// What Open found and repaired, for the operator's log.
struct RecoveryReport {
  // Bytes cut off the end of the commit log (a torn or corrupt tail: appends that were never
  // acknowledged in kGroupCommit mode), and where and why.
  int64_t truncated_bytes = 0;
  std::string truncation;
  // The queue indexes were rebuilt from the whole log, and why.
  bool index_rebuilt = false;
  std::string index_rebuild_reason;
  // Commit-log bytes re-indexed after the last index checkpoint.
  int64_t replayed_bytes = 0;
  // Consumer-offset commits replayed from the offsets journal, and bytes of a torn record
  // found after its last one (a commit the crash interrupted, never acknowledged) and zeroed,
  // and where and why.
  int64_t offset_commits_replayed = 0;
  int64_t offsets_truncated_bytes = 0;
  std::string offsets_truncation;
  // Committed offsets found past the end of their queue and moved back to it: in kPeriodic
  // mode a machine crash can lose the log's unsynced tail while commits of it survive. The
  // messages stored there next are the group's next ones, not skipped.
  int64_t offsets_pulled_back = 0;
  // Commit-log segments a retention deletion had recorded but not yet unlinked when the
  // process stopped, removed now.
  int32_t retention_segments_finished = 0;
  // Why <data_dir>/log_start could not be used (then the log starts at its first segment
  // and each queue at its first entry), or empty.
  std::string log_start_damage;
};

// Where the commit log stands.
struct CommitLogInfo {
  int64_t start_offset = 0;  // first byte still stored
  int64_t end_offset = 0;    // where the next record goes
  int64_t bytes = 0;         // bytes of all segment files
  int32_t segments = 0;      // segment files, the active one included
};

// One queue's committed offset: the next offset the group consumes.
struct QueueOffset {
  int32_t queue = 0;
  int64_t offset = 0;
};

// Completion of a commit of consumer offsets; see MessageStore::CommitOffsets.
using OffsetsCallback = std::function<void(Status)>;

class MessageStore {
 public:
  // Locks the directory (kFailedPrecondition naming the path if another process holds it;
  // kPermissionDenied / kInvalidArgument if it cannot be created or written), recovers and
  // starts the writer, syncer (kGroupCommit) and flush threads.
  static Result<std::unique_ptr<MessageStore>> Open(StoreOptions options);

  virtual ~MessageStore() = default;

  // The topic's metadata, creating it with `queues` queues (or default_queues when 0)
  // if it does not exist (an existing topic keeps its queue count). Topic metadata is
  // persisted. Names that cannot be directory names ('/', a leading '.') are kInvalidArgument.
  virtual Result<TopicInfo> GetOrCreateTopic(const std::string& topic, int32_t queues = 0) = 0;
  virtual std::optional<TopicInfo> FindTopic(const std::string& topic) const = 0;
  virtual std::vector<TopicInfo> ListTopics() const = 0;

  // Appends `message` (its topic field names the topic, which must exist) to `queue`.
  // The record keeps every Message field a producer sets plus message_id and born_at.
  // Oversized messages fail with kInvalidArgument, an unknown topic with kNotFound, a queue
  // out of range with kInvalidArgument; after Close, kFailedPrecondition.
  // The caller's thread encodes the record; the call blocks only while several MiB of
  // records already wait for the writer (backpressure; never on the writer thread itself,
  // so callbacks may append). Callbacks run in the order the records were written, on the
  // thread that wrote them (kGroupCommit: on the syncer's, after the fdatasync that covers
  // them).
  virtual void Append(int32_t queue, const RecordFields& fields, AppendCallback done) = 0;
  void Append(int32_t queue, const Message& message, AppendCallback done) {
    Append(queue, RecordFields::Of(message), std::move(done));
  }
  // Append of each request, in order, handed to the writer at once: one lock and at most
  // one wake-up of the writer for all of them, and they are written in one batch. The
  // backpressure wait, if any, comes before the first. The callbacks are moved out of
  // `requests`.
  struct AppendRequest {
    int32_t queue = 0;
    RecordFields fields;
    AppendCallback done;
  };
  virtual void AppendBatch(std::span<AppendRequest> requests) = 0;

  // Reads up to max_messages (and about max_bytes) from `queue` starting at `offset`.
  // `tag_hashes` empty: every message; otherwise only messages whose tag hash is in it
  // (the others are skipped using the index alone; next_offset moves past them).
  // An offset below the oldest retained one starts at the oldest; past the end gives none
  // (next_offset = max_offset). A record whose CRC does not match fails with kDataLoss
  // naming segment and position; when messages precede it, those are returned and
  // next_offset stops at it, so the next read reports it. A consumer that decides to skip
  // a lost message reads on from its offset + 1.
  //
  // What a read checks: each record's size, magic, and that its trailer names the queue
  // position the index pointed at; and its CRC32C, unless this process appended the record
  // and it still lies within the tail of the log the page cache keeps (log_cache_bytes, or
  // 256 MiB when that is 0). Such a record is the memory this process wrote and
  // checksummed, not yet read back from the disk; every other one (stored before the store
  // was opened, or old enough to be read from the disk again) is verified. Recovery always
  // checks the CRCs of what it scans.
  virtual Result<ReadResult> Read(const std::string& topic, int32_t queue, int64_t offset,
                                  int32_t max_messages, int64_t max_bytes,
                                  const std::vector<uint64_t>& tag_hashes) const = 0;
  // Read without copying: the same records, checks and errors, as views into the log.
  virtual Result<InPlaceReadResult> ReadInPlace(const std::string& topic, int32_t queue,
                                                int64_t offset, int32_t max_messages,
                                                int64_t max_bytes,
                                                const std::vector<uint64_t>& tag_hashes) const = 0;

  // Blocks until `queue` holds a message at `offset` or beyond, the deadline passes, or the
  // store closes (a topic created meanwhile is waited on too). Returns true if data is
  // available.
  virtual bool WaitForData(const std::string& topic, int32_t queue, int64_t offset,
                           std::chrono::steady_clock::time_point deadline) const = 0;

  // The queue's first retained offset (0 until retention deletes some of it) and its end.
  // Both only grow. An unknown topic or queue: 0.
  virtual int64_t MinOffset(const std::string& topic, int32_t queue) const = 0;
  virtual int64_t MaxOffset(const std::string& topic, int32_t queue) const = 0;
  // The first offset of `queue` whose message was stored at or after `ts` (MaxOffset if none).
  virtual Result<int64_t> OffsetForTimestamp(const std::string& topic, int32_t queue,
                                             Timestamp ts) const = 0;

  // Consumer offsets: `offset` is the next offset the group will consume.
  // `group` is an opaque key (the broker passes "group" or "group@member" for broadcast).
  // A commit is durable when it completes: in kGroupCommit mode after the fdatasync that
  // covers it (concurrent commits share one); in kPeriodic mode once written to the page
  // cache (a process crash loses none; a machine crash those of the last
  // offset_flush_interval). Commits apply in the order they were made.
  //
  // Commits `offsets` of `topic` for `group` atomically (all or none survive a crash).
  // `done` runs once: on the store's offsets thread once durable, or at once on this thread
  // with kInvalidArgument (a negative queue or offset, an empty or over-long name) or, after
  // Close, kFailedPrecondition. Must not block.
  virtual void CommitOffsets(const std::string& group, const std::string& topic,
                             const std::vector<QueueOffset>& offsets, OffsetsCallback done) = 0;
  // One queue, waiting until it is durable. Not from an OffsetsCallback.
  virtual Status CommitOffset(const std::string& group, const std::string& topic, int32_t queue,
                              int64_t offset) = 0;
  // CommitOffsets, waiting until durable. Not from an OffsetsCallback.
  Status CommitOffsetsAndWait(const std::string& group, const std::string& topic,
                              const std::vector<QueueOffset>& offsets);
  // The last durable commit (a crash never takes back what this reports in kGroupCommit
  // mode), or nullopt if none.
  virtual std::optional<int64_t> CommittedOffset(const std::string& group, const std::string& topic,
                                                 int32_t queue) const = 0;
  // Returns once every commit made before the call is fdatasync'ed (kPeriodic mode included).
  virtual Status FlushOffsets() = 0;

  // Retention. A background thread runs EnforceRetention every check_interval of the policy
  // in force.
  //
  // Deletes what the policy allows now: sealed segments, oldest first, while the log is over
  // max_bytes or the newest record of the oldest one is at least max_age old (by the store's
  // clock); then each queue starts at its first message still stored, and index files wholly
  // before that are removed. A group whose committed offset falls below its queue's start
  // continues from the start. Crash-safe: the new start is recorded durably before any file
  // is unlinked, and recovery finishes an interrupted deletion. One call at a time; after
  // Close, kFailedPrecondition.
  virtual Result<RetentionReport> EnforceRetention() = 0;
  // Replaces the policy (a reloaded configuration); the background check follows the new
  // interval at once. Any thread.
  // kInvalidArgument (and the policy in force stays) if check_interval is not positive or
  // max_age is negative.
  virtual Status SetRetention(const RetentionPolicy& policy) = 0;
  virtual RetentionPolicy Retention() const = 0;
  virtual CommitLogInfo LogInfo() const = 0;

  // Flushes the log, indexes and offsets; completes pending appends; releases the lock.
  // Idempotent.
  virtual Status Close() = 0;

  // What recovery did when the store was opened.
  virtual RecoveryReport Recovery() const = 0;
};

}  // namespace msgsdk::native
