#include "backends/native/storage/message_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "backends/native/storage/commit_log.h"
#include "backends/native/storage/consume_queue.h"
#include "backends/native/storage/file_util.h"
#include "backends/native/storage/message_codec.h"
#include "backends/native/storage/offset_store.h"
#include "backends/native/storage/store_metadata.h"
#include "core/backend.h"

namespace msgsdk::native {

uint64_t TagHash(std::string_view tag) {
  uint64_t hash = 0xCBF29CE484222325ull;  // FNV-1a 64 offset basis
  for (char c : tag) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001B3ull;  // FNV-1a 64 prime
  }
  return hash;
}

std::string DescribeRetention(const RetentionReport& report) {
  constexpr size_t kQueuesNamed = 5;
  std::string text = "retention deleted " + std::to_string(report.segments_deleted) +
                     " commit-log segment" + (report.segments_deleted == 1 ? "" : "s") + " (" +
                     std::to_string(report.bytes_deleted) + " bytes; " +
                     std::to_string(report.segments_expired) + " by age, " +
                     std::to_string(report.segments_deleted - report.segments_expired) +
                     " by size); the log now starts at offset " + std::to_string(report.log_start) +
                     " and holds " + std::to_string(report.log_bytes) + " bytes";
  if (report.queues.empty()) return text;
  text += "; " + std::to_string(report.queues.size()) + " queue" +
          (report.queues.size() == 1 ? "" : "s") + " lost their oldest messages (";
  for (size_t i = 0; i < report.queues.size() && i < kQueuesNamed; ++i) {
    const RetentionReport::QueueStart& q = report.queues[i];
    if (i > 0) text += ", ";
    text += "topic '" + q.topic + "' queue " + std::to_string(q.queue) + " now starts at " +
            std::to_string(q.start) + ", " + std::to_string(q.start - q.previous_start) +
            " deleted";
  }
  if (report.queues.size() > kQueuesNamed) {
    text += ", and " + std::to_string(report.queues.size() - kQueuesNamed) + " more";
  }
  return text + ")";
}

namespace {

using Clock = std::chrono::steady_clock;

// Appends block (backpressure) while this many bytes of records wait for the writer: enough
// for tens of thousands of small messages per batch (and per group-commit sync), small enough
// that a batch is still in the CPU caches when the writer hands it to the kernel.
constexpr size_t kMaxPendingBytes = 4u << 20;
constexpr int32_t kMaxQueues = 1024;
constexpr uint64_t kMinSegmentBytes = 1024;
constexpr uint32_t kMaxIndexEntriesPerFile = 1u << 26;
// Entries a filtered read examines at most before it returns what it found.
constexpr int64_t kMaxScannedEntries = 1 << 16;
// The tail of the log whose records this process appended that reads take from memory
// without checking their CRC, when log_cache_bytes leaves the page cache to the kernel
// (StoreOptions' default window).
constexpr uint64_t kDefaultUnverifiedTail = 256ULL << 20;

constexpr const char* kLockFile = "LOCK";
constexpr const char* kTopicsFile = "topics";
constexpr const char* kOffsetsFile = "offsets";
constexpr const char* kCommitLogDir = "commitlog";
constexpr const char* kIndexDir = "index";
constexpr const char* kCheckpointFile = ".checkpoint";
constexpr const char* kLogStartFile = "log_start";

int64_t ToUnixMillis(Timestamp ts) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(ts.time_since_epoch()).count();
}

Status ValidateRetention(const RetentionPolicy& policy, const std::string& where) {
  if (policy.max_age.count() < 0) {
    return InvalidArgumentError("retention max_age " + std::to_string(policy.max_age.count()) +
                                " ms" + where + " is negative (0 keeps messages forever)");
  }
  if (policy.check_interval.count() <= 0) {
    return InvalidArgumentError("retention check_interval" + where + " must be positive, got " +
                                std::to_string(policy.check_interval.count()) + " ms");
  }
  return OkStatus();
}

Status ValidateOptions(const StoreOptions& options) {
  if (options.data_dir.empty()) return InvalidArgumentError("message store data_dir is empty");
  const std::string where = " of the message store in " + options.data_dir.native();
  if (options.segment_bytes < kMinSegmentBytes) {
    return InvalidArgumentError("segment_bytes " + std::to_string(options.segment_bytes) + where +
                                " is below the minimum " + std::to_string(kMinSegmentBytes));
  }
  if (options.index_entries_per_file == 0 ||
      options.index_entries_per_file > kMaxIndexEntriesPerFile) {
    return InvalidArgumentError("index_entries_per_file " +
                                std::to_string(options.index_entries_per_file) + where +
                                " must be in [1, " + std::to_string(kMaxIndexEntriesPerFile) + "]");
  }
  if (options.max_message_bytes == 0 || options.max_message_bytes > kMaxBodyLimit) {
    return InvalidArgumentError("max_message_bytes " + std::to_string(options.max_message_bytes) +
                                where + " must be in [1, " + std::to_string(kMaxBodyLimit) + "]");
  }
  if (options.default_queues <= 0 || options.default_queues > kMaxQueues) {
    return InvalidArgumentError("default_queues " + std::to_string(options.default_queues) + where +
                                " must be in [1, " + std::to_string(kMaxQueues) + "]");
  }
  if (options.flush_mode == FlushMode::kPeriodic && options.flush_interval.count() <= 0) {
    return InvalidArgumentError("flush_interval" + where + " must be positive");
  }
  if (options.offset_flush_interval.count() <= 0) {
    return InvalidArgumentError("offset_flush_interval" + where + " must be positive");
  }
  if (options.index_checkpoint_interval.count() <= 0) {
    return InvalidArgumentError("index_checkpoint_interval" + where + " must be positive");
  }
  return ValidateRetention(options.retention, where);
}

struct StringHash {
  using is_transparent = void;  // NOLINT(readability-identifier-naming): std name
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

struct QueueState {
  QueueState(std::filesystem::path dir, uint32_t entries_per_file)
      : index(std::move(dir), entries_per_file) {}

  ConsumeQueue index;
  int64_t next_offset = 0;  // writer: the queue offset the next append takes
  uint64_t batch_mark = 0;  // writer: the last batch that appended to this queue

  // Long polling (WaitForData).
  std::mutex wait_mu;
  std::condition_variable wait_cv;
  std::atomic<int> waiters{0};
};

struct TopicState {
  std::string name;
  std::vector<std::unique_ptr<QueueState>> queues;

  TopicInfo Info() const { return TopicInfo{name, static_cast<int32_t>(queues.size())}; }
};

// A growable byte buffer that, unlike std::string, does not zero what it grows into.
class ByteBuffer {
 public:
  char* Extend(size_t n) {
    if (size_ + n > capacity_) Grow(size_ + n);
    char* p = data_.get() + size_;
    size_ += n;
    return p;
  }
  char* data() { return data_.get(); }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }
  void swap(ByteBuffer& other) noexcept {
    data_.swap(other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  void Grow(size_t needed) {
    const size_t capacity = std::max({needed, capacity_ * 2, static_cast<size_t>(64u << 10)});
    auto grown = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = capacity;
  }

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Appends waiting for the writer. Append encodes each record into `records` on the caller's
// thread (the message is freed where it was made, and the writer does not copy it again);
// the writer fills in the commit-log position, queue offset, store time and CRC, and writes
// the buffer as it is.
struct PendingBatch {
  struct Item {
    AppendCallback done;
    uint64_t tag_hash = 0;
    uint32_t size = 0;  // bytes of its record in `records`; 0 if refused (see `refused`)
    int32_t queue = 0;
  };
  std::vector<Item> items;
  ByteBuffer records;
  std::vector<std::pair<size_t, Status>> refused;  // (item, why), in item order

  bool empty() const { return items.empty(); }
  void clear() {
    items.clear();
    records.clear();
    refused.clear();
  }
  void swap(PendingBatch& other) noexcept {
    items.swap(other.items);
    records.swap(other.records);
    refused.swap(other.refused);
  }
};

// What the writer knows about one append of the batch it is processing.
struct Staged {
  QueueState* queue = nullptr;  // set once the record is sealed; cleared if it fails
  int64_t commit_log_offset = 0;
  int64_t queue_offset = 0;
  int32_t failure = -1;  // index into the writer's failures, or -1
};

// Callbacks must not throw; one that does must not take the thread that completes appends
// (and every later append) down with it.
void RunCallback(AppendCallback& done, Result<AppendResult> result) {
  try {
    done(std::move(result));
  } catch (...) {
  }
}

// kGroupCommit: an append of a written batch (readable, or failed) waiting for the fdatasync
// that covers the batch.
struct AwaitingSync {
  AppendCallback done;
  Result<AppendResult> result;
};

class MessageStoreImpl final : public MessageStore {
 public:
  explicit MessageStoreImpl(StoreOptions options)
      : options_(std::move(options)),
        index_dir_(options_.data_dir / kIndexDir),
        checkpoint_path_(index_dir_ / kCheckpointFile),
        log_start_path_(options_.data_dir / kLogStartFile),
        retention_policy_(options_.retention) {}

  ~MessageStoreImpl() override { Close().IgnoreError(); }

  Status Start();

  Result<TopicInfo> GetOrCreateTopic(const std::string& topic, int32_t queues) override;
  std::optional<TopicInfo> FindTopic(const std::string& topic) const override;
  std::vector<TopicInfo> ListTopics() const override;
  void Append(int32_t queue, const RecordFields& fields, AppendCallback done) override;
  void AppendBatch(std::span<AppendRequest> requests) override;
  Result<ReadResult> Read(const std::string& topic, int32_t queue, int64_t offset,
                          int32_t max_messages, int64_t max_bytes,
                          const std::vector<uint64_t>& tag_hashes) const override;
  Result<InPlaceReadResult> ReadInPlace(const std::string& topic, int32_t queue, int64_t offset,
                                        int32_t max_messages, int64_t max_bytes,
                                        const std::vector<uint64_t>& tag_hashes) const override;
  bool WaitForData(const std::string& topic, int32_t queue, int64_t offset,
                   std::chrono::steady_clock::time_point deadline) const override;
  int64_t MinOffset(const std::string& topic, int32_t queue) const override;
  int64_t MaxOffset(const std::string& topic, int32_t queue) const override;
  Result<int64_t> OffsetForTimestamp(const std::string& topic, int32_t queue,
                                     Timestamp ts) const override;
  void CommitOffsets(const std::string& group, const std::string& topic,
                     const std::vector<QueueOffset>& offsets, OffsetsCallback done) override;
  Status CommitOffset(const std::string& group, const std::string& topic, int32_t queue,
                      int64_t offset) override;
  std::optional<int64_t> CommittedOffset(const std::string& group, const std::string& topic,
                                         int32_t queue) const override;
  Status FlushOffsets() override;
  Result<RetentionReport> EnforceRetention() override;
  Status SetRetention(const RetentionPolicy& policy) override;
  RetentionPolicy Retention() const override;
  CommitLogInfo LogInfo() const override;
  Status Close() override;
  RecoveryReport Recovery() const override { return recovery_; }

 private:
  // ---- Opening and recovery ----
  Status LockDirectory();
  Status LoadTopics();
  TopicState* AddTopic(std::string name, int32_t queues);
  TopicState* RecoveryTopic(std::string_view name, int32_t queue);
  // `recorded`: where the last retention deletion left the log and the queues.
  Status RecoverIndexes(const LogStart& recorded);
  // Moves each recorded queue start into its index (queues retention emptied, whose index
  // files were lost, start there again instead of at 0).
  Status ApplyQueueStarts(const LogStart& recorded);
  // Moves committed offsets found past the end of their queue back to it.
  Status PullBackOffsets();
  // Re-indexes the records in [from, to). Without `rebuilding`, the indexes hold every
  // record before `from` and entries are repaired in place; returns false if a queue turns
  // out to miss entries before `from`. With it, queues were emptied first.
  Result<bool> Replay(int64_t from, int64_t to, bool rebuilding);
  Status PersistTopics();

  // ---- Writer ----
  // Waits while the pending records are over kMaxPendingBytes (except on the writer
  // thread). Under append_mu_ (`lock`).
  void WaitForSpace(std::unique_lock<std::mutex>& lock);
  // Adds one append to pending_: `size` is RecordSize(fields), `tag_hash` TagHash(fields.tag).
  // Under append_mu_.
  void EnqueueLocked(int32_t queue, const RecordFields& fields, const Result<size_t>& size,
                     uint64_t tag_hash, AppendCallback&& done);
  // Wakes the writer if it waits. Releases `lock`.
  void WakeWriter(std::unique_lock<std::mutex>& lock);
  // Writes what is pending on this thread, in the writer's stead (append_on_caller_when_idle;
  // the writer waits). Under append_mu_ (`lock`), which it releases.
  void WriteOnCaller(std::unique_lock<std::mutex>& lock);
  void WriterLoop();
  void ProcessBatch(PendingBatch* batch);
  // Completes an append of the batch just written: at once, or (kGroupCommit) by handing it
  // to the syncer.
  void Complete(PendingBatch::Item& item, Result<AppendResult> result);
  QueueState* ResolveQueue(std::string_view topic, int32_t queue, Status* status);
  // Writes the records [begin, end) of the batch (items [first_item, end_item)); on failure
  // gives their queue offsets back and fails them.
  Status WriteRange(const char* begin, const char* end, size_t first_item, size_t end_item);
  void Fail(size_t item, Status status);
  Timestamp NextStoredAt();
  Status IndexError() const;

  // ---- Syncer (kGroupCommit) ----
  // Syncs the log whenever appends wait for it and completes them: the writer goes on
  // writing, and making readable, what comes meanwhile.
  void SyncerLoop();

  // ---- Flusher ----
  void FlusherLoop();
  Status WriteCheckpoint(bool force);

  // ---- Retention ----
  void RetentionLoop();
  // The wall clock (options_.clock, or the system clock).
  Timestamp Now() const;
  // Writes a checkpoint if the indexes moved; returns the log offset the durable one covers.
  Result<int64_t> CheckpointedOffset();
  // The store time of the newest record of the sealed segment [segment.base, limit), from
  // the queue indexes (records are stored in time order); the file's modification time if
  // no index entry points into it. Retention thread.
  int64_t NewestStoredAtMs(const CommitLog::Segment& segment, int64_t limit);

  // ---- Readers ----
  Result<const QueueState*> LookupQueue(const std::string& topic, int32_t queue) const;
  const QueueState* FindQueue(std::string_view topic, int32_t queue) const;
  struct QueueRef {
    const TopicState* topic;
    int32_t id;
    QueueState* queue;
  };
  std::vector<QueueRef> AllQueues() const;
  Status ClosedError() const {
    return FailedPreconditionError("message store " + options_.data_dir.native() + " is closed");
  }

  const StoreOptions options_;
  const std::filesystem::path index_dir_;
  const std::filesystem::path checkpoint_path_;
  const std::filesystem::path log_start_path_;

  FileDescriptor lock_fd_;
  std::unique_ptr<CommitLog> log_;
  // Reads skip the CRC of records at or after appended_from_ (the log's end when it was
  // opened: what this process appended) that lie within unverified_tail_ bytes of the end.
  int64_t appended_from_ = 0;
  int64_t unverified_tail_ = 0;
  std::unique_ptr<OffsetStore> offsets_;
  bool started_ = false;  // recovery completed
  RecoveryReport recovery_;

  // Topics. TopicState and QueueState objects live as long as the store.
  mutable std::shared_mutex topics_mu_;
  std::unordered_map<std::string, std::unique_ptr<TopicState>, StringHash, std::equal_to<>>
      topics_;                 // guarded by topics_mu_
  std::mutex create_mu_;       // serialises topic creation (and the topics file)
  bool topics_dirty_ = false;  // recovery found topics the file does not list
  mutable std::mutex topics_wait_mu_;
  mutable std::condition_variable topics_cv_;  // a topic was created, or the store closed

  // Appends waiting for the writer.
  std::mutex append_mu_;
  std::condition_variable writer_cv_;
  std::condition_variable space_cv_;
  PendingBatch pending_;         // guarded by append_mu_
  bool writer_waiting_ = false;  // guarded by append_mu_
  int blocked_appenders_ = 0;    // guarded by append_mu_
  bool closing_ = false;         // guarded by append_mu_
  std::thread::id writer_id_;    // guarded by append_mu_
  std::thread writer_;
  bool caller_writing_ = false;  // guarded by append_mu_: a caller holds the writer's role
  PendingBatch caller_batch_;    // the batch a caller writes (the writer's role)

  // Writer-thread state (of the thread in the writer's role: the writer, or a caller in
  // WriteOnCaller).
  std::unordered_map<std::string, TopicState*, StringHash, std::equal_to<>> writer_topics_;
  TopicState* last_topic_ = nullptr;
  std::vector<Staged> staged_;
  std::vector<Status> failures_;
  std::vector<QueueState*> touched_;
  uint64_t batch_mark_ = 0;
  Timestamp last_stored_at_{};

  // A failed index write leaves a queue unable to take its next entry: from then on appends
  // fail (sticky) until the store is reopened and recovery re-indexes the log.
  mutable std::mutex index_error_mu_;
  Status index_error_;  // guarded by index_error_mu_
  std::atomic<bool> has_index_error_{false};

  // Publication: every record before dispatched_ has its index entry published.
  std::mutex publish_mu_;
  int64_t dispatched_ = 0;  // guarded by publish_mu_

  // Syncer thread (kGroupCommit).
  std::mutex syncer_mu_;
  std::condition_variable syncer_cv_;
  std::vector<AwaitingSync> awaiting_sync_;  // guarded by syncer_mu_
  bool syncer_waiting_ = false;              // guarded by syncer_mu_
  bool syncer_stop_ = false;                 // guarded by syncer_mu_
  std::thread syncer_;
  std::vector<AwaitingSync> handing_over_;  // writer thread: the batch's, until handed over

  // Flusher thread.
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool flusher_stop_ = false;  // guarded by flusher_mu_
  std::thread flusher_;
  std::mutex checkpoint_mu_;
  int64_t last_checkpoint_ = -1;  // guarded by checkpoint_mu_

  // Retention.
  mutable std::mutex retention_policy_mu_;
  RetentionPolicy retention_policy_;  // guarded by retention_policy_mu_
  std::mutex retention_mu_;           // one deletion at a time
  bool retention_closed_ = false;     // guarded by retention_mu_
  // Store time of the newest record of each sealed segment by base (it never changes once
  // sealed), so each check looks at the indexes only for segments it has not seen.
  std::map<int64_t, int64_t> segment_newest_ms_;  // guarded by retention_mu_
  std::mutex retention_wait_mu_;
  std::condition_variable retention_cv_;
  bool retention_stop_ = false;            // guarded by retention_wait_mu_
  bool retention_policy_changed_ = false;  // guarded by retention_wait_mu_
  std::thread retention_thread_;

  std::atomic<bool> closed_{false};
  std::mutex close_mu_;
  bool close_done_ = false;  // guarded by close_mu_
  Status close_status_;      // guarded by close_mu_
};

// ---- Opening ----------------------------------------------------------------------------------

Status MessageStoreImpl::Start() {
  const std::filesystem::path& dir = options_.data_dir;
  MSGSDK_RETURN_IF_ERROR(CreateDirectories(dir, "message store data directory"));
  MSGSDK_RETURN_IF_ERROR(LockDirectory());
  MSGSDK_RETURN_IF_ERROR(CreateDirectories(dir / kCommitLogDir, "commit log directory"));
  MSGSDK_RETURN_IF_ERROR(CreateDirectories(index_dir_, "index directory"));
  MSGSDK_RETURN_IF_ERROR(LoadTopics());
  MSGSDK_ASSIGN_OR_RETURN(
      offsets_, OffsetStore::Open(dir / kOffsetsFile,
                                  {.sync_commits = options_.flush_mode == FlushMode::kGroupCommit,
                                   .sync_interval = options_.offset_flush_interval}));
  recovery_.offset_commits_replayed = offsets_->recovery().replayed_records;
  recovery_.offsets_truncated_bytes = offsets_->recovery().truncated_bytes;
  recovery_.offsets_truncation = offsets_->recovery().truncation;
  LogStart recorded;
  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> start_content,
                          ReadFileIfExists(log_start_path_));
  if (start_content) {
    Result<LogStart> decoded = DecodeLogStart(*start_content);
    if (decoded.ok()) {
      recorded = std::move(decoded).value();
    } else {
      // Written atomically, so this is damage from outside: the log then starts at its first
      // segment and each queue at its first entry still in the log.
      recovery_.log_start_damage = log_start_path_.native() + " " + decoded.status().message();
    }
  }
  CommitLog::RecoveryInfo log_info;
  MSGSDK_ASSIGN_OR_RETURN(log_, CommitLog::Open(dir / kCommitLogDir, options_.segment_bytes,
                                                recorded.log_offset, &log_info));
  log_->LimitCache(options_.log_cache_bytes);
  appended_from_ = log_->end_offset();
  unverified_tail_ = static_cast<int64_t>(options_.log_cache_bytes > 0 ? options_.log_cache_bytes
                                                                       : kDefaultUnverifiedTail);
  recovery_.truncated_bytes = log_info.truncated_bytes;
  recovery_.truncation = std::move(log_info.truncation_reason);
  recovery_.retention_segments_finished = log_info.leftover_segments_removed;
  MSGSDK_RETURN_IF_ERROR(RecoverIndexes(recorded));
  if (topics_dirty_) MSGSDK_RETURN_IF_ERROR(PersistTopics());
  MSGSDK_RETURN_IF_ERROR(PullBackOffsets());
  started_ = true;
  MSGSDK_RETURN_IF_ERROR(WriteCheckpoint(/*force=*/true));
  // Each append's fdatasync then has only data to write, no file metadata to commit.
  if (options_.flush_mode == FlushMode::kGroupCommit) {
    log_->StartZeroFill();
    syncer_ = std::thread([this] { SyncerLoop(); });
  }

  writer_ = std::thread([this] { WriterLoop(); });
  flusher_ = std::thread([this] { FlusherLoop(); });
  retention_thread_ = std::thread([this] { RetentionLoop(); });
  return OkStatus();
}

Status MessageStoreImpl::LockDirectory() {
  const std::filesystem::path path = options_.data_dir / kLockFile;
  MSGSDK_ASSIGN_OR_RETURN(lock_fd_, OpenFile(path, O_RDWR | O_CREAT));
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) return ErrnoError(error, "cannot lock", path);
    std::string holder;
    char pid[32] = {};
    const ssize_t got = ::pread(lock_fd_.get(), pid, sizeof(pid) - 1, 0);
    if (got > 0) {
      std::string_view text(pid, static_cast<size_t>(got));
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
      if (!text.empty()) holder = " (pid " + std::string(text) + ")";
    }
    lock_fd_.Reset();
    return FailedPreconditionError("data directory " + options_.data_dir.native() +
                                   " is locked by another process" + holder);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_.get(), 0) != 0) return ErrnoError(errno, "cannot write", path);
  return PwriteAll(lock_fd_.get(), pid.data(), pid.size(), 0, path);
}

TopicState* MessageStoreImpl::AddTopic(std::string name, int32_t queues) {
  auto topic = std::make_unique<TopicState>();
  topic->name = std::move(name);
  const std::filesystem::path topic_dir = index_dir_ / topic->name;
  for (int32_t q = 0; q < queues; ++q) {
    topic->queues.push_back(std::make_unique<QueueState>(topic_dir / std::to_string(q),
                                                         options_.index_entries_per_file));
  }
  TopicState* raw = topic.get();
  std::unique_lock lock(topics_mu_);
  topics_[raw->name] = std::move(topic);
  return raw;
}

Status MessageStoreImpl::LoadTopics() {
  const std::filesystem::path path = options_.data_dir / kTopicsFile;
  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> content, ReadFileIfExists(path));
  std::unordered_map<std::string, int32_t> queues;
  if (content) {
    Result<std::vector<TopicInfo>> topics = DecodeTopics(*content);
    if (topics.ok()) {
      for (const TopicInfo& topic : *topics) queues[topic.name] = topic.queues;
    } else {
      // The list is derived data (index directories, records): rebuild it from them.
      topics_dirty_ = true;
    }
  }
  // Every queue has an index directory from the moment its topic is created: a topic the
  // file misses (lost or corrupt) is found there.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(index_dir_, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().native();
    if (!ValidateTopicName(name).ok() || !it->is_directory(ec)) continue;
    int32_t count = 0;
    std::error_code sub_ec;
    for (std::filesystem::directory_iterator q(it->path(), sub_ec), q_end; !sub_ec && q != q_end;
         q.increment(sub_ec)) {
      const std::string qname = q->path().filename().native();
      if (qname.empty() || qname.size() > 4 ||
          qname.find_first_not_of("0123456789") != std::string::npos) {
        continue;
      }
      count = std::max(count, std::stoi(qname) + 1);
    }
    if (count == 0) continue;
    auto [entry, inserted] = queues.emplace(name, count);
    if (inserted || entry->second < count) {
      entry->second = std::max(entry->second, count);
      topics_dirty_ = true;
    }
  }
  if (ec) return ErrnoError(ec.value(), "cannot list index directory", index_dir_);
  for (auto& [name, count] : queues) AddTopic(name, std::min(count, kMaxQueues));
  return OkStatus();
}

TopicState* MessageStoreImpl::RecoveryTopic(std::string_view name, int32_t queue) {
  if (queue < 0 || queue >= kMaxQueues || !ValidateTopicName(name).ok()) return nullptr;
  TopicState* topic = nullptr;
  {
    std::shared_lock lock(topics_mu_);
    auto it = topics_.find(name);
    if (it != topics_.end()) topic = it->second.get();
  }
  if (topic == nullptr) {
    topic = AddTopic(std::string(name), std::max(options_.default_queues, queue + 1));
    topics_dirty_ = true;
  }
  // A record proves its queue existed; recovery is single-threaded, so growing is safe.
  while (static_cast<int32_t>(topic->queues.size()) <= queue) {
    topic->queues.push_back(std::make_unique<QueueState>(
        index_dir_ / topic->name / std::to_string(topic->queues.size()),
        options_.index_entries_per_file));
    topics_dirty_ = true;
  }
  return topic;
}

Status MessageStoreImpl::RecoverIndexes(const LogStart& recorded) {
  const int64_t log_start = log_->start_offset();
  const int64_t log_end = log_->end_offset();

  std::optional<IndexCheckpoint> checkpoint;
  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> content, ReadFileIfExists(checkpoint_path_));
  if (content) {
    Result<IndexCheckpoint> decoded = DecodeCheckpoint(*content);
    if (decoded.ok()) checkpoint = std::move(decoded).value();
  }
  // Without a checkpoint (or one the log no longer backs) nothing says which records the
  // index files hold: rebuild them from the whole log.
  std::string reason;
  if (log_end > log_start) {
    if (!checkpoint) {
      reason = content ? "the index checkpoint " + checkpoint_path_.native() + " is corrupt"
                       : "there is no index checkpoint " + checkpoint_path_.native();
    } else if (checkpoint->log_offset > log_end || checkpoint->log_offset < log_start) {
      reason = "the index checkpoint (commit log offset " + std::to_string(checkpoint->log_offset) +
               ") is outside the commit log [" + std::to_string(log_start) + ", " +
               std::to_string(log_end) + ")";
    }
  }

  for (const QueueRef& ref : AllQueues()) {
    std::string damage;
    MSGSDK_RETURN_IF_ERROR(ref.queue->index.Load(log_start, log_end, &damage));
  }
  MSGSDK_RETURN_IF_ERROR(ApplyQueueStarts(recorded));
  if (reason.empty() && checkpoint) {
    for (const auto& [key, end] : checkpoint->queue_ends) {
      const QueueState* queue = FindQueue(key.first, key.second);
      if (queue == nullptr || queue->index.write_end() < end) {
        reason = "the index of queue " + std::to_string(key.second) + " of topic '" + key.first +
                 "' holds " + std::to_string(queue == nullptr ? 0 : queue->index.write_end()) +
                 " entries, fewer than the " + std::to_string(end) + " of the checkpoint";
        break;
      }
    }
  }
  if (reason.empty() && checkpoint && checkpoint->log_offset < log_end) {
    recovery_.replayed_bytes = log_end - checkpoint->log_offset;
    MSGSDK_ASSIGN_OR_RETURN(bool consistent, Replay(checkpoint->log_offset, log_end, false));
    if (!consistent) reason = "a queue index misses entries the checkpoint says it has";
  }
  if (!reason.empty()) {
    recovery_.index_rebuilt = true;
    recovery_.index_rebuild_reason = std::move(reason);
    recovery_.replayed_bytes = log_end - log_start;
    for (const QueueRef& ref : AllQueues()) MSGSDK_RETURN_IF_ERROR(ref.queue->index.Clear());
    MSGSDK_RETURN_IF_ERROR(Replay(log_start, log_end, true).status());
    MSGSDK_RETURN_IF_ERROR(ApplyQueueStarts(recorded));
  }

  int64_t last_stored_ms = 0;
  for (const QueueRef& ref : AllQueues()) {
    QueueState* queue = ref.queue;
    queue->next_offset = queue->index.write_end();
    queue->index.Publish();
    const int64_t end = queue->index.write_end();
    IndexEntry entry;
    if (end > queue->index.min_offset() &&
        queue->index.Get(end - 1, &entry) != EntryState::kCorrupt) {
      last_stored_ms = std::max(last_stored_ms, entry.stored_at_ms);
    }
  }
  last_stored_at_ = Timestamp(std::chrono::milliseconds(last_stored_ms));
  std::lock_guard lock(publish_mu_);
  dispatched_ = log_end;
  return OkStatus();
}

Status MessageStoreImpl::ApplyQueueStarts(const LogStart& recorded) {
  for (const auto& [key, start] : recorded.queue_starts) {
    TopicState* topic = RecoveryTopic(key.first, key.second);
    if (topic == nullptr) continue;
    ConsumeQueue& index = topic->queues[static_cast<size_t>(key.second)]->index;
    if (start <= index.min_offset()) continue;
    if (start < index.write_end()) {
      MSGSDK_RETURN_IF_ERROR(index.TruncateFront(start));
    } else {
      // Nothing of the queue is stored any more, and its index (rebuilt from the log, or
      // damaged) does not reach its end: it goes on from its recorded start.
      MSGSDK_RETURN_IF_ERROR(index.ResetEmptyAt(start));
    }
  }
  return OkStatus();
}

Status MessageStoreImpl::PullBackOffsets() {
  std::vector<OffsetStore::Entry> pulled;
  for (const auto& [key, offset] : offsets_->Offsets()) {
    const auto& [group, topic, queue] = key;
    const QueueState* state = FindQueue(topic, queue);
    if (state == nullptr) continue;
    const int64_t end = state->index.max_offset();
    if (offset > end) pulled.push_back(OffsetStore::Entry{group, topic, queue, end});
  }
  if (pulled.empty()) return OkStatus();
  recovery_.offsets_pulled_back = static_cast<int64_t>(pulled.size());
  return offsets_->CommitAndWait(std::move(pulled));
}

Result<bool> MessageStoreImpl::Replay(int64_t from, int64_t to, bool rebuilding) {
  CommitLog::Scanner scanner(*log_, from, to);
  for (;;) {
    MSGSDK_ASSIGN_OR_RETURN(CommitLog::Scanner::Item item, scanner.Next());
    if (item.kind == CommitLog::Scanner::Kind::kEnd) break;
    // A corrupt record in a sealed segment: the scanner resumes at the next segment, and
    // the queue offsets it held become lost entries below (reads of them: kDataLoss).
    if (item.kind == CommitLog::Scanner::Kind::kCorrupt) continue;
    RecordView view;
    if (!DecodeRecordView(item.record, &view) || view.meta.commit_log_offset != item.offset) {
      continue;
    }
    TopicState* topic = RecoveryTopic(view.topic, view.meta.queue);
    if (topic == nullptr) continue;
    ConsumeQueue& index = topic->queues[static_cast<size_t>(view.meta.queue)]->index;
    const IndexEntry entry{item.offset, static_cast<uint32_t>(item.record.size()),
                           TagHash(view.tag), ToUnixMillis(view.meta.stored_at)};
    const int64_t queue_offset = view.meta.queue_offset;
    const int64_t end = index.write_end();
    const bool empty = end == index.min_offset();
    if (queue_offset < end) {
      // Already indexed (entries after the checkpoint are rewritten: the log is the truth).
      if (!rebuilding && queue_offset >= index.min_offset()) {
        MSGSDK_RETURN_IF_ERROR(index.Put(queue_offset, entry));
      }
      continue;
    }
    if (queue_offset > end && !empty) {
      if (!rebuilding) return false;
      const IndexEntry lost{item.offset, kLostEntrySize, 0, entry.stored_at_ms};
      for (int64_t o = end; o < queue_offset; ++o) MSGSDK_RETURN_IF_ERROR(index.Put(o, lost));
    } else if (queue_offset > end && !rebuilding) {
      return false;
    }
    MSGSDK_RETURN_IF_ERROR(index.Put(queue_offset, entry));
  }
  return true;
}

Status MessageStoreImpl::PersistTopics() {
  std::vector<TopicInfo> topics = ListTopics();
  MSGSDK_RETURN_IF_ERROR(
      WriteFileAtomically(options_.data_dir / kTopicsFile, EncodeTopics(topics)));
  topics_dirty_ = false;
  return OkStatus();
}

// ---- Topics -----------------------------------------------------------------------------------

Result<TopicInfo> MessageStoreImpl::GetOrCreateTopic(const std::string& topic, int32_t queues) {
  if (auto info = FindTopic(topic)) return *info;
  MSGSDK_RETURN_IF_ERROR(ValidateTopicName(topic));
  if (queues < 0 || queues > kMaxQueues) {
    return InvalidArgumentError("topic '" + topic + "' cannot have " + std::to_string(queues) +
                                " queues: the range is [1, " + std::to_string(kMaxQueues) + "]");
  }
  if (closed_.load(std::memory_order_acquire)) return ClosedError();
  const int32_t count = queues == 0 ? options_.default_queues : queues;

  std::lock_guard create_lock(create_mu_);
  if (auto info = FindTopic(topic)) return *info;
  const std::filesystem::path topic_dir = index_dir_ / topic;
  for (int32_t q = 0; q < count; ++q) {
    MSGSDK_RETURN_IF_ERROR(CreateDirectories(topic_dir / std::to_string(q),
                                             "index directory of topic '" + topic + "'"));
  }
  MSGSDK_RETURN_IF_ERROR(SyncDirectory(topic_dir));
  MSGSDK_RETURN_IF_ERROR(SyncDirectory(index_dir_));
  std::vector<TopicInfo> topics = ListTopics();
  topics.push_back(TopicInfo{topic, count});
  MSGSDK_RETURN_IF_ERROR(
      WriteFileAtomically(options_.data_dir / kTopicsFile, EncodeTopics(topics)));
  AddTopic(topic, count);
  { std::lock_guard lock(topics_wait_mu_); }
  topics_cv_.notify_all();
  return TopicInfo{topic, count};
}

std::optional<TopicInfo> MessageStoreImpl::FindTopic(const std::string& topic) const {
  std::shared_lock lock(topics_mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) return std::nullopt;
  return it->second->Info();
}

std::vector<TopicInfo> MessageStoreImpl::ListTopics() const {
  std::vector<TopicInfo> topics;
  {
    std::shared_lock lock(topics_mu_);
    topics.reserve(topics_.size());
    for (const auto& [name, topic] : topics_) topics.push_back(topic->Info());
  }
  std::sort(topics.begin(), topics.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return topics;
}

const QueueState* MessageStoreImpl::FindQueue(std::string_view topic, int32_t queue) const {
  std::shared_lock lock(topics_mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end() || queue < 0 ||
      queue >= static_cast<int32_t>(it->second->queues.size())) {
    return nullptr;
  }
  return it->second->queues[static_cast<size_t>(queue)].get();
}

Result<const QueueState*> MessageStoreImpl::LookupQueue(const std::string& topic,
                                                        int32_t queue) const {
  std::shared_lock lock(topics_mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) {
    return NotFoundError("topic '" + topic + "' does not exist in the message store in " +
                         options_.data_dir.native());
  }
  const auto& queues = it->second->queues;
  if (queue < 0 || queue >= static_cast<int32_t>(queues.size())) {
    return InvalidArgumentError("queue " + std::to_string(queue) + " of topic '" + topic +
                                "' is out of range [0, " + std::to_string(queues.size()) + ")");
  }
  return static_cast<const QueueState*>(queues[static_cast<size_t>(queue)].get());
}

std::vector<MessageStoreImpl::QueueRef> MessageStoreImpl::AllQueues() const {
  std::vector<QueueRef> queues;
  std::shared_lock lock(topics_mu_);
  for (const auto& [name, topic] : topics_) {
    for (size_t q = 0; q < topic->queues.size(); ++q) {
      queues.push_back(QueueRef{topic.get(), static_cast<int32_t>(q), topic->queues[q].get()});
    }
  }
  return queues;
}

// ---- Appending --------------------------------------------------------------------------------

void MessageStoreImpl::WaitForSpace(std::unique_lock<std::mutex>& lock) {
  // Backpressure, except for the writer itself (a callback appending, e.g. to a
  // dead-letter topic), which would wait for itself.
  if (pending_.records.size() >= kMaxPendingBytes && !closing_ &&
      std::this_thread::get_id() != writer_id_) {
    ++blocked_appenders_;
    space_cv_.wait(lock, [&] { return pending_.records.size() < kMaxPendingBytes || closing_; });
    --blocked_appenders_;
  }
}

void MessageStoreImpl::EnqueueLocked(int32_t queue, const RecordFields& fields,
                                     const Result<size_t>& size, uint64_t tag_hash,
                                     AppendCallback&& done) {
  PendingBatch::Item& item = pending_.items.emplace_back();
  item.done = std::move(done);
  item.tag_hash = tag_hash;
  item.queue = queue;
  if (size.ok()) {
    item.size = static_cast<uint32_t>(*size);
    EncodeRecordBody(fields, *size, pending_.records.Extend(*size));
  } else {
    pending_.refused.emplace_back(pending_.items.size() - 1, size.status());
  }
}

void MessageStoreImpl::WakeWriter(std::unique_lock<std::mutex>& lock) {
  const bool wake = writer_waiting_;
  writer_waiting_ = false;
  lock.unlock();
  if (wake) writer_cv_.notify_one();
}

void MessageStoreImpl::Append(int32_t queue, const RecordFields& fields, AppendCallback done) {
  const Result<size_t> size = RecordSize(fields, options_.max_message_bytes);
  const uint64_t tag_hash = TagHash(fields.tag);
  std::unique_lock lock(append_mu_);
  WaitForSpace(lock);
  if (closing_) {
    lock.unlock();
    if (done) done(ClosedError());
    return;
  }
  EnqueueLocked(queue, fields, size, tag_hash, std::move(done));
  WakeWriter(lock);
}

void MessageStoreImpl::AppendBatch(std::span<AppendRequest> requests) {
  if (requests.empty()) return;
  std::unique_lock lock(append_mu_);
  WaitForSpace(lock);
  if (closing_) {
    lock.unlock();
    for (AppendRequest& request : requests) {
      if (request.done) request.done(ClosedError());
    }
    return;
  }
  for (AppendRequest& request : requests) {
    EnqueueLocked(request.queue, request.fields,
                  RecordSize(request.fields, options_.max_message_bytes),
                  TagHash(request.fields.tag), std::move(request.done));
  }
  if (options_.append_on_caller_when_idle && writer_waiting_ && !caller_writing_) {
    WriteOnCaller(lock);
    return;
  }
  WakeWriter(lock);
}

void MessageStoreImpl::WriteOnCaller(std::unique_lock<std::mutex>& lock) {
  // The writer waits while this thread holds its role (see WriterLoop); what it wrote
  // before is visible here through append_mu_.
  caller_writing_ = true;
  caller_batch_.swap(pending_);
  lock.unlock();
  ProcessBatch(&caller_batch_);
  caller_batch_.clear();
  lock.lock();
  caller_writing_ = false;
  // Appends that came meanwhile (or a Close) are the writer's.
  const bool wake = writer_waiting_ && (!pending_.empty() || closing_);
  if (wake) writer_waiting_ = false;
  lock.unlock();
  if (wake) writer_cv_.notify_one();
}

void MessageStoreImpl::WriterLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-store-w");
  PendingBatch batch;
  std::unique_lock lock(append_mu_);
  writer_id_ = std::this_thread::get_id();
  for (;;) {
    // While a caller writes (WriteOnCaller) this thread waits, even to close.
    while ((pending_.empty() && !closing_) || caller_writing_) {
      writer_waiting_ = true;
      writer_cv_.wait(lock);
    }
    writer_waiting_ = false;
    if (pending_.empty()) break;  // closing, and every append is done
    batch.swap(pending_);
    if (blocked_appenders_ > 0) space_cv_.notify_all();
    lock.unlock();
    ProcessBatch(&batch);
    batch.clear();
    lock.lock();
  }
}

Timestamp MessageStoreImpl::NextStoredAt() {
  // Whole milliseconds, as index entries keep them, so OffsetForTimestamp is exact; never
  // earlier than the last one, so store times along a queue never decrease even when the
  // wall clock is set back.
  Timestamp now = std::chrono::floor<std::chrono::milliseconds>(Now());
  if (now < last_stored_at_) now = last_stored_at_;
  last_stored_at_ = now;
  return now;
}

Status MessageStoreImpl::IndexError() const {
  if (!has_index_error_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(index_error_mu_);
  return index_error_;
}

QueueState* MessageStoreImpl::ResolveQueue(std::string_view topic, int32_t queue, Status* status) {
  TopicState* state = last_topic_;
  if (state == nullptr || state->name != topic) {
    auto it = writer_topics_.find(topic);
    if (it != writer_topics_.end()) {
      state = it->second;
    } else {
      std::shared_lock lock(topics_mu_);
      auto found = topics_.find(topic);
      if (found == topics_.end()) {
        *status =
            NotFoundError("topic '" + std::string(topic) +
                          "' does not exist in the message store in " + options_.data_dir.native());
        return nullptr;
      }
      state = found->second.get();
      lock.unlock();
      writer_topics_.emplace(topic, state);
    }
    last_topic_ = state;
  }
  if (queue < 0 || queue >= static_cast<int32_t>(state->queues.size())) {
    *status =
        InvalidArgumentError("queue " + std::to_string(queue) + " of topic '" + std::string(topic) +
                             "' is out of range [0, " + std::to_string(state->queues.size()) + ")");
    return nullptr;
  }
  return state->queues[static_cast<size_t>(queue)].get();
}

void MessageStoreImpl::Fail(size_t item, Status status) {
  staged_[item].queue = nullptr;
  staged_[item].failure = static_cast<int32_t>(failures_.size());
  failures_.push_back(std::move(status));
}

Status MessageStoreImpl::WriteRange(const char* begin, const char* end, size_t first_item,
                                    size_t end_item) {
  if (begin == end) return OkStatus();
  Status status = log_->Append(begin, static_cast<size_t>(end - begin));
  if (!status.ok()) {
    // Walking backwards leaves each queue at its first failed offset.
    for (size_t i = end_item; i-- > first_item;) {
      if (staged_[i].queue == nullptr) continue;
      staged_[i].queue->next_offset = staged_[i].queue_offset;
      Fail(i, status);
    }
  }
  return status;
}

void MessageStoreImpl::ProcessBatch(PendingBatch* batch) {
  const size_t count = batch->items.size();
  if (staged_.size() < count) staged_.resize(count);
  failures_.clear();
  touched_.clear();
  ++batch_mark_;
  RecordMeta meta;
  meta.stored_at = NextStoredAt();
  const int64_t stored_ms = ToUnixMillis(meta.stored_at);

  // Seal the records and write them, in as few writes as the segment boundaries allow.
  Status failure = IndexError();
  char* const records = batch->records.data();
  const char* range = records;  // start of the sealed records not yet written
  size_t range_item = 0;        // the first item of that range
  size_t position = 0;
  size_t refused = 0;
  for (size_t i = 0; i < count; ++i) {
    const PendingBatch::Item& item = batch->items[i];
    Staged& staged = staged_[i];
    staged.queue = nullptr;
    staged.failure = -1;
    if (item.size == 0) {
      Fail(i, std::move(batch->refused[refused++].second));
      continue;
    }
    char* const record = records + position;
    position += item.size;
    if (!failure.ok()) {
      Fail(i, failure);
      continue;
    }
    Status invalid;
    QueueState* queue = ResolveQueue(RecordTopic(record), item.queue, &invalid);
    if (queue == nullptr) {
      // Write around the refused record.
      failure = WriteRange(range, record, range_item, i);
      range = record + item.size;
      range_item = i + 1;
      Fail(i, std::move(invalid));
      continue;
    }
    const uint64_t in_segment = log_->active_size() + static_cast<uint64_t>(record - range);
    if (in_segment > 0 && in_segment + item.size > options_.segment_bytes) {
      failure = WriteRange(range, record, range_item, i);
      if (failure.ok()) failure = log_->Roll();
      range = record;
      range_item = i;
      if (!failure.ok()) {
        Fail(i, failure);
        range = record + item.size;
        range_item = i + 1;
        continue;
      }
    }
    meta.commit_log_offset = log_->end_offset() + (record - range);
    meta.queue = item.queue;
    meta.queue_offset = queue->next_offset++;
    SealRecord(meta, item.size, record);
    staged.queue = queue;
    staged.commit_log_offset = meta.commit_log_offset;
    staged.queue_offset = meta.queue_offset;
    if (queue->batch_mark != batch_mark_) {
      queue->batch_mark = batch_mark_;
      touched_.push_back(queue);
    }
  }
  if (failure.ok()) WriteRange(range, records + position, range_item, count).IgnoreError();

  // Index and publish. Every record before `indexed_end` in the log is indexed.
  int64_t indexed_end = log_->end_offset();

  for (size_t i = 0; i < count; ++i) {
    Staged& staged = staged_[i];
    if (staged.queue == nullptr) continue;
    Status status = IndexError();
    if (status.ok()) {
      const PendingBatch::Item& item = batch->items[i];
      status = staged.queue->index.Put(
          staged.queue_offset,
          IndexEntry{staged.commit_log_offset, item.size, item.tag_hash, stored_ms});
      if (!status.ok()) {
        std::lock_guard lock(index_error_mu_);
        index_error_ = Status(status.code(), status.message() +
                                                 "; the message store refuses appends until "
                                                 "it is reopened");
        has_index_error_.store(true, std::memory_order_release);
      }
    }
    if (!status.ok()) {
      indexed_end = std::min(indexed_end, staged.commit_log_offset);
      Fail(i, std::move(status));
    }
  }
  if (!touched_.empty()) {
    {
      std::lock_guard lock(publish_mu_);
      for (QueueState* queue : touched_) queue->index.Publish();
      if (!has_index_error_.load(std::memory_order_acquire)) {
        dispatched_ = std::max(dispatched_, indexed_end);
      }
    }
    // Publish and the waiter count are sequentially consistent, as are their counterparts in
    // WaitForData: either the waiter sees the new end, or this thread sees the waiter.
    for (QueueState* queue : touched_) {
      if (queue->waiters.load(std::memory_order_seq_cst) > 0) {
        { std::lock_guard lock(queue->wait_mu); }
        queue->wait_cv.notify_all();
      }
    }
    if (options_.on_published) options_.on_published();
  }

  // The SDK's SendAsync completions among these reach its callback pool in one hand-off for
  // the batch, not one (a lock, perhaps a wake-up) each on this thread, which every append
  // waits for.
  core::SendDoneBatch sends;
  for (size_t i = 0; i < count; ++i) {
    PendingBatch::Item& item = batch->items[i];
    if (!item.done) continue;
    const Staged& staged = staged_[i];
    if (staged.failure < 0) {
      Complete(item, AppendResult{item.queue, staged.queue_offset, staged.commit_log_offset,
                                  meta.stored_at});
    } else {
      Complete(item, std::move(failures_[static_cast<size_t>(staged.failure)]));
    }
  }
  if (!handing_over_.empty()) {
    bool wake = false;
    {
      std::lock_guard lock(syncer_mu_);
      if (awaiting_sync_.empty()) {
        awaiting_sync_.swap(handing_over_);
      } else {
        std::move(handing_over_.begin(), handing_over_.end(), std::back_inserter(awaiting_sync_));
        handing_over_.clear();
      }
      wake = syncer_waiting_;
      syncer_waiting_ = false;
    }
    if (wake) syncer_cv_.notify_one();
  }
}

void MessageStoreImpl::Complete(PendingBatch::Item& item, Result<AppendResult> result) {
  // kGroupCommit: readable once written (ProcessBatch published it), acknowledged once
  // durable. Readers do not wait for the disk, as RocketMQ dispatches from the page cache
  // whatever its flush mode; what a machine crash can take back was never acknowledged.
  // Failures wait too, so that appends complete in order.
  if (options_.flush_mode == FlushMode::kGroupCommit) {
    handing_over_.push_back(AwaitingSync{std::move(item.done), std::move(result)});
    return;
  }
  RunCallback(item.done, std::move(result));
}

void MessageStoreImpl::SyncerLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-store-s");
  std::vector<AwaitingSync> syncing;
  std::unique_lock lock(syncer_mu_);
  for (;;) {
    while (awaiting_sync_.empty() && !syncer_stop_) {
      syncer_waiting_ = true;
      syncer_cv_.wait(lock);
    }
    if (awaiting_sync_.empty()) break;  // stopping, and every append is done
    syncing.swap(awaiting_sync_);
    lock.unlock();
    // Covers every append handed over: each was written before it was.
    const Status synced = log_->Sync();
    {
      core::SendDoneBatch sends;
      for (AwaitingSync& append : syncing) {
        if (append.result.ok() && !synced.ok()) append.result = synced;
        RunCallback(append.done, std::move(append.result));
      }
    }
    syncing.clear();
    lock.lock();
  }
}

// ---- Reading ----------------------------------------------------------------------------------

Result<ReadResult> MessageStoreImpl::Read(const std::string& topic, int32_t queue, int64_t offset,
                                          int32_t max_messages, int64_t max_bytes,
                                          const std::vector<uint64_t>& tag_hashes) const {
  MSGSDK_ASSIGN_OR_RETURN(InPlaceReadResult read,
                          ReadInPlace(topic, queue, offset, max_messages, max_bytes, tag_hashes));
  ReadResult result;
  result.next_offset = read.next_offset;
  result.max_offset = read.max_offset;
  result.min_offset = read.min_offset;
  result.messages.resize(read.records.size());
  for (size_t i = 0; i < read.records.size(); ++i) {
    CopyRecord(read.records[i], &result.messages[i]);
  }
  return result;
}

Result<InPlaceReadResult> MessageStoreImpl::ReadInPlace(
    const std::string& topic, int32_t queue, int64_t offset, int32_t max_messages,
    int64_t max_bytes, const std::vector<uint64_t>& tag_hashes) const {
  if (max_messages <= 0) {
    return InvalidArgumentError("max_messages must be positive to read topic '" + topic +
                                "', got " + std::to_string(max_messages));
  }
  if (closed_.load(std::memory_order_acquire)) return ClosedError();
  MSGSDK_ASSIGN_OR_RETURN(const QueueState* state, LookupQueue(topic, queue));
  const ConsumeQueue& index = state->index;

  InPlaceReadResult result;
  struct Picked {
    int64_t offset;
    IndexEntry entry;
  };
  std::vector<Picked> picked;
  std::optional<int64_t> bad_offset;
  EntryState bad_state = EntryState::kValid;
  for (;;) {
    // The start first: retention raises it before it removes anything, and never past the
    // end, so the end read after it is not below it.
    result.min_offset = index.min_offset();
    const int64_t max_offset = index.max_offset();
    result.max_offset = max_offset;
    // Messages before the start were deleted by retention: the read starts at the first one
    // still stored.
    offset = std::max(offset, result.min_offset);
    if (offset >= max_offset) {
      result.next_offset = max_offset;
      return result;
    }
    picked.reserve(
        static_cast<size_t>(std::min<int64_t>({max_messages, max_offset - offset, 1024})));
    const int64_t scan_limit =
        tag_hashes.empty() ? max_messages : std::max<int64_t>(max_messages, kMaxScannedEntries);
    const int64_t scan_end = std::min(max_offset, offset + scan_limit);
    int64_t bytes = 0;
    result.next_offset =
        index.Scan(offset, scan_end, [&](int64_t o, const IndexEntry& entry, EntryState s) {
          if (s != EntryState::kValid) {
            bad_offset = o;
            bad_state = s;
            return false;
          }
          if (!tag_hashes.empty() &&
              std::find(tag_hashes.begin(), tag_hashes.end(), entry.tag_hash) == tag_hashes.end()) {
            return true;
          }
          picked.push_back(Picked{o, entry});
          bytes += entry.size;
          return static_cast<int32_t>(picked.size()) < max_messages && bytes < max_bytes;
        });
    // Retention removed the index file of `offset` between the clamp and the scan: read
    // from the queue's new start.
    if (result.next_offset == offset && picked.empty() && !bad_offset &&
        index.min_offset() > offset) {
      continue;
    }
    break;
  }
  if (bad_offset) {
    if (picked.empty()) {
      return DataLossError(
          "message " + std::to_string(*bad_offset) + " of topic '" + topic + "' queue " +
          std::to_string(queue) +
          (bad_state == EntryState::kLost
               ? " was lost: its commit log record was corrupt when the index was rebuilt"
               : " has a corrupt index entry in " + index.dir().native()));
    }
    result.next_offset = *bad_offset;
  }

  // Decode the records in place from the mapped segments.
  result.records.reserve(picked.size());
  auto fail = [&](size_t at, Status status) -> Result<InPlaceReadResult> {
    if (result.records.empty()) return status;
    // Hand out what precedes the bad record; the next read starts at it and reports it.
    result.next_offset = picked[at].offset;
    return std::move(result);
  };
  std::optional<CommitLog::Location> location;
  const int64_t verified_before = std::max(appended_from_, log_->end_offset() - unverified_tail_);
  for (size_t i = 0; i < picked.size(); ++i) {
    const Picked& p = picked[i];
    const int64_t offset = p.entry.commit_log_offset;
    if (!location || offset < location->segment->base || offset >= location->limit) {
      location = log_->Locate(offset);
      // Before the log's first segment: retention deleted the record since the scan (and
      // moved the queue's start past it before it did). It is skipped like a deleted one.
      if (!location) continue;
      result.pinned.push_back(location->segment);
    }
    const CommitLog::Segment& segment = *location->segment;
    auto corrupt = [&](std::string_view why) {
      return DataLossError("commit log segment " + segment.path.native() + " position " +
                           std::to_string(offset - segment.base) + ": " + std::string(why) +
                           " in the record of message " + std::to_string(p.offset) + " of topic '" +
                           topic + "' queue " + std::to_string(queue));
    };
    if (offset + p.entry.size > location->limit) {
      return fail(i, corrupt("the record runs past the segment's end"));
    }
    Result<const char*> mapped = log_->MappedRecord(*location, offset, p.entry.size);
    if (!mapped.ok()) return fail(i, mapped.status());
    const char* data = *mapped;
    if (data == nullptr) {
      auto copy = std::make_unique_for_overwrite<char[]>(p.entry.size);
      Status status = log_->ReadAt(offset, copy.get(), p.entry.size);
      if (!status.ok()) return fail(i, std::move(status));
      data = copy.get();
      result.copies.push_back(std::move(copy));
    }
    uint32_t size = 0;
    const RecordCheck check = offset >= verified_before
                                  ? CheckRecordFraming(data, p.entry.size, &size)
                                  : CheckRecord(data, p.entry.size, &size);
    if (check != RecordCheck::kOk || size != p.entry.size) {
      return fail(i, corrupt(check != RecordCheck::kOk ? RecordCheckName(check)
                                                       : "record size differs from the index"));
    }
    RecordInPlace& record = result.records.emplace_back();
    const bool decoded = DecodeRecordInPlace(std::string_view(data, size), &record);
    if (!decoded || record.meta.queue != queue || record.meta.queue_offset != p.offset ||
        record.meta.commit_log_offset != offset || record.topic != topic) {
      result.records.pop_back();
      return fail(i, corrupt(decoded ? "record does not belong to this queue position"
                                     : "malformed record of " + std::to_string(size) + " bytes"));
    }
  }
  return result;
}

bool MessageStoreImpl::WaitForData(const std::string& topic, int32_t queue, int64_t offset,
                                   std::chrono::steady_clock::time_point deadline) const {
  const QueueState* state = FindQueue(topic, queue);
  if (state == nullptr) {
    std::unique_lock lock(topics_wait_mu_);
    topics_cv_.wait_until(lock, deadline, [&] {
      if (closed_.load(std::memory_order_acquire)) return true;
      state = FindQueue(topic, queue);
      return state != nullptr;
    });
    if (state == nullptr) return false;
  }
  auto* q = const_cast<QueueState*>(state);
  if (q->index.max_offset() > offset) return true;
  q->waiters.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock lock(q->wait_mu);
    q->wait_cv.wait_until(lock, deadline, [&] {
      return q->index.max_offset() > offset || closed_.load(std::memory_order_acquire);
    });
  }
  q->waiters.fetch_sub(1, std::memory_order_seq_cst);
  return q->index.max_offset() > offset;
}

int64_t MessageStoreImpl::MinOffset(const std::string& topic, int32_t queue) const {
  const QueueState* state = FindQueue(topic, queue);
  return state == nullptr ? 0 : state->index.min_offset();
}

int64_t MessageStoreImpl::MaxOffset(const std::string& topic, int32_t queue) const {
  const QueueState* state = FindQueue(topic, queue);
  return state == nullptr ? 0 : state->index.max_offset();
}

Result<int64_t> MessageStoreImpl::OffsetForTimestamp(const std::string& topic, int32_t queue,
                                                     Timestamp ts) const {
  MSGSDK_ASSIGN_OR_RETURN(const QueueState* state, LookupQueue(topic, queue));
  // Store times are whole milliseconds: the first one at or after `ts` is at or after
  // `ts` rounded up to a millisecond.
  const int64_t ms = std::chrono::ceil<std::chrono::milliseconds>(ts.time_since_epoch()).count();
  return state->index.LowerBoundStoredAt(ms);
}

// ---- Consumer offsets -------------------------------------------------------------------------

void MessageStoreImpl::CommitOffsets(const std::string& group, const std::string& topic,
                                     const std::vector<QueueOffset>& offsets,
                                     OffsetsCallback done) {
  if (closed_.load(std::memory_order_acquire)) {
    if (done) done(ClosedError());
    return;
  }
  std::vector<OffsetStore::Entry> entries;
  entries.reserve(offsets.size());
  for (const QueueOffset& offset : offsets) {
    entries.push_back(OffsetStore::Entry{group, topic, offset.queue, offset.offset});
  }
  offsets_->Commit(std::move(entries), std::move(done));
}

Status MessageStoreImpl::CommitOffset(const std::string& group, const std::string& topic,
                                      int32_t queue, int64_t offset) {
  if (closed_.load(std::memory_order_acquire)) return ClosedError();
  return offsets_->Commit(group, topic, queue, offset);
}

std::optional<int64_t> MessageStoreImpl::CommittedOffset(const std::string& group,
                                                         const std::string& topic,
                                                         int32_t queue) const {
  return offsets_->Get(group, topic, queue);
}

Status MessageStoreImpl::FlushOffsets() {
  if (closed_.load(std::memory_order_acquire)) return ClosedError();
  return offsets_->Flush();
}

// ---- Flushing and closing ---------------------------------------------------------------------

void MessageStoreImpl::FlusherLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-store-f");
  const bool periodic = options_.flush_mode == FlushMode::kPeriodic;
  Clock::time_point next_sync = Clock::now() + options_.flush_interval;
  Clock::time_point next_checkpoint = Clock::now() + options_.index_checkpoint_interval;
  std::unique_lock lock(flusher_mu_);
  while (!flusher_stop_) {
    const Clock::time_point wake =
        periodic ? std::min(next_sync, next_checkpoint) : next_checkpoint;
    flusher_cv_.wait_until(lock, wake, [&] { return flusher_stop_; });
    if (flusher_stop_) break;
    lock.unlock();
    const Clock::time_point now = Clock::now();
    if (periodic && now >= next_sync) {
      // A failure is sticky in the log: every later append reports it.
      log_->Sync().IgnoreError();
      next_sync = now + options_.flush_interval;
    }
    if (now >= next_checkpoint) {
      // Retried at the next interval; recovery replays from the previous checkpoint meanwhile.
      WriteCheckpoint(/*force=*/false).IgnoreError();
      next_checkpoint = now + options_.index_checkpoint_interval;
    }
    lock.lock();
  }
}

Status MessageStoreImpl::WriteCheckpoint(bool force) {
  std::lock_guard checkpoint_lock(checkpoint_mu_);
  const auto queues = AllQueues();
  IndexCheckpoint checkpoint;
  {
    std::lock_guard lock(publish_mu_);
    checkpoint.log_offset = dispatched_;
    for (const QueueRef& ref : queues) {
      const int64_t end = ref.queue->index.max_offset();
      if (end > 0) checkpoint.queue_ends[{ref.topic->name, ref.id}] = end;
    }
  }
  if (!force && checkpoint.log_offset == last_checkpoint_) return OkStatus();
  // The checkpoint must not claim records the log may still lose (records are readable, so
  // indexed, before they are synced in either mode).
  MSGSDK_RETURN_IF_ERROR(log_->Sync());
  for (const QueueRef& ref : queues) MSGSDK_RETURN_IF_ERROR(ref.queue->index.Sync());
  MSGSDK_RETURN_IF_ERROR(WriteFileAtomically(checkpoint_path_, EncodeCheckpoint(checkpoint)));
  last_checkpoint_ = checkpoint.log_offset;
  return OkStatus();
}

// ---- Retention --------------------------------------------------------------------------------

Timestamp MessageStoreImpl::Now() const {
  return options_.clock ? options_.clock() : std::chrono::system_clock::now();
}

RetentionPolicy MessageStoreImpl::Retention() const {
  std::lock_guard lock(retention_policy_mu_);
  return retention_policy_;
}

Status MessageStoreImpl::SetRetention(const RetentionPolicy& policy) {
  MSGSDK_RETURN_IF_ERROR(
      ValidateRetention(policy, " of the message store in " + options_.data_dir.native()));
  {
    std::lock_guard lock(retention_policy_mu_);
    retention_policy_ = policy;
  }
  {
    std::lock_guard lock(retention_wait_mu_);
    retention_policy_changed_ = true;
  }
  retention_cv_.notify_all();
  return OkStatus();
}

CommitLogInfo MessageStoreImpl::LogInfo() const {
  CommitLogInfo info;
  info.start_offset = log_->start_offset();
  info.end_offset = log_->end_offset();
  info.bytes = log_->SizeBytes();
  info.segments = static_cast<int32_t>(log_->Segments().size());
  return info;
}

void MessageStoreImpl::RetentionLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-store-r");
  std::unique_lock lock(retention_wait_mu_);
  while (!retention_stop_) {
    const std::chrono::milliseconds interval = Retention().check_interval;
    retention_policy_changed_ = false;
    const bool woken = retention_cv_.wait_for(
        lock, interval, [&] { return retention_stop_ || retention_policy_changed_; });
    if (retention_stop_) break;
    if (woken) continue;  // a new policy: its interval counts from now
    lock.unlock();
    if (Retention().enabled()) {
      const Result<RetentionReport> report = EnforceRetention();
      if (options_.on_retention && (!report.ok() || report->segments_deleted > 0)) {
        // A callback that throws must not end retention for the life of the store.
        try {
          options_.on_retention(report);
        } catch (...) {
        }
      }
    }
    lock.lock();
  }
}

Result<int64_t> MessageStoreImpl::CheckpointedOffset() {
  MSGSDK_RETURN_IF_ERROR(WriteCheckpoint(/*force=*/false));
  std::lock_guard lock(checkpoint_mu_);
  return last_checkpoint_;
}

int64_t MessageStoreImpl::NewestStoredAtMs(const CommitLog::Segment& segment, int64_t limit) {
  auto cached = segment_newest_ms_.find(segment.base);
  if (cached != segment_newest_ms_.end()) return cached->second;
  // Store times never decrease along the log, so the newest record of the segment is its
  // last one: the last entry before `limit` of whichever queue holds it.
  int64_t newest = -1;
  for (const QueueRef& ref : AllQueues()) {
    const ConsumeQueue& index = ref.queue->index;
    const int64_t after = index.LowerBoundLogOffset(limit);
    if (after <= index.min_offset()) continue;
    IndexEntry entry;
    if (index.Get(after - 1, &entry) == EntryState::kCorrupt ||
        entry.commit_log_offset < segment.base) {
      continue;
    }
    newest = std::max(newest, entry.stored_at_ms);
  }
  if (newest < 0) {
    // No entry points into it (every record of it was corrupt when the index was rebuilt):
    // its file's last write is the best age there is.
    struct stat st;
    if (::fstat(segment.fd.get(), &st) == 0) {
      newest = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
    } else {
      return ToUnixMillis(Now());  // unknown: not expired now, asked again next time
    }
  }
  segment_newest_ms_[segment.base] = newest;
  return newest;
}

Result<RetentionReport> MessageStoreImpl::EnforceRetention() {
  std::lock_guard lock(retention_mu_);
  if (retention_closed_ || closed_.load(std::memory_order_acquire)) return ClosedError();
  const RetentionPolicy policy = Retention();
  RetentionReport report;
  report.log_start = log_->start_offset();
  report.log_bytes = log_->SizeBytes();
  if (!policy.enabled()) return report;
  const std::vector<CommitLog::SegmentPtr> segments = log_->Segments();
  if (segments.size() < 2) return report;  // only the active segment

  // Only segments the durable index checkpoint covers: recovery replays the log from the
  // checkpoint, which must therefore never lie before the log's start.
  MSGSDK_ASSIGN_OR_RETURN(const int64_t checkpointed, CheckpointedOffset());
  const int64_t now_ms = ToUnixMillis(Now());
  int64_t bytes = report.log_bytes;
  size_t count = 0;
  // The last segment is the active one.
  for (; count + 1 < segments.size(); ++count) {
    const CommitLog::Segment& segment = *segments[count];
    const int64_t limit = segments[count + 1]->base;
    if (limit > checkpointed) break;
    const bool over_size = policy.max_bytes > 0 && bytes > static_cast<int64_t>(policy.max_bytes);
    // Segments are in store-time order: the first one not expired ends the expired ones.
    const bool expired = !over_size && policy.max_age.count() > 0 &&
                         now_ms - NewestStoredAtMs(segment, limit) >= policy.max_age.count();
    if (!over_size && !expired) break;
    if (expired) ++report.segments_expired;
    const int64_t size = segment.sealed_size.load(std::memory_order_acquire);
    bytes -= size;
    report.bytes_deleted += size;
  }
  if (count == 0) return report;
  const int64_t new_start = segments[count]->base;

  // Where each queue starts once the segments are gone: its first entry at or after the new
  // log start. Entries appended meanwhile are in the active segment, after it.
  LogStart record;
  record.log_offset = new_start;
  struct Move {
    ConsumeQueue* index;
    RetentionReport::QueueStart start;
  };
  std::vector<Move> moves;
  for (const QueueRef& ref : AllQueues()) {
    ConsumeQueue& index = ref.queue->index;
    const int64_t previous = index.min_offset();
    const int64_t start = std::max(previous, index.LowerBoundLogOffset(new_start));
    if (start > 0) record.queue_starts[{ref.topic->name, ref.id}] = start;
    if (start > previous) {
      moves.push_back(Move{&index, {ref.topic->name, ref.id, previous, start}});
    }
  }
  // Durable before anything is removed: a crash from here on leaves a store whose recovery
  // finishes the deletion; a crash before leaves it as it was.
  MSGSDK_RETURN_IF_ERROR(WriteFileAtomically(log_start_path_, EncodeLogStart(record)));

  // Queue starts move before the segments go, so a reader that finds a record's segment gone
  // also finds the queue's start past it.
  Status status;
  for (Move& move : moves) {
    Status truncated = move.index->TruncateFront(move.start.start);
    if (status.ok() && !truncated.ok()) status = std::move(truncated);
    report.queues.push_back(std::move(move.start));
  }
  const std::vector<CommitLog::SegmentPtr> dropped = log_->DropSegmentsBefore(new_start);
  Status removed = log_->RemoveSegmentFiles(dropped);
  if (status.ok() && !removed.ok()) status = std::move(removed);
  segment_newest_ms_.erase(segment_newest_ms_.begin(), segment_newest_ms_.lower_bound(new_start));
  report.segments_deleted = static_cast<int32_t>(dropped.size());
  report.log_start = log_->start_offset();
  report.log_bytes = log_->SizeBytes();
  if (!status.ok()) {
    return status.WithContext("retention moved the start of the commit log in " +
                              options_.data_dir.native() + " to " + std::to_string(new_start) +
                              "; files it could not remove are removed when the store is next "
                              "opened");
  }
  return report;
}

Status MessageStoreImpl::Close() {
  std::lock_guard close_lock(close_mu_);
  if (close_done_) return close_status_;
  close_done_ = true;
  {
    std::lock_guard lock(retention_wait_mu_);
    retention_stop_ = true;
  }
  retention_cv_.notify_all();
  if (retention_thread_.joinable()) retention_thread_.join();
  {
    // Waits for a deletion another thread runs.
    std::lock_guard lock(retention_mu_);
    retention_closed_ = true;
  }
  {
    std::lock_guard lock(append_mu_);
    closing_ = true;
  }
  writer_cv_.notify_all();
  space_cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // drains: every pending append is written
  {
    std::lock_guard lock(syncer_mu_);
    syncer_stop_ = true;
  }
  syncer_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();  // and completes
  {
    std::lock_guard lock(flusher_mu_);
    flusher_stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();

  Status status;
  auto keep_first = [&](Status s) {
    if (status.ok() && !s.ok()) status = std::move(s);
  };
  if (started_) {
    log_->ReleasePreallocation();
    keep_first(log_->Sync());
    keep_first(WriteCheckpoint(/*force=*/true));
  }
  if (offsets_ != nullptr) keep_first(offsets_->Close());

  closed_.store(true, std::memory_order_release);
  for (const QueueRef& ref : AllQueues()) {
    { std::lock_guard lock(ref.queue->wait_mu); }
    ref.queue->wait_cv.notify_all();
  }
  { std::lock_guard lock(topics_wait_mu_); }
  topics_cv_.notify_all();
  lock_fd_.Reset();  // releases the flock
  close_status_ = status;
  return status;
}

}  // namespace

Status MessageStore::CommitOffsetsAndWait(const std::string& group, const std::string& topic,
                                          const std::vector<QueueOffset>& offsets) {
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<Status> status;
  };
  auto waiter = std::make_shared<Waiter>();
  CommitOffsets(group, topic, offsets, [waiter](Status status) {
    std::lock_guard lock(waiter->mutex);
    waiter->status = std::move(status);
    waiter->done.notify_all();
  });
  std::unique_lock lock(waiter->mutex);
  waiter->done.wait(lock, [&] { return waiter->status.has_value(); });
  return *waiter->status;
}

Result<std::unique_ptr<MessageStore>> MessageStore::Open(StoreOptions options) {
  MSGSDK_RETURN_IF_ERROR(ValidateOptions(options));
  auto store = std::make_unique<MessageStoreImpl>(std::move(options));
  MSGSDK_RETURN_IF_ERROR(store->Start());
  return std::unique_ptr<MessageStore>(std::move(store));
}

}  // namespace msgsdk::native
