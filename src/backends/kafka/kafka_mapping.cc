#include "backends/kafka/kafka_mapping.h"

#include <bit>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

namespace msgsdk::kafka {
namespace {

// The value of the eight ASCII digits at `p`, or -1 if any of them is not a digit: all eight
// at once in a few multiplications (the technique of simdjson's parse_eight_digits_unrolled).
// Little-endian machines only: the first character must be the lowest byte.
int64_t EightDigits(const char* p) {
  uint64_t chunk = 0;
  std::memcpy(&chunk, p, sizeof(chunk));
  // Every byte in '0'..'9': its high nibble is 3, and still 3 after adding 6.
  if (((chunk & 0xF0F0F0F0F0F0F0F0ULL) |
       (((chunk + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) != 0x3333333333333333ULL) {
    return -1;
  }
  chunk = (chunk & 0x0F0F0F0F0F0F0F0FULL) * 2561 >> 8;
  chunk = (chunk & 0x00FF00FF00FF00FFULL) * 6553601 >> 16;
  return static_cast<int64_t>((chunk & 0x0000FFFF0000FFFFULL) * 42949672960001ULL >> 32);
}

// The eight decimal digits of `value` (below 10^8, leading zeros kept) at `out`, computed
// for all eight at once in the lanes of one 64-bit word (the technique of Paul Khuong's and
// Daniel Lemire's integer formatting). Little-endian machines only: the first digit goes to
// the lowest byte.
void WriteEightDigits(uint32_t value, char* out) {
  // Two 4-digit halves in two 32-bit lanes, the high half in the low lane.
  const uint64_t halves = (value / 10000) | (static_cast<uint64_t>(value % 10000) << 32);
  // Each half divided by 100 (x * 10486 >> 20 is x / 100 for x < 10,000): four 2-digit
  // pairs in four 16-bit lanes.
  const uint64_t hundreds_high = ((halves * 10486) >> 20) & 0x0000007F0000007FULL;
  const uint64_t pairs = ((halves - 100 * hundreds_high) << 16) + hundreds_high;
  // Each pair divided by 10 (x * 103 >> 10 is x / 10 for x < 100): eight digits in bytes.
  const uint64_t tens = ((pairs * 103) >> 10) & 0x000F000F000F000FULL;
  const uint64_t digits = (tens + ((pairs - 10 * tens) << 8)) | 0x3030303030303030ULL;
  std::memcpy(out, &digits, sizeof(digits));
}

// FNV-1a, then a murmur3-style finaliser so nearby offsets spread over all bits.
uint64_t Hash64(std::string_view data, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

std::optional<int64_t> ParseDecimalInt64(std::string_view text) {
  // Up to 18 digits cannot overflow, so they are summed without from_chars' per-digit checks,
  // eight at a time where the machine allows: this runs for every consumed record (a
  // timestamp in microseconds has 16 digits).
  const bool negative = !text.empty() && text.front() == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (!digits.empty() && digits.size() <= 18) {
    int64_t sum = 0;
    size_t i = 0;
    if constexpr (std::endian::native == std::endian::little) {
      for (; i + 8 <= digits.size(); i += 8) {
        const int64_t eight = EightDigits(digits.data() + i);
        if (eight < 0) return std::nullopt;
        sum = sum * 100000000 + eight;
      }
    }
    for (; i < digits.size(); ++i) {
      const unsigned digit = static_cast<unsigned>(static_cast<unsigned char>(digits[i])) - '0';
      if (digit > 9) return std::nullopt;
      sum = sum * 10 + static_cast<int64_t>(digit);
    }
    return negative ? -sum : sum;
  }
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

char* WriteDecimalInt64(int64_t value, char* out) {
  constexpr int64_t kTenToThe8 = 100000000;
  constexpr int64_t kTenToThe15 = 1000000000000000;
  constexpr int64_t kTenToThe16 = 10000000000000000;
  if constexpr (std::endian::native == std::endian::little) {
    if (value >= kTenToThe15 && value < kTenToThe16) {
      WriteEightDigits(static_cast<uint32_t>(value / kTenToThe8), out);
      WriteEightDigits(static_cast<uint32_t>(value % kTenToThe8), out + 8);
      return out + 16;
    }
  }
  return std::to_chars(out, out + kMaxDecimalInt64Length, value).ptr;
}

std::string PropertyHeaderName(const std::string& key) {
  if (key.starts_with(kReservedHeaderPrefix)) {
    return std::string(kEscapedPropertyPrefix) + key;
  }
  return key;
}

int64_t ToEpochMicros(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

Timestamp FromEpochMicros(int64_t micros) {
  return Timestamp(
      std::chrono::duration_cast<Timestamp::duration>(std::chrono::microseconds(micros)));
}

int64_t ToEpochMillis(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

rd_kafka_headers_t* EncodeHeaders(const Message& message) {
  // Room for exactly the headers written: librdkafka allocates the list at this size, and a
  // list larger than needed takes a bigger block from malloc for every record.
  const size_t count = 2 + (message.tag.empty() ? 0 : 1) + (message.deliver_at ? 1 : 0) +
                       message.properties.size();
  rd_kafka_headers_t* headers = rd_kafka_headers_new(count);
  auto add = [headers](std::string_view name, std::string_view value) {
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  };
  auto add_micros = [&add](std::string_view name, Timestamp t) {
    char digits[kMaxDecimalInt64Length];
    const char* end = WriteDecimalInt64(ToEpochMicros(t), digits);
    add(name, std::string_view(digits, static_cast<size_t>(end - digits)));
  };
  add(kIdHeader, message.message_id);
  if (!message.tag.empty()) add(kTagHeader, message.tag);
  add_micros(kBornAtHeader, message.born_at);
  if (message.deliver_at.has_value()) add_micros(kDeliverAtHeader, *message.deliver_at);
  for (const auto& [key, value] : message.properties) {
    if (key.starts_with(kReservedHeaderPrefix)) {
      add(PropertyHeaderName(key), value);
    } else {
      add(key, value);
    }
  }
  return headers;
}

std::string SynthesizeMessageId(std::string_view topic, int32_t partition, int64_t offset,
                                int64_t timestamp_ms) {
  std::string identity(topic);
  identity += '/';
  identity += std::to_string(partition);
  identity += '/';
  identity += std::to_string(offset);
  const uint64_t high = Hash64(identity, 0x6d736773646b31ULL);
  const uint64_t low = Hash64(identity, 0x6d736773646b32ULL);
  // 12 hex digits of milliseconds (good until the year 10889), then 20 of hash.
  char out[33];
  std::snprintf(
      out, sizeof(out), "%012llx%04llx%016llx",
      static_cast<unsigned long long>(timestamp_ms < 0 ? 0 : timestamp_ms) & 0xffffffffffffULL,
      static_cast<unsigned long long>(high & 0xffffULL), static_cast<unsigned long long>(low));
  return std::string(out, 32);
}

Message DecodeRecord(const rd_kafka_message_t* rkmessage) {
  Message message;
  DecodeRecordInto(rkmessage, &message);
  return message;
}

void DecodeRecordInto(const rd_kafka_message_t* rkmessage, Message* out) {
  Message& message = *out;
  message.topic.assign(rd_kafka_topic_name(rkmessage->rkt));
  message.partition = rkmessage->partition;
  message.offset = rkmessage->offset;
  message.delivery_attempt = 0;
  if (rkmessage->key != nullptr) {
    message.key.assign(static_cast<const char*>(rkmessage->key), rkmessage->key_len);
  } else {
    message.key.clear();
  }
  if (rkmessage->payload != nullptr) {
    message.body.assign(static_cast<const char*>(rkmessage->payload), rkmessage->len);
  } else {
    message.body.clear();
  }
  message.tag.clear();
  message.properties.clear();
  message.deliver_at.reset();
  message.message_id.clear();

  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  const int64_t timestamp_ms = rd_kafka_message_timestamp(rkmessage, &timestamp_type);
  const std::optional<Timestamp> record_time =
      timestamp_type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
          ? std::nullopt
          : std::optional<Timestamp>(FromEpochMicros(timestamp_ms * 1000));

  std::optional<Timestamp> born_at;
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(rkmessage, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      const std::string_view header_name(name);
      const std::string_view header_value =
          value == nullptr ? std::string_view()
                           : std::string_view(static_cast<const char*>(value), size);
      if (!header_name.starts_with(kReservedHeaderPrefix)) {
        message.properties.insert_or_assign(std::string(header_name), std::string(header_value));
      } else if (header_name.starts_with(kEscapedPropertyPrefix)) {
        message.properties.insert_or_assign(
            std::string(header_name.substr(kEscapedPropertyPrefix.size())),
            std::string(header_value));
      } else if (header_name == kIdHeader) {
        message.message_id.assign(header_value);
      } else if (header_name == kTagHeader) {
        message.tag.assign(header_value);
      } else if (header_name == kBornAtHeader) {
        if (auto micros = ParseDecimalInt64(header_value)) born_at = FromEpochMicros(*micros);
      } else if (header_name == kDeliverAtHeader) {
        if (auto micros = ParseDecimalInt64(header_value))
          message.deliver_at = FromEpochMicros(*micros);
      }
      // Other "msgsdk-" names are reserved for later versions of the mapping: not properties.
    }
  }

  if (born_at.has_value()) {
    message.born_at = *born_at;
  } else if (record_time.has_value()) {
    message.born_at = *record_time;
  } else {
    message.born_at = Timestamp{};
  }
  // Log-append time is when the broker stored it; with create time the record timestamp is
  // the best the broker tells us.
  if (record_time.has_value()) {
    message.stored_at = *record_time;
  } else {
    message.stored_at = message.born_at;
  }
  if (message.message_id.empty()) {
    message.message_id = SynthesizeMessageId(message.topic, message.partition, message.offset,
                                             record_time.has_value() ? timestamp_ms : 0);
  }
}

}  // namespace msgsdk::kafka
