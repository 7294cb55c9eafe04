#include "cli/formatting.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>

#include <fmt/format.h>

namespace msgsdk::cli {
namespace {

constexpr std::string_view kTimestampForms =
    "an ISO-8601 UTC time such as 2026-11-23T10:00:00Z (optionally with fractional seconds) "
    "or Unix milliseconds such as 1795428000000";

// The length of the well-formed UTF-8 sequence (RFC 3629) at the start of `bytes`, or 0.
size_t Utf8SequenceLength(std::string_view bytes) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  auto in = [&](size_t i, unsigned lo, unsigned hi) {
    return i < bytes.size() && byte(i) >= lo && byte(i) <= hi;
  };
  const unsigned lead = byte(0);
  if (lead >= 0xC2 && lead <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (lead == 0xE0) return in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead == 0xED) return in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF) ? 3 : 0;  // no surrogates
  if (lead == 0xF0) return in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  if (lead >= 0xF1 && lead <= 0xF3) {
    return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  if (lead == 0xF4) return in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

// Reads exactly `digits` decimal digits at `*pos`, advancing it.
bool ReadNumber(std::string_view text, size_t* pos, size_t digits, int* value) {
  if (*pos + digits > text.size()) return false;
  int result = 0;
  for (size_t i = 0; i < digits; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    result = result * 10 + (c - '0');
  }
  *pos += digits;
  *value = result;
  return true;
}

bool Expect(std::string_view text, size_t* pos, char wanted) {
  if (*pos >= text.size() || std::toupper(static_cast<unsigned char>(text[*pos])) != wanted) {
    return false;
  }
  ++*pos;
  return true;
}

// `expected` lists the accepted forms for the message.
Status BadValue(std::string_view expected, std::string_view text, std::string_view why = {}) {
  std::string message = "expected " + std::string(expected) + ", got " + Quoted(text);
  if (!why.empty()) message += ": " + std::string(why);
  return InvalidArgumentError(std::move(message));
}

// The latest time a Timestamp holds (system_clock counts nanoseconds in 64 bits: year 2262).
constexpr std::chrono::milliseconds kMaxMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(Timestamp::duration::max());

Result<Timestamp> ParseIso8601(std::string_view text, std::string_view expected) {
  auto bad = [&](std::string_view why = {}) { return BadValue(expected, text, why); };
  using namespace std::chrono;  // NOLINT(google-build-using-namespace): calendar types
  size_t pos = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!ReadNumber(text, &pos, 4, &y) || !Expect(text, &pos, '-') ||
      !ReadNumber(text, &pos, 2, &mo) || !Expect(text, &pos, '-') ||
      !ReadNumber(text, &pos, 2, &d) || !Expect(text, &pos, 'T') ||
      !ReadNumber(text, &pos, 2, &h) || !Expect(text, &pos, ':') ||
      !ReadNumber(text, &pos, 2, &mi) || !Expect(text, &pos, ':') ||
      !ReadNumber(text, &pos, 2, &s)) {
    return bad();
  }
  int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 9) return bad("at most 9 fractional digits");
      nanos = nanos * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0) return bad("no digits after the decimal point");
    for (size_t i = digits; i < 9; ++i) nanos *= 10;
  }
  if (!Expect(text, &pos, 'Z')) {
    return bad("the time must be UTC, ending in Z");
  }
  if (pos != text.size()) return bad();
  const year_month_day date{year{y}, month{static_cast<unsigned>(mo)},
                            day{static_cast<unsigned>(d)}};
  if (!date.ok()) return bad("no such date");
  if (h > 23 || mi > 59 || s > 59) return bad("no such time of day");
  const sys_seconds seconds = sys_days(date) + hours(h) + minutes(mi) + std::chrono::seconds(s);
  if (seconds.time_since_epoch().count() < 0 || seconds.time_since_epoch() >= kMaxMillis) {
    return bad("out of range (1970 to 2262)");
  }
  return Timestamp(duration_cast<Timestamp::duration>(seconds.time_since_epoch()) +
                   duration_cast<Timestamp::duration>(nanoseconds(nanos)));
}

// ParseTimestamp, whose errors say that `expected` was expected.
Result<Timestamp> ParseTimestampExpecting(std::string_view text, std::string_view expected) {
  auto bad = [&](std::string_view why = {}) { return BadValue(expected, text, why); };
  if (text.empty()) return bad();
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int64_t millis = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), millis);
    if (error != std::errc() || end != text.data() + text.size() || millis > kMaxMillis.count()) {
      return bad("out of range");
    }
    return Timestamp(std::chrono::milliseconds(millis));
  }
  return ParseIso8601(text, expected);
}

}  // namespace

std::string EscapeText(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c >= 0x20 && c < 0x7F) {
          out += static_cast<char>(c);
        } else if (const size_t length = c >= 0x80 ? Utf8SequenceLength(bytes.substr(i)) : 0;
                   length > 0 && !(c == 0xC2 && static_cast<unsigned char>(bytes[i + 1]) < 0xA0)) {
          // Well-formed UTF-8 other than the C1 controls (U+0080..U+009F, written C2 80..C2 9F).
          out.append(bytes.substr(i, length));
          i += length;
          continue;
        } else {
          out += fmt::format("\\x{:02x}", c);
        }
    }
    ++i;
  }
  return out;
}

std::string Quoted(std::string_view bytes) { return "\"" + EscapeText(bytes) + "\""; }

std::string FormatTimestamp(Timestamp time) {
  using namespace std::chrono;  // NOLINT(google-build-using-namespace): calendar types
  const auto millis = floor<milliseconds>(time);
  const auto day = floor<days>(millis);
  const year_month_day date{day};
  const hh_mm_ss clock{millis - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                     clock.hours().count(), clock.minutes().count(), clock.seconds().count(),
                     clock.subseconds().count());
}

Result<Timestamp> ParseTimestamp(std::string_view text) {
  return ParseTimestampExpecting(text, kTimestampForms);
}

Result<ResetTarget> ParseResetTarget(std::string_view text) {
  if (text == "earliest") return ResetTarget{.kind = ResetTarget::Kind::kEarliest};
  if (text == "latest") return ResetTarget{.kind = ResetTarget::Kind::kLatest};
  MSGSDK_ASSIGN_OR_RETURN(
      Timestamp time,
      ParseTimestampExpecting(text, "earliest, latest, " + std::string(kTimestampForms)));
  return ResetTarget{.kind = ResetTarget::Kind::kTimestamp, .timestamp = time};
}

Result<std::pair<std::string, std::string>> ParseProperty(std::string_view text) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos) {
    return InvalidArgumentError("expected NAME=VALUE, got " + Quoted(text));
  }
  if (equals == 0) return InvalidArgumentError("empty property name in " + Quoted(text));
  return std::pair(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
}

std::string FormatMessage(const Message& message) {
  std::string properties;
  for (const auto& [name, value] : message.properties) {
    if (!properties.empty()) properties += ',';
    properties += Quoted(name) + ':' + Quoted(value);
  }
  return fmt::format(
      "message_id={} cluster={} partition={} offset={} delivery_attempt={} born_at={} "
      "stored_at={} key={} tag={} properties={{{}}} body={}",
      message.message_id, message.cluster, message.partition, message.offset,
      message.delivery_attempt, FormatTimestamp(message.born_at),
      FormatTimestamp(message.stored_at), Quoted(message.key), Quoted(message.tag), properties,
      Quoted(message.body));
}

std::string FormatReceipt(const SendReceipt& receipt) {
  return fmt::format("message_id={} cluster={} partition={} offset={}", receipt.message_id,
                     receipt.cluster, receipt.partition, receipt.offset);
}

bool IsSecretProperty(std::string_view name) {
  static constexpr std::array<std::string_view, 6> kMarkers = {"password", "secret",     "sasl",
                                                               "token",    "credential", "ssl.key"};
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(kMarkers.begin(), kMarkers.end(), [&](std::string_view marker) {
    return lower.find(marker) != std::string::npos;
  });
}

}  // namespace msgsdk::cli
