#pragma once

// The index of one (topic, queue): fixed-size entries, one per message in queue order, in
// files of `entries_per_file` entries named by the 20-digit queue offset of their first entry.
// An entry locates the record in the commit log and carries what filtering and timestamp
// search need, so neither reads the log:
//
//   offset  size  field
//   0       8     commit-log offset of the record
//   8       8     tag hash (TagHash)
//   16      8     stored_at, milliseconds since the Unix epoch
//   24      4     record size in bytes (kLostEntrySize: the record was lost to corruption)
//   28      4     CRC32C of bytes [0, 28)
//
// Files are memory-mapped: the writer thread stores entries with plain memory writes and
// publishes them with one atomic store per batch; readers read published entries directly.

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"
#include "backends/native/storage/file_util.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

inline constexpr size_t kIndexEntrySize = 32;
// Marks an entry whose record was found corrupt when the index was rebuilt; reads of it
// fail with kDataLoss instead of the queue having a hole.
inline constexpr uint32_t kLostEntrySize = 0xFFFFFFFFu;

struct IndexEntry {
  int64_t commit_log_offset = 0;
  uint32_t size = 0;
  uint64_t tag_hash = 0;
  int64_t stored_at_ms = 0;
};

enum class EntryState {
  kValid,
  kLost,     // a kLostEntrySize entry
  kCorrupt,  // zero or failing its CRC
};

class ConsumeQueue {
 public:
  ConsumeQueue(std::filesystem::path dir, uint32_t entries_per_file);
  ~ConsumeQueue();
  ConsumeQueue(const ConsumeQueue&) = delete;
  ConsumeQueue& operator=(const ConsumeQueue&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

  // ---- Recovery, before any other use -----------------------------------------------------
  // Maps the files, finds the end of the entries and drops entries that point at or beyond
  // `log_end`. The queue starts at its first entry whose record is at or after `log_start`
  // (retention deleted the records before it); index files wholly before that are removed,
  // except the last. Sets *damage to why entries were found missing or unusable (a file of
  // the wrong size, a gap between files, a corrupt entry), or leaves it empty. Publishes what
  // remains.
  Status Load(int64_t log_start, int64_t log_end, std::string* damage);
  // Removes every entry and file, for a rebuild from the log.
  Status Clear();
  // Makes the queue empty, its next entry `offset` (a queue retention emptied, whose index
  // was lost): removes every file.
  Status ResetEmptyAt(int64_t offset);

  // ---- Writer thread -----------------------------------------------------------------------
  // The offset the next appended entry takes.
  int64_t write_end() const { return write_end_; }
  // Stores `entry` at `offset`: appends when offset == write_end() (an empty queue starts at
  // any offset), overwrites an existing entry when below.
  Status Put(int64_t offset, const IndexEntry& entry);
  // Makes the entries up to write_end() visible to readers. Sequentially consistent, as is
  // max_offset(): long polling relies on a total order of this store and its waiter count.
  void Publish() { max_offset_.store(write_end_, std::memory_order_seq_cst); }

  // ---- Any thread --------------------------------------------------------------------------
  int64_t min_offset() const { return min_offset_.load(std::memory_order_acquire); }
  // Published end: the offset of the next message.
  int64_t max_offset() const { return max_offset_.load(std::memory_order_seq_cst); }

  // The entry at `offset`, which must be in [min_offset, write_end) for the writer or
  // [min_offset, max_offset) for others.
  EntryState Get(int64_t offset, IndexEntry* entry) const;

  // Calls visit(offset, entry, state) for the entries in [from, to) until it returns false.
  // Returns the offset after the last entry visited.
  template <typename Visit>
  int64_t Scan(int64_t from, int64_t to, Visit&& visit) const;

  // The first offset in [min_offset, max_offset) whose entry was stored at or after `ms`
  // (max_offset if none). Store times never decrease along a queue.
  int64_t LowerBoundStoredAt(int64_t ms) const;

  // The first offset in [min_offset, max_offset) whose record is at or after commit-log
  // offset `log_offset` (max_offset if none). Records of a queue are in log order. A corrupt
  // entry counts as after: a bound is never placed past an entry that might still be needed.
  int64_t LowerBoundLogOffset(int64_t log_offset) const;

  // Retention: the queue now starts at `new_min` (at most max_offset; lower than the current
  // start: nothing happens). Index files wholly before it are removed, except the last one,
  // which holds where the next entry goes. Any thread, concurrently with the writer and
  // readers (a reader still holding a removed file reads it until it lets go).
  Status TruncateFront(int64_t new_min);

  // Makes the entries written so far durable (msync of the files written since the last
  // call, fsync of the directory if files were created or removed).
  Status Sync();

  // Entry encoding, exposed for tests and recovery.
  static void EncodeEntry(const IndexEntry& entry, char* slot);
  static EntryState DecodeEntry(const char* slot, IndexEntry* entry);

 private:
  struct File {
    std::filesystem::path path;
    FileDescriptor fd;
    char* data = nullptr;
    int64_t base = 0;
    std::atomic<bool> dirty{false};
    size_t bytes = 0;
    ~File();
  };
  using FilePtr = std::shared_ptr<File>;

  Result<FilePtr> OpenIndexFile(int64_t base, bool create);
  Status MapFile(File* file);
  FilePtr FileAt(int64_t offset) const;  // nullptr if none holds it
  Status RemoveFile(const File& file);
  // Reduces the mapped file `file` to its first `slots` entries (the rest zero).
  Status ZeroTail(File* file, int64_t slots);
  int64_t FindEnd(const File& file, int64_t* first_bad, std::string* damage) const;

  const std::filesystem::path dir_;
  const uint32_t entries_per_file_;
  const size_t file_bytes_;

  mutable std::mutex files_mu_;
  std::vector<FilePtr> files_;  // guarded by files_mu_; contiguous, each entries_per_file_
  File* last_file_ = nullptr;   // writer: files_.back() (TruncateFront never removes it)

  std::atomic<int64_t> min_offset_{0};
  std::atomic<int64_t> max_offset_{0};
  int64_t write_end_ = 0;  // writer
  std::atomic<bool> dir_dirty_{false};
};

template <typename Visit>
int64_t ConsumeQueue::Scan(int64_t from, int64_t to, Visit&& visit) const {
  int64_t offset = from;
  while (offset < to) {
    const FilePtr file = FileAt(offset);
    if (file == nullptr) return offset;
    const int64_t file_end = std::min<int64_t>(to, file->base + entries_per_file_);
    for (; offset < file_end; ++offset) {
      IndexEntry entry;
      const EntryState state =
          DecodeEntry(file->data + (offset - file->base) * kIndexEntrySize, &entry);
      if (!visit(offset, entry, state)) return offset + 1;
    }
  }
  return offset;
}

inline void ConsumeQueue::EncodeEntry(const IndexEntry& entry, char* slot) {
  EncodeFixed64(slot, static_cast<uint64_t>(entry.commit_log_offset));
  EncodeFixed64(slot + 8, entry.tag_hash);
  EncodeFixed64(slot + 16, static_cast<uint64_t>(entry.stored_at_ms));
  EncodeFixed32(slot + 24, entry.size);
  EncodeFixed32(slot + 28, Crc32c(slot, 28));
}

inline EntryState ConsumeQueue::DecodeEntry(const char* slot, IndexEntry* entry) {
  entry->commit_log_offset = static_cast<int64_t>(DecodeFixed64(slot));
  entry->tag_hash = DecodeFixed64(slot + 8);
  entry->stored_at_ms = static_cast<int64_t>(DecodeFixed64(slot + 16));
  entry->size = DecodeFixed32(slot + 24);
  if (entry->size == 0 || DecodeFixed32(slot + 28) != Crc32c(slot, 28)) {
    return EntryState::kCorrupt;
  }
  return entry->size == kLostEntrySize ? EntryState::kLost : EntryState::kValid;
}

}  // namespace msgsdk::native
