#pragma once

// Helpers of the storage tests: a temporary data directory, synchronous appends, messages.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "backends/native/storage/message_store.h"

namespace msgsdk::native::testing {

// A fresh directory, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "msgsdk-storage-XXXXXX").native();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Counts callbacks and keeps their results; Wait() blocks until `expected` have arrived.
class AppendTracker {
 public:
  AppendCallback Callback(size_t slot) {
    return [this, slot](Result<AppendResult> result) {
      std::lock_guard lock(mu_);
      if (results_.size() <= slot) results_.resize(slot + 1, Status(StatusCode::kUnknown, "none"));
      results_[slot] = std::move(result);
      ++done_;
      cv_.notify_all();
    };
  }
  bool Wait(size_t expected, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done_ >= expected; });
  }
  size_t done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  Result<AppendResult> result(size_t slot) const {
    std::lock_guard lock(mu_);
    return results_.at(slot);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Result<AppendResult>> results_;
  size_t done_ = 0;
};

inline Result<AppendResult> AppendSync(MessageStore& store, int32_t queue, Message message) {
  AppendTracker tracker;
  store.Append(queue, std::move(message), tracker.Callback(0));
  if (!tracker.Wait(1)) return DeadlineExceededError("append did not complete");
  return tracker.result(0);
}

inline Message MakeMessage(const std::string& topic, const std::string& body,
                           const std::string& tag = "", const std::string& key = "") {
  Message message;
  message.topic = topic;
  message.body = body;
  message.tag = tag;
  message.key = key;
  message.message_id = "id-" + body;
  message.born_at = Timestamp(std::chrono::milliseconds(1700000000000));
  return message;
}

inline std::vector<std::filesystem::path> SortedFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

inline std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteAll(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// Every message of a queue from `offset` on, read in batches of `batch`.
inline std::vector<Message> ReadQueue(const MessageStore& store, const std::string& topic,
                                      int32_t queue, int64_t offset = 0, int32_t batch = 64) {
  std::vector<Message> all;
  for (;;) {
    auto result = store.Read(topic, queue, offset, batch, 1 << 20, {});
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok() || result->messages.empty()) break;
    for (auto& m : result->messages) all.push_back(std::move(m));
    offset = result->next_offset;
  }
  return all;
}

}  // namespace msgsdk::native::testing
