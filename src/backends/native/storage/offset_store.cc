#include "backends/native/storage/offset_store.h"

#include <pthread.h>

#include <limits>
#include <utility>

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"
#include "backends/native/storage/file_util.h"

namespace msgsdk::native {
namespace {

constexpr uint32_t kOffsetsMagic = 0x464F534Du;  // "MSOF"
constexpr uint32_t kOffsetsVersion = 1;
constexpr size_t kMaxNameBytes = std::numeric_limits<uint16_t>::max();

}  // namespace

std::string OffsetStore::Encode(const OffsetMap& offsets) {
  std::string out;
  AppendFixed32(&out, kOffsetsMagic);
  AppendFixed32(&out, kOffsetsVersion);
  AppendFixed32(&out, static_cast<uint32_t>(offsets.size()));
  for (const auto& [key, offset] : offsets) {
    AppendString16(&out, std::get<0>(key));
    AppendString16(&out, std::get<1>(key));
    AppendFixed32(&out, static_cast<uint32_t>(std::get<2>(key)));
    AppendFixed64(&out, static_cast<uint64_t>(offset));
  }
  AppendFixed32(&out, Crc32c(out.data(), out.size()));
  return out;
}

Result<OffsetStore::OffsetMap> OffsetStore::Decode(std::string_view content) {
  if (content.size() < 4 || DecodeFixed32(content.data() + content.size() - 4) !=
                                Crc32c(content.data(), content.size() - 4)) {
    return DataLossError("fails its crc32c");
  }
  SliceReader reader(content.substr(0, content.size() - 4));
  uint32_t magic, version, count;
  if (!reader.Fixed32(&magic) || magic != kOffsetsMagic || !reader.Fixed32(&version) ||
      version != kOffsetsVersion || !reader.Fixed32(&count)) {
    return DataLossError("has an unknown header");
  }
  OffsetMap offsets;
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view group, topic;
    uint32_t queue;
    uint64_t offset;
    if (!reader.String16(&group) || !reader.String16(&topic) || !reader.Fixed32(&queue) ||
        !reader.Fixed64(&offset)) {
      return DataLossError("is truncated");
    }
    offsets.emplace(Key(group, topic, static_cast<int32_t>(queue)), static_cast<int64_t>(offset));
  }
  if (!reader.empty()) return DataLossError("has trailing bytes");
  return offsets;
}

OffsetStore::OffsetStore(std::filesystem::path path, std::chrono::milliseconds flush_interval)
    : path_(std::move(path)), flush_interval_(flush_interval) {}

Result<std::unique_ptr<OffsetStore>> OffsetStore::Open(std::filesystem::path path,
                                                       std::chrono::milliseconds flush_interval) {
  std::unique_ptr<OffsetStore> store(new OffsetStore(std::move(path), flush_interval));
  MSGSDK_ASSIGN_OR_RETURN(std::optional<std::string> content, ReadFileIfExists(store->path_));
  if (content) {
    Result<OffsetMap> offsets = Decode(*content);
    if (!offsets.ok()) {
      return DataLossError("consumer offsets file " + store->path_.native() + " " +
                           offsets.status().message() +
                           "; restore it from a backup, or remove it to reset the offsets of "
                           "every consumer group");
    }
    store->offsets_ = std::move(offsets).value();
  }
  store->flusher_ = std::thread([s = store.get()] { s->FlusherLoop(); });
  return store;
}

OffsetStore::~OffsetStore() { Close().IgnoreError(); }

Status OffsetStore::Commit(std::string_view group, std::string_view topic, int32_t queue,
                           int64_t offset) {
  if (group.empty() || group.size() > kMaxNameBytes) {
    return InvalidArgumentError("consumer group name must have 1 to 65535 bytes, got " +
                                std::to_string(group.size()));
  }
  if (topic.empty() || topic.size() > kMaxNameBytes) {
    return InvalidArgumentError("topic name must have 1 to 65535 bytes, got " +
                                std::to_string(topic.size()));
  }
  if (queue < 0 || offset < 0) {
    return InvalidArgumentError("cannot commit offset " + std::to_string(offset) + " of queue " +
                                std::to_string(queue) + " of topic '" + std::string(topic) +
                                "' for group '" + std::string(group) +
                                "': queue and offset must not be negative");
  }
  std::lock_guard lock(mu_);
  auto it =
      offsets_.find(std::tuple<std::string_view, std::string_view, int32_t>(group, topic, queue));
  if (it == offsets_.end()) {
    offsets_.emplace(Key(group, topic, queue), offset);
  } else if (it->second == offset) {
    return OkStatus();
  } else {
    it->second = offset;
  }
  ++version_;
  return OkStatus();
}

std::optional<int64_t> OffsetStore::Get(std::string_view group, std::string_view topic,
                                        int32_t queue) const {
  std::lock_guard lock(mu_);
  auto it =
      offsets_.find(std::tuple<std::string_view, std::string_view, int32_t>(group, topic, queue));
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

Status OffsetStore::Flush() {
  std::lock_guard flush_lock(flush_mu_);
  std::string content;
  uint64_t version;
  {
    std::lock_guard lock(mu_);
    if (version_ == flushed_) return OkStatus();
    version = version_;
    content = Encode(offsets_);
  }
  MSGSDK_RETURN_IF_ERROR(WriteFileAtomically(path_, content));
  std::lock_guard lock(mu_);
  flushed_ = version;
  return OkStatus();
}

void OffsetStore::FlusherLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-offsets");
  std::unique_lock lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, flush_interval_, [&] { return stop_; });
    if (stop_) break;
    if (version_ == flushed_) continue;
    lock.unlock();
    // A failure is retried at the next interval; Flush and Close report it to their callers.
    Flush().IgnoreError();
    lock.lock();
  }
}

Status OffsetStore::Close() {
  std::lock_guard close_lock(close_mu_);
  if (closed_) return OkStatus();
  closed_ = true;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  return Flush();
}

}  // namespace msgsdk::native
