#include "backends/native/storage/store_metadata.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"

namespace msgsdk::native {
namespace {

constexpr std::string_view kTopicsHeader = "msgsdk-topics 1\n";
constexpr std::string_view kTopicsCrcPrefix = "crc32c ";
constexpr uint32_t kCheckpointMagic = 0x4B43534Du;  // "MSCK"
constexpr uint32_t kCheckpointVersion = 1;
constexpr uint32_t kLogStartMagic = 0x534C534Du;  // "MSLS"
constexpr uint32_t kLogStartVersion = 1;
constexpr size_t kMaxTopicNameBytes = 255;  // a directory name

}  // namespace

Status ValidateTopicName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("topic name is empty");
  if (name.size() > kMaxTopicNameBytes) {
    return InvalidArgumentError("topic name '" + std::string(name.substr(0, 64)) + "...' is " +
                                std::to_string(name.size()) + " bytes, over the limit of " +
                                std::to_string(kMaxTopicNameBytes));
  }
  if (name.front() == '.') {
    return InvalidArgumentError("topic name '" + std::string(name) + "' starts with '.'");
  }
  for (char c : name) {
    if (c == '/') {
      return InvalidArgumentError("topic name '" + std::string(name) + "' contains '/'");
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return InvalidArgumentError("topic name '" + std::string(name) +
                                  "' contains a control character");
    }
  }
  return OkStatus();
}

std::string EncodeTopics(const std::vector<TopicInfo>& topics) {
  std::string out(kTopicsHeader);
  for (const TopicInfo& topic : topics) {
    out.append(std::to_string(topic.queues)).append(" ").append(topic.name).append("\n");
  }
  char crc[32];
  std::snprintf(crc, sizeof(crc), "%08" PRIx32 "\n", Crc32c(out.data(), out.size()));
  out.append(kTopicsCrcPrefix).append(crc);
  return out;
}

Result<std::vector<TopicInfo>> DecodeTopics(std::string_view content) {
  if (content.substr(0, kTopicsHeader.size()) != kTopicsHeader) {
    return DataLossError("does not start with '" +
                         std::string(kTopicsHeader.substr(0, kTopicsHeader.size() - 1)) + "'");
  }
  const size_t crc_line = content.rfind(kTopicsCrcPrefix);
  if (crc_line == std::string_view::npos || crc_line < kTopicsHeader.size() ||
      content[crc_line - 1] != '\n') {
    return DataLossError("has no crc32c line (incomplete write?)");
  }
  std::string_view crc_text = content.substr(crc_line + kTopicsCrcPrefix.size());
  if (!crc_text.empty() && crc_text.back() == '\n') crc_text.remove_suffix(1);
  uint32_t stored = 0;
  const auto [end, error] =
      std::from_chars(crc_text.data(), crc_text.data() + crc_text.size(), stored, 16);
  if (error != std::errc() || end != crc_text.data() + crc_text.size()) {
    return DataLossError("has a malformed crc32c line");
  }
  if (Crc32c(content.data(), crc_line) != stored) return DataLossError("fails its crc32c");

  std::vector<TopicInfo> topics;
  std::string_view lines = content.substr(kTopicsHeader.size(), crc_line - kTopicsHeader.size());
  while (!lines.empty()) {
    const size_t eol = lines.find('\n');
    std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol == std::string_view::npos ? lines.size() : eol + 1);
    const size_t space = line.find(' ');
    TopicInfo topic;
    bool well_formed = space != std::string_view::npos;
    if (well_formed) {
      const auto [p, ec] = std::from_chars(line.data(), line.data() + space, topic.queues);
      well_formed = ec == std::errc() && p == line.data() + space && topic.queues > 0;
    }
    if (!well_formed) return DataLossError("has a malformed line '" + std::string(line) + "'");
    topic.name = std::string(line.substr(space + 1));
    if (!ValidateTopicName(topic.name).ok()) {
      return DataLossError("names an invalid topic '" + topic.name + "'");
    }
    topics.push_back(std::move(topic));
  }
  return topics;
}

namespace {

// The checkpoint and the log start share one layout: magic, version, a log offset and a list
// of (topic, queue, offset), then a CRC32C of everything before it.
using QueueOffsets = std::map<std::pair<std::string, int32_t>, int64_t>;

std::string EncodeOffsetsFile(uint32_t magic, uint32_t version, int64_t log_offset,
                              const QueueOffsets& queues) {
  std::string out;
  out.reserve(24 + queues.size() * 32);
  AppendFixed32(&out, magic);
  AppendFixed32(&out, version);
  AppendFixed64(&out, static_cast<uint64_t>(log_offset));
  AppendFixed32(&out, static_cast<uint32_t>(queues.size()));
  for (const auto& [queue, offset] : queues) {
    AppendString16(&out, queue.first);
    AppendFixed32(&out, static_cast<uint32_t>(queue.second));
    AppendFixed64(&out, static_cast<uint64_t>(offset));
  }
  AppendFixed32(&out, Crc32c(out.data(), out.size()));
  return out;
}

Status DecodeOffsetsFile(std::string_view content, uint32_t expected_magic,
                         uint32_t expected_version, int64_t* log_offset, QueueOffsets* queues) {
  if (content.size() < 4 || DecodeFixed32(content.data() + content.size() - 4) !=
                                Crc32c(content.data(), content.size() - 4)) {
    return DataLossError("fails its crc32c");
  }
  SliceReader reader(content.substr(0, content.size() - 4));
  uint32_t magic, version, count;
  uint64_t offset;
  if (!reader.Fixed32(&magic) || magic != expected_magic || !reader.Fixed32(&version) ||
      version != expected_version || !reader.Fixed64(&offset) || !reader.Fixed32(&count)) {
    return DataLossError("has an unknown header");
  }
  *log_offset = static_cast<int64_t>(offset);
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view topic;
    uint32_t queue;
    uint64_t value;
    if (!reader.String16(&topic) || !reader.Fixed32(&queue) || !reader.Fixed64(&value)) {
      return DataLossError("is truncated");
    }
    (*queues)[{std::string(topic), static_cast<int32_t>(queue)}] = static_cast<int64_t>(value);
  }
  if (!reader.empty()) return DataLossError("has trailing bytes");
  return OkStatus();
}

}  // namespace

std::string EncodeCheckpoint(const IndexCheckpoint& checkpoint) {
  return EncodeOffsetsFile(kCheckpointMagic, kCheckpointVersion, checkpoint.log_offset,
                           checkpoint.queue_ends);
}

Result<IndexCheckpoint> DecodeCheckpoint(std::string_view content) {
  IndexCheckpoint checkpoint;
  MSGSDK_RETURN_IF_ERROR(DecodeOffsetsFile(content, kCheckpointMagic, kCheckpointVersion,
                                           &checkpoint.log_offset, &checkpoint.queue_ends));
  return checkpoint;
}

std::string EncodeLogStart(const LogStart& start) {
  return EncodeOffsetsFile(kLogStartMagic, kLogStartVersion, start.log_offset, start.queue_starts);
}

Result<LogStart> DecodeLogStart(std::string_view content) {
  LogStart start;
  MSGSDK_RETURN_IF_ERROR(DecodeOffsetsFile(content, kLogStartMagic, kLogStartVersion,
                                           &start.log_offset, &start.queue_starts));
  return start;
}

}  // namespace msgsdk::native
