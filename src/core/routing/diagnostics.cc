#include "core/routing/diagnostics.h"

#include <algorithm>
#include <numeric>

namespace msgsdk::core::diagnostics {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rolling rows: the transposition case looks two rows back.
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  std::iota(previous.begin(), previous.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string> ClosestMatch(std::string_view name,
                                        const std::vector<std::string>& candidates,
                                        size_t max_distance) {
  std::optional<std::string> best;
  size_t best_distance = max_distance + 1;
  for (const std::string& candidate : candidates) {
    // A forgotten unit suffix ("send_timeout" for "send_timeout_ms") is a likely slip too.
    const bool forgot_unit = candidate.size() == name.size() + 3 && candidate.starts_with(name) &&
                             candidate.ends_with("_ms");
    const size_t distance = forgot_unit ? 1 : EditDistance(name, candidate);
    // A one-letter name is "close" to every other short name; suggesting then is noise.
    if (distance < best_distance && distance < std::max(candidate.size(), name.size())) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates) {
  std::optional<std::string> match = ClosestMatch(name, candidates);
  return match ? " (did you mean '" + *match + "'?)" : std::string();
}

std::string JoinNames(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::string joined;
  for (const std::string& name : names) {
    if (!joined.empty()) joined += ", ";
    joined += name;
  }
  return joined;
}

std::string FieldPath(std::string_view base, std::string_view key) {
  const bool plain = !key.empty() && key.find_first_of(". \t\"[]") == std::string_view::npos;
  std::string path(base);
  if (plain) {
    if (!path.empty()) path += '.';
    path += key;
  } else {
    path += "[\"";
    path += key;
    path += "\"]";
  }
  return path;
}

std::string FormatError(std::string_view where, std::string_view path, std::string_view message) {
  std::string text;
  if (!where.empty()) {
    text += where;
    text += ": ";
  }
  if (!path.empty()) {
    text += path;
    text += ": ";
  }
  text += message;
  return text;
}

std::string Quote(std::string_view value) {
  constexpr size_t kMaxShown = 60;
  std::string quoted;
  quoted.reserve(std::min(value.size(), kMaxShown) + 5);
  quoted += '\'';
  quoted += value.substr(0, kMaxShown);
  if (value.size() > kMaxShown) quoted += "...";
  quoted += '\'';
  return quoted;
}

}  // namespace msgsdk::core::diagnostics
