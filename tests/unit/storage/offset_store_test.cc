// Consumer offsets: the journal and its group commit, recovery of a journal left by a process
// that died (torn records, leftovers of a compaction), compaction, and the snapshot format.

#include "backends/native/storage/offset_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#include "backends/native/storage/coding.h"
#include "backends/native/storage/crc32c.h"
#include "testing/status_macros.h"
#include "unit/storage/storage_test_util.h"

namespace msgsdk::native {
namespace {

using testing::TempDir;
using Entry = OffsetStore::Entry;

class OffsetStoreTest : public ::testing::Test {
 protected:
  std::filesystem::path Path() const { return dir_.path() / "offsets"; }
  std::filesystem::path JournalPath() const { return dir_.path() / "offsets.journal"; }

  std::unique_ptr<OffsetStore> Open(OffsetStore::Options options = {}) {
    auto store = OffsetStore::Open(Path(), options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Runs `body` in a child process, which must end it with ::_exit (no destructors: nothing
  // is closed, no final sync or snapshot), and expects it to exit with 0.
  template <typename Body>
  void InAProcessThatDies(Body&& body) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      body();
      ::_exit(1);
    }
    int wstatus = 0;
    ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
    ASSERT_TRUE(WIFEXITED(wstatus));
    ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  }

  // What recovery reports as cut off: up to the last non-zero byte (the journal's free space
  // is zeros, and a record may end with zero bytes).
  static int64_t NonZeroPrefix(const std::string& bytes) {
    const size_t last = bytes.find_last_not_of('\0');
    return last == std::string::npos ? 0 : static_cast<int64_t>(last + 1);
  }

  static std::string Record(uint64_t sequence, const std::vector<Entry>& entries) {
    std::string out;
    OffsetStore::AppendRecord(sequence, entries, &out);
    return out;
  }

  TempDir dir_;
};

TEST_F(OffsetStoreTest, PersistsAndRefusesACorruptSnapshot) {
  {
    auto store = Open();
    ASSERT_TRUE(store->Commit("g", "t", 3, 42).ok());
    ASSERT_TRUE(store->Commit("g@member-1", "t", 0, 7).ok());
    EXPECT_EQ(store->Commit("", "t", 0, 1).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store->Commit("g", "t", 0, -1).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store->Get("g", "t", 3), 42);
    EXPECT_EQ(store->Get("g", "t", 2), std::nullopt);
    ASSERT_TRUE(store->Close().ok());
    ASSERT_TRUE(store->Close().ok());
  }
  {
    auto store = Open();
    EXPECT_EQ(store->Get("g", "t", 3), 42);
    EXPECT_EQ(store->Get("g@member-1", "t", 0), 7);
    EXPECT_EQ(store->recovery().replayed_records, 0) << "Close folds the journal into the snapshot";
    EXPECT_EQ(store->recovery().truncated_bytes, 0);
  }
  std::string content = testing::ReadAll(Path());
  content[content.size() / 2] ^= 0x55;
  testing::WriteAll(Path(), content);
  auto store = OffsetStore::Open(Path(), {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(store.status().message().find(Path().native()), std::string::npos);
}

TEST_F(OffsetStoreTest, ACommitWithAnInvalidEntryCommitsNothing) {
  auto store = Open();
  Status status = store->CommitAndWait({Entry{"g", "t", 0, 5}, Entry{"g", "t", 1, -2}});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("queue 1 of topic 't' for group 'g'"), std::string::npos)
      << status.message();
  EXPECT_EQ(store->Get("g", "t", 0), std::nullopt);
  MSGSDK_EXPECT_OK(store->CommitAndWait({Entry{"g", "t", 0, 5}, Entry{"g", "t", 1, 2}}));
  EXPECT_EQ(store->Get("g", "t", 0), 5);
  EXPECT_EQ(store->Get("g", "t", 1), 2);
}

TEST_F(OffsetStoreTest, AClosedStoreRefusesCommits) {
  auto store = Open();
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(store->Commit("g", "t", 0, 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Flush().code(), StatusCode::kFailedPrecondition);
}

// What a commit's completion promises, in both modes: the offset is in the journal (so a
// process that dies right after keeps it) and Get reports it. Many threads commit at once, so
// commits share journal writes (and, with sync_commits, fdatasyncs).
class OffsetDurabilityTest : public OffsetStoreTest, public ::testing::WithParamInterface<bool> {};

TEST_P(OffsetDurabilityTest, CompletedCommitsSurviveAProcessThatDies) {
  constexpr int kThreads = 4;
  constexpr int kCommits = 300;
  OffsetStore::Options options;
  options.sync_commits = GetParam();
  options.sync_interval = std::chrono::hours(1);  // periodic: no sync before the process dies
  InAProcessThatDies([&] {
    auto store = OffsetStore::Open(Path(), options);
    if (!store.ok()) ::_exit(2);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 1; i <= kCommits; ++i) {
          // The completion sees its own commit through Get.
          (*store)->Commit({Entry{"g", "t", t, i}}, [&, t, i](const Status& status) {
            if (!status.ok() || (*store)->Get("g", "t", t) != i) ++failures;
          });
          if (!(*store)->Commit("g", "t", t, i).ok()) ++failures;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    ::_exit(failures.load() == 0 ? 0 : 3);  // no Close: the last commits are only in the journal
  });
  auto store = Open(options);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(store->Get("g", "t", t), kCommits);
  EXPECT_EQ(store->recovery().replayed_records, kThreads * kCommits * 2);
  EXPECT_EQ(store->recovery().truncated_bytes, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, OffsetDurabilityTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Sync" : "Periodic"; });

TEST_F(OffsetStoreTest, FlushSyncsInPeriodicModeToo) {
  OffsetStore::Options options;
  options.sync_commits = false;
  options.sync_interval = std::chrono::hours(1);
  auto store = Open(options);
  ASSERT_TRUE(store->Commit("g", "t", 0, 9).ok());
  EXPECT_EQ(store->Get("g", "t", 0), 9);
  EXPECT_TRUE(store->Flush().ok());
  EXPECT_TRUE(store->Close().ok());
  EXPECT_EQ(Open(options)->Get("g", "t", 0), 9);
}

TEST_F(OffsetStoreTest, ATornRecordAtTheJournalsEndIsCutOff) {
  InAProcessThatDies([&] {
    auto store = OffsetStore::Open(Path(), {});
    if (!store.ok()) ::_exit(2);
    for (int i = 1; i <= 3; ++i) {
      if (!(*store)->Commit("g", "t", 0, i).ok()) ::_exit(3);
    }
    ::_exit(0);
  });
  // The child's records, then the zeros the journal was extended with: write a record torn
  // by a crash mid-write right after them.
  const size_t intact = (Record(1, {Entry{"g", "t", 0, 1}}) + Record(2, {Entry{"g", "t", 0, 2}}) +
                         Record(3, {Entry{"g", "t", 0, 3}}))
                            .size();
  std::string journal = testing::ReadAll(JournalPath());
  ASSERT_GT(journal.size(), intact + 64);
  const std::string record = Record(4, {Entry{"g", "t", 0, 100}});
  const std::string torn = record.substr(0, record.size() / 2);
  journal.replace(intact, torn.size(), torn);
  testing::WriteAll(JournalPath(), journal);
  {
    auto store = Open();
    EXPECT_EQ(store->Get("g", "t", 0), 3);
    EXPECT_EQ(store->recovery().replayed_records, 3);
    EXPECT_EQ(store->recovery().truncated_bytes, NonZeroPrefix(torn));
    // Over zeros, a torn record reads as one failing its checksum.
    EXPECT_NE(store->recovery().truncation.find("crc32c at position " + std::to_string(intact)),
              std::string::npos)
        << store->recovery().truncation;
    EXPECT_EQ(NonZeroPrefix(testing::ReadAll(JournalPath())),
              NonZeroPrefix(journal.substr(0, intact)))
        << "the torn record is zeroed";
    ASSERT_TRUE(store->Commit("g", "t", 0, 4).ok());
  }
  EXPECT_EQ(Open()->Get("g", "t", 0), 4);
}

TEST_F(OffsetStoreTest, ARecordFailingItsChecksumEndsTheJournal) {
  std::string journal = Record(1, {Entry{"g", "t", 0, 1}});
  const size_t first = journal.size();
  journal += Record(2, {Entry{"g", "t", 0, 2}});
  journal += Record(3, {Entry{"g", "t", 0, 3}});
  journal[first + 10] ^= 0x01;  // inside record 2's payload
  testing::WriteAll(JournalPath(), journal);
  auto store = Open();
  EXPECT_EQ(store->Get("g", "t", 0), 1);
  EXPECT_EQ(store->recovery().truncated_bytes, NonZeroPrefix(journal.substr(first)));
  EXPECT_NE(store->recovery().truncation.find("crc32c"), std::string::npos);
}

// A compaction writes the snapshot, then empties the journal. A crash in between, or an
// emptying that did not reach the disk, leaves records the snapshot already holds: they must
// not be applied over it again (an older commit would win over a later one).
TEST_F(OffsetStoreTest, RecordsTheSnapshotHoldsAreNotAppliedAgain) {
  OffsetStore::Snapshot snapshot;
  snapshot.offsets[{"g", "t", 0}] = 2;  // a reset back to 2 by record 3
  snapshot.last_sequence = 3;
  testing::WriteAll(Path(), OffsetStore::EncodeSnapshot(snapshot));
  testing::WriteAll(JournalPath(),
                    Record(1, {Entry{"g", "t", 0, 5}}) + Record(2, {Entry{"g", "t", 0, 6}}) +
                        Record(3, {Entry{"g", "t", 0, 2}}) + Record(4, {Entry{"g", "t", 1, 9}}));
  {
    auto store = Open();
    EXPECT_EQ(store->Get("g", "t", 0), 2);
    EXPECT_EQ(store->Get("g", "t", 1), 9);
    EXPECT_EQ(store->recovery().replayed_records, 1);
    ASSERT_TRUE(store->Commit("g", "t", 1, 10).ok());  // sequence 5: after what it found
  }
  auto store = Open();
  EXPECT_EQ(store->Get("g", "t", 0), 2);
  EXPECT_EQ(store->Get("g", "t", 1), 10);
}

TEST_F(OffsetStoreTest, AStaleRecordAfterNewerOnesEndsTheJournal) {
  // Emptied, then one commit written over the start of the old content, then a crash: what
  // follows the new record is a leftover with an older sequence.
  OffsetStore::Snapshot snapshot;
  snapshot.offsets[{"g", "t", 0}] = 6;
  snapshot.last_sequence = 3;
  testing::WriteAll(Path(), OffsetStore::EncodeSnapshot(snapshot));
  const std::string fresh = Record(4, {Entry{"g", "t", 0, 8}});
  const std::string stale = Record(2, {Entry{"g", "t", 0, 5}});
  testing::WriteAll(JournalPath(), fresh + stale);
  auto store = Open();
  EXPECT_EQ(store->Get("g", "t", 0), 8);
  EXPECT_EQ(store->recovery().truncated_bytes, NonZeroPrefix(stale));
  EXPECT_NE(store->recovery().truncation.find("stale record"), std::string::npos)
      << store->recovery().truncation;
}

TEST_F(OffsetStoreTest, CompactionKeepsTheJournalSmall) {
  OffsetStore::Options options;
  options.compact_bytes = 1024;
  {
    auto store = Open(options);
    for (int i = 1; i <= 500; ++i) {
      ASSERT_TRUE(store->Commit("group", "topic", i % 3, i).ok());
      if (i % 50 == 0) {
        // Records are written over zeros: where they end, the zeros start.
        const std::string journal = testing::ReadAll(JournalPath());
        ASSERT_LT(journal.find_last_not_of('\0'), 2048u) << "after commit " << i;
      }
    }
    auto snapshot = OffsetStore::DecodeSnapshot(testing::ReadAll(Path()));
    ASSERT_TRUE(snapshot.ok()) << snapshot.status().ToString();
    EXPECT_GT(snapshot->last_sequence, 400u);
  }
  auto store = Open(options);
  EXPECT_EQ(store->Get("group", "topic", 0), 498);
  EXPECT_EQ(store->Get("group", "topic", 1), 499);
  EXPECT_EQ(store->Get("group", "topic", 2), 500);
}

TEST_F(OffsetStoreTest, ASnapshotWrittenBeforeTheJournalExistedLoads) {
  // Version 1: magic, version, count, entries, CRC; no sequence number.
  std::string v1;
  AppendFixed32(&v1, 0x464F534Du);
  AppendFixed32(&v1, 1);
  AppendFixed32(&v1, 1);
  AppendString16(&v1, "g");
  AppendString16(&v1, "t");
  AppendFixed32(&v1, 2);
  AppendFixed64(&v1, 77);
  AppendFixed32(&v1, Crc32c(v1.data(), v1.size()));
  testing::WriteAll(Path(), v1);
  {
    auto store = Open();
    EXPECT_EQ(store->Get("g", "t", 2), 77);
    ASSERT_TRUE(store->Commit("g", "t", 2, 78).ok());
  }
  EXPECT_EQ(Open()->Get("g", "t", 2), 78);
}

}  // namespace
}  // namespace msgsdk::native
