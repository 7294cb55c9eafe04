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

// open(2) with O_CLOEXEC; the error names `path`.
Result<FileDescriptor> OpenFile(const std::filesystem::path& path, int flags, int mode = 0644);

// Writes all of `data` at `offset`, retrying short writes and EINTR.
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
