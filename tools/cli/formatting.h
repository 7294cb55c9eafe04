#pragma once

// The text the `msgsdk` command line reads and writes: timestamps, message lines, escaped
// bytes, NAME=VALUE arguments, and which cluster properties are secrets. Pure functions, shared
// by the subcommands and tested on their own.

#include <string>
#include <string_view>
#include <utility>

#include "msgsdk/client.h"
#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk::cli {

// `bytes` as printable text: printable ASCII and well-formed UTF-8 stay as they are; `"` and
// `\` are escaped with a backslash; \n, \r, \t as such; every other byte (control characters,
// invalid UTF-8, C1 controls) as \xHH. Safe to print on a terminal and unambiguous to read back.
std::string EscapeText(std::string_view bytes);

// `"` + EscapeText(bytes) + `"`.
std::string Quoted(std::string_view bytes);

// ISO-8601 UTC with milliseconds: "2026-11-23T10:00:00.123Z".
std::string FormatTimestamp(Timestamp time);

// A point in time as a user writes it on the command line: ISO-8601 UTC
// ("2026-11-23T10:00:00Z", optionally with 1 to 9 fractional digits: "...:00.250Z") or Unix
// milliseconds ("1795428000000"). kInvalidArgument saying what was expected otherwise.
Result<Timestamp> ParseTimestamp(std::string_view text);

// "earliest", "latest", or a timestamp as ParseTimestamp reads it.
Result<ResetTarget> ParseResetTarget(std::string_view text);

// "NAME=VALUE" (split at the first '='; VALUE may be empty, NAME may not).
Result<std::pair<std::string, std::string>> ParseProperty(std::string_view text);

// One line (without the newline) describing a delivered message: its id, cluster, partition,
// offset, delivery attempt, born_at and stored_at, then key, tag, properties and body quoted
// with EscapeText.
std::string FormatMessage(const Message& message);

// One line describing where a sent message was stored.
std::string FormatReceipt(const SendReceipt& receipt);

// True for a cluster property whose value must never be printed: its name contains
// "password", "secret", "sasl", "token", "credential" or "ssl.key" (in any case).
bool IsSecretProperty(std::string_view name);

}  // namespace msgsdk::cli
