#include "backends/redis/redis_codec.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

namespace msgsdk::redis {
namespace {

constexpr uint64_t kMaxSeq = (uint64_t{1} << kSeqBits) - 1;
constexpr uint64_t kMaxMs = (uint64_t{1} << (63 - kSeqBits)) - 1;

std::optional<uint64_t> ParseU64(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int64_t> ParseI64(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void AppendBulk(std::string& out, std::string_view arg) {
  out += '$';
  out += std::to_string(arg.size());
  out += "\r\n";
  out.append(arg.data(), arg.size());
  out += "\r\n";
}

}  // namespace

std::string EntryId::ToString() const { return std::to_string(ms) + "-" + std::to_string(seq); }

std::optional<EntryId> ParseEntryId(std::string_view text) {
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    const auto ms = ParseU64(text);
    if (!ms) return std::nullopt;
    return EntryId{*ms, 0};
  }
  const auto ms = ParseU64(text.substr(0, dash));
  const auto seq = ParseU64(text.substr(dash + 1));
  if (!ms || !seq) return std::nullopt;
  return EntryId{*ms, *seq};
}

int64_t EntryIdToOffset(const EntryId& id) {
  if (id.ms > kMaxMs) return static_cast<int64_t>((kMaxMs << kSeqBits) | kMaxSeq);
  const uint64_t seq = id.seq > kMaxSeq ? kMaxSeq : id.seq;
  return static_cast<int64_t>((id.ms << kSeqBits) | seq);
}

std::string StreamKey(std::string_view prefix, std::string_view topic, int32_t partition) {
  std::string key;
  key.reserve(prefix.size() + topic.size() + 8);
  key.append(prefix);
  key += ':';
  key.append(topic);
  key += ':';
  key += std::to_string(partition);
  return key;
}

uint64_t Fnv1a64(std::string_view data) {
  uint64_t hash = 14695981039346656037ULL;
  for (const char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

int32_t PartitionForKey(std::string_view key, int32_t partitions) {
  if (partitions <= 1) return 0;
  return static_cast<int32_t>(Fnv1a64(key) % static_cast<uint64_t>(partitions));
}

std::string RedisGroupName(std::string_view group, bool broadcast, std::string_view member_id) {
  std::string name(group);
  if (broadcast) {
    name += '@';
    name.append(member_id);
  }
  return name;
}

void AppendCommand(std::string& out, const std::vector<std::string_view>& args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const std::string_view arg : args) AppendBulk(out, arg);
}

std::string EncodeXadd(std::string_view stream, int64_t maxlen, const Message& message) {
  const std::string born = std::to_string(ToUnixMillis(message.born_at));
  const std::string maxlen_text = std::to_string(maxlen);
  std::vector<std::string_view> args;
  args.reserve(12 + 2 * message.properties.size());
  args.emplace_back("XADD");
  args.emplace_back(stream);
  if (maxlen > 0) {
    args.emplace_back("MAXLEN");
    args.emplace_back("~");
    args.emplace_back(maxlen_text);
  }
  args.emplace_back("*");
  args.emplace_back(kFieldId);
  args.emplace_back(message.message_id);
  if (!message.key.empty()) {
    args.emplace_back(kFieldKey);
    args.emplace_back(message.key);
  }
  if (!message.tag.empty()) {
    args.emplace_back(kFieldTag);
    args.emplace_back(message.tag);
  }
  args.emplace_back(kFieldBorn);
  args.emplace_back(born);
  std::vector<std::string> property_names;
  property_names.reserve(message.properties.size());
  for (const auto& [name, value] : message.properties) {
    property_names.push_back(std::string(kPropertyPrefix) + name);
  }
  size_t i = 0;
  for (const auto& [name, value] : message.properties) {
    args.emplace_back(property_names[i++]);
    args.emplace_back(value);
  }
  args.emplace_back(kFieldBody);
  args.emplace_back(message.body);

  std::string out;
  size_t size = 16;
  for (const std::string_view arg : args) size += arg.size() + 16;
  out.reserve(size);
  AppendCommand(out, args);
  return out;
}

Message DecodeEntry(std::string_view stream, const EntryId& id, const FieldList& fields) {
  Message message;
  message.stored_at = FromUnixMillis(
      static_cast<int64_t>(std::min<uint64_t>(id.ms, std::numeric_limits<int64_t>::max())));
  bool have_born = false;
  // Foreign fields are kept aside so that a "prop.x" field always wins over a bare "x".
  std::vector<std::pair<std::string_view, std::string_view>> foreign;
  for (const auto& [name, value] : fields) {
    if (name == kFieldBody) {
      message.body.assign(value.data(), value.size());
    } else if (name == kFieldId) {
      message.message_id.assign(value.data(), value.size());
    } else if (name == kFieldKey) {
      message.key.assign(value.data(), value.size());
    } else if (name == kFieldTag) {
      message.tag.assign(value.data(), value.size());
    } else if (name == kFieldBorn) {
      if (const auto ms = ParseI64(value)) {
        message.born_at = FromUnixMillis(*ms);
        have_born = true;
      } else {
        foreign.emplace_back(name, value);
      }
    } else if (name == kFieldDeliverAt) {
      if (const auto ms = ParseI64(value)) {
        message.deliver_at = FromUnixMillis(*ms);
      } else {
        foreign.emplace_back(name, value);
      }
    } else if (name.substr(0, kPropertyPrefix.size()) == kPropertyPrefix) {
      message.properties[std::string(name.substr(kPropertyPrefix.size()))] = std::string(value);
    } else {
      foreign.emplace_back(name, value);
    }
  }
  for (const auto& [name, value] : foreign) {
    message.properties.emplace(std::string(name), std::string(value));
  }
  if (message.message_id.empty()) message.message_id = SyntheticMessageId(stream, id);
  if (!have_born) message.born_at = message.stored_at;
  return message;
}

std::string SyntheticMessageId(std::string_view stream, const EntryId& id) {
  std::string basis(stream);
  basis += '/';
  basis += id.ToString();
  const uint64_t hash = Fnv1a64(basis);
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%012llx%04llx%016llx",
                static_cast<unsigned long long>(id.ms & 0xFFFFFFFFFFFFULL),
                static_cast<unsigned long long>(id.seq & 0xFFFFULL),
                static_cast<unsigned long long>(hash));
  return {buffer, 32};
}

int64_t ToUnixMillis(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Timestamp FromUnixMillis(int64_t ms) {
  // Timestamps count nanoseconds in an int64: clamp instead of overflowing on odd input.
  constexpr int64_t kLimit = std::numeric_limits<int64_t>::max() / 1000000;
  ms = std::clamp(ms, -kLimit, kLimit);
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::milliseconds(ms)));
}

}  // namespace msgsdk::redis
