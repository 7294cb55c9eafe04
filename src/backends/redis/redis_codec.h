#pragma once

// How messages map onto Redis Streams: key names, the fields of an entry, entry ids and
// offsets, and the stream a key hashes to. Pure functions, no I/O (docs/backends/redis.md
// describes the same mapping for people reading the streams with other tools).

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk::redis {

// Field names of an entry written by the SDK, in the order it writes them.
inline constexpr std::string_view kFieldId = "id";
inline constexpr std::string_view kFieldKey = "key";
inline constexpr std::string_view kFieldTag = "tag";
inline constexpr std::string_view kFieldBorn = "born";
inline constexpr std::string_view kFieldDeliverAt = "deliver_at";
// One field per user property: "prop.<name>".
inline constexpr std::string_view kPropertyPrefix = "prop.";
inline constexpr std::string_view kFieldBody = "body";

// Bits of an offset given to the sequence part of an entry id (offset = ms << 20 | seq).
inline constexpr int kSeqBits = 20;

// A stream entry id "<ms>-<seq>".
struct EntryId {
  uint64_t ms = 0;
  uint64_t seq = 0;

  std::string ToString() const;
  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted operator<=>.
  friend auto operator<=>(const EntryId&, const EntryId&) = default;
};

// Parses "1700000000000-3" (also "1700000000000", seq 0). nullopt if malformed.
std::optional<EntryId> ParseEntryId(std::string_view text);

// The int64 offset of an entry: ms << 20 | seq. Monotonic in the entry id; a sequence
// number beyond 2^20 - 1 (only possible with explicit ids) saturates at 2^20 - 1 and an ms
// part beyond 2^43 - 1 (year 2248) saturates too, so the mapping never goes backwards.
int64_t EntryIdToOffset(const EntryId& id);

// "<prefix>:<topic>:<partition>"
std::string StreamKey(std::string_view prefix, std::string_view topic, int32_t partition);

// FNV-1a 64 of the bytes of `data` (offset basis 14695981039346656037, prime 1099511628211).
uint64_t Fnv1a64(std::string_view data);

// The stream of a non-empty key: Fnv1a64(key) % partitions.
int32_t PartitionForKey(std::string_view key, int32_t partitions);

// The consumer-group name of a subscription: the group itself for clustering, and
// "<group>@<member_id>" for broadcast ('@' cannot occur in group names, so the two never
// collide).
std::string RedisGroupName(std::string_view group, bool broadcast, std::string_view member_id);

// Appends one command in the Redis protocol (RESP array of bulk strings) to `out`.
void AppendCommand(std::string& out, const std::vector<std::string_view>& args);
void AppendCommand(std::string& out, std::initializer_list<std::string_view> args);

// Pieces of a command, for commands built in place: the array header "*<count>\r\n", then
// `count` bulk strings ("$<length>\r\n<bytes>\r\n"; an entry id is written as "<ms>-<seq>").
void AppendArrayHeader(std::string& out, size_t count);
void AppendBulk(std::string& out, std::string_view arg);
void AppendBulk(std::string& out, const EntryId& id);

// The XADD command (RESP) storing `message` in `stream`, trimmed with MAXLEN ~ `maxlen`
// when maxlen > 0. Fields: id, key (if set), tag (if set), born (ms since the epoch),
// prop.<name> per property, body (always last).
std::string EncodeXadd(std::string_view stream, int64_t maxlen, const Message& message);

// The fields of an entry as read back ("name", "value" pairs in stream order).
using FieldList = std::vector<std::pair<std::string_view, std::string_view>>;

// Rebuilds a message from an entry of `stream` (topic, partition, offset, stored_at and
// delivery_attempt are set by the caller's arguments). Entries not written by the SDK are
// accepted: a missing body gives an empty body, a missing id a deterministic id derived
// from the stream and entry id, a missing born the entry's time, and every field the SDK
// does not know becomes a property of that name.
Message DecodeEntry(std::string_view stream, const EntryId& id, const FieldList& fields);
// The same into `message`: every field but topic, partition, offset and delivery_attempt (the
// caller's) is overwritten, and its strings keep their capacity.
void DecodeEntryInto(std::string_view stream, const EntryId& id, const FieldList& fields,
                     Message& message);

// The message id given to entries that have no "id" field: 32 hex characters, time-ordered
// like the SDK's ids: 12 of the entry's ms, 4 of its seq (low 16 bits), 16 of
// Fnv1a64("<stream>/<entry id>"). The same entry always gets the same id.
std::string SyntheticMessageId(std::string_view stream, const EntryId& id);

// Milliseconds since the epoch of a timestamp, and back.
int64_t ToUnixMillis(Timestamp t);
Timestamp FromUnixMillis(int64_t ms);

}  // namespace msgsdk::redis
