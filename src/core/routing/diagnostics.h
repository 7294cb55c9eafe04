#pragma once

// Small text helpers shared by the configuration validators, so that every error about the
// routing table reads the same way: "source:line:col: field.path: what is wrong (hint)".

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace msgsdk::core::diagnostics {

// Optimal string alignment distance: insertions, deletions, substitutions and transpositions
// of adjacent characters each cost 1 ("kafka-mian" is 1 away from "kafka-main").
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `name` within `max_distance` edits (the first one on ties), if any.
std::optional<std::string> ClosestMatch(std::string_view name,
                                        const std::vector<std::string>& candidates,
                                        size_t max_distance = 2);

// " (did you mean 'x'?)" or "".
std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates);

// "a, b, c"; "(none)" when empty.
std::string JoinNames(const std::vector<std::string>& names);

// Appends `key` to a dotted field path. Keys that would make the path ambiguous (dots,
// spaces, empty) are written in brackets: clusters.k.librdkafka["session.timeout.ms"].
std::string FieldPath(std::string_view base, std::string_view key);

// "where: path: message", leaving out empty parts.
std::string FormatError(std::string_view where, std::string_view path, std::string_view message);

// A value quoted for a message, shortened when long.
std::string Quote(std::string_view value);

}  // namespace msgsdk::core::diagnostics
