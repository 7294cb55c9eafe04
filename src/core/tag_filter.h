#pragma once

// Subscription tag filters: "*" or tags joined by "||" ("created || paid").

#include <string>
#include <string_view>
#include <vector>

#include "msgsdk/result.h"

namespace msgsdk::core {

class TagFilter {
 public:
  // Everything.
  TagFilter() = default;
  // kInvalidArgument naming the expression and the bad part.
  static Result<TagFilter> Parse(std::string_view expression);

  bool MatchesAll() const { return tags_.empty(); }
  bool Matches(std::string_view tag) const;
  // Sorted, unique; empty means everything.
  const std::vector<std::string>& tags() const { return tags_; }

 private:
  std::vector<std::string> tags_;
};

}  // namespace msgsdk::core
