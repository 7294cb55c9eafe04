#include "backends/native/storage/offset_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"

namespace msgsdk::native {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kSnapshotMagic = 0x464F534Du;  // "MSOF"
// Version 1 had no sequence number: it predates the journal.
constexpr uint32_t kSnapshotVersionWithoutJournal = 1;
constexpr uint32_t kSnapshotVersion = 2;
constexpr size_t kMaxNameBytes = std::numeric_limits<uint16_t>::max();
// A journal record: payload size, CRC32C of the payload, payload. An all-zero header is
// where the records end (the journal is extended with zeros ahead of them).
constexpr size_t kRecordHeaderBytes = 8;
// The journal grows by this many zero bytes at a time, written before records go there: a
// record then overwrites blocks the file already has, and its fdatasync flushes data only,
// without a file-system journal commit for a new size or newly allocated blocks (which would
// also queue behind, and delay, the commit log's own syncs).
constexpr size_t kJournalExtentBytes = size_t{1} << 20;

void AppendEntries(const OffsetStore::OffsetMap& offsets, std::string* out) {
  AppendFixed32(out, static_cast<uint32_t>(offsets.size()));
  for (const auto& [key, offset] : offsets) {
    AppendString16(out, std::get<0>(key));
    AppendString16(out, std::get<1>(key));
    AppendFixed32(out, static_cast<uint32_t>(std::get<2>(key)));
    AppendFixed64(out, static_cast<uint64_t>(offset));
  }
}

// Reads `count` (group, topic, queue, offset) entries, calling apply(group, topic, queue,
// offset) for each; false if they do not parse.
template <typename Apply>
bool ReadEntries(SliceReader& reader, uint32_t count, Apply&& apply) {
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view group, topic;
    uint32_t queue;
    uint64_t offset;
    if (!reader.String16(&group) || !reader.String16(&topic) || !reader.Fixed32(&queue) ||
        !reader.Fixed64(&offset)) {
      return false;
    }
    apply(group, topic, static_cast<int32_t>(queue), static_cast<int64_t>(offset));
  }
  return true;
}

void ApplyOffset(OffsetStore::OffsetMap& offsets, std::string_view group, std::string_view topic,
                 int32_t queue, int64_t offset) {
  auto it =
      offsets.find(std::tuple<std::string_view, std::string_view, int32_t>(group, topic, queue));
  if (it == offsets.end()) {
    offsets.emplace(OffsetStore::Key(group, topic, queue), offset);
  } else {
    it->second = offset;
  }
}

Status Validate(const OffsetStore::Entry& entry) {
  if (entry.group.empty() || entry.group.size() > kMaxNameBytes) {
    return InvalidArgumentError("consumer group name must have 1 to 65535 bytes, got " +
                                std::to_string(entry.group.size()));
  }
  if (entry.topic.empty() || entry.topic.size() > kMaxNameBytes) {
    return InvalidArgumentError("topic name must have 1 to 65535 bytes, got " +
                                std::to_string(entry.topic.size()));
  }
  if (entry.queue < 0 || entry.offset < 0) {
    return InvalidArgumentError("cannot commit offset " + std::to_string(entry.offset) +
                                " of queue " + std::to_string(entry.queue) + " of topic '" +
                                entry.topic + "' for group '" + entry.group +
                                "': queue and offset must not be negative");
  }
  return OkStatus();
}

// Lets a thread wait for a Done.
struct Waiter {
  std::mutex mutex;
  std::condition_variable done;
  std::optional<Status> status;

  static OffsetStore::Done Callback(const std::shared_ptr<Waiter>& waiter) {
    return [waiter](Status status) {
      std::lock_guard lock(waiter->mutex);
      waiter->status = std::move(status);
      waiter->done.notify_all();
    };
  }
  Status Wait() {
    std::unique_lock lock(mutex);
    done.wait(lock, [this] { return status.has_value(); });
    return *status;
  }
};

}  // namespace

std::string OffsetStore::EncodeSnapshot(const Snapshot& snapshot) {
  std::string out;
  AppendFixed32(&out, kSnapshotMagic);
  AppendFixed32(&out, kSnapshotVersion);
  AppendFixed64(&out, snapshot.last_sequence);
  AppendEntries(snapshot.offsets, &out);
  AppendFixed32(&out, Crc32c(out.data(), out.size()));
  return out;
}

Result<OffsetStore::Snapshot> OffsetStore::DecodeSnapshot(std::string_view content) {
  if (content.size() < 4 || DecodeFixed32(content.data() + content.size() - 4) !=
                                Crc32c(content.data(), content.size() - 4)) {
    return DataLossError("fails its crc32c");
  }
  SliceReader reader(content.substr(0, content.size() - 4));
  uint32_t magic, version, count;
  Snapshot snapshot;
  if (!reader.Fixed32(&magic) || magic != kSnapshotMagic || !reader.Fixed32(&version) ||
      (version != kSnapshotVersion && version != kSnapshotVersionWithoutJournal) ||
      (version == kSnapshotVersion && !reader.Fixed64(&snapshot.last_sequence)) ||
      !reader.Fixed32(&count)) {
    return DataLossError("has an unknown header");
  }
  if (!ReadEntries(
          reader, count,
          [&](std::string_view group, std::string_view topic, int32_t queue, int64_t offset) {
            snapshot.offsets.emplace(Key(group, topic, queue), offset);
          })) {
    return DataLossError("is truncated");
  }
  if (!reader.empty()) return DataLossError("has trailing bytes");
  return snapshot;
}

void OffsetStore::AppendRecord(uint64_t sequence, const std::vector<Entry>& entries,
                               std::string* out) {
  const size_t start = out->size();
  out->append(kRecordHeaderBytes, '\0');
  AppendFixed64(out, sequence);
  AppendFixed32(out, static_cast<uint32_t>(entries.size()));
  for (const Entry& entry : entries) {
    AppendString16(out, entry.group);
    AppendString16(out, entry.topic);
    AppendFixed32(out, static_cast<uint32_t>(entry.queue));
    AppendFixed64(out, static_cast<uint64_t>(entry.offset));
  }
  char* header = out->data() + start;
  const size_t payload = out->size() - start - kRecordHeaderBytes;
  EncodeFixed32(header, static_cast<uint32_t>(payload));
  EncodeFixed32(header + 4, Crc32c(header + kRecordHeaderBytes, payload));
}

OffsetStore::OffsetStore(std::filesystem::path path, Options options)
    : path_(std::move(path)), journal_path_(path_.native() + ".journal"), options_(options) {}

Result<std::unique_ptr<OffsetStore>> OffsetStore::Open(std::filesystem::path path,
                                                       Options options) {
  if (options.sync_interval.count() <= 0) {
    return InvalidArgumentError("the sync interval of consumer offsets file " + path.native() +
                                " must be positive");
  }
  std::unique_ptr<OffsetStore> store(new OffsetStore(std::move(path), options));
  MSGSDK_RETURN_IF_ERROR(store->Recover());
  store->recovered_ = true;
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

Status OffsetStore::Recover() {
  Snapshot snapshot;
  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> content, ReadFileIfExists(path_));
  if (content) {
    Result<Snapshot> decoded = DecodeSnapshot(*content);
    if (!decoded.ok()) {
      return DataLossError(
          "consumer offsets file " + path_.native() + " " + decoded.status().message() +
          "; restore it from a backup, or remove it and " + journal_path_.native() +
          " to reset the offsets of every consumer group");
    }
    snapshot = std::move(decoded).value();
  }
  offsets_ = std::move(snapshot.offsets);

  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> journal, ReadFileIfExists(journal_path_));
  MSGSDK_ASSIGN_OR_RETURN(journal_, OpenFile(journal_path_, O_RDWR | O_CREAT));
  if (!journal) {
    // The journal's name must be durable before anything synced in it counts.
    MSGSDK_RETURN_IF_ERROR(SyncDirectory(path_.parent_path().empty() ? std::filesystem::path(".")
                                                                     : path_.parent_path()));
    journal.emplace();
  }

  // Records were appended in sequence order, over zeros. One that is torn, fails its CRC, or
  // does not follow its predecessor's sequence ends the journal: it was never completed, or it
  // is a leftover of a journal emptied by a compaction whose zeroing did not reach the disk.
  const std::string_view data(*journal);
  uint64_t previous = 0;
  size_t position = 0;
  std::string why;
  std::vector<std::tuple<std::string_view, std::string_view, int32_t, int64_t>> parsed;
  while (position < data.size()) {
    if (data.size() - position < kRecordHeaderBytes) {
      why = "a torn record header";
      break;
    }
    const uint32_t size = DecodeFixed32(data.data() + position);
    const uint32_t crc = DecodeFixed32(data.data() + position + 4);
    if (size == 0 && crc == 0) break;  // the zeros after the last record
    if (size > data.size() - position - kRecordHeaderBytes) {
      why = "a torn record";
      break;
    }
    const std::string_view payload = data.substr(position + kRecordHeaderBytes, size);
    if (Crc32c(payload.data(), payload.size()) != crc) {
      why = "a record failing its crc32c";
      break;
    }
    SliceReader reader(payload);
    uint64_t sequence;
    uint32_t count;
    parsed.clear();
    if (!reader.Fixed64(&sequence) || !reader.Fixed32(&count) ||
        !ReadEntries(reader, count,
                     [&](std::string_view group, std::string_view topic, int32_t queue,
                         int64_t offset) { parsed.emplace_back(group, topic, queue, offset); }) ||
        !reader.empty()) {
      why = "a malformed record";
      break;
    }
    if (sequence <= previous) {
      why = "a stale record (sequence " + std::to_string(sequence) + " after " +
            std::to_string(previous) + ")";
      break;
    }
    // Records the snapshot already holds are not applied again; the others in record order,
    // so that a later commit of a key wins.
    if (sequence > snapshot.last_sequence) {
      for (const auto& [group, topic, queue, offset] : parsed) {
        ApplyOffset(offsets_, group, topic, queue, offset);
      }
      ++recovery_.replayed_records;
    }
    previous = sequence;
    position += kRecordHeaderBytes + size;
  }
  // Past the records: zeros, unless a crash left a torn or stale record there. Zero that too,
  // so that new records are not followed by it.
  const size_t last_nonzero = data.find_last_not_of('\0');
  const size_t garbage_end = last_nonzero == std::string_view::npos ? 0 : last_nonzero + 1;
  file_size_ = data.size();
  if (garbage_end > position) {
    const std::string zeros(garbage_end - position, '\0');
    MSGSDK_RETURN_IF_ERROR(PwriteAll(journal_.get(), zeros.data(), zeros.size(),
                                     static_cast<int64_t>(position), journal_path_));
    MSGSDK_RETURN_IF_ERROR(SyncFile(journal_.get(), journal_path_));
    recovery_.truncated_bytes = static_cast<int64_t>(garbage_end - position);
    recovery_.truncation = (why.empty() ? "a torn record" : why) + " at position " +
                           std::to_string(position) + " of " + journal_path_.native();
  }
  journal_size_ = position;
  applied_sequence_ = std::max(snapshot.last_sequence, previous);
  next_sequence_ = applied_sequence_ + 1;
  compact_at_ = options_.compact_bytes;
  return OkStatus();
}

OffsetStore::~OffsetStore() { Close().IgnoreError(); }

void OffsetStore::Commit(std::vector<Entry> entries, Done done) {
  Enqueue(std::move(entries), std::move(done), /*sync=*/false);
}

void OffsetStore::Enqueue(std::vector<Entry> entries, Done done, bool sync) {
  for (const Entry& entry : entries) {
    Status invalid = Validate(entry);
    if (!invalid.ok()) {
      if (done) done(std::move(invalid));
      return;
    }
  }
  std::unique_lock lock(mu_);
  if (stop_) {
    lock.unlock();
    if (done) {
      done(FailedPreconditionError("consumer offsets file " + path_.native() + " is closed"));
    }
    return;
  }
  uint64_t sequence = 0;
  if (!entries.empty()) {
    sequence = next_sequence_++;
    AppendRecord(sequence, entries, &pending_records_);
  }
  if (sync) sync_requested_ = true;
  pending_.push_back(Pending{std::move(entries), std::move(done), sequence});
  const bool wake = pending_.size() == 1;
  lock.unlock();
  if (wake) wake_.notify_one();
}

Status OffsetStore::CommitAndWait(std::vector<Entry> entries) {
  auto waiter = std::make_shared<Waiter>();
  Commit(std::move(entries), Waiter::Callback(waiter));
  return waiter->Wait();
}

Status OffsetStore::Commit(std::string_view group, std::string_view topic, int32_t queue,
                           int64_t offset) {
  std::vector<Entry> entries;
  entries.push_back(Entry{std::string(group), std::string(topic), queue, offset});
  return CommitAndWait(std::move(entries));
}

std::optional<int64_t> OffsetStore::Get(std::string_view group, std::string_view topic,
                                        int32_t queue) const {
  std::lock_guard lock(mu_);
  auto it =
      offsets_.find(std::tuple<std::string_view, std::string_view, int32_t>(group, topic, queue));
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

OffsetStore::OffsetMap OffsetStore::Offsets() const {
  std::lock_guard lock(mu_);
  return offsets_;
}

Status OffsetStore::Flush() {
  auto waiter = std::make_shared<Waiter>();
  Enqueue({}, Waiter::Callback(waiter), /*sync=*/true);
  return waiter->Wait();
}

void OffsetStore::SetBroken(const Status& status) {
  std::lock_guard lock(mu_);
  if (broken_.ok()) {
    broken_ = Status(status.code(), status.message() +
                                        "; consumer offsets are refused until the store is "
                                        "reopened");
  }
}

Status OffsetStore::SyncJournal() {
  if (!unsynced_) return OkStatus();
  Status status = SyncFile(journal_.get(), journal_path_);
  if (!status.ok()) {
    // After a failed fdatasync the kernel may have dropped the dirty pages: nothing written
    // since the last good sync can be trusted to reach the disk.
    SetBroken(status);
    std::lock_guard lock(mu_);
    return broken_;
  }
  unsynced_ = false;
  return OkStatus();
}

Status OffsetStore::Extend(size_t needed) {
  const size_t target = std::max(file_size_ + kJournalExtentBytes, needed);
  const std::string zeros(target - file_size_, '\0');
  Status status = PwriteAll(journal_.get(), zeros.data(), zeros.size(),
                            static_cast<int64_t>(file_size_), journal_path_);
  if (!status.ok()) {
    if (::ftruncate(journal_.get(), static_cast<off_t>(file_size_)) != 0) {
      SetBroken(ErrnoError(errno, "cannot undo a failed write to", journal_path_));
    }
    return status;
  }
  // Made durable by the sync of the records written into it.
  file_size_ = target;
  return OkStatus();
}

Status OffsetStore::WriteRecords(const std::string& records, bool sync) {
  if (!records.empty()) {
    if (journal_size_ + records.size() > file_size_) {
      MSGSDK_RETURN_IF_ERROR(Extend(journal_size_ + records.size()));
    }
    Status status = PwriteAll(journal_.get(), records.data(), records.size(),
                              static_cast<int64_t>(journal_size_), journal_path_);
    if (!status.ok()) {
      // A partial record must not stay: the next ones would be written after it, and
      // recovery would stop there.
      const std::string zeros(records.size(), '\0');
      Status undone = PwriteAll(journal_.get(), zeros.data(), zeros.size(),
                                static_cast<int64_t>(journal_size_), journal_path_);
      if (!undone.ok()) {
        SetBroken(Status(undone.code(), "cannot undo a failed write: " + undone.message()));
      }
      return status;
    }
    journal_size_ += records.size();
    if (!unsynced_) sync_due_ = Clock::now() + options_.sync_interval;
    unsynced_ = true;
  }
  return sync ? SyncJournal() : OkStatus();
}

Status OffsetStore::Compact() {
  Snapshot snapshot;
  {
    std::lock_guard lock(mu_);
    snapshot.offsets = offsets_;
  }
  snapshot.last_sequence = applied_sequence_;
  Status status = WriteFileAtomically(path_, EncodeSnapshot(snapshot));
  if (!status.ok()) {
    // The journal is untouched: appending on where its records end stays correct. Retried
    // once it has grown by as much again.
    compact_at_ = journal_size_ + options_.compact_bytes;
    return status;
  }
  // The journal starts over, keeping its blocks. If the zeros do not all reach the disk, the
  // records left are at or below the snapshot's sequence, and recovery skips them.
  const std::string zeros(journal_size_, '\0');
  status = PwriteAll(journal_.get(), zeros.data(), zeros.size(), 0, journal_path_);
  if (status.ok()) status = SyncFile(journal_.get(), journal_path_);
  if (!status.ok()) {
    // Part of the records may be zeroed: records appended after them would be taken for
    // garbage by recovery. Every commit so far is in the snapshot; later ones are refused.
    SetBroken(status);
    return status;
  }
  journal_size_ = 0;
  unsynced_ = false;
  compact_at_ = options_.compact_bytes;
  return OkStatus();
}

void OffsetStore::WriterLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-offsets");
  std::vector<Pending> batch;
  std::string records;
  std::unique_lock lock(mu_);
  for (;;) {
    const auto has_work = [&] { return !pending_.empty() || stop_; };
    if (!has_work()) {
      if (unsynced_) {
        wake_.wait_until(lock, sync_due_, has_work);
      } else {
        wake_.wait(lock, has_work);
      }
    }
    if (!pending_.empty()) {
      batch.swap(pending_);
      records.swap(pending_records_);
      const bool sync = options_.sync_commits || std::exchange(sync_requested_, false);
      Status status = broken_;
      lock.unlock();
      if (status.ok()) status = WriteRecords(records, sync);
      if (status.ok()) {
        std::lock_guard apply_lock(mu_);
        for (const Pending& pending : batch) {
          for (const Entry& entry : pending.entries) {
            ApplyOffset(offsets_, entry.group, entry.topic, entry.queue, entry.offset);
          }
          applied_sequence_ = std::max(applied_sequence_, pending.sequence);
        }
      }
      for (Pending& pending : batch) {
        // Callbacks must not throw; one that does must not stop every later commit.
        try {
          if (pending.done) pending.done(status);
        } catch (...) {
        }
      }
      batch.clear();
      records.clear();
      if (status.ok() && journal_size_ >= compact_at_) Compact().IgnoreError();
      lock.lock();
      continue;
    }
    if (stop_) break;
    if (unsynced_ && Clock::now() >= sync_due_) {
      lock.unlock();
      // A failure is sticky: every later commit reports it.
      SyncJournal().IgnoreError();
      lock.lock();
    }
  }
}

Status OffsetStore::Close() {
  std::lock_guard close_lock(close_mu_);
  if (closed_) return close_status_;
  closed_ = true;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();  // completes every pending commit first
  Status status;
  {
    std::lock_guard lock(mu_);
    status = broken_;
  }
  if (status.ok() && recovered_) status = SyncJournal();
  if (status.ok() && recovered_ && journal_size_ > 0) status = Compact();
  close_status_ = status;
  return status;
}

}  // namespace msgsdk::native
