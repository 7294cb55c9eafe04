#include "backends/redis/redis_codec.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>

namespace msgsdk::redis {
namespace {

constexpr uint64_t kMaxSeq = (uint64_t{1} << kSeqBits) - 1;
constexpr uint64_t kMaxMs = (uint64_t{1} << (63 - kSeqBits)) - 1;

// Decimal digits from `at` up to `end` or the first non-digit; false without a digit or on
// overflow. Hand-written: entry ids are parsed two or three times per message.
bool ParseDigits(const char*& at, const char* end, uint64_t& value) {
  const char* const start = at;
  // 19 digits never overflow a uint64_t: check only beyond.
  const char* const safe_end = end - start > 19 ? start + 19 : end;
  uint64_t result = 0;
  for (; at != safe_end; ++at) {
    const auto digit = static_cast<unsigned char>(*at - '0');
    if (digit > 9) break;
    result = result * 10 + digit;
  }
  if (at == safe_end) {
    for (; at != end; ++at) {
      const auto digit = static_cast<unsigned char>(*at - '0');
      if (digit > 9) break;
      if (__builtin_mul_overflow(result, 10, &result) ||
          __builtin_add_overflow(result, digit, &result)) {
        return false;
      }
    }
  }
  value = result;
  return at != start;
}

std::optional<int64_t> ParseI64(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Enough for any uint64_t in decimal.
constexpr size_t kMaxDecimal = 20;

size_t DecimalLength(uint64_t value) {
  // Lengths of arguments are mostly below 1,000.
  if (value < 10) return 1;
  if (value < 100) return 2;
  if (value < 1000) return 3;
  size_t digits = 4;
  for (value /= 10000; value > 0; value /= 10) ++digits;
  return digits;
}

void AppendDecimal(std::string& out, uint64_t value) {
  char digits[kMaxDecimal];
  const char* end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

// "<prefix><decimal>\r\n", the header of an array or of a bulk string.
void AppendHeader(std::string& out, char prefix, uint64_t value) {
  char header[kMaxDecimal + 3];
  header[0] = prefix;
  char* end = std::to_chars(header + 1, header + 1 + kMaxDecimal, value).ptr;
  end[0] = '\r';
  end[1] = '\n';
  out.append(header, static_cast<size_t>(end + 2 - header));
}

// Bytes of a bulk string of `length` bytes in RESP.
size_t BulkSize(size_t length) { return 1 + DecimalLength(length) + 2 + length + 2; }

// "<prefix><value>\r\n" at `at`; returns where it ends.
char* PutHeader(char* at, char prefix, uint64_t value) {
  *at++ = prefix;
  at = std::to_chars(at, at + kMaxDecimal, value).ptr;
  *at++ = '\r';
  *at++ = '\n';
  return at;
}

char* PutBytes(char* at, std::string_view bytes) {
  if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
  return at + bytes.size();
}

// "$<length>\r\n<first><second>\r\n": one bulk string made of two pieces.
char* PutBulk(char* at, std::string_view first, std::string_view second = {}) {
  at = PutHeader(at, '$', first.size() + second.size());
  at = PutBytes(at, first);
  at = PutBytes(at, second);
  *at++ = '\r';
  *at++ = '\n';
  return at;
}

}  // namespace

void AppendArrayHeader(std::string& out, size_t count) { AppendHeader(out, '*', count); }

void AppendBulk(std::string& out, std::string_view arg) {
  AppendHeader(out, '$', arg.size());
  out.append(arg.data(), arg.size());
  out.append("\r\n", 2);
}

void AppendBulk(std::string& out, const EntryId& id) {
  char text[2 * kMaxDecimal + 1];
  char* end = std::to_chars(text, text + kMaxDecimal, id.ms).ptr;
  *end++ = '-';
  end = std::to_chars(end, end + kMaxDecimal, id.seq).ptr;
  AppendBulk(out, std::string_view(text, static_cast<size_t>(end - text)));
}

std::string EntryId::ToString() const {
  std::string text;
  text.reserve(2 * kMaxDecimal + 1);
  AppendDecimal(text, ms);
  text += '-';
  AppendDecimal(text, seq);
  return text;
}

std::optional<EntryId> ParseEntryId(std::string_view text) {
  const char* at = text.data();
  const char* const end = at + text.size();
  EntryId id;
  if (!ParseDigits(at, end, id.ms)) return std::nullopt;
  if (at == end) return id;
  if (*at != '-') return std::nullopt;
  ++at;
  if (!ParseDigits(at, end, id.seq) || at != end) return std::nullopt;
  return id;
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
  AppendArrayHeader(out, args.size());
  for (const std::string_view arg : args) AppendBulk(out, arg);
}

void AppendCommand(std::string& out, std::initializer_list<std::string_view> args) {
  AppendArrayHeader(out, args.size());
  for (const std::string_view arg : args) AppendBulk(out, arg);
}

std::string EncodeXadd(std::string_view stream, int64_t maxlen, const Message& message) {
  char born[kMaxDecimal + 1];
  const int64_t born_ms = ToUnixMillis(message.born_at);
  const std::string_view born_text(
      born, static_cast<size_t>(std::to_chars(born, born + sizeof(born), born_ms).ptr - born));
  char limit[kMaxDecimal + 1];
  const std::string_view limit_text(
      limit, static_cast<size_t>(std::to_chars(limit, limit + sizeof(limit), maxlen).ptr - limit));

  size_t args = 2 + 1 + 2 + 2 + 2;  // XADD stream * id <id> born <ms> body <body>
  size_t size = BulkSize(4) + BulkSize(stream.size()) + BulkSize(1) + BulkSize(kFieldId.size()) +
                BulkSize(message.message_id.size()) + BulkSize(kFieldBorn.size()) +
                BulkSize(born_text.size()) + BulkSize(kFieldBody.size()) +
                BulkSize(message.body.size());
  if (maxlen > 0) {
    args += 3;
    size += BulkSize(6) + BulkSize(1) + BulkSize(limit_text.size());
  }
  if (!message.key.empty()) {
    args += 2;
    size += BulkSize(kFieldKey.size()) + BulkSize(message.key.size());
  }
  if (!message.tag.empty()) {
    args += 2;
    size += BulkSize(kFieldTag.size()) + BulkSize(message.tag.size());
  }
  for (const auto& [name, value] : message.properties) {
    args += 2;
    size += BulkSize(kPropertyPrefix.size() + name.size()) + BulkSize(value.size());
  }
  size += 1 + DecimalLength(args) + 2;

  // Sized exactly, then written in place: a send allocates its command once, and nothing
  // else, and no piece checks the capacity.
  std::string out(size, '\0');
  char* at = PutHeader(out.data(), '*', args);
  at = PutBulk(at, "XADD");
  at = PutBulk(at, stream);
  if (maxlen > 0) {
    at = PutBulk(at, "MAXLEN");
    at = PutBulk(at, "~");
    at = PutBulk(at, limit_text);
  }
  at = PutBulk(at, "*");
  at = PutBulk(at, kFieldId);
  at = PutBulk(at, message.message_id);
  if (!message.key.empty()) {
    at = PutBulk(at, kFieldKey);
    at = PutBulk(at, message.key);
  }
  if (!message.tag.empty()) {
    at = PutBulk(at, kFieldTag);
    at = PutBulk(at, message.tag);
  }
  at = PutBulk(at, kFieldBorn);
  at = PutBulk(at, born_text);
  for (const auto& [name, value] : message.properties) {
    at = PutBulk(at, kPropertyPrefix, name);
    at = PutBulk(at, value);
  }
  at = PutBulk(at, kFieldBody);
  at = PutBulk(at, message.body);
  return out;
}

Message DecodeEntry(std::string_view stream, const EntryId& id, const FieldList& fields) {
  Message message;
  DecodeEntryInto(stream, id, fields, message);
  return message;
}

void DecodeEntryInto(std::string_view stream, const EntryId& id, const FieldList& fields,
                     Message& message) {
  message.key.clear();
  message.tag.clear();
  message.properties.clear();
  message.body.clear();
  message.deliver_at.reset();
  message.message_id.clear();
  message.cluster.clear();
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
