#include "core/tag_filter.h"

#include <algorithm>

namespace msgsdk::core {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<TagFilter> TagFilter::Parse(std::string_view expression) {
  TagFilter filter;
  const std::string_view whole = Trim(expression);
  if (whole.empty() || whole == "*") return filter;
  std::string_view rest = whole;
  while (true) {
    const size_t bar = rest.find("||");
    const std::string_view tag = Trim(rest.substr(0, bar));
    if (tag.empty() || tag == "*") {
      return InvalidArgumentError("tag filter '" + std::string(expression) +
                                  "': expected a tag on each side of '||' (\"*\" stands alone)");
    }
    for (const char c : tag) {
      if (c == ' ' || c == '\t' || c == '|' || c == '*') {
        return InvalidArgumentError("tag filter '" + std::string(expression) + "': tag '" +
                                    std::string(tag) +
                                    "' is not one word (tags are joined by '||')");
      }
    }
    filter.tags_.emplace_back(tag);
    if (bar == std::string_view::npos) break;
    rest.remove_prefix(bar + 2);
  }
  std::sort(filter.tags_.begin(), filter.tags_.end());
  filter.tags_.erase(std::unique(filter.tags_.begin(), filter.tags_.end()), filter.tags_.end());
  return filter;
}

bool TagFilter::Matches(std::string_view tag) const {
  if (tags_.empty()) return true;
  return std::binary_search(tags_.begin(), tags_.end(), tag);
}

}  // namespace msgsdk::core
