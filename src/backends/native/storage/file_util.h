#pragma once

// File-system helpers of the storage engine: errno-to-Status mapping that names the path,
// an owning file descriptor, full reads and writes, and durable atomic file replacement.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "msgsdk/result.h"

namespace msgsdk::native {

// "<what> <path>: <strerror>", with the code that fits the errno: kPermissionDenied for
// EACCES/EPERM/EROFS, kInvalidArgument for a path that cannot name a file here (ENOTDIR,
// EISDIR, ENAMETOOLONG, ELOOP, EEXIST), kResourceExhausted when the disk or the process is
// out of room, kNotFound for ENOENT, kInternal otherwise.
Status ErrnoError(int error, std::string_view what, const std::filesystem::path& path);

// Owns a file descriptor; closes it on destruction.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.Release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// The largest piece one pwrite(2) is given. The page cache takes new folios as large as the
// write that fills them (ext4's large folios, up to 2 MiB), and in this project's VMs a
// folio of 1 MiB or more is far slower to get than smaller ones: writing 1 GiB to a new file
// (the commit log's way: the tail kept at 256 MiB) took 13 to 17 µs of system time per 4 KiB
// in writes of 1, 2 or 4 MiB and 1.1 to 1.3 µs in writes of 32 KiB to 768 KiB, in every
// order of the runs. The extra system calls cost about a microsecond per 256 KiB.
inline constexpr size_t kMaxWriteBytes = size_t{256} << 10;

// open(2) with O_CLOEXEC; the error names `path`.
Result<FileDescriptor> OpenFile(const std::filesystem::path& path, int flags, int mode = 0644);

// Writes all of `data` at `offset`, retrying short writes and EINTR, in pieces of at most
// kMaxWriteBytes (see there).
Status PwriteAll(int fd, const char* data, size_t size, int64_t offset,
                 const std::filesystem::path& path);

// Reads up to `size` bytes at `offset`; returns fewer only at the end of the file.
Result<size_t> PreadAll(int fd, char* data, size_t size, int64_t offset,
                        const std::filesystem::path& path);

Status SyncFile(int fd, const std::filesystem::path& path);  // fdatasync
Status SyncDirectory(const std::filesystem::path& dir);      // fsync of the directory

// Creates `dir` and its parents; `what` describes it in errors ("data directory").
Status CreateDirectories(const std::filesystem::path& dir, std::string_view what);

// Replaces `path` by `data` so that a crash leaves either the old or the new content:
// writes <path>.tmp, fsyncs it, renames it over `path` and fsyncs the directory.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view data);

// The whole content of `path`, or nullopt if it does not exist.
Result<std::optional<std::string>> ReadFileIfExists(const std::filesystem::path& path);

}  // namespace msgsdk::native
