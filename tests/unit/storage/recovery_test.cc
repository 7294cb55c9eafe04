// Crash recovery of the message store: torn and corrupt commit-log tails, corrupt sealed
// segments, lost or damaged indexes, and processes that die without closing the store.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#include "backends/native/storage/file_util.h"
#include "backends/native/storage/message_store.h"
#include "backends/native/storage/store_metadata.h"
#include "testing/wait.h"
#include "unit/storage/storage_test_util.h"

namespace msgsdk::native {
namespace {

using testing::AppendSync;
using testing::AppendTracker;
using testing::MakeMessage;
using testing::ReadQueue;
using testing::SortedFiles;
using testing::TempDir;

class RecoveryTest : public ::testing::Test {
 protected:
  StoreOptions Options() const {
    StoreOptions options;
    options.data_dir = dir_.path();
    options.default_queues = 2;
    return options;
  }

  std::unique_ptr<MessageStore> Open(const StoreOptions& options) {
    auto store = MessageStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::unique_ptr<MessageStore> Open() { return Open(Options()); }

  // Appends `count` messages "0".."count-1" alternating over queues 0 and 1 of topic "t"
  // and closes the store; returns each message's commit-log offset.
  std::vector<int64_t> Fill(const StoreOptions& options, int count) {
    std::vector<int64_t> offsets;
    auto store = Open(options);
    EXPECT_TRUE(store->GetOrCreateTopic("t", 2).ok());
    for (int i = 0; i < count; ++i) {
      auto r =
          AppendSync(*store, i % 2, MakeMessage("t", std::to_string(i), i % 3 ? "odd" : "even"));
      EXPECT_TRUE(r.ok());
      offsets.push_back(r.ok() ? r->commit_log_offset : -1);
    }
    EXPECT_TRUE(store->Close().ok());
    return offsets;
  }

  std::filesystem::path LogDir() const { return dir_.path() / "commitlog"; }

  void FlipByte(const std::filesystem::path& file, int64_t position) {
    std::string content = testing::ReadAll(file);
    ASSERT_LT(position, static_cast<int64_t>(content.size()));
    content[static_cast<size_t>(position)] ^= 0x5A;
    testing::WriteAll(file, content);
  }

  // Every message of both queues, by body, in queue order.
  std::vector<std::string> Bodies(const MessageStore& store, int32_t queue) {
    std::vector<std::string> bodies;
    for (const Message& m : ReadQueue(store, "t", queue)) bodies.push_back(m.body);
    return bodies;
  }

  TempDir dir_;
};

std::vector<std::string> Expected(int from, int to, int32_t queue) {
  std::vector<std::string> bodies;
  for (int i = from; i < to; ++i) {
    if (i % 2 == queue) bodies.push_back(std::to_string(i));
  }
  return bodies;
}

TEST_F(RecoveryTest, TornTailIsTruncatedAndAppendsContinue) {
  const auto offsets = Fill(Options(), 10);
  const auto segment = SortedFiles(LogDir()).back();
  // Cut the last record in the middle, as a crash during its write would.
  std::filesystem::resize_file(segment, static_cast<uintmax_t>(offsets[9] + 20));
  {
    auto store = Open();
    EXPECT_EQ(store->Recovery().truncated_bytes, 20);
    EXPECT_NE(store->Recovery().truncation.find(segment.native()), std::string::npos)
        << store->Recovery().truncation;
    EXPECT_EQ(Bodies(*store, 0), Expected(0, 9, 0));
    EXPECT_EQ(Bodies(*store, 1), Expected(0, 9, 1));
    EXPECT_EQ(store->LogInfo().end_offset, offsets[9]);
    auto r = AppendSync(*store, 1, MakeMessage("t", "9"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->queue_offset, 4) << "the lost message's queue offset is taken again";
    EXPECT_EQ(r->commit_log_offset, offsets[9]);
  }
  auto store = Open();
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 10, 1));
}

// With group commit the active segment is written with zeros ahead of its records (see
// CommitLog::StartZeroFill); a process that dies leaves them after the last record.
TEST_F(RecoveryTest, ZerosAfterTheLastRecordAreCutWithoutBeingReported) {
  const auto offsets = Fill(Options(), 10);
  const auto segment = SortedFiles(LogDir()).back();
  const auto records = std::filesystem::file_size(segment);
  std::filesystem::resize_file(segment, records + (3u << 20));
  auto store = Open();
  EXPECT_EQ(store->Recovery().truncated_bytes, 0);
  EXPECT_TRUE(store->Recovery().truncation.empty()) << store->Recovery().truncation;
  EXPECT_EQ(store->LogInfo().end_offset, static_cast<int64_t>(records));
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 10, 0));
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 10, 1));
  auto r = AppendSync(*store, 0, MakeMessage("t", "10"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->commit_log_offset, static_cast<int64_t>(records));
}

TEST_F(RecoveryTest, TornRecordBeforeZerosIsReportedUpToItsLastNonZeroByte) {
  const auto offsets = Fill(Options(), 10);
  const auto segment = SortedFiles(LogDir()).back();
  const auto size = std::filesystem::file_size(segment);
  std::filesystem::resize_file(segment, static_cast<uintmax_t>(offsets[9] + 20));
  std::filesystem::resize_file(segment, size + (5u << 20));
  {
    auto store = Open();
    EXPECT_EQ(store->Recovery().truncated_bytes, 20);
    EXPECT_NE(store->Recovery().truncation.find("at position " + std::to_string(offsets[9])),
              std::string::npos)
        << store->Recovery().truncation;
    EXPECT_EQ(store->LogInfo().end_offset, offsets[9]);
    EXPECT_EQ(Bodies(*store, 1), Expected(0, 9, 1));
  }
  EXPECT_EQ(std::filesystem::file_size(segment), static_cast<uintmax_t>(offsets[9]))
      << "closed, the segment ends with its last record";
}

TEST_F(RecoveryTest, OnlyGroupCommitWritesZerosAheadAndCloseCutsThemOff) {
  for (const FlushMode mode : {FlushMode::kGroupCommit, FlushMode::kPeriodic}) {
    SCOPED_TRACE(mode == FlushMode::kGroupCommit ? "group commit" : "periodic");
    std::filesystem::remove_all(dir_.path());
    StoreOptions options = Options();
    options.flush_mode = mode;
    auto store = Open(options);
    ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendSync(*store, i % 2, MakeMessage("t", "x")).ok());
    const int64_t end = store->LogInfo().end_offset;
    const auto segment = SortedFiles(LogDir()).back();
    if (mode == FlushMode::kGroupCommit) {
      EXPECT_TRUE(::msgsdk::testing::WaitUntil(
          [&] { return std::filesystem::file_size(segment) > static_cast<uintmax_t>(end); },
          std::chrono::seconds(30)))
          << "the zeros ahead of the records";
    } else {
      EXPECT_EQ(std::filesystem::file_size(segment), static_cast<uintmax_t>(end));
    }
    // Appends over the zeros read back as written.
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(AppendSync(*store, i % 2, MakeMessage("t", std::to_string(i))).ok());
    }
    EXPECT_EQ(Bodies(*store, 0).size(), 20u);
    EXPECT_EQ(Bodies(*store, 0).back(), "18");
    const int64_t final_end = store->LogInfo().end_offset;
    ASSERT_TRUE(store->Close().ok());
    EXPECT_EQ(std::filesystem::file_size(segment), static_cast<uintmax_t>(final_end));
  }
}

TEST_F(RecoveryTest, CleanReopenRepairsNothing) {
  Fill(Options(), 10);
  auto store = Open();
  const RecoveryReport report = store->Recovery();
  EXPECT_EQ(report.truncated_bytes, 0);
  EXPECT_TRUE(report.truncation.empty());
  EXPECT_FALSE(report.index_rebuilt);
  EXPECT_EQ(report.replayed_bytes, 0);
}

TEST_F(RecoveryTest, TornHeaderIsTruncated) {
  const auto offsets = Fill(Options(), 4);
  const auto segment = SortedFiles(LogDir()).back();
  std::filesystem::resize_file(segment, static_cast<uintmax_t>(offsets[3] + 7));
  auto store = Open();
  EXPECT_EQ(store->MaxOffset("t", 1), 1);
  EXPECT_EQ(store->MaxOffset("t", 0), 2);
}

TEST_F(RecoveryTest, CorruptRecordInTheLastSegmentIsTruncatedWithWhatFollows) {
  const auto offsets = Fill(Options(), 10);
  const auto segment = SortedFiles(LogDir()).back();
  const auto size = static_cast<int64_t>(std::filesystem::file_size(segment));
  FlipByte(segment, offsets[6] + 30);
  auto store = Open();
  EXPECT_EQ(store->Recovery().truncated_bytes, size - offsets[6]);
  EXPECT_NE(
      store->Recovery().truncation.find("CRC mismatch at position " + std::to_string(offsets[6])),
      std::string::npos)
      << store->Recovery().truncation;
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 6, 0));
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 6, 1));
  EXPECT_EQ(store->MaxOffset("t", 0), 3);
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", "new")).ok());
  EXPECT_EQ(ReadQueue(*store, "t", 0).back().body, "new");
}

TEST_F(RecoveryTest, CorruptRecordInASealedSegmentIsDataLossOnRead) {
  StoreOptions options = Options();
  options.segment_bytes = 1024;
  const auto offsets = Fill(options, 60);
  const auto segments = SortedFiles(LogDir());
  ASSERT_GT(segments.size(), 2u);
  // Message 2 (queue 0, offset 1) lies in the first segment, which is sealed.
  ASSERT_LT(offsets[2] + 40, static_cast<int64_t>(std::filesystem::file_size(segments[0])));
  FlipByte(segments[0], offsets[2] + 40);

  auto store = Open(options);
  EXPECT_EQ(store->Recovery().truncated_bytes, 0) << "sealed segments are not scanned";
  EXPECT_FALSE(store->Recovery().index_rebuilt);
  auto r = store->Read("t", 0, 1, 10, 1 << 20, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(segments[0].native()), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("position " + std::to_string(offsets[2])), std::string::npos)
      << r.status().ToString();

  // What precedes the bad record is handed out; the read stops before it.
  r = store->Read("t", 0, 0, 10, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->next_offset, 1);
  // Past it everything is readable, and the other queue is untouched.
  r = store->Read("t", 0, 2, 100, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 28u);
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 60, 1));
}

// Reads check the CRC of records this process wrote only once they are further behind the
// end than the page cache keeps (log_cache_bytes): then they may come from the disk again.
// Nearer the end, a record's framing and trailer are still checked.
TEST_F(RecoveryTest, ReadsCheckTheCrcOfRecordsOlderThanTheCachedTail) {
  StoreOptions options = Options();
  options.flush_mode = FlushMode::kPeriodic;
  options.log_cache_bytes = 64u << 10;
  auto store = Open(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  std::vector<int64_t> offsets;
  for (int i = 0; i < 200; ++i) {  // about 250 KiB of records
    auto r = AppendSync(*store, 0, MakeMessage("t", std::to_string(i) + std::string(1200, 'x')));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    offsets.push_back(r->commit_log_offset);
  }
  const auto segment = SortedFiles(LogDir()).back();
  auto overwrite = [&](int64_t position, char byte) {
    FileDescriptor fd(::open(segment.c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), &byte, 1, position), 1);
  };

  // A body byte of message 1, far behind the end: the CRC check finds it.
  overwrite(offsets[1] + 200, 'y');
  auto r = store->Read("t", 0, 1, 10, 1 << 20, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("CRC mismatch"), std::string::npos) << r.status().ToString();
  auto in_place = store->ReadInPlace("t", 0, 1, 10, 1 << 20, {});
  ASSERT_FALSE(in_place.ok());
  EXPECT_EQ(in_place.status().code(), StatusCode::kDataLoss);

  // The queue offset in the trailer of message 198, near the end: the trailer check finds it.
  overwrite(offsets[198] + (offsets[199] - offsets[198]) - kRecordTrailerSize + 12, '\x7f');
  r = store->Read("t", 0, 198, 10, 1 << 20, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not belong to this queue position"), std::string::npos)
      << r.status().ToString();

  // Between them every message reads, the same through Read and ReadInPlace.
  r = store->Read("t", 0, 2, 500, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 196u);
  EXPECT_EQ(r->next_offset, 198);
  in_place = store->ReadInPlace("t", 0, 2, 500, 1 << 20, {});
  ASSERT_TRUE(in_place.ok());
  ASSERT_EQ(in_place->records.size(), 196u);
  EXPECT_EQ(in_place->next_offset, 198);
  for (size_t i = 0; i < 196; ++i) {
    EXPECT_EQ(in_place->records[i].body, r->messages[i].body);
    EXPECT_EQ(in_place->records[i].meta.queue_offset, r->messages[i].offset);
    EXPECT_EQ(in_place->records[i].meta.stored_at, r->messages[i].stored_at);
  }
}

TEST_F(RecoveryTest, DeletedIndexIsRebuiltFromTheLog) {
  StoreOptions options = Options();
  options.index_entries_per_file = 4;
  Fill(options, 50);
  std::filesystem::remove_all(dir_.path() / "index");
  {
    auto store = Open(options);
    EXPECT_TRUE(store->Recovery().index_rebuilt);
    EXPECT_NE(store->Recovery().index_rebuild_reason.find("no index checkpoint"),
              std::string::npos);
    EXPECT_EQ(Bodies(*store, 0), Expected(0, 50, 0));
    EXPECT_EQ(Bodies(*store, 1), Expected(0, 50, 1));
    auto filtered = store->Read("t", 0, 0, 100, 1 << 20, {TagHash("even")});
    ASSERT_TRUE(filtered.ok());
    EXPECT_EQ(filtered->messages.size(), 9u);  // 0, 6, 12, ..., 48
    auto r = AppendSync(*store, 0, MakeMessage("t", "50"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->queue_offset, 25);
  }
  auto store = Open(options);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 51, 0));
}

TEST_F(RecoveryTest, TruncatedIndexFileIsRepaired) {
  StoreOptions options = Options();
  options.index_entries_per_file = 8;
  Fill(options, 60);  // 30 per queue: index files 0, 8, 16, 24
  const auto index_files = SortedFiles(dir_.path() / "index" / "t" / "0");
  ASSERT_EQ(index_files.size(), 4u);
  // Truncate a middle file mid-entry: later entries become unreachable.
  std::filesystem::resize_file(index_files[1], 3 * 32 + 5);
  auto store = Open(options);
  EXPECT_TRUE(store->Recovery().index_rebuilt);
  EXPECT_NE(store->Recovery().index_rebuild_reason.find("queue 0 of topic 't' holds 11 entries"),
            std::string::npos)
      << store->Recovery().index_rebuild_reason;
  EXPECT_EQ(store->MaxOffset("t", 0), 30);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 60, 0));
  auto r = AppendSync(*store, 0, MakeMessage("t", "60"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->queue_offset, 30);
}

TEST_F(RecoveryTest, TruncatedLastIndexFileIsRepaired) {
  StoreOptions options = Options();
  options.index_entries_per_file = 1000;
  Fill(options, 40);
  const auto index_file = SortedFiles(dir_.path() / "index" / "t" / "1").front();
  std::filesystem::resize_file(index_file, 7 * 32 + 3);
  auto store = Open(options);
  EXPECT_EQ(store->MaxOffset("t", 1), 20);
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 40, 1));
}

TEST_F(RecoveryTest, CorruptCheckpointRebuildsTheIndex) {
  Fill(Options(), 20);
  testing::WriteAll(dir_.path() / "index" / ".checkpoint", "garbage");
  auto store = Open();
  EXPECT_TRUE(store->Recovery().index_rebuilt);
  EXPECT_NE(store->Recovery().index_rebuild_reason.find("corrupt"), std::string::npos);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 20, 0));
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 20, 1));
}

TEST_F(RecoveryTest, ChangedIndexLayoutIsRebuilt) {
  StoreOptions options = Options();
  options.index_entries_per_file = 16;
  Fill(options, 40);
  options.index_entries_per_file = 4;
  auto store = Open(options);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 40, 0));
  EXPECT_EQ(SortedFiles(dir_.path() / "index" / "t" / "0").size(), 5u);
}

TEST_F(RecoveryTest, LostTopicsFileIsRebuilt) {
  Fill(Options(), 6);
  {
    auto store = Open();
    ASSERT_TRUE(store->GetOrCreateTopic("empty", 5).ok());
  }
  testing::WriteAll(dir_.path() / "topics", "msgsdk-topics 1\n2 t\ncrc32c 00000000\n");
  auto store = Open();
  ASSERT_TRUE(store->FindTopic("t").has_value());
  EXPECT_EQ(store->FindTopic("t")->queues, 2);
  ASSERT_TRUE(store->FindTopic("empty").has_value());
  EXPECT_EQ(store->FindTopic("empty")->queues, 5);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 6, 0));
}

TEST_F(RecoveryTest, LostTopicsAndIndexAreRebuiltFromRecords) {
  Fill(Options(), 6);
  std::filesystem::remove(dir_.path() / "topics");
  std::filesystem::remove_all(dir_.path() / "index");
  auto store = Open();
  ASSERT_TRUE(store->FindTopic("t").has_value());
  EXPECT_EQ(Bodies(*store, 1), Expected(0, 6, 1));
}

// A process that dies without Close: no final checkpoint, no final sync of the indexes, and
// whatever the writer had in flight. (The page cache outlives the process, so in both flush
// modes every acknowledged message must come back.)
class CrashTest : public RecoveryTest, public ::testing::WithParamInterface<FlushMode> {};

TEST_P(CrashTest, AcknowledgedMessagesSurviveAProcessThatDies) {
  StoreOptions options = Options();
  options.flush_mode = GetParam();
  options.flush_interval = std::chrono::milliseconds(5);
  options.segment_bytes = 64 << 10;
  options.index_entries_per_file = 64;
  options.index_checkpoint_interval = std::chrono::hours(1);  // none after the one at open
  constexpr int kFirst = 500;
  constexpr int kSecond = 3000;
  Fill(options, kFirst);  // closed cleanly: a checkpoint exists

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = MessageStore::Open(options);
    if (!store.ok()) ::_exit(2);
    AppendTracker tracker;
    for (int i = kFirst; i < kFirst + kSecond; ++i) {
      (*store)->Append(i % 2, MakeMessage("t", std::to_string(i)), tracker.Callback(i - kFirst));
    }
    if (!tracker.Wait(kSecond)) ::_exit(3);
    for (int i = 0; i < kSecond; ++i) {
      if (!tracker.result(i).ok()) ::_exit(4);
    }
    ::_exit(0);  // no Close, no destructors
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);

  auto store = Open(options);
  EXPECT_FALSE(store->Recovery().index_rebuilt) << store->Recovery().index_rebuild_reason;
  EXPECT_GT(store->Recovery().replayed_bytes, 0);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, kFirst + kSecond, 0));
  EXPECT_EQ(Bodies(*store, 1), Expected(0, kFirst + kSecond, 1));
  auto r = AppendSync(*store, 0, MakeMessage("t", "next"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->queue_offset, (kFirst + kSecond) / 2);
}

// A committed offset is durable when its commit completes: the broker acknowledges it then,
// and a consumer that queried it starts from it. Two consumers commit concurrently (their
// commits share journal writes and fdatasyncs) until the process dies.
TEST_P(CrashTest, CompletedOffsetCommitsSurviveAProcessThatDies) {
  StoreOptions options = Options();
  options.flush_mode = GetParam();
  options.flush_interval = std::chrono::hours(1);
  options.offset_flush_interval = std::chrono::hours(1);  // periodic: no sync before it dies
  constexpr int kCommits = 200;
  Fill(options, 4 * kCommits);  // 2 * kCommits per queue: no commit is past a queue's end
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = MessageStore::Open(options);
    if (!store.ok()) ::_exit(2);
    std::atomic<int> failures{0};
    std::vector<std::thread> consumers;
    for (const std::string group : {"billing", "shipping"}) {
      consumers.emplace_back([&, group] {
        for (int64_t i = 1; i <= kCommits; ++i) {
          const std::vector<QueueOffset> offsets = {{0, i}, {1, 2 * i}};
          if (!(*store)->CommitOffsetsAndWait(group, "t", offsets).ok() ||
              (*store)->CommittedOffset(group, "t", 1) != 2 * i) {
            ++failures;
          }
        }
      });
    }
    for (auto& consumer : consumers) consumer.join();
    ::_exit(failures.load() == 0 ? 0 : 3);  // no Close, no destructors
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);

  auto store = Open(options);
  for (const std::string group : {"billing", "shipping"}) {
    EXPECT_EQ(store->CommittedOffset(group, "t", 0), kCommits);
    EXPECT_EQ(store->CommittedOffset(group, "t", 1), 2 * kCommits);
  }
  EXPECT_EQ(store->Recovery().offset_commits_replayed, 2 * kCommits);
  EXPECT_EQ(store->Recovery().offsets_pulled_back, 0);
}

// In periodic mode a machine crash can lose the log's unsynced tail while commits of offsets
// in it survive. Left there, such an offset would skip the messages stored next.
TEST_F(RecoveryTest, OffsetsPastTheEndOfTheirQueueArePulledBackToIt) {
  {
    auto store = Open();
    ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", "m")).ok());
    ASSERT_TRUE(store->CommitOffset("g", "t", 0, 10).ok());
    ASSERT_TRUE(store->CommitOffset("g", "t", 1, 0).ok());
    ASSERT_TRUE(store->CommitOffset("h", "t", 0, 2).ok());
    ASSERT_TRUE(store->CommitOffset("g", "gone", 0, 4).ok());  // no such topic: left alone
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = Open();
    EXPECT_EQ(store->Recovery().offsets_pulled_back, 1);
    EXPECT_EQ(store->CommittedOffset("g", "t", 0), 3);
    EXPECT_EQ(store->CommittedOffset("g", "t", 1), 0);
    EXPECT_EQ(store->CommittedOffset("h", "t", 0), 2);
    EXPECT_EQ(store->CommittedOffset("g", "gone", 0), 4);
    auto next = AppendSync(*store, 0, MakeMessage("t", "next"));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->queue_offset, 3) << "the group's next message";
  }
  EXPECT_EQ(Open()->Recovery().offsets_pulled_back, 0) << "the move was committed";
}

TEST_F(RecoveryTest, PeriodicCheckpointsBoundWhatACrashReplays) {
  StoreOptions options = Options();
  options.index_checkpoint_interval = std::chrono::milliseconds(5);
  const auto checkpoint_path = dir_.path() / "index" / ".checkpoint";
  int64_t checkpointed = -1;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = MessageStore::Open(options);
    if (!store.ok() || !(*store)->GetOrCreateTopic("t", 2).ok()) ::_exit(2);
    int64_t end = 0;
    for (int i = 0; i < 100; ++i) {
      auto r = AppendSync(**store, i % 2, MakeMessage("t", std::to_string(i)));
      if (!r.ok()) ::_exit(3);
      end = r->commit_log_offset;
    }
    // Wait for the flusher to checkpoint everything so far (bounded by a deadline).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      auto checkpoint = DecodeCheckpoint(testing::ReadAll(checkpoint_path));
      if (checkpoint.ok() && checkpoint->log_offset > end) break;
      if (std::chrono::steady_clock::now() > deadline) ::_exit(4);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::_exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  auto checkpoint = DecodeCheckpoint(testing::ReadAll(checkpoint_path));
  ASSERT_TRUE(checkpoint.ok());
  checkpointed = checkpoint->log_offset;
  EXPECT_EQ(checkpoint->queue_ends.at({"t", 0}), 50);

  auto store = Open(options);
  EXPECT_FALSE(store->Recovery().index_rebuilt);
  EXPECT_EQ(store->Recovery().replayed_bytes, store->LogInfo().end_offset - checkpointed);
  EXPECT_EQ(Bodies(*store, 0), Expected(0, 100, 0));
}

INSTANTIATE_TEST_SUITE_P(Modes, CrashTest,
                         ::testing::Values(FlushMode::kGroupCommit, FlushMode::kPeriodic),
                         [](const auto& info) {
                           return info.param == FlushMode::kGroupCommit ? "GroupCommit"
                                                                        : "Periodic";
                         });

}  // namespace
}  // namespace msgsdk::native
