#include "backends/native/storage/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace msgsdk::native {

Status ErrnoError(int error, std::string_view what, const std::filesystem::path& path) {
  std::string message;
  message.reserve(what.size() + path.native().size() + 64);
  message.append(what).append(" ").append(path.native()).append(": ");
  message.append(std::generic_category().message(error));
  switch (error) {
    case EACCES:
    case EPERM:
    case EROFS:
      return PermissionDeniedError(std::move(message));
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case EEXIST:
    case EINVAL:
      return InvalidArgumentError(std::move(message));
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EFBIG:
      return ResourceExhaustedError(std::move(message));
    case ENOENT:
      return NotFoundError(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.Release();
  }
  return *this;
}

void FileDescriptor::Reset() {
  if (fd_ >= 0) {
    // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
    ::close(fd_);
    fd_ = -1;
  }
}

Result<FileDescriptor> OpenFile(const std::filesystem::path& path, int flags, int mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  return FileDescriptor(fd);
}

Status PwriteAll(int fd, const char* data, size_t size, int64_t offset,
                 const std::filesystem::path& path) {
  while (size > 0) {
    const ssize_t written = ::pwrite(fd, data, std::min(size, kMaxWriteBytes), offset);
    if (written < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot write to", path);
    }
    data += written;
    size -= static_cast<size_t>(written);
    offset += written;
  }
  return OkStatus();
}

Result<size_t> PreadAll(int fd, char* data, size_t size, int64_t offset,
                        const std::filesystem::path& path) {
  size_t total = 0;
  while (total < size) {
    const ssize_t got =
        ::pread(fd, data + total, size - total, offset + static_cast<int64_t>(total));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "cannot read", path);
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  return total;
}

Status SyncFile(int fd, const std::filesystem::path& path) {
  if (::fdatasync(fd) != 0) return ErrnoError(errno, "fdatasync failed on", path);
  return OkStatus();
}

Status SyncDirectory(const std::filesystem::path& dir) {
  MSGSDK_ASSIGN_OR_RETURN(FileDescriptor fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync failed on directory", dir);
  return OkStatus();
}

Status CreateDirectories(const std::filesystem::path& dir, std::string_view what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return ErrnoError(ec.value(), std::string("cannot create ").append(what), dir);
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return InvalidArgumentError(std::string(what)
                                    .append(" ")
                                    .append(dir.native())
                                    .append(" exists and is not a directory"));
  }
  return OkStatus();
}

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view data) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    MSGSDK_ASSIGN_OR_RETURN(FileDescriptor fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    MSGSDK_RETURN_IF_ERROR(PwriteAll(fd.get(), data.data(), data.size(), 0, tmp));
    if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync failed on", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(error, "cannot rename " + tmp.native() + " to", path);
  }
  return SyncDirectory(path.parent_path().empty() ? std::filesystem::path(".")
                                                  : path.parent_path());
}

Result<std::optional<std::string>> ReadFileIfExists(const std::filesystem::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return ErrnoError(errno, "cannot open", path);
  }
  FileDescriptor owned(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat", path);
  std::string content(static_cast<size_t>(st.st_size), '\0');
  MSGSDK_ASSIGN_OR_RETURN(size_t got, PreadAll(fd, content.data(), content.size(), 0, path));
  content.resize(got);
  return std::optional<std::string>(std::move(content));
}

}  // namespace msgsdk::native
