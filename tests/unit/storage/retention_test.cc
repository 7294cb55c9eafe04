// Retention of the message store: sealed commit-log segments deleted by size and by age,
// queue starts that move past them, readers below a queue's start, the time index, restarts,
// and crashes in the middle of a deletion. Ages come from an injected clock: nothing waits.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#include "backends/native/storage/commit_log.h"
#include "backends/native/storage/message_store.h"
#include "backends/native/storage/store_metadata.h"
#include "testing/wait.h"
#include "unit/storage/storage_test_util.h"

namespace msgsdk::native {
namespace {

using namespace std::chrono_literals;
using testing::AppendSync;
using testing::AppendTracker;
using testing::MakeMessage;
using testing::ReadQueue;
using testing::TempDir;

constexpr int64_t kStartMs = 1700000000000;
constexpr uint64_t kSegmentBytes = 1024;
constexpr uint32_t kEntriesPerFile = 16;

// A policy the background check leaves alone: the tests run the checks themselves.
RetentionPolicy Policy(uint64_t max_bytes, std::chrono::milliseconds max_age = 0ms) {
  return RetentionPolicy{.max_age = max_age, .max_bytes = max_bytes, .check_interval = 1h};
}

class RetentionTest : public ::testing::Test {
 protected:
  StoreOptions Options() {
    StoreOptions options;
    options.data_dir = dir_.path();
    options.default_queues = 2;
    options.segment_bytes = kSegmentBytes;
    options.index_entries_per_file = kEntriesPerFile;
    options.retention.check_interval = 1h;
    options.clock = [this] { return Timestamp(std::chrono::milliseconds(now_ms_.load())); };
    return options;
  }

  std::unique_ptr<MessageStore> Open(const StoreOptions& options) {
    auto store = MessageStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    EXPECT_TRUE((*store)->GetOrCreateTopic("t", 2).ok());
    return std::move(store).value();
  }
  std::unique_ptr<MessageStore> Open() { return Open(Options()); }

  // The body of message `offset` of `queue`: what a read must return there, and nothing else.
  static std::string Body(int32_t queue, int64_t offset) {
    std::string body = "q" + std::to_string(queue) + "-" + std::to_string(offset) + "-";
    body.resize(100, 'x');
    return body;
  }

  // Appends the next `count` messages of `queue`, one at a time.
  void Append(MessageStore& store, int32_t queue, int count) {
    for (int i = 0; i < count; ++i) {
      std::vector<AppendResult>& appended = appended_[queue];
      const auto offset = static_cast<int64_t>(appended.size());
      auto result = AppendSync(store, queue, MakeMessage("t", Body(queue, offset)));
      ASSERT_TRUE(result.ok()) << result.status().ToString();
      ASSERT_EQ(result->queue_offset, offset);
      appended.push_back(*result);
    }
  }
  // `count` messages alternating over queues 0 and 1.
  void AppendAlternating(MessageStore& store, int count) {
    for (int i = 0; i < count; ++i) Append(store, i % 2, 1);
  }

  // The first offset of `queue` whose record is at or after commit-log offset `log_offset`.
  int64_t FirstAtOrAfter(int32_t queue, int64_t log_offset) {
    const std::vector<AppendResult>& appended = appended_[queue];
    for (const AppendResult& result : appended) {
      if (result.commit_log_offset >= log_offset) return result.queue_offset;
    }
    return static_cast<int64_t>(appended.size());
  }

  // Reads `queue` from offset 0: it must start at the queue's start and hold every message
  // from there to its end, each with its own body.
  void ExpectQueueIntact(const MessageStore& store, int32_t queue) {
    const int64_t start = store.MinOffset("t", queue);
    const std::vector<Message> messages = ReadQueue(store, "t", queue, 0);
    ASSERT_EQ(static_cast<int64_t>(messages.size()), store.MaxOffset("t", queue) - start)
        << "queue " << queue;
    for (size_t i = 0; i < messages.size(); ++i) {
      const int64_t offset = start + static_cast<int64_t>(i);
      ASSERT_EQ(messages[i].offset, offset) << "queue " << queue;
      ASSERT_EQ(messages[i].body, Body(queue, offset)) << "queue " << queue;
    }
  }

  std::vector<int64_t> SegmentBases() const {
    std::vector<int64_t> bases;
    for (const auto& path : testing::SortedFiles(dir_.path() / "commitlog")) {
      if (auto base = ParseOffsetFileName(path.filename().native())) bases.push_back(*base);
    }
    return bases;
  }
  std::vector<int64_t> IndexFileBases(int32_t queue) const {
    std::vector<int64_t> bases;
    for (const auto& path :
         testing::SortedFiles(dir_.path() / "index" / "t" / std::to_string(queue))) {
      if (auto base = ParseOffsetFileName(path.filename().native())) bases.push_back(*base);
    }
    return bases;
  }
  // No index file of `queue` lies wholly before its start, except a last one.
  void ExpectNoIndexFileBeforeStart(const MessageStore& store, int32_t queue) {
    const std::vector<int64_t> bases = IndexFileBases(queue);
    ASSERT_FALSE(bases.empty());
    const int64_t start = store.MinOffset("t", queue);
    for (size_t i = 0; i + 1 < bases.size(); ++i) {
      EXPECT_GT(bases[i] + kEntriesPerFile, start)
          << "index file " << bases[i] << " of queue " << queue << " lies before its start";
    }
  }

  void Advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }

  TempDir dir_;
  std::atomic<int64_t> now_ms_{kStartMs};
  std::map<int32_t, std::vector<AppendResult>> appended_;
};

TEST(LogStartFileTest, RoundTripsAndDetectsDamage) {
  LogStart start;
  start.log_offset = 123456789;
  start.queue_starts[{"a", 0}] = 10;
  start.queue_starts[{"b", 3}] = 1LL << 40;
  const std::string content = EncodeLogStart(start);
  auto decoded = DecodeLogStart(content);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->log_offset, start.log_offset);
  EXPECT_EQ(decoded->queue_starts, start.queue_starts);
  for (size_t i = 0; i < content.size(); i += 3) {
    std::string damaged = content;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x10);
    EXPECT_EQ(DecodeLogStart(damaged).status().code(), StatusCode::kDataLoss) << "byte " << i;
  }
  // Neither file is taken for the other.
  EXPECT_FALSE(DecodeCheckpoint(content).ok());
  EXPECT_FALSE(DecodeLogStart(EncodeCheckpoint(IndexCheckpoint{})).ok());
}

TEST_F(RetentionTest, SizeLimitDeletesTheOldestSealedSegments) {
  auto store = Open();
  AppendAlternating(*store, 40);
  const CommitLogInfo before = store->LogInfo();
  ASSERT_GE(before.segments, 6);
  const uint64_t limit = 3 * kSegmentBytes;
  ASSERT_TRUE(store->SetRetention(Policy(limit)).ok());

  auto report = store->EnforceRetention();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const CommitLogInfo after = store->LogInfo();
  EXPECT_GT(report->segments_deleted, 0);
  EXPECT_EQ(report->segments_expired, 0);
  EXPECT_EQ(after.segments, before.segments - report->segments_deleted);
  EXPECT_EQ(report->bytes_deleted, before.bytes - after.bytes);
  EXPECT_EQ(report->log_start, after.start_offset);
  EXPECT_EQ(report->log_bytes, after.bytes);
  // Down to the limit, and not a segment more.
  EXPECT_LE(after.bytes, static_cast<int64_t>(limit));
  EXPECT_GT(after.bytes, static_cast<int64_t>(limit - kSegmentBytes));
  EXPECT_EQ(after.end_offset, before.end_offset);
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_EQ(static_cast<int32_t>(bases.size()), after.segments);
  EXPECT_EQ(bases.front(), after.start_offset);

  ASSERT_EQ(report->queues.size(), 2u);
  for (int32_t queue = 0; queue < 2; ++queue) {
    const int64_t start = store->MinOffset("t", queue);
    EXPECT_EQ(start, FirstAtOrAfter(queue, after.start_offset)) << "queue " << queue;
    EXPECT_GT(start, 0);
    EXPECT_EQ(store->MaxOffset("t", queue), 20) << "offsets never change";
    EXPECT_EQ(report->queues[static_cast<size_t>(queue)].start, start);
    EXPECT_EQ(report->queues[static_cast<size_t>(queue)].previous_start, 0);
    ExpectQueueIntact(*store, queue);
  }
  EXPECT_NE(DescribeRetention(*report).find("the log now starts at offset " +
                                            std::to_string(after.start_offset)),
            std::string::npos)
      << DescribeRetention(*report);

  // Nothing more to delete until the log grows again.
  auto again = store->EnforceRetention();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->segments_deleted, 0);
  AppendAlternating(*store, 20);
  again = store->EnforceRetention();
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->segments_deleted, 0);
  EXPECT_LE(store->LogInfo().bytes, static_cast<int64_t>(limit));
  for (int32_t queue = 0; queue < 2; ++queue) ExpectQueueIntact(*store, queue);
}

TEST_F(RetentionTest, AgeDeletesSegmentsWhoseNewestMessageIsOldEnough) {
  auto store = Open();
  AppendAlternating(*store, 15);
  Advance(10min);
  const int64_t recent_ms = now_ms_.load();
  AppendAlternating(*store, 15);
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GE(bases.size(), 6u);

  // The first segment holding a recent message stays, and every one after it.
  int64_t expected_start = bases.back();
  for (size_t i = 0; i + 1 < bases.size(); ++i) {
    int64_t newest_ms = 0;
    for (const auto& [queue, results] : appended_) {
      for (const AppendResult& result : results) {
        if (result.commit_log_offset >= bases[i] && result.commit_log_offset < bases[i + 1]) {
          newest_ms = std::max(newest_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                              result.stored_at.time_since_epoch())
                                              .count());
        }
      }
    }
    if (newest_ms >= recent_ms) {
      expected_start = bases[i];
      break;
    }
  }
  ASSERT_GT(expected_start, 0);

  ASSERT_TRUE(store->SetRetention(Policy(0, 15min)).ok());
  auto report = store->EnforceRetention();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->segments_deleted, 0) << "nothing is 15 minutes old yet";

  Advance(5min - 1ms);
  report = store->EnforceRetention();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->segments_deleted, 0) << "the old messages are 1 ms short of 15 minutes";

  Advance(1ms);
  report = store->EnforceRetention();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GT(report->segments_deleted, 0);
  EXPECT_EQ(report->segments_expired, report->segments_deleted);
  EXPECT_EQ(store->LogInfo().start_offset, expected_start);
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), FirstAtOrAfter(queue, expected_start));
    ExpectQueueIntact(*store, queue);
    // Every recent message is still there.
    for (const AppendResult& result : appended_[queue]) {
      if (result.stored_at >= Timestamp(std::chrono::milliseconds(recent_ms))) {
        EXPECT_GE(result.queue_offset, store->MinOffset("t", queue));
      }
    }
  }

  // Once the recent messages are old too, every sealed segment goes; the active one stays.
  Advance(10min);
  report = store->EnforceRetention();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(store->LogInfo().segments, 1);
  EXPECT_EQ(SegmentBases(), std::vector<int64_t>{bases.back()});
  for (int32_t queue = 0; queue < 2; ++queue) ExpectQueueIntact(*store, queue);
}

TEST_F(RetentionTest, TheActiveSegmentIsNeverDeleted) {
  auto store = Open();
  Append(*store, 0, 2);
  ASSERT_EQ(store->LogInfo().segments, 1);
  ASSERT_TRUE(store->SetRetention(Policy(1, 1ms)).ok());
  Advance(24h);
  auto report = store->EnforceRetention();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->segments_deleted, 0);
  EXPECT_EQ(store->MinOffset("t", 0), 0);
  ExpectQueueIntact(*store, 0);

  // With sealed segments, all of them go and the active one stays.
  Append(*store, 0, 20);
  const int64_t active = SegmentBases().back();
  report = store->EnforceRetention();
  ASSERT_TRUE(report.ok());
  EXPECT_GT(report->segments_deleted, 0);
  EXPECT_EQ(SegmentBases(), std::vector<int64_t>{active});
  EXPECT_EQ(store->MinOffset("t", 0), FirstAtOrAfter(0, active));
  ExpectQueueIntact(*store, 0);
}

TEST_F(RetentionTest, AReaderBelowTheStartContinuesAtTheStart) {
  auto store = Open();
  AppendAlternating(*store, 30);
  ASSERT_TRUE(store->CommitOffset("g", "t", 0, 0).ok());
  ASSERT_TRUE(store->CommitOffset("g", "t", 1, 2).ok());
  ASSERT_TRUE(store->SetRetention(Policy(2 * kSegmentBytes)).ok());
  ASSERT_TRUE(store->EnforceRetention().ok());
  const int64_t start = store->MinOffset("t", 0);
  ASSERT_GT(start, 2);

  // The committed offset stays where the group left it; reading from it, or from anywhere
  // in the deleted range, starts at the queue's start and says so.
  EXPECT_EQ(store->CommittedOffset("g", "t", 0), 0);
  for (const int64_t from : {int64_t{0}, start / 2, start - 1}) {
    auto read = store->Read("t", 0, from, 4, 1 << 20, {});
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_EQ(read->min_offset, start);
    ASSERT_FALSE(read->messages.empty());
    EXPECT_EQ(read->messages.front().offset, start) << "from " << from;
    EXPECT_EQ(read->messages.front().body, Body(0, start));
    EXPECT_EQ(read->next_offset, start + static_cast<int64_t>(read->messages.size()));
  }
  // A filtered read below the start too.
  auto filtered = store->Read("t", 0, 0, 4, 1 << 20, {TagHash("no such tag")});
  ASSERT_TRUE(filtered.ok()) << filtered.status().ToString();
  EXPECT_TRUE(filtered->messages.empty());
  EXPECT_EQ(filtered->next_offset, store->MaxOffset("t", 0));
  // Long polling below the start finds data at once.
  EXPECT_TRUE(store->WaitForData("t", 0, 0, std::chrono::steady_clock::now()));
  // Replay to the earliest message is the queue's start.
  auto earliest = store->OffsetForTimestamp("t", 0, Timestamp{});
  ASSERT_TRUE(earliest.ok());
  EXPECT_EQ(*earliest, start);
}

TEST_F(RetentionTest, IndexFilesBeforeTheStartGoAndTheTimeIndexKeepsWorking) {
  auto store = Open();
  for (int i = 0; i < 100; ++i) {
    Append(*store, 0, 1);
    Advance(1s);
  }
  ASSERT_GE(IndexFileBases(0).size(), 7u);
  ASSERT_TRUE(store->SetRetention(Policy(4 * kSegmentBytes)).ok());
  ASSERT_TRUE(store->EnforceRetention().ok());
  const int64_t start = store->MinOffset("t", 0);
  ASSERT_GT(start, kEntriesPerFile * 2);
  ExpectNoIndexFileBeforeStart(*store, 0);
  EXPECT_EQ(IndexFileBases(0).front(), start / kEntriesPerFile * kEntriesPerFile);

  auto check_times = [&](const MessageStore& s) {
    const std::vector<AppendResult>& appended = appended_[0];
    // Before everything still stored: the start.
    auto at = s.OffsetForTimestamp("t", 0, appended.front().stored_at);
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(*at, start);
    // Each retained message is found by its own store time.
    for (int64_t offset = start; offset < static_cast<int64_t>(appended.size()); offset += 7) {
      at = s.OffsetForTimestamp("t", 0, appended[static_cast<size_t>(offset)].stored_at);
      ASSERT_TRUE(at.ok());
      EXPECT_EQ(*at, offset);
    }
    at = s.OffsetForTimestamp("t", 0, appended.back().stored_at + 1ms);
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(*at, s.MaxOffset("t", 0));
  };
  check_times(*store);
  ASSERT_TRUE(store->Close().ok());
  store = Open();
  EXPECT_FALSE(store->Recovery().index_rebuilt) << store->Recovery().index_rebuild_reason;
  EXPECT_EQ(store->MinOffset("t", 0), start);
  ExpectNoIndexFileBeforeStart(*store, 0);
  check_times(*store);
  ExpectQueueIntact(*store, 0);
}

TEST_F(RetentionTest, ARestartAfterADeletionKeepsEveryOffset) {
  int64_t log_start = 0;
  std::map<int32_t, std::pair<int64_t, int64_t>> bounds;
  {
    auto store = Open();
    AppendAlternating(*store, 30);
    ASSERT_TRUE(store->SetRetention(Policy(2 * kSegmentBytes)).ok());
    ASSERT_TRUE(store->EnforceRetention().ok());
    log_start = store->LogInfo().start_offset;
    for (int32_t queue = 0; queue < 2; ++queue) {
      bounds[queue] = {store->MinOffset("t", queue), store->MaxOffset("t", queue)};
    }
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = Open();
  const RecoveryReport recovery = store->Recovery();
  EXPECT_FALSE(recovery.index_rebuilt) << recovery.index_rebuild_reason;
  EXPECT_EQ(recovery.retention_segments_finished, 0);
  EXPECT_TRUE(recovery.log_start_damage.empty()) << recovery.log_start_damage;
  EXPECT_EQ(store->LogInfo().start_offset, log_start);
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), bounds[queue].first);
    EXPECT_EQ(store->MaxOffset("t", queue), bounds[queue].second);
    ExpectQueueIntact(*store, queue);
  }
  Append(*store, 0, 1);  // asserts the next offset is the one after the last
  ExpectQueueIntact(*store, 0);
}

TEST_F(RetentionTest, AQueueRetentionEmptiedKeepsItsNextOffset) {
  {
    auto store = Open();
    Append(*store, 1, 10);
    Append(*store, 0, 30);
    ASSERT_TRUE(store->SetRetention(Policy(1)).ok());
    auto report = store->EnforceRetention();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(store->LogInfo().segments, 1);
    EXPECT_EQ(store->MinOffset("t", 1), 10);
    EXPECT_EQ(store->MaxOffset("t", 1), 10);
    auto read = store->Read("t", 1, 0, 10, 1 << 20, {});
    ASSERT_TRUE(read.ok());
    EXPECT_TRUE(read->messages.empty());
    EXPECT_EQ(read->next_offset, 10);
    // The index file that says where the queue goes on stays.
    EXPECT_EQ(IndexFileBases(1).size(), 1u);
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = Open();
    EXPECT_EQ(store->MinOffset("t", 1), 10);
    EXPECT_EQ(store->MaxOffset("t", 1), 10);
    ASSERT_TRUE(store->Close().ok());
  }
  // Without a checkpoint the indexes are rebuilt from the log, which holds nothing of queue
  // 1 any more: its recorded start keeps its offsets going.
  std::filesystem::remove(dir_.path() / "index" / ".checkpoint");
  auto store = Open();
  EXPECT_TRUE(store->Recovery().index_rebuilt);
  EXPECT_EQ(store->MinOffset("t", 1), 10);
  EXPECT_EQ(store->MaxOffset("t", 1), 10);
  EXPECT_EQ(store->MinOffset("t", 0), FirstAtOrAfter(0, store->LogInfo().start_offset));
  Append(*store, 1, 1);  // offset 10
  ExpectQueueIntact(*store, 0);
  ExpectQueueIntact(*store, 1);
}

TEST_F(RetentionTest, RecoveryFinishesADeletionACrashInterrupted) {
  {
    auto store = Open();
    AppendAlternating(*store, 30);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GE(bases.size(), 5u);
  // What EnforceRetention records before it unlinks anything, as if it had been deleting
  // the first three segments and the process died after unlinking the first.
  LogStart record;
  record.log_offset = bases[3];
  for (int32_t queue = 0; queue < 2; ++queue) {
    record.queue_starts[{"t", queue}] = FirstAtOrAfter(queue, bases[3]);
  }
  testing::WriteAll(dir_.path() / "log_start", EncodeLogStart(record));
  std::filesystem::remove(dir_.path() / "commitlog" / OffsetFileName(bases[0]));

  auto store = Open();
  const RecoveryReport recovery = store->Recovery();
  EXPECT_EQ(recovery.retention_segments_finished, 2);
  EXPECT_FALSE(recovery.index_rebuilt) << recovery.index_rebuild_reason;
  EXPECT_EQ(SegmentBases().front(), bases[3]);
  EXPECT_EQ(store->LogInfo().start_offset, bases[3]);
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), FirstAtOrAfter(queue, bases[3]));
    EXPECT_EQ(store->MaxOffset("t", queue), 15);
    ExpectNoIndexFileBeforeStart(*store, queue);
    ExpectQueueIntact(*store, queue);
  }
  AppendAlternating(*store, 2);
  for (int32_t queue = 0; queue < 2; ++queue) ExpectQueueIntact(*store, queue);
}

TEST_F(RetentionTest, RecoveryBeforeAnyFileWasUnlinkedAlsoFinishesTheDeletion) {
  {
    auto store = Open();
    AppendAlternating(*store, 30);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GE(bases.size(), 3u);
  // The log start alone, without queue starts: they follow from it.
  testing::WriteAll(dir_.path() / "log_start", EncodeLogStart(LogStart{bases[2], {}}));
  auto store = Open();
  EXPECT_EQ(store->Recovery().retention_segments_finished, 2);
  EXPECT_EQ(SegmentBases().front(), bases[2]);
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), FirstAtOrAfter(queue, bases[2]));
    ExpectQueueIntact(*store, queue);
  }
}

TEST_F(RetentionTest, MissingLeadingSegmentsAreTolerated) {
  {
    auto store = Open();
    AppendAlternating(*store, 30);
    ASSERT_TRUE(store->Close().ok());
  }
  const std::vector<int64_t> bases = SegmentBases();
  ASSERT_GE(bases.size(), 3u);
  std::filesystem::remove(dir_.path() / "commitlog" / OffsetFileName(bases[0]));
  std::filesystem::remove(dir_.path() / "commitlog" / OffsetFileName(bases[1]));
  auto store = Open();
  EXPECT_EQ(store->LogInfo().start_offset, bases[2]);
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), FirstAtOrAfter(queue, bases[2]));
    ExpectQueueIntact(*store, queue);
  }
}

// Kills a forked child with SIGKILL when it goes out of scope (also when an assertion fails).
struct KilledChild {
  pid_t pid = -1;
  ~KilledChild() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// A process that appends while its background check deletes every millisecond is killed with
// SIGKILL, again and again, at whatever point it reached: each time the store opens with every
// queue holding every message from its start to its end, and the next process goes on.
TEST_F(RetentionTest, AProcessKilledWhileDeletingLeavesAStoreThatRecovers) {
  StoreOptions deleting = Options();
  deleting.retention = RetentionPolicy{.max_bytes = 3 * kSegmentBytes, .check_interval = 1ms};
  constexpr int kBatch = 16;
  for (int round = 0; round < 8; ++round) {
    int progress[2];
    ASSERT_EQ(::pipe(progress), 0);
    KilledChild child{::fork()};
    ASSERT_GE(child.pid, 0);
    if (child.pid == 0) {
      ::close(progress[0]);
      auto store = MessageStore::Open(deleting);
      if (!store.ok() || !(*store)->GetOrCreateTopic("t", 2).ok()) ::_exit(2);
      int64_t next[2] = {(*store)->MaxOffset("t", 0), (*store)->MaxOffset("t", 1)};
      for (;;) {
        AppendTracker tracker;
        for (int i = 0; i < kBatch; ++i) {
          const int32_t queue = i % 2;
          (*store)->Append(queue, MakeMessage("t", Body(queue, next[queue]++)),
                           tracker.Callback(static_cast<size_t>(i)));
        }
        if (!tracker.Wait(kBatch)) ::_exit(3);
        for (int i = 0; i < kBatch; ++i) {
          if (!tracker.result(static_cast<size_t>(i)).ok()) ::_exit(4);
        }
        const char batch_done = 1;
        if (::write(progress[1], &batch_done, 1) != 1) ::_exit(5);
      }
    }
    ::close(progress[1]);
    // A different number of batches each round, so the kill lands at different points.
    for (int batches = 0; batches < 4 + round * 5; ++batches) {
      pollfd ready{progress[0], POLLIN, 0};
      ASSERT_EQ(::poll(&ready, 1, 20000), 1) << "no progress from the child";
      char batch_done = 0;
      ASSERT_EQ(::read(progress[0], &batch_done, 1), 1) << "the child stopped by itself";
    }
    ::kill(child.pid, SIGKILL);
    ASSERT_EQ(::waitpid(child.pid, nullptr, 0), child.pid);
    child.pid = -1;
    ::close(progress[0]);

    auto store = Open();  // no retention: nothing moves while the queues are checked
    ASSERT_NE(store, nullptr);
    for (int32_t queue = 0; queue < 2; ++queue) ExpectQueueIntact(*store, queue);
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = Open();
  EXPECT_GT(store->LogInfo().start_offset, 0) << "the children deleted nothing";
  EXPECT_GT(store->MinOffset("t", 0), 0);
}

TEST_F(RetentionTest, ADamagedLogStartFileIsReportedAndTheStoreOpens) {
  {
    auto store = Open();
    AppendAlternating(*store, 30);
    ASSERT_TRUE(store->SetRetention(Policy(2 * kSegmentBytes)).ok());
    ASSERT_TRUE(store->EnforceRetention().ok());
    ASSERT_TRUE(store->Close().ok());
  }
  testing::WriteAll(dir_.path() / "log_start", "not a log start");
  auto store = Open();
  EXPECT_NE(store->Recovery().log_start_damage.find("log_start"), std::string::npos)
      << store->Recovery().log_start_damage;
  // The segments and index files retention left still say where everything starts.
  for (int32_t queue = 0; queue < 2; ++queue) {
    EXPECT_EQ(store->MinOffset("t", queue), FirstAtOrAfter(queue, SegmentBases().front()));
    ExpectQueueIntact(*store, queue);
  }
}

TEST_F(RetentionTest, ReadsRacingDeletionsNeverFailNorReturnOtherMessages) {
  StoreOptions options = Options();
  options.flush_mode = FlushMode::kPeriodic;
  auto store = Open(options);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> read_messages{0};
  std::mutex failure_mu;
  std::string failure;
  std::thread reader([&] {
    int64_t offset = 0;
    while (!stop.load()) {
      auto read = store->Read("t", 0, offset, 16, 1 << 20, {});
      std::string problem;
      if (!read.ok()) {
        problem = read.status().ToString();
      } else {
        int64_t expected = std::max(offset, read->min_offset);
        for (const Message& m : read->messages) {
          if (m.offset < expected || m.body != Body(0, m.offset)) {
            problem = "offset " + std::to_string(m.offset) + " body " + m.body;
            break;
          }
          expected = m.offset + 1;
        }
        read_messages += static_cast<int64_t>(read->messages.size());
        // Caught up: start over from 0, below the start.
        offset = read->messages.empty() ? 0 : read->next_offset;
      }
      if (!problem.empty()) {
        std::lock_guard lock(failure_mu);
        failure = problem;
        return;
      }
    }
  });
  ASSERT_TRUE(store->SetRetention(Policy(2 * kSegmentBytes)).ok());
  int64_t next = 0;
  for (int round = 0; round < 150; ++round) {
    AppendTracker tracker;
    for (int i = 0; i < 8; ++i) {
      store->Append(0, MakeMessage("t", Body(0, next++)), tracker.Callback(i));
    }
    ASSERT_TRUE(tracker.Wait(8));
    auto report = store->EnforceRetention();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
  }
  stop = true;
  reader.join();
  std::lock_guard lock(failure_mu);
  EXPECT_TRUE(failure.empty()) << failure;
  EXPECT_GT(read_messages.load(), 0);
  EXPECT_GT(store->MinOffset("t", 0), 0);
  ExpectQueueIntact(*store, 0);
}

TEST_F(RetentionTest, TheBackgroundCheckRunsOnItsInterval) {
  std::mutex mu;
  std::vector<RetentionReport> reports;
  StoreOptions options = Options();
  options.retention = RetentionPolicy{.max_bytes = 2 * kSegmentBytes, .check_interval = 10ms};
  options.on_retention = [&](const Result<RetentionReport>& report) {
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    std::lock_guard lock(mu);
    reports.push_back(*report);
  };
  auto store = Open(options);
  AppendAlternating(*store, 30);
  EXPECT_TRUE(msgsdk::testing::WaitUntil([&] {
    return store->LogInfo().bytes <= static_cast<int64_t>(2 * kSegmentBytes);
  })) << store->LogInfo().bytes;
  ASSERT_TRUE(store->Close().ok());
  std::lock_guard lock(mu);
  ASSERT_FALSE(reports.empty());
  for (const RetentionReport& report : reports) EXPECT_GT(report.segments_deleted, 0);
}

TEST_F(RetentionTest, PoliciesAreValidated) {
  StoreOptions options = Options();
  options.retention.check_interval = 0ms;
  auto opened = MessageStore::Open(options);
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("check_interval"), std::string::npos)
      << opened.status().ToString();
  options = Options();
  options.retention.max_age = -1ms;
  opened = MessageStore::Open(options);
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("max_age"), std::string::npos)
      << opened.status().ToString();

  auto store = Open();
  ASSERT_TRUE(store->SetRetention(Policy(4096, 1min)).ok());
  const Status refused =
      store->SetRetention(RetentionPolicy{.max_bytes = 1, .check_interval = 0ms});
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Retention(), Policy(4096, 1min)) << "the policy in force stays";
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(store->EnforceRetention().status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace msgsdk::native
