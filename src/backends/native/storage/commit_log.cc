#include "backends/native/storage/commit_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>

namespace msgsdk::native {
namespace {

constexpr size_t kScanChunkBytes = 4u << 20;
// Disk space is reserved for the active segment this much at a time.
constexpr uint64_t kPreallocateBytes = 64u << 20;
constexpr size_t kOffsetNameDigits = 20;
// LimitCache drops pages at most this much at a time (about a millisecond of the kernel's
// work), so that the pages it frees are taken again by the next appends.
constexpr uint64_t kCacheDropStepBytes = 16u << 20;
// Ranges dropped from the page cache start and end at multiples of this (in the segment
// file): the largest folio the page cache uses on x86-64 and arm64 with 4 KiB pages.
constexpr int64_t kCacheDropAlign = int64_t{2} << 20;
// Zero fill: the fill thread keeps about this many bytes past the appends written with zeros
// and synced, writing and syncing them this many at a time. A sync of the fill and one of the
// appends queue behind each other on the disk, so the chunk is kept small: with 1 MiB chunks
// a send that met a fill waited about a millisecond longer (at 10,000 msgs/s of 1 KiB, every
// 92 ms, which made the end-to-end p99 1.5 to 2.2 ms); with 128 KiB it is 1.0 to 1.2 ms.
constexpr uint64_t kZeroFillAhead = 8u << 20;
constexpr uint64_t kZeroFillChunk = 128u << 10;
// After the appends outran it (or a write or sync of it failed), the fill thread waits this
// long before it starts again past them: at such rates each zero would be written twice.
constexpr auto kZeroFillBackoff = std::chrono::seconds(1);

// The end of the last non-zero byte of the file in [from, to), or `from` if all are zeros.
Result<int64_t> NonZeroEnd(int fd, const std::filesystem::path& path, int64_t from, int64_t to) {
  std::string buffer;
  int64_t end = to;
  while (end > from) {
    const int64_t begin = std::max<int64_t>(from, end - static_cast<int64_t>(kScanChunkBytes));
    buffer.resize(static_cast<size_t>(end - begin));
    MSGSDK_ASSIGN_OR_RETURN(size_t got, PreadAll(fd, buffer.data(), buffer.size(), begin, path));
    const size_t last = std::string_view(buffer.data(), got).find_last_not_of('\0');
    if (last != std::string_view::npos) return begin + static_cast<int64_t>(last) + 1;
    end = begin;
  }
  return from;
}

}  // namespace

// The thread of LimitCache. The writer calls Appended after each write; once per step it
// wakes the thread, which drops what lies more than `window` behind the end.
class CommitLog::CacheLimiter {
 public:
  CacheLimiter(const CommitLog& log, uint64_t window)
      : log_(log),
        window_(static_cast<int64_t>(window)),
        step_(
            static_cast<int64_t>(std::min(kCacheDropStepBytes, std::max<uint64_t>(window / 4, 1)))),
        next_wake_(0),  // the first append: what a reopened log holds beyond the window goes
        dropped_(log.start_offset()),
        thread_([this] { Run(); }) {}

  ~CacheLimiter() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Writer thread.
  void Appended(int64_t end) {
    if (end < next_wake_) return;
    next_wake_ = end + step_;
    {
      std::lock_guard lock(mu_);
      end_ = end;
    }
    wake_.notify_one();
  }

 private:
  void Run() {
    pthread_setname_np(pthread_self(), "msgsdk-store-c");
    std::unique_lock lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || end_ - window_ > dropped_; });
      if (stop_) return;
      const int64_t to = end_ - window_;
      lock.unlock();
      log_.DropCache(dropped_, to);
      dropped_ = to;
      lock.lock();
    }
  }

  const CommitLog& log_;
  const int64_t window_;
  const int64_t step_;
  int64_t next_wake_;  // writer thread
  int64_t dropped_;    // this thread: pages before it were dropped
  std::mutex mu_;
  std::condition_variable wake_;
  int64_t end_ = 0;    // guarded by mu_: the end of the log at the last wake
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

CommitLog::Segment::~Segment() {
  if (const char* mapped = map.load(std::memory_order_acquire); mapped != nullptr) {
    ::munmap(const_cast<char*>(mapped), map_length);
  }
}

std::string OffsetFileName(int64_t offset) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020" PRId64, offset);
  return name;
}

std::optional<int64_t> ParseOffsetFileName(std::string_view name) {
  if (name.size() != kOffsetNameDigits) return std::nullopt;
  uint64_t value = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return static_cast<int64_t>(value);
}

CommitLog::CommitLog(std::filesystem::path dir, uint64_t segment_bytes)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes) {}

Result<std::unique_ptr<CommitLog>> CommitLog::Open(std::filesystem::path dir,
                                                   uint64_t segment_bytes, int64_t log_start,
                                                   RecoveryInfo* info) {
  std::unique_ptr<CommitLog> log(new CommitLog(std::move(dir), segment_bytes));
  const std::filesystem::path& log_dir = log->dir_;

  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(log_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const auto base = ParseOffsetFileName(it->path().filename().native());
    if (base && it->is_regular_file(ec)) found.emplace_back(*base, it->path());
  }
  if (ec) return ErrnoError(ec.value(), "cannot list commit log directory", log_dir);
  std::sort(found.begin(), found.end());

  // Finish a deletion that retention recorded: whole segments, each followed by one that
  // starts at or before the log start (a segment holding the log start is never one of them).
  size_t leftover = 0;
  while (leftover + 1 < found.size() && found[leftover + 1].first <= log_start) ++leftover;
  if (leftover > 0) {
    for (size_t i = 0; i < leftover; ++i) {
      if (::unlink(found[i].second.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, "cannot remove commit log segment (before the log start)",
                          found[i].second);
      }
    }
    MSGSDK_RETURN_IF_ERROR(SyncDirectory(log_dir));
    found.erase(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(leftover));
    if (info != nullptr) info->leftover_segments_removed = static_cast<int32_t>(leftover);
  }

  std::vector<SegmentPtr> segments;
  std::vector<int64_t> sizes;
  for (auto& [base, path] : found) {
    MSGSDK_ASSIGN_OR_RETURN(FileDescriptor fd, OpenFile(path, O_RDWR));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoError(errno, "cannot stat", path);
    if (!sizes.empty()) {
      const int64_t prev_end = segments.back()->base + sizes.back();
      if (prev_end > base) {
        return DataLossError("commit log segment " + segments.back()->path.native() + " (" +
                             std::to_string(sizes.back()) + " bytes) overlaps the next segment " +
                             path.native());
      }
    }
    auto segment = std::make_shared<Segment>();
    segment->path = std::move(path);
    segment->fd = std::move(fd);
    segment->base = base;
    segment->sealed_size.store(static_cast<int64_t>(st.st_size), std::memory_order_relaxed);
    segments.push_back(std::move(segment));
    sizes.push_back(static_cast<int64_t>(st.st_size));
  }

  if (segments.empty()) {
    // Offsets are never reused: an empty log whose records retention deleted goes on from
    // where they ended.
    const int64_t base = std::max<int64_t>(0, log_start);
    const std::filesystem::path path = log_dir / OffsetFileName(base);
    MSGSDK_ASSIGN_OR_RETURN(FileDescriptor fd, OpenFile(path, O_RDWR | O_CREAT | O_EXCL));
    MSGSDK_RETURN_IF_ERROR(SyncDirectory(log_dir));
    auto segment = std::make_shared<Segment>();
    segment->path = path;
    segment->fd = std::move(fd);
    segment->base = base;
    segments.push_back(std::move(segment));
    sizes.push_back(0);
  }

  segments.back()->sealed_size.store(-1, std::memory_order_relaxed);
  log->PublishSegments(segments);
  const SegmentPtr& last = segments.back();
  const int64_t last_size = sizes.back();

  // Validate the last segment record by record.
  int64_t valid = 0;
  {
    Scanner scanner(*log, last->base, last->base + last_size);
    for (;;) {
      MSGSDK_ASSIGN_OR_RETURN(Scanner::Item item, scanner.Next());
      if (item.kind == Scanner::Kind::kRecord) {
        valid = item.offset - last->base + static_cast<int64_t>(item.record.size());
        continue;
      }
      if (item.kind == Scanner::Kind::kCorrupt && info != nullptr) {
        info->truncation_reason = std::string(RecordCheckName(item.check)) + " at position " +
                                  std::to_string(item.offset - last->base) + " of " +
                                  last->path.native();
      }
      break;
    }
  }
  if (valid < last_size) {
    // Zeros after the last record are what the zero fill left when the process stopped;
    // anything else there is a record the crash tore (never acknowledged in group commit).
    MSGSDK_ASSIGN_OR_RETURN(const int64_t garbage_end,
                            NonZeroEnd(last->fd.get(), last->path, valid, last_size));
    if (::ftruncate(last->fd.get(), valid) != 0) {
      return ErrnoError(errno, "cannot truncate the torn tail of", last->path);
    }
    MSGSDK_RETURN_IF_ERROR(SyncFile(last->fd.get(), last->path));
    if (info != nullptr) {
      info->truncated_bytes = garbage_end - valid;
      if (info->truncated_bytes == 0) {
        info->truncation_reason.clear();
      } else if (info->truncation_reason.empty()) {
        info->truncation_reason =
            "torn record at position " + std::to_string(valid) + " of " + last->path.native();
      }
    }
  }
  log->active_ = last;
  log->active_size_ = static_cast<uint64_t>(valid);
  log->preallocated_ = static_cast<uint64_t>(valid);
  log->end_offset_.store(last->base + valid, std::memory_order_release);
  return log;
}

int64_t CommitLog::start_offset() const {
  std::lock_guard lock(segments_mu_);
  return segments_->front()->base;
}

void CommitLog::PublishSegments(std::vector<SegmentPtr> segments) {
  auto snapshot = std::make_shared<const std::vector<SegmentPtr>>(std::move(segments));
  std::lock_guard lock(segments_mu_);
  segments_ = std::move(snapshot);
}

std::vector<CommitLog::SegmentPtr> CommitLog::Segments() const {
  std::lock_guard lock(segments_mu_);
  return *segments_;
}

int64_t CommitLog::SizeBytes() const {
  // The end first: a segment sealed after it was read counts with its sealed size, which is
  // never less than what the end covered of it.
  const int64_t end = end_offset();
  int64_t bytes = 0;
  for (const SegmentPtr& segment : Segments()) {
    const int64_t sealed = segment->sealed_size.load(std::memory_order_acquire);
    bytes += sealed >= 0 ? sealed : std::max<int64_t>(0, end - segment->base);
  }
  return bytes;
}

std::vector<CommitLog::SegmentPtr> CommitLog::DropSegmentsBefore(int64_t new_start) {
  std::lock_guard lock(segments_mu_);
  const std::vector<SegmentPtr>& current = *segments_;
  size_t count = 0;
  // The last segment is the active one.
  while (count + 1 < current.size() && current[count + 1]->base <= new_start) ++count;
  if (count == 0) return {};
  std::vector<SegmentPtr> dropped(current.begin(),
                                  current.begin() + static_cast<std::ptrdiff_t>(count));
  segments_ = std::make_shared<const std::vector<SegmentPtr>>(
      current.begin() + static_cast<std::ptrdiff_t>(count), current.end());
  return dropped;
}

Status CommitLog::RemoveSegmentFiles(const std::vector<SegmentPtr>& segments) {
  if (segments.empty()) return OkStatus();
  Status status;
  for (const SegmentPtr& segment : segments) {
    if (::unlink(segment->path.c_str()) != 0 && errno != ENOENT && status.ok()) {
      status = ErrnoError(errno, "cannot remove commit log segment", segment->path);
    }
  }
  Status synced = SyncDirectory(dir_);
  return status.ok() ? synced : status;
}

CommitLog::SegmentPtr CommitLog::Active() const {
  std::lock_guard lock(segments_mu_);
  return segments_->back();
}

Status CommitLog::CheckWritable() const {
  if (!is_broken_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(broken_mu_);
  return broken_;
}

void CommitLog::SetBroken(const Status& status) {
  std::lock_guard lock(broken_mu_);
  if (broken_.ok()) {
    broken_ = Status(status.code(), status.message() +
                                        "; the commit log refuses further writes until the "
                                        "store is reopened");
  }
  is_broken_.store(true, std::memory_order_release);
}

void CommitLog::Preallocate(uint64_t needed) {
  if (preallocation_failed_) return;
  uint64_t target = std::min(preallocated_ + kPreallocateBytes, segment_bytes_);
  target = std::max(target, needed);
  // FALLOC_FL_KEEP_SIZE: the file's size stays the size of the records in it, which is what
  // recovery and readers go by.
  if (::fallocate(active_->fd.get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(preallocated_),
                  static_cast<off_t>(target - preallocated_)) != 0) {
    // Only an optimisation (a file system without fallocate, or a full disk, which the
    // write itself will report).
    preallocation_failed_ = true;
    return;
  }
  preallocated_ = target;
}

CommitLog::~CommitLog() { StopZeroFill(); }

Status CommitLog::TruncateActive(uint64_t size) {
  ++fill_generation_;
  zeros_written_ = size;
  zeros_synced_.store(size, std::memory_order_release);
  fill_requested_at_ = size;
  // Also frees the blocks reserved past `size`.
  if (::ftruncate(active_->fd.get(), static_cast<off_t>(size)) != 0) {
    return ErrnoError(errno, "cannot truncate", active_->path);
  }
  preallocated_ = size;
  return OkStatus();
}

void CommitLog::ReleasePreallocation() {
  StopZeroFill();
  if (active_ == nullptr) return;
  std::lock_guard lock(fill_mu_);
  TruncateActive(active_size_).IgnoreError();
}

void CommitLog::StartZeroFill() {
  if (zero_fill_) return;
  zero_fill_ = true;
  {
    std::lock_guard lock(fill_mu_);
    zeros_written_ = active_size_;
    zeros_synced_.store(active_size_, std::memory_order_release);
    fill_requested_at_ = active_size_;
  }
  fill_thread_ = std::thread([this] { ZeroFillLoop(); });
}

void CommitLog::StopZeroFill() {
  {
    std::lock_guard lock(fill_mu_);
    fill_stop_ = true;
  }
  fill_cv_.notify_all();
  if (fill_thread_.joinable()) fill_thread_.join();
}

void CommitLog::RequestZeroFill() {
  const uint64_t synced = zeros_synced_.load(std::memory_order_acquire);
  // Once per move of the zeros, and only when a chunk of them has been used.
  if (synced == fill_requested_at_ || synced >= active_size_ + kZeroFillAhead - kZeroFillChunk) {
    return;
  }
  fill_requested_at_ = synced;
  // Under the lock, so that the fill thread either sees the new end or is waiting.
  { std::lock_guard lock(fill_mu_); }
  fill_cv_.notify_one();
}

void CommitLog::ZeroFillLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-log-fill");
  const std::string zeros(kZeroFillChunk, '\0');
  // The fill writes and syncs through its own open file: a write-back error its sync sees
  // is then still reported to the writer's descriptor (each open file reports each error).
  SegmentPtr segment;
  FileDescriptor fill_fd;
  // Whether the appends being past the zeros is news (a new segment, or after a pause)
  // rather than the appends outrunning the fill.
  bool resumed = true;
  uint64_t seen_generation = 0;
  std::unique_lock lock(fill_mu_);
  while (!fill_stop_) {
    const SegmentPtr active = active_;
    const uint64_t generation = fill_generation_;
    if (generation != seen_generation) {
      seen_generation = generation;
      resumed = true;
    }
    const auto appended = static_cast<uint64_t>(end_offset() - active->base);
    auto back_off = [&] {
      fill_cv_.wait_for(lock, kZeroFillBackoff,
                        [&] { return fill_stop_ || generation != fill_generation_; });
      resumed = true;
    };
    if (appended > zeros_written_) {
      const bool outran = !resumed;
      zeros_written_ = appended;
      if (outran) {
        back_off();
        continue;
      }
    }
    resumed = false;
    const uint64_t target = std::min(segment_bytes_, appended + kZeroFillAhead);
    if (zeros_written_ >= target ||
        (target - zeros_written_ < kZeroFillChunk && target < segment_bytes_)) {
      fill_cv_.wait(lock);
      continue;
    }
    if (segment != active) {
      Result<FileDescriptor> opened = OpenFile(active->path, O_RDWR);
      if (!opened.ok()) {
        back_off();
        continue;
      }
      segment = active;
      fill_fd = std::move(opened).value();
    }
    const uint64_t start = zeros_written_;
    const uint64_t end = std::min(target, start + kZeroFillChunk);
    // Whatever part of the write happened, the writer now writes there under the lock.
    zeros_written_ = end;
    if (!PwriteAll(fill_fd.get(), zeros.data(), end - start, static_cast<int64_t>(start),
                   segment->path)
             .ok()) {
      // A full disk, say: the appends will report it.
      back_off();
      continue;
    }
    lock.unlock();
    const bool synced = ::fdatasync(fill_fd.get()) == 0;
    lock.lock();
    if (!synced) {
      back_off();
      continue;
    }
    if (generation == fill_generation_) zeros_synced_.store(end, std::memory_order_release);
  }
}

Status CommitLog::Append(const char* data, size_t size) {
  MSGSDK_RETURN_IF_ERROR(CheckWritable());
  const uint64_t end = active_size_ + size;
  // Within the synced zeros the fill thread never writes; past them it may.
  std::unique_lock<std::mutex> fill_lock;
  if (end > zeros_synced_.load(std::memory_order_acquire)) {
    fill_lock = std::unique_lock(fill_mu_);
    if (end > preallocated_) Preallocate(end);
  }
  const auto position = static_cast<int64_t>(active_size_);
  Status status = PwriteAll(active_->fd.get(), data, size, position, active_->path);
  if (!status.ok()) {
    // A partial write must not stay: the next batch would be written after garbage.
    if (!fill_lock.owns_lock()) fill_lock = std::unique_lock(fill_mu_);
    Status undone = TruncateActive(active_size_);
    if (!undone.ok()) SetBroken(undone);
    return status;
  }
  active_size_ = end;
  const int64_t log_end = active_->base + static_cast<int64_t>(active_size_);
  end_offset_.store(log_end, std::memory_order_release);
  if (cache_limiter_ != nullptr) cache_limiter_->Appended(log_end);
  if (zero_fill_) {
    if (fill_lock.owns_lock()) {
      fill_lock.unlock();
      fill_cv_.notify_one();
    } else {
      RequestZeroFill();
    }
  }
  return OkStatus();
}

Status CommitLog::Roll() {
  MSGSDK_RETURN_IF_ERROR(CheckWritable());
  std::unique_lock fill_lock(fill_mu_);
  // The sealed segment must be durable, cut back to its records, before its successor
  // exists: recovery validates only the last segment and takes the others' sizes as they are.
  MSGSDK_RETURN_IF_ERROR(TruncateActive(active_size_));
  Status status = SyncFile(active_->fd.get(), active_->path);
  if (!status.ok()) {
    SetBroken(status);
    return CheckWritable();
  }
  active_->sealed_size.store(static_cast<int64_t>(active_size_), std::memory_order_release);
  const int64_t base = end_offset();
  auto segment = std::make_shared<Segment>();
  segment->path = dir_ / OffsetFileName(base);
  segment->base = base;
  MSGSDK_ASSIGN_OR_RETURN(segment->fd, OpenFile(segment->path, O_RDWR | O_CREAT | O_EXCL));
  status = SyncDirectory(dir_);
  if (!status.ok()) {
    ::unlink(segment->path.c_str());
    return status;
  }
  {
    std::lock_guard lock(segments_mu_);
    auto segments = std::make_shared<std::vector<SegmentPtr>>(*segments_);
    segments->push_back(segment);
    segments_ = std::move(segments);
  }
  active_ = std::move(segment);
  active_size_ = 0;
  preallocated_ = 0;
  preallocation_failed_ = false;
  ++fill_generation_;
  zeros_written_ = 0;
  zeros_synced_.store(0, std::memory_order_release);
  fill_requested_at_ = 0;
  fill_lock.unlock();
  fill_cv_.notify_one();
  return OkStatus();
}

Status CommitLog::Sync() {
  MSGSDK_RETURN_IF_ERROR(CheckWritable());
  // Segments before the active one were synced when they were sealed.
  const SegmentPtr active = Active();
  Status status = SyncFile(active->fd.get(), active->path);
  if (!status.ok()) {
    SetBroken(status);
    return CheckWritable();
  }
  return OkStatus();
}

void CommitLog::LimitCache(uint64_t bytes) {
  if (bytes == 0 || cache_limiter_ != nullptr) return;
  cache_limiter_ = std::make_unique<CacheLimiter>(*this, bytes);
}

void CommitLog::DropCache(int64_t from, int64_t to) const {
  const int64_t log_end = end_offset();
  for (const SegmentPtr& segment : Segments()) {
    const int64_t sealed = segment->sealed_size.load(std::memory_order_acquire);
    const int64_t segment_end = sealed >= 0 ? segment->base + sealed : log_end;
    if (from >= segment_end || to <= segment->base) continue;
    // Whole aligned blocks, since the kernel drops a large folio only when the range holds
    // all of it; a sealed segment wholly in the range goes to its end (length 0: to the end
    // of the file).
    const int64_t first =
        (std::max(from, segment->base) - segment->base) / kCacheDropAlign * kCacheDropAlign;
    const bool to_end = sealed >= 0 && to >= segment_end;
    const int64_t end = to_end ? 0 : (to - segment->base) / kCacheDropAlign * kCacheDropAlign;
    if (!to_end && end <= first) continue;
    // Pages still dirty (periodic mode) are written back first: the kernel drops only clean
    // ones. Through a descriptor of its own: waiting for writeback through the log's would
    // take a writeback error away from the log's next fdatasync, which must report it.
    FileDescriptor fd(::open(segment->path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) continue;  // deleted by retention meanwhile
    ::sync_file_range(
        fd.get(), first, to_end ? 0 : end - first,
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    // A mapped page is not dropped: unmap it from the readers' mapping first (a reader that
    // touches it again faults it back in, from the page cache or the disk).
    const char* const mapped = segment->map.load(std::memory_order_acquire);
    if (mapped != nullptr && static_cast<size_t>(first) < segment->map_length) {
      const size_t map_end =
          to_end ? segment->map_length : std::min(static_cast<size_t>(end), segment->map_length);
      ::madvise(const_cast<char*>(mapped) + first, map_end - static_cast<size_t>(first),
                MADV_DONTNEED);
    }
    // Best effort: a failure leaves the pages to the kernel.
    ::posix_fadvise(fd.get(), first, to_end ? 0 : end - first, POSIX_FADV_DONTNEED);
  }
}

std::optional<CommitLog::Location> CommitLog::Locate(int64_t offset) const {
  std::shared_ptr<const std::vector<SegmentPtr>> segments;
  {
    std::lock_guard lock(segments_mu_);
    segments = segments_;
  }
  auto it = std::upper_bound(segments->begin(), segments->end(), offset,
                             [](int64_t o, const SegmentPtr& s) { return o < s->base; });
  if (it == segments->begin()) return std::nullopt;
  Location location;
  location.limit = it == segments->end() ? std::numeric_limits<int64_t>::max() : (*it)->base;
  location.segment = *(it - 1);
  return location;
}

Status CommitLog::ReadAt(int64_t offset, char* out, size_t size) const {
  const auto location = Locate(offset);
  if (!location || offset + static_cast<int64_t>(size) > location->limit) {
    return DataLossError("commit log offset " + std::to_string(offset) + " (" +
                         std::to_string(size) + " bytes) is not within one segment of " +
                         dir_.native());
  }
  const Segment& segment = *location->segment;
  const int64_t position = offset - segment.base;
  MSGSDK_ASSIGN_OR_RETURN(size_t got,
                          PreadAll(segment.fd.get(), out, size, position, segment.path));
  if (got != size) {
    return DataLossError("commit log segment " + segment.path.native() + " ends before position " +
                         std::to_string(position + static_cast<int64_t>(size)));
  }
  return OkStatus();
}

Result<const char*> CommitLog::MappedRecord(const Location& location, int64_t offset,
                                            size_t size) const {
  const Segment& segment = *location.segment;
  // The log's end first: Roll stores sealed_size before any later append moves the end, so
  // if sealed_size still reads -1 here, the end read before it is within this segment.
  const int64_t log_end = end_offset();
  const int64_t sealed = segment.sealed_size.load(std::memory_order_acquire);
  const int64_t readable_end = sealed >= 0 ? segment.base + sealed : log_end;
  if (offset < segment.base || offset + static_cast<int64_t>(size) > readable_end) {
    return DataLossError("commit log segment " + segment.path.native() + " position " +
                         std::to_string(offset - segment.base) + ": " + std::to_string(size) +
                         " bytes there are past the segment's end");
  }
  std::call_once(segment.map_once, [&] {
    // Map the size the segment may grow to; a segment holding one oversized record may be
    // longer, and is read with ReadAt past the mapping.
    struct stat st;
    if (::fstat(segment.fd.get(), &st) != 0) return;
    const size_t length =
        std::max(static_cast<size_t>(segment_bytes_), static_cast<size_t>(st.st_size));
    void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, segment.fd.get(), 0);
    if (map == MAP_FAILED) return;
    segment.map_length = length;
    segment.map.store(static_cast<const char*>(map), std::memory_order_release);
  });
  const auto position = static_cast<size_t>(offset - segment.base);
  const char* const mapped = segment.map.load(std::memory_order_acquire);
  if (mapped == nullptr || position + size > segment.map_length) {
    return static_cast<const char*>(nullptr);
  }
  return mapped + position;
}

// ---- Scanner ---------------------------------------------------------------------------------

CommitLog::Scanner::Scanner(const CommitLog& log, int64_t from, int64_t to)
    : segments_(log.Segments()), to_(to) {
  // Start in the segment holding `from`.
  while (segment_index_ + 1 < segments_.size() && segments_[segment_index_ + 1]->base <= from) {
    ++segment_index_;
  }
  if (!segments_.empty()) pos_ = std::max<int64_t>(0, from - segments_[segment_index_]->base);
}

Status CommitLog::Scanner::Fill(size_t need) {
  // Keep the bytes from pos_ on, then read more after them.
  const auto keep_from = static_cast<size_t>(pos_ - buffer_pos_);
  const size_t kept = buffer_len_ - std::min(buffer_len_, keep_from);
  if (kept > 0 && keep_from > 0) std::memmove(buffer_.data(), buffer_.data() + keep_from, kept);
  buffer_pos_ = pos_;
  buffer_len_ = kept;
  const size_t want = std::max(need, kScanChunkBytes);
  if (buffer_.size() < want) buffer_.resize(want);
  const int64_t file_pos = buffer_pos_ + static_cast<int64_t>(buffer_len_);
  const size_t to_read = static_cast<size_t>(
      std::min<int64_t>(static_cast<int64_t>(buffer_.size() - buffer_len_), seg_end_ - file_pos));
  if (to_read == 0) return OkStatus();
  const Segment& segment = *segments_[segment_index_];
  MSGSDK_ASSIGN_OR_RETURN(size_t got, PreadAll(segment.fd.get(), buffer_.data() + buffer_len_,
                                               to_read, file_pos, segment.path));
  buffer_len_ += got;
  if (got < to_read) seg_end_ = buffer_pos_ + static_cast<int64_t>(buffer_len_);
  return OkStatus();
}

Result<CommitLog::Scanner::Item> CommitLog::Scanner::Next() {
  Item item;
  for (;;) {
    if (segment_index_ >= segments_.size()) return item;  // kEnd
    const Segment& segment = *segments_[segment_index_];
    if (segment.base >= to_) return item;
    if (!started_) {
      struct stat st;
      if (::fstat(segment.fd.get(), &st) != 0)
        return ErrnoError(errno, "cannot stat", segment.path);
      seg_end_ = std::min<int64_t>(static_cast<int64_t>(st.st_size), to_ - segment.base);
      buffer_pos_ = pos_;
      buffer_len_ = 0;
      started_ = true;
    }
    if (pos_ >= seg_end_) {
      ++segment_index_;
      pos_ = 0;
      started_ = false;
      continue;
    }
    item.offset = segment.base + pos_;
    item.segment = &segment;
    size_t available = buffer_len_ - static_cast<size_t>(pos_ - buffer_pos_);
    if (available < kRecordHeaderSize) {
      MSGSDK_RETURN_IF_ERROR(Fill(kRecordHeaderSize));
      available = buffer_len_;
    }
    const char* data = buffer_.data() + (pos_ - buffer_pos_);
    uint32_t size = 0;
    RecordCheck check = CheckRecord(data, available, &size);
    if (check == RecordCheck::kTruncated && available >= kRecordHeaderSize &&
        pos_ + static_cast<int64_t>(size) <= seg_end_) {
      MSGSDK_RETURN_IF_ERROR(Fill(size));
      available = buffer_len_;
      data = buffer_.data();
      check = CheckRecord(data, available, &size);
    }
    if (check != RecordCheck::kOk) {
      item.kind = Kind::kCorrupt;
      item.check = check;
      // Nothing after a bad record of this segment can be located reliably.
      ++segment_index_;
      pos_ = 0;
      started_ = false;
      return item;
    }
    item.kind = Kind::kRecord;
    item.record = std::string_view(data, size);
    pos_ += size;
    return item;
  }
}

}  // namespace msgsdk::native
