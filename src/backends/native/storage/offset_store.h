#pragma once

// Consumer-group offsets: (group, topic, queue) -> the next offset the group consumes.
// Kept in memory; a flusher thread writes them to one file, atomically, when they changed.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>

#include "msgsdk/result.h"

namespace msgsdk::native {

// Thread-safe.
class OffsetStore {
 public:
  // Loads `path` (none yet: no offsets). A file that fails its checksum is kDataLoss: unlike
  // indexes, offsets cannot be rebuilt, and silently resetting them would replay or skip
  // messages for every group.
  static Result<std::unique_ptr<OffsetStore>> Open(std::filesystem::path path,
                                                   std::chrono::milliseconds flush_interval);
  ~OffsetStore();
  OffsetStore(const OffsetStore&) = delete;
  OffsetStore& operator=(const OffsetStore&) = delete;

  Status Commit(std::string_view group, std::string_view topic, int32_t queue, int64_t offset);
  std::optional<int64_t> Get(std::string_view group, std::string_view topic, int32_t queue) const;
  // Writes the offsets now if they changed since the last write; returns once durable.
  Status Flush();
  // Stops the flusher and writes the offsets. Idempotent.
  Status Close();

  // The file format, exposed for tests.
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
  static std::string Encode(const OffsetMap& offsets);
  static Result<OffsetMap> Decode(std::string_view content);

 private:
  OffsetStore(std::filesystem::path path, std::chrono::milliseconds flush_interval);
  void FlusherLoop();

  const std::filesystem::path path_;
  const std::chrono::milliseconds flush_interval_;

  mutable std::mutex mu_;
  OffsetMap offsets_;     // guarded by mu_
  uint64_t version_ = 0;  // guarded by mu_; bumped by every change
  uint64_t flushed_ = 0;  // guarded by mu_; the version on disk
  bool stop_ = false;     // guarded by mu_
  std::condition_variable stop_cv_;

  std::mutex flush_mu_;  // one file write at a time, in version order
  std::mutex close_mu_;
  bool closed_ = false;  // guarded by close_mu_
  std::thread flusher_;
};

}  // namespace msgsdk::native
