#pragma once

// The small metadata files of a data directory: the topic list, the index checkpoint and the
// log start that retention moves.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/native/storage/message_store.h"
#include "msgsdk/result.h"

namespace msgsdk::native {

// <data_dir>/topics, a text file an operator can read:
//   msgsdk-topics 1
//   <queues> <name>        (one line per topic)
//   crc32c <8 hex digits>  (of everything before this line)
std::string EncodeTopics(const std::vector<TopicInfo>& topics);
// kDataLoss naming what is wrong if the content is not a complete topic list.
Result<std::vector<TopicInfo>> DecodeTopics(std::string_view content);

// <data_dir>/index/.checkpoint: every record of the commit log before `log_offset` has its
// entry in the durable index files, and each listed queue held `end` entries then. Recovery
// replays the log from `log_offset`; a queue found shorter than its `end` was damaged and
// the indexes are rebuilt from the whole log.
struct IndexCheckpoint {
  int64_t log_offset = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> queue_ends;
};
std::string EncodeCheckpoint(const IndexCheckpoint& checkpoint);
Result<IndexCheckpoint> DecodeCheckpoint(std::string_view content);

// <data_dir>/log_start: where the data retention left starts. Written (atomically, durably)
// before retention unlinks a file, so a crash at any point of a deletion leaves a store whose
// recovery finishes it: commit-log segments that end at or before `log_offset` are deleted,
// and each listed queue's first offset is at least its `start` (a queue that retention
// emptied keeps its next offset this way even when its index must be rebuilt from the log).
struct LogStart {
  int64_t log_offset = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> queue_starts;
};
std::string EncodeLogStart(const LogStart& start);
Result<LogStart> DecodeLogStart(std::string_view content);

// Why `name` cannot be a topic of the store, or OK. Topic names become directory names.
Status ValidateTopicName(std::string_view name);

}  // namespace msgsdk::native
