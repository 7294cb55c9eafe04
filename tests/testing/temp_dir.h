#pragma once

// A directory under $TMPDIR (or /tmp) removed with everything in it when the object dies.

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace msgsdk::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "msgsdk-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" +
                          prefix + "-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace msgsdk::testing
