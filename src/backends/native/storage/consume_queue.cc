#include "backends/native/storage/consume_queue.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "backends/native/storage/commit_log.h"

namespace msgsdk::native {
namespace {

// Entries before the end of the last file whose CRC is checked when a queue is loaded. Older
// entries were made durable by a checkpoint before it was written, and recovery rewrites
// every entry after the checkpoint from the log.
constexpr int64_t kVerifiedTailEntries = 4096;

}  // namespace

ConsumeQueue::File::~File() {
  if (data != nullptr) ::munmap(data, bytes);
}

ConsumeQueue::ConsumeQueue(std::filesystem::path dir, uint32_t entries_per_file)
    : dir_(std::move(dir)),
      entries_per_file_(entries_per_file),
      file_bytes_(static_cast<size_t>(entries_per_file) * kIndexEntrySize) {}

ConsumeQueue::~ConsumeQueue() = default;

Status ConsumeQueue::MapFile(File* file) {
  void* data = ::mmap(nullptr, file_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, file->fd.get(), 0);
  if (data == MAP_FAILED) return ErrnoError(errno, "cannot map index file", file->path);
  file->data = static_cast<char*>(data);
  file->bytes = file_bytes_;
  return OkStatus();
}

Result<ConsumeQueue::FilePtr> ConsumeQueue::OpenIndexFile(int64_t base, bool create) {
  auto file = std::make_shared<File>();
  file->path = dir_ / OffsetFileName(base);
  file->base = base;
  const int flags = O_RDWR | (create ? O_CREAT : 0);
  Result<FileDescriptor> fd = OpenFile(file->path, flags);
  if (!fd.ok() && create && fd.status().code() == StatusCode::kNotFound) {
    // The queue's directory went missing (removed to force an index rebuild): recreate it.
    MSGSDK_RETURN_IF_ERROR(CreateDirectories(dir_, "index directory"));
    fd = OpenFile(file->path, flags);
  }
  if (!fd.ok()) return fd.status();
  file->fd = std::move(fd).value();
  struct stat st;
  if (::fstat(file->fd.get(), &st) != 0) return ErrnoError(errno, "cannot stat", file->path);
  if (static_cast<size_t>(st.st_size) < file_bytes_ &&
      ::ftruncate(file->fd.get(), static_cast<off_t>(file_bytes_)) != 0) {
    return ErrnoError(errno, "cannot size index file", file->path);
  }
  MSGSDK_RETURN_IF_ERROR(MapFile(file.get()));
  if (create) dir_dirty_.store(true, std::memory_order_relaxed);
  return file;
}

Status ConsumeQueue::RemoveFile(const File& file) {
  if (::unlink(file.path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "cannot remove index file", file.path);
  }
  dir_dirty_.store(true, std::memory_order_relaxed);
  return OkStatus();
}

Status ConsumeQueue::ZeroTail(File* file, int64_t slots) {
  // Truncating and re-extending zeroes the tail without writing (and allocating) it, and
  // leaves the file sparse. Unmapped meanwhile: a mapping must not outlive its pages.
  ::munmap(file->data, file->bytes);
  file->data = nullptr;
  if (::ftruncate(file->fd.get(), static_cast<off_t>(slots * kIndexEntrySize)) != 0 ||
      ::ftruncate(file->fd.get(), static_cast<off_t>(file_bytes_)) != 0) {
    return ErrnoError(errno, "cannot truncate index file", file->path);
  }
  file->dirty.store(true, std::memory_order_relaxed);
  return MapFile(file);
}

int64_t ConsumeQueue::FindEnd(const File& file, int64_t* first_bad, std::string* damage) const {
  // Entries are written in order, so the used slots are a prefix of the file.
  int64_t lo = 0;
  int64_t hi = entries_per_file_;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (DecodeFixed32(file.data + mid * kIndexEntrySize + 24) == 0) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  const int64_t end = lo;
  *first_bad = end;
  int64_t previous = -1;
  for (int64_t slot = std::max<int64_t>(0, end - kVerifiedTailEntries); slot < end; ++slot) {
    IndexEntry entry;
    const EntryState state = DecodeEntry(file.data + slot * kIndexEntrySize, &entry);
    if (state == EntryState::kCorrupt || entry.commit_log_offset < previous) {
      *first_bad = slot;
      *damage = "corrupt entry " + std::to_string(file.base + slot) + " in " + file.path.native();
      break;
    }
    previous = entry.commit_log_offset;
  }
  return end;
}

Status ConsumeQueue::Load(int64_t log_start, int64_t log_end, std::string* damage) {
  damage->clear();
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const auto base = ParseOffsetFileName(it->path().filename().native());
    if (base) found.emplace_back(*base, it->path());
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return ErrnoError(ec.value(), "cannot list index directory", dir_);
  }
  std::sort(found.begin(), found.end());

  std::vector<FilePtr> files;
  for (size_t i = 0; i < found.size(); ++i) {
    const auto& [base, path] = found[i];
    bool usable = files.empty() || base == files.back()->base + entries_per_file_;
    if (!usable) {
      *damage = "index file " + path.native() + " does not follow " + files.back()->path.native();
    }
    if (usable) {
      struct stat st;
      if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "cannot stat", path);
      if (static_cast<size_t>(st.st_size) > file_bytes_) {
        // Written with another entries_per_file: the whole index must be rebuilt.
        *damage = "index file " + path.native() + " has " + std::to_string(st.st_size) +
                  " bytes, more than " + std::to_string(file_bytes_);
        files.clear();
        for (const auto& f : found) {
          if (::unlink(f.second.c_str()) != 0 && errno != ENOENT) {
            return ErrnoError(errno, "cannot remove index file", f.second);
          }
        }
        dir_dirty_.store(true, std::memory_order_relaxed);
        break;
      }
      if (static_cast<size_t>(st.st_size) < file_bytes_) {
        *damage = "index file " + path.native() + " is truncated";
      }
      MSGSDK_ASSIGN_OR_RETURN(FilePtr file, OpenIndexFile(base, false));
      files.push_back(std::move(file));
      continue;
    }
    for (size_t j = i; j < found.size(); ++j) {
      if (::unlink(found[j].second.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, "cannot remove index file", found[j].second);
      }
    }
    dir_dirty_.store(true, std::memory_order_relaxed);
    break;
  }

  if (files.empty()) {
    std::lock_guard lock(files_mu_);
    files_.clear();
    last_file_ = nullptr;
    min_offset_.store(0, std::memory_order_release);
    write_end_ = 0;
    Publish();
    return OkStatus();
  }

  // Find the end: every file but the last is full unless damaged.
  const int64_t first_base = files.front()->base;
  int64_t end = first_base;
  for (size_t i = 0; i < files.size(); ++i) {
    const File& file = *files[i];
    IndexEntry last;
    if (i + 1 < files.size() && DecodeEntry(file.data + (entries_per_file_ - 1) * kIndexEntrySize,
                                            &last) != EntryState::kCorrupt) {
      end = file.base + entries_per_file_;
      continue;
    }
    int64_t first_bad = 0;
    const int64_t file_end = FindEnd(file, &first_bad, damage);
    if (i + 1 < files.size() && damage->empty()) {
      *damage = "index file " + file.path.native() + " is not full but is followed by another";
    }
    end = file.base + std::min(file_end, first_bad);
    break;
  }

  // Drop entries whose record is not (any more) in the log.
  auto entry_end = [&](int64_t offset) {
    const File& file = *files[static_cast<size_t>((offset - first_base) / entries_per_file_)];
    IndexEntry entry;
    const EntryState state =
        DecodeEntry(file.data + (offset - file.base) * kIndexEntrySize, &entry);
    return entry.commit_log_offset + (state == EntryState::kValid ? entry.size : 0);
  };
  {
    int64_t lo = first_base;
    int64_t hi = end;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (entry_end(mid) > log_end) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    end = lo;
  }

  // Zero what lies past the end so that a later load finds the same end.
  size_t keep = static_cast<size_t>((end - first_base) / entries_per_file_) + 1;
  if (keep > 1 && (end - first_base) % entries_per_file_ == 0) --keep;
  keep = std::min(keep, files.size());
  File& tail = *files[keep - 1];
  MSGSDK_RETURN_IF_ERROR(ZeroTail(&tail, end - tail.base));
  for (size_t i = keep; i < files.size(); ++i) MSGSDK_RETURN_IF_ERROR(RemoveFile(*files[i]));
  files.resize(keep);

  // Entries whose record lies before the log start were deleted by retention (or their
  // segment is missing): the queue starts after them.
  int64_t start = first_base;
  {
    int64_t lo = first_base;
    int64_t hi = end;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      const File& file = *files[static_cast<size_t>((mid - first_base) / entries_per_file_)];
      IndexEntry entry;
      const EntryState state = DecodeEntry(file.data + (mid - file.base) * kIndexEntrySize, &entry);
      if (state != EntryState::kCorrupt && entry.commit_log_offset < log_start) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    start = lo;
  }
  size_t before_start = 0;
  while (before_start + 1 < files.size() &&
         files[before_start]->base + entries_per_file_ <= start) {
    MSGSDK_RETURN_IF_ERROR(RemoveFile(*files[before_start]));
    ++before_start;
  }
  files.erase(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(before_start));

  std::lock_guard lock(files_mu_);
  files_ = std::move(files);
  last_file_ = files_.back().get();
  min_offset_.store(start, std::memory_order_release);
  write_end_ = end;
  Publish();
  return OkStatus();
}

Status ConsumeQueue::Clear() {
  std::vector<FilePtr> files;
  {
    std::lock_guard lock(files_mu_);
    files.swap(files_);
    last_file_ = nullptr;
  }
  for (const FilePtr& file : files) MSGSDK_RETURN_IF_ERROR(RemoveFile(*file));
  // Files left from an earlier layout that Load did not map.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (ParseOffsetFileName(it->path().filename().native())) {
      if (::unlink(it->path().c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, "cannot remove index file", it->path());
      }
    }
  }
  min_offset_.store(0, std::memory_order_release);
  write_end_ = 0;
  Publish();
  dir_dirty_.store(true, std::memory_order_relaxed);
  return OkStatus();
}

Status ConsumeQueue::ResetEmptyAt(int64_t offset) {
  MSGSDK_RETURN_IF_ERROR(Clear());
  min_offset_.store(offset, std::memory_order_release);
  write_end_ = offset;
  Publish();
  return OkStatus();
}

Status ConsumeQueue::TruncateFront(int64_t new_min) {
  // Readers clamp their offset to the start before they look for its file: raise it first.
  int64_t current = min_offset_.load(std::memory_order_acquire);
  while (current < new_min &&
         !min_offset_.compare_exchange_weak(current, new_min, std::memory_order_acq_rel)) {
  }
  std::vector<FilePtr> removed;
  {
    std::lock_guard lock(files_mu_);
    size_t count = 0;
    while (count + 1 < files_.size() && files_[count]->base + entries_per_file_ <= new_min) {
      ++count;
    }
    removed.assign(files_.begin(), files_.begin() + static_cast<std::ptrdiff_t>(count));
    files_.erase(files_.begin(), files_.begin() + static_cast<std::ptrdiff_t>(count));
  }
  for (const FilePtr& file : removed) MSGSDK_RETURN_IF_ERROR(RemoveFile(*file));
  return OkStatus();
}

Status ConsumeQueue::Put(int64_t offset, const IndexEntry& entry) {
  if (last_file_ == nullptr || (write_end_ == min_offset() && offset != write_end_)) {
    // An empty queue starts where its first entry says.
    if (last_file_ != nullptr) MSGSDK_RETURN_IF_ERROR(Clear());
    MSGSDK_ASSIGN_OR_RETURN(FilePtr file, OpenIndexFile(offset, true));
    std::lock_guard lock(files_mu_);
    files_.push_back(std::move(file));
    last_file_ = files_.back().get();
    min_offset_.store(offset, std::memory_order_release);
    write_end_ = offset;
  }
  if (offset > write_end_ || offset < min_offset()) {
    return InternalError("index entry " + std::to_string(offset) + " of " + dir_.native() +
                         " is outside [" + std::to_string(min_offset()) + ", " +
                         std::to_string(write_end_) + "]");
  }
  File* file = last_file_;
  if (offset >= file->base + entries_per_file_) {
    MSGSDK_ASSIGN_OR_RETURN(FilePtr next, OpenIndexFile(file->base + entries_per_file_, true));
    std::lock_guard lock(files_mu_);
    files_.push_back(std::move(next));
    last_file_ = files_.back().get();
    file = last_file_;
  } else if (offset < file->base) {
    file = FileAt(offset).get();  // recovery overwriting an older entry; files_ keeps it alive
  }
  EncodeEntry(entry, file->data + (offset - file->base) * kIndexEntrySize);
  if (!file->dirty.load(std::memory_order_relaxed)) {
    file->dirty.store(true, std::memory_order_relaxed);
  }
  if (offset == write_end_) ++write_end_;
  return OkStatus();
}

ConsumeQueue::FilePtr ConsumeQueue::FileAt(int64_t offset) const {
  std::lock_guard lock(files_mu_);
  if (files_.empty() || offset < files_.front()->base) return nullptr;
  const auto index = static_cast<size_t>((offset - files_.front()->base) / entries_per_file_);
  return index < files_.size() ? files_[index] : nullptr;
}

EntryState ConsumeQueue::Get(int64_t offset, IndexEntry* entry) const {
  const FilePtr file = FileAt(offset);
  if (file == nullptr) {
    *entry = IndexEntry{};
    return EntryState::kCorrupt;
  }
  return DecodeEntry(file->data + (offset - file->base) * kIndexEntrySize, entry);
}

int64_t ConsumeQueue::LowerBoundStoredAt(int64_t ms) const {
  int64_t lo = min_offset();
  int64_t hi = max_offset();
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    IndexEntry entry;
    // A corrupt entry has no usable time; searching on to its right is as good as any.
    if (Get(mid, &entry) == EntryState::kCorrupt || entry.stored_at_ms < ms) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

int64_t ConsumeQueue::LowerBoundLogOffset(int64_t log_offset) const {
  int64_t lo = min_offset();
  int64_t hi = max_offset();
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    IndexEntry entry;
    if (Get(mid, &entry) != EntryState::kCorrupt && entry.commit_log_offset < log_offset) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

Status ConsumeQueue::Sync() {
  std::vector<FilePtr> files;
  {
    std::lock_guard lock(files_mu_);
    files = files_;
  }
  for (const FilePtr& file : files) {
    if (!file->dirty.exchange(false, std::memory_order_acq_rel)) continue;
    if (::msync(file->data, file->bytes, MS_SYNC) != 0) {
      file->dirty.store(true, std::memory_order_relaxed);
      return ErrnoError(errno, "msync failed on index file", file->path);
    }
  }
  if (dir_dirty_.exchange(false, std::memory_order_acq_rel)) {
    Status status = SyncDirectory(dir_);
    // A queue that never had a file may have no directory (it was removed to force a
    // rebuild): there is nothing to make durable then.
    if (!status.ok() && status.code() != StatusCode::kNotFound) {
      dir_dirty_.store(true, std::memory_order_relaxed);
      return status;
    }
  }
  return OkStatus();
}

}  // namespace msgsdk::native
