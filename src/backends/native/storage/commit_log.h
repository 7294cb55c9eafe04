#pragma once

// The commit log: every message of every topic, appended in one sequence of records and
// split into segment files named by the 20-digit global byte offset of their first record.
// One writer thread appends; any thread reads records by global offset.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/native/storage/file_util.h"
#include "backends/native/storage/message_codec.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

class CommitLog {
 public:
  struct Segment {
    std::filesystem::path path;
    FileDescriptor fd;
    int64_t base = 0;  // global offset of the segment's first byte
    // Its size once sealed; -1 while it is the active segment.
    mutable std::atomic<int64_t> sealed_size{-1};

    // Read-only mapping for readers, made on first use (nullptr if that failed); map_length
    // is set before map is published.
    mutable std::once_flag map_once;
    mutable std::atomic<const char*> map{nullptr};
    mutable size_t map_length = 0;

    Segment() = default;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    ~Segment();
  };
  using SegmentPtr = std::shared_ptr<const Segment>;

  // What Open found and repaired.
  struct RecoveryInfo {
    // Bytes cut off the end of the last segment (a torn or corrupt tail), up to its last
    // non-zero byte, and why. Zeros after the last record (see StartZeroFill) are cut off
    // without being counted.
    int64_t truncated_bytes = 0;
    std::string truncation_reason;
    // Segments before `log_start` that a deletion interrupted by a crash had left, removed.
    int32_t leftover_segments_removed = 0;
  };

  // Opens (or creates) the log in `dir`. Validates the records of the last segment one by
  // one (size, magic, CRC) and truncates it before the first bad one (or the zeros that
  // follow the last record when the process stopped with zero fill on); earlier segments were
  // synced before the next one was started, so only the last one can have a torn tail.
  // Segments that end at or before `log_start` (retention recorded their deletion, then the
  // process stopped before it unlinked them all) are removed; a log with no segment left
  // starts empty at `log_start`. Leading segments may be missing: the log starts at the
  // first one found.
  static Result<std::unique_ptr<CommitLog>> Open(std::filesystem::path dir, uint64_t segment_bytes,
                                                 int64_t log_start, RecoveryInfo* info);

  ~CommitLog();
  CommitLog(const CommitLog&) = delete;
  CommitLog& operator=(const CommitLog&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  // Global offset of the first byte still stored (the first segment's base). Any thread.
  int64_t start_offset() const;
  // Global offset where the next record goes. Any thread.
  int64_t end_offset() const { return end_offset_.load(std::memory_order_acquire); }

  // ---- Writer thread only ------------------------------------------------------------------
  // Bytes in the active segment.
  uint64_t active_size() const { return active_size_; }
  uint64_t segment_bytes() const { return segment_bytes_; }
  // Writes whole records at end_offset(). On failure nothing of `data` remains in the log.
  Status Append(const char* data, size_t size);
  // Syncs and seals the active segment and starts a new one at end_offset().
  Status Roll();
  // Stops the zero fill and gives back the disk space reserved past the end of the active
  // segment, so that its file ends with its last record (on close).
  void ReleasePreallocation();

  // Keeps about `bytes` of the log's tail in the page cache (0: leaves it to the kernel).
  // Each time the log has grown by a step past them, a background thread drops the pages
  // before the last `bytes` (unmapping them from readers' mappings, and writing back those
  // still dirty first). New appends then reuse memory the kernel has just freed instead of
  // taking pages it has not touched for a while, which in a virtual machine that hands free
  // memory back to its host costs about 10 µs per 4 KiB page (the host must supply the page
  // again), ten times the copy itself. Readers further behind the end read from the disk.
  // Durability is unaffected: dropping clean pages writes nothing, and writeback started
  // early only makes data durable sooner (fdatasync still reports any writeback error).
  // Call at most once, before the first Append.
  void LimitCache(uint64_t bytes);

  // Starts a thread that keeps the active segment's next few MiB written with zeros and
  // synced ahead of the appends (what group commit wants): an append over them changes
  // neither the file's size nor its block map, so the fdatasync that makes it durable has
  // no metadata to commit to the file system's journal, only the data to write. If the
  // appends outrun it, they extend the file as without it and it pauses. While it runs,
  // the active segment's file is longer than its records; Roll and ReleasePreallocation cut
  // it back, and after a crash Open does. Writer thread, once.
  void StartZeroFill();

  // ---- Any thread --------------------------------------------------------------------------
  // fdatasync of everything appended so far. A failed sync makes the log refuse all further
  // writes and syncs: after a failed fdatasync the kernel may have dropped the dirty pages,
  // so nothing written since the last good sync can be trusted to reach the disk.
  Status Sync();

  // The segment holding `offset` and where the next segment starts (INT64_MAX for the last).
  struct Location {
    SegmentPtr segment;
    int64_t limit = 0;
  };
  std::optional<Location> Locate(int64_t offset) const;

  // Reads exactly `size` bytes at global `offset`, which must lie within one segment.
  Status ReadAt(int64_t offset, char* out, size_t size) const;

  // The `size` bytes at global `offset` (in location.segment) read in place from the page
  // cache through a mapping of the segment; nullptr if the segment cannot be mapped (then
  // use ReadAt). kDataLoss if the bytes are not all in the segment: a mapping must never
  // be read past the end of its file.
  Result<const char*> MappedRecord(const Location& location, int64_t offset, size_t size) const;

  std::vector<SegmentPtr> Segments() const;

  // Drops the page cache of global offsets [from, to), in whole 2 MiB blocks of each segment
  // file (a sealed segment the range reaches the end of: to its end); see LimitCache.
  void DropCache(int64_t from, int64_t to) const;

  // Bytes of all segments: the sealed ones' sizes plus what the active one holds.
  int64_t SizeBytes() const;

  // Retention: takes the sealed segments that end at or before `new_start` (a segment base)
  // out of the log, so that readers no longer find them, and returns them for the caller to
  // unlink (a reader still holding one keeps reading it until it lets go). Never the active
  // segment.
  std::vector<SegmentPtr> DropSegmentsBefore(int64_t new_start);
  // Unlinks dropped segments' files and syncs the directory.
  Status RemoveSegmentFiles(const std::vector<SegmentPtr>& segments);

  // Sequential reading of records for recovery, across segments, in large chunks.
  class Scanner {
   public:
    enum class Kind {
      kRecord,   // `record` holds a record whose CRC matched
      kCorrupt,  // no valid record at `offset` (why: `check`); Next() goes on with the next
                 // segment, as the sizes after a bad header cannot be trusted
      kEnd,
    };
    struct Item {
      Kind kind = Kind::kEnd;
      int64_t offset = 0;
      std::string_view record;
      RecordCheck check = RecordCheck::kOk;
      const Segment* segment = nullptr;
    };

    // Records from global offset `from` (a record boundary) up to `to`.
    Scanner(const CommitLog& log, int64_t from, int64_t to);
    Result<Item> Next();

   private:
    Status Fill(size_t need);

    std::vector<SegmentPtr> segments_;
    size_t segment_index_ = 0;
    int64_t to_ = 0;
    int64_t pos_ = 0;      // position within the current segment
    int64_t seg_end_ = 0;  // readable end within the current segment
    std::string buffer_;
    int64_t buffer_pos_ = 0;  // segment position of buffer_[0]
    size_t buffer_len_ = 0;
    bool started_ = false;
  };

 private:
  CommitLog(std::filesystem::path dir, uint64_t segment_bytes);
  Status CheckWritable() const;
  void SetBroken(const Status& status);
  void PublishSegments(std::vector<SegmentPtr> segments);
  SegmentPtr Active() const;
  void Preallocate(uint64_t needed);
  // Cuts the active segment's file back to its records. Writer thread, with fill_mu_ held.
  Status TruncateActive(uint64_t size);
  void ZeroFillLoop();
  void StopZeroFill();
  // Wakes the zero fill thread if the zeros ahead of the appends run low. Writer thread.
  void RequestZeroFill();

  class CacheLimiter;

  const std::filesystem::path dir_;
  const uint64_t segment_bytes_;

  // Changes of the list (Roll, DropSegmentsBefore) are read-modify-write under this lock,
  // so that one never publishes a list missing the other's change.
  mutable std::mutex segments_mu_;
  std::shared_ptr<const std::vector<SegmentPtr>> segments_;  // guarded by segments_mu_

  // Writer thread.
  SegmentPtr active_;
  uint64_t active_size_ = 0;
  // Bytes of the active segment reserved with fallocate; writes within them skip the file
  // system's block allocation, which otherwise costs more than the copy itself.
  uint64_t preallocated_ = 0;
  bool preallocation_failed_ = false;
  std::atomic<int64_t> end_offset_{0};
  std::unique_ptr<CacheLimiter> cache_limiter_;  // see LimitCache

  // Zero fill (StartZeroFill). fill_mu_ keeps the fill thread's writes off the bytes the
  // writer writes: appends that end within zeros_synced_ take no lock (the fill thread only
  // writes at or past zeros_written_), the others write under it. Roll, a failed append's
  // undo and ReleasePreallocation cut the file back under it.
  std::mutex fill_mu_;
  std::condition_variable fill_cv_;
  std::thread fill_thread_;
  bool fill_stop_ = false;        // guarded by fill_mu_
  uint64_t fill_generation_ = 0;  // guarded by fill_mu_; changes when the active segment is
                                  // replaced or cut back
  uint64_t zeros_written_ = 0;    // guarded by fill_mu_; active segment bytes [0, this) hold
                                  // records or zeros
  // Active segment bytes [0, this) hold records or zeros that are synced (file size and
  // blocks included). Written under fill_mu_; the writer reads it without.
  std::atomic<uint64_t> zeros_synced_{0};
  bool zero_fill_ = false;          // writer thread: StartZeroFill was called
  uint64_t fill_requested_at_ = 0;  // writer thread: zeros_synced_ when it last woke the fill

  mutable std::mutex broken_mu_;
  Status broken_;  // guarded by broken_mu_; sticky
  std::atomic<bool> is_broken_{false};
};

// "00000000000000001234": the file name of the segment or index file starting at `offset`.
std::string OffsetFileName(int64_t offset);
// The offset a file name encodes, or nullopt if it is not 20 decimal digits.
std::optional<int64_t> ParseOffsetFileName(std::string_view name);

}  // namespace msgsdk::native
