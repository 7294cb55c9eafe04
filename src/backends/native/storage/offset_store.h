#pragma once

// Consumer-group offsets: (group, topic, queue) -> the next offset the group consumes.
//
// On disk, two files: a snapshot (`path`, replaced atomically) and a journal (`path`.journal)
// of the commits made since, written over zeros the file is extended with ahead of them. A commit
// is one journal record (all its offsets under one CRC32C and a sequence number). One thread
// appends the records of the commits waiting for it with one write and, with sync_commits, one
// fdatasync (group commit, as for messages), then applies them and completes them. Get reports only
// applied offsets: in sync_commits mode no crash can take back an offset that was read or
// acknowledged. When the journal has grown past compact_bytes, the offsets go to a new snapshot
// that names the last record it holds, and the journal is zeroed and starts over; records at or
// below a snapshot's sequence are never applied again, so a crash between the two steps is
// harmless.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "backends/native/storage/file_util.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

// Thread-safe.
class OffsetStore {
 public:
  struct Options {
    // true: a commit completes after the fdatasync that covers it (commits waiting meanwhile
    // share one). false: once written to the page cache (a process crash loses nothing, a
    // machine crash what was not synced yet), and the journal is fdatasync'ed sync_interval
    // after its first unsynced write.
    bool sync_commits = true;
    std::chrono::milliseconds sync_interval{100};
    // Journal size (bytes) past which the offsets are written to a new snapshot.
    uint64_t compact_bytes = uint64_t{4} << 20;
  };

  struct Entry {
    std::string group;
    std::string topic;
    int32_t queue = 0;
    int64_t offset = 0;
  };
  // Completion of a commit. Must not block, and must not commit and wait (it runs on the
  // thread that completes commits).
  using Done = std::function<void(Status)>;

  // What Open found in the journal.
  struct RecoveryInfo {
    int64_t replayed_records = 0;
    // Bytes after the last record, up to the last non-zero one, that recovery zeroed: a
    // record torn by a crash mid-write (never completed), or leftovers of records a
    // compaction had folded into the snapshot before the crash.
    int64_t truncated_bytes = 0;
    std::string truncation;
  };

  // Loads the snapshot at `path` (none yet: no offsets) and replays the journal. A snapshot
  // that fails its checksum is kDataLoss: unlike indexes, offsets cannot be rebuilt, and
  // silently resetting them would replay or skip messages for every group.
  static Result<std::unique_ptr<OffsetStore>> Open(std::filesystem::path path, Options options);
  ~OffsetStore();
  OffsetStore(const OffsetStore&) = delete;
  OffsetStore& operator=(const OffsetStore&) = delete;

  // Commits `entries` atomically (one record: all of them or none survive a crash), after
  // every commit made before. `done` runs exactly once: on the offsets thread once the commit
  // is durable per the options (Get reports it by then), or at once on this thread when an
  // entry is invalid (kInvalidArgument, nothing committed) or the store is closed
  // (kFailedPrecondition). No entries: completes when every earlier commit has.
  void Commit(std::vector<Entry> entries, Done done);
  // Commit and wait for it. Not from a Done callback.
  Status CommitAndWait(std::vector<Entry> entries);
  Status Commit(std::string_view group, std::string_view topic, int32_t queue, int64_t offset);

  std::optional<int64_t> Get(std::string_view group, std::string_view topic, int32_t queue) const;

  // Every commit made before the call is fdatasync'ed when it returns OK (also without
  // sync_commits).
  Status Flush();
  // Completes the pending commits, syncs, writes the snapshot and empties the journal; later
  // commits fail. Idempotent.
  Status Close();

  const RecoveryInfo& recovery() const { return recovery_; }

  using Key = std::tuple<std::string, std::string, int32_t>;
  struct KeyLess {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): std name
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::tuple<std::string_view, std::string_view, int32_t>(std::get<0>(a), std::get<1>(a),
                                                                     std::get<2>(a)) <
             std::tuple<std::string_view, std::string_view, int32_t>(std::get<0>(b), std::get<1>(b),
                                                                     std::get<2>(b));
    }
  };
  using OffsetMap = std::map<Key, int64_t, KeyLess>;
  // Every applied offset.
  OffsetMap Offsets() const;

  // The file formats, exposed for tests.
  struct Snapshot {
    OffsetMap offsets;
    // The sequence number of the last journal record the snapshot holds (0: none).
    uint64_t last_sequence = 0;
  };
  static std::string EncodeSnapshot(const Snapshot& snapshot);
  static Result<Snapshot> DecodeSnapshot(std::string_view content);
  static void AppendRecord(uint64_t sequence, const std::vector<Entry>& entries, std::string* out);

 private:
  struct Pending {
    std::vector<Entry> entries;
    Done done;
    uint64_t sequence = 0;  // of its journal record; 0: none (no entries)
  };

  OffsetStore(std::filesystem::path path, Options options);
  Status Recover();
  // Queues a commit; `sync`: its completion waits for an fdatasync even without sync_commits.
  void Enqueue(std::vector<Entry> entries, Done done, bool sync);
  void WriterLoop();
  // Writer thread: appends `records` and syncs if `sync`; on failure nothing of them counts.
  Status WriteRecords(const std::string& records, bool sync);
  // Writer thread: zeros past the file's end, so that it holds at least `needed` bytes.
  Status Extend(size_t needed);
  Status SyncJournal();
  // Writer thread (or Close, after it stopped): the offsets to a new snapshot, then an empty
  // journal.
  Status Compact();
  void SetBroken(const Status& status);

  const std::filesystem::path path_;
  const std::filesystem::path journal_path_;
  const Options options_;
  FileDescriptor journal_;
  RecoveryInfo recovery_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  OffsetMap offsets_;             // guarded by mu_; applied commits
  std::vector<Pending> pending_;  // guarded by mu_; in sequence order
  std::string pending_records_;   // guarded by mu_; their journal records
  uint64_t next_sequence_ = 1;    // guarded by mu_
  bool sync_requested_ = false;   // guarded by mu_; a Flush waits
  bool stop_ = false;             // guarded by mu_
  Status broken_;                 // guarded by mu_; sticky after a failed sync

  // Writer thread (and Open/Close while it does not run).
  bool recovered_ = false;
  size_t journal_size_ = 0;        // where the records end
  size_t file_size_ = 0;           // the journal file's size: records, then zeros
  uint64_t applied_sequence_ = 0;  // also guarded by mu_ while the writer runs
  uint64_t compact_at_ = 0;
  bool unsynced_ = false;
  std::chrono::steady_clock::time_point sync_due_{};

  std::mutex close_mu_;
  bool closed_ = false;  // guarded by close_mu_
  Status close_status_;  // guarded by close_mu_
  std::thread writer_;
};

}  // namespace msgsdk::native
