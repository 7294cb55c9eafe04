#include "core/migration/migration_file.h"

#include <yaml-cpp/yaml.h>

#include <vector>

namespace msgsdk::core {
namespace {

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.emplace_back(text.substr(start));
      break;
    }
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) text += '\n';
    text += lines[i];
  }
  return text;
}

// The column of a line's first character that is not a space; npos for a blank line.
size_t Indentation(const std::string& line) { return line.find_first_not_of(' '); }

bool IsBlankOrComment(const std::string& line) {
  const size_t first = Indentation(line);
  return first == std::string::npos || line[first] == '#';
}

}  // namespace

std::string FormatMigrationEntry(const MigrationConfig& entry) {
  std::string text = "{ from: " + entry.from + ", to: " + entry.to +
                     ", phase: " + std::string(MigrationPhaseName(entry.phase)) +
                     ", generation: " + std::to_string(entry.generation);
  if (!entry.drain.empty()) {
    text += ", drain: {";
    const char* separator = " ";
    for (const auto& [partition, offset] : entry.drain) {
      text += separator + std::to_string(partition) + ": " + std::to_string(offset);
      separator = ", ";
    }
    text += " }";
  }
  return text + " }";
}

Result<std::string> RewriteMigration(std::string_view text, const std::string& source,
                                     const MigrationConfig& entry, int64_t version) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(source + ": " + e.what());
  }
  const YAML::Node migrations = root["migrations"];
  if (!migrations || !migrations.IsMap()) {
    return FailedPreconditionError(source + " has no migrations: map; add the entry of topic '" +
                                   entry.topic + "' with phase A first");
  }
  if (migrations.Style() == YAML::EmitterStyle::Flow) {
    return FailedPreconditionError(source + ": write migrations: as a block map (one entry per "
                                            "line) so that the controller can edit it");
  }
  int key_line = -1;
  size_t key_column = 0;
  for (const auto& item : migrations) {
    if (item.first.Scalar() == entry.topic) {
      key_line = item.first.Mark().line;
      key_column = static_cast<size_t>(item.first.Mark().column);
      break;
    }
  }
  if (key_line < 0) {
    return FailedPreconditionError(source + " has no migrations entry for topic '" +
                                   entry.topic + "'; add one with phase A first");
  }
  std::vector<std::string> lines = SplitLines(text);
  // The entry ends before the next line that is indented no deeper than its key (a sibling
  // entry or the next top-level key); blank and comment lines just before that stay.
  size_t end = static_cast<size_t>(key_line) + 1;
  size_t last_content = end;
  for (; end < lines.size(); ++end) {
    if (IsBlankOrComment(lines[end])) continue;
    if (Indentation(lines[end]) <= key_column) break;
    last_content = end + 1;
  }
  const std::string replacement =
      std::string(key_column, ' ') + entry.topic + ": " + FormatMigrationEntry(entry);
  lines.erase(lines.begin() + key_line, lines.begin() + static_cast<std::ptrdiff_t>(last_content));
  lines.insert(lines.begin() + key_line, replacement);

  const std::string version_line = "version: " + std::to_string(version);
  const YAML::Node current = root["version"];
  if (current) {
    // `version:` is a top-level key: its line starts with it.
    bool replaced = false;
    for (std::string& line : lines) {
      if (line.rfind("version:", 0) == 0) {
        // A trailing comment stays, with the spaces before it.
        const size_t comment = line.find('#');
        const size_t value_end =
            comment == std::string::npos ? line.size() : line.find_last_not_of(' ', comment - 1) + 1;
        line = version_line + line.substr(value_end);
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      return FailedPreconditionError(source + ": cannot find the 'version:' line to raise it");
    }
  } else {
    lines.insert(lines.begin(), version_line);
  }
  return JoinLines(lines);
}

}  // namespace msgsdk::core
