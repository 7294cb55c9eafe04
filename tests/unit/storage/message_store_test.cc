#include "backends/native/storage/message_store.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

#include "unit/storage/storage_test_util.h"

namespace msgsdk::native {
namespace {

using testing::AppendSync;
using testing::AppendTracker;
using testing::MakeMessage;
using testing::ReadQueue;
using testing::TempDir;

StoreOptions Options(const std::filesystem::path& dir, FlushMode mode = FlushMode::kGroupCommit) {
  StoreOptions options;
  options.data_dir = dir;
  options.flush_mode = mode;
  options.flush_interval = std::chrono::milliseconds(10);
  options.default_queues = 4;
  return options;
}

std::unique_ptr<MessageStore> OpenStore(const StoreOptions& options) {
  auto store = MessageStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(TagHashTest, IsFnv1a64) {
  EXPECT_EQ(TagHash(""), 0xCBF29CE484222325ull);
  EXPECT_EQ(TagHash("a"), 0xAF63DC4C8601EC8Cull);
  EXPECT_EQ(TagHash("foobar"), 0x85944171F73967E8ull);
}

TEST(MessageStoreTest, AppendBatchAppendsEachInOrderAndFailsOnlyTheBadOnes) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.max_message_bytes = 100;
  auto store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());
  // Fields are views: what they point at must live until AppendBatch returns.
  const std::vector<std::string> bodies = {"a", "b", std::string(101, 'x'), "c", "d"};
  const std::vector<int32_t> queues = {0, 1, 0, 0, 7};
  AppendTracker tracker;
  std::vector<MessageStore::AppendRequest> requests(bodies.size());
  for (size_t i = 0; i < bodies.size(); ++i) {
    requests[i].queue = queues[i];
    requests[i].fields = RecordFields{.topic = "t", .tag = "g", .body = bodies[i]};
    requests[i].done = tracker.Callback(i);
  }
  store->AppendBatch(requests);
  ASSERT_TRUE(tracker.Wait(bodies.size()));
  ASSERT_TRUE(tracker.result(0).ok());
  EXPECT_EQ(tracker.result(0)->queue_offset, 0);
  ASSERT_TRUE(tracker.result(1).ok());
  EXPECT_EQ(tracker.result(1)->queue, 1);
  EXPECT_EQ(tracker.result(2).status().code(), StatusCode::kInvalidArgument);  // the body
  ASSERT_TRUE(tracker.result(3).ok());
  EXPECT_EQ(tracker.result(3)->queue_offset, 1);
  EXPECT_EQ(tracker.result(4).status().code(), StatusCode::kInvalidArgument);  // the queue
  const std::vector<Message> queue0 = ReadQueue(*store, "t", 0);
  ASSERT_EQ(queue0.size(), 2u);
  EXPECT_EQ(queue0[0].body, "a");
  EXPECT_EQ(queue0[0].tag, "g");
  EXPECT_EQ(queue0[1].body, "c");

  // After Close, every one fails at once.
  ASSERT_TRUE(store->Close().ok());
  AppendTracker closed;
  for (size_t i = 0; i < requests.size(); ++i) requests[i].done = closed.Callback(i);
  store->AppendBatch(requests);
  ASSERT_EQ(closed.done(), requests.size());
  EXPECT_EQ(closed.result(0).status().code(), StatusCode::kFailedPrecondition);
}

TEST(MessageStoreTest, RoundTripsEveryField) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  auto topic = store->GetOrCreateTopic("orders");
  ASSERT_TRUE(topic.ok());
  EXPECT_EQ(topic->queues, 4);

  Message m;
  m.topic = "orders";
  m.key = "order-42";
  m.tag = "created";
  m.properties = {{"trace-id", "t-1"}, {"bin", std::string("\0\xFF", 2)}};
  m.body = std::string("body\0bytes", 10);
  m.deliver_at = Timestamp(std::chrono::nanoseconds(1800000000123456789));
  m.message_id = "0190f0e1a2b3c4d5e6f708192a3b4c5d";
  m.born_at = Timestamp(std::chrono::nanoseconds(1700000000987654321));
  const auto before =
      std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  auto appended = AppendSync(*store, 2, m);
  ASSERT_TRUE(appended.ok()) << appended.status().ToString();
  EXPECT_EQ(appended->queue, 2);
  EXPECT_EQ(appended->queue_offset, 0);
  EXPECT_EQ(appended->commit_log_offset, 0);
  EXPECT_GE(appended->stored_at, before);

  auto read = store->Read("orders", 2, 0, 10, 1 << 20, {});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->messages.size(), 1u);
  const Message& out = read->messages[0];
  EXPECT_EQ(out.topic, m.topic);
  EXPECT_EQ(out.key, m.key);
  EXPECT_EQ(out.tag, m.tag);
  EXPECT_EQ(out.properties, m.properties);
  EXPECT_EQ(out.body, m.body);
  EXPECT_EQ(out.deliver_at, m.deliver_at);
  EXPECT_EQ(out.message_id, m.message_id);
  EXPECT_EQ(out.born_at, m.born_at);
  EXPECT_EQ(out.stored_at, appended->stored_at);
  EXPECT_EQ(out.partition, 2);
  EXPECT_EQ(out.offset, 0);
  EXPECT_EQ(read->next_offset, 1);
  EXPECT_EQ(read->max_offset, 1);
  EXPECT_EQ(store->MaxOffset("orders", 2), 1);
  EXPECT_EQ(store->MinOffset("orders", 2), 0);
  EXPECT_EQ(store->MaxOffset("orders", 1), 0);
  ASSERT_TRUE(store->Close().ok());
}

TEST(MessageStoreTest, QueueOffsetsAreDensePerQueue) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path(), FlushMode::kPeriodic));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 3).ok());
  AppendTracker tracker;
  constexpr int kCount = 3000;
  for (int i = 0; i < kCount; ++i) {
    store->Append(i % 3, MakeMessage("t", std::to_string(i)), tracker.Callback(i));
  }
  ASSERT_TRUE(tracker.Wait(kCount));
  std::vector<std::set<int64_t>> offsets(3);
  int64_t previous_log_offset = -1;
  for (int i = 0; i < kCount; ++i) {
    auto r = tracker.result(i);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->queue, i % 3);
    EXPECT_EQ(r->queue_offset, i / 3) << "appends to one queue keep their order";
    EXPECT_GT(r->commit_log_offset, previous_log_offset);
    previous_log_offset = r->commit_log_offset;
    offsets[i % 3].insert(r->queue_offset);
  }
  for (int q = 0; q < 3; ++q) {
    EXPECT_EQ(offsets[q].size(), static_cast<size_t>(kCount / 3));
    EXPECT_EQ(store->MaxOffset("t", q), kCount / 3);
    const auto messages = ReadQueue(*store, "t", q);
    ASSERT_EQ(messages.size(), static_cast<size_t>(kCount / 3));
    for (size_t i = 0; i < messages.size(); ++i) {
      EXPECT_EQ(messages[i].offset, static_cast<int64_t>(i));
      EXPECT_EQ(messages[i].body, std::to_string(i * 3 + q));
    }
  }
}

TEST(MessageStoreTest, RollsSegmentsAndReadsAcrossThem) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.segment_bytes = 4096;
  {
    auto store = OpenStore(options);
    ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());
    AppendTracker tracker;
    for (int i = 0; i < 200; ++i) {
      store->Append(i % 2, MakeMessage("t", std::string(150, static_cast<char>('a' + i % 26))),
                    tracker.Callback(i));
    }
    ASSERT_TRUE(tracker.Wait(200));
    const auto segments = testing::SortedFiles(dir.path() / "commitlog");
    ASSERT_GT(segments.size(), 5u);
    // Each segment is named by the global offset of its first record, which follows the
    // previous segment exactly, and none exceeds segment_bytes.
    int64_t expected_base = 0;
    for (const auto& segment : segments) {
      EXPECT_EQ(segment.filename().native().size(), 20u);
      EXPECT_EQ(std::stoll(segment.filename().native()), expected_base);
      const auto size = static_cast<int64_t>(std::filesystem::file_size(segment));
      EXPECT_LE(size, 4096);
      expected_base += size;
    }
    for (int i = 0; i < 200; ++i) {
      const auto r = tracker.result(i);
      ASSERT_TRUE(r.ok());
    }
    for (int q = 0; q < 2; ++q) EXPECT_EQ(ReadQueue(*store, "t", q, 0, 7).size(), 100u);
  }
  auto store = OpenStore(options);
  for (int q = 0; q < 2; ++q) {
    const auto messages = ReadQueue(*store, "t", q, 0, 1000);
    ASSERT_EQ(messages.size(), 100u);
    for (size_t i = 0; i < messages.size(); ++i) {
      EXPECT_EQ(messages[i].body, std::string(150, 'a' + (i * 2 + q) % 26));
    }
  }
}

TEST(MessageStoreTest, ARecordLargerThanASegmentGetsASegmentOfItsOwn) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.segment_bytes = 1024;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", "small")).ok());
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", std::string(5000, 'L'))).ok());
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", "after")).ok());
  const auto messages = ReadQueue(*store, "t", 0);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[1].body.size(), 5000u);
  EXPECT_EQ(messages[2].body, "after");
  EXPECT_EQ(testing::SortedFiles(dir.path() / "commitlog").size(), 3u);
}

TEST(MessageStoreTest, LargeBatchesAreWrittenInChunks) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path(), FlushMode::kPeriodic));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  AppendTracker tracker;
  constexpr int kCount = 3000;
  const std::string body(4000, 'b');
  for (int i = 0; i < kCount; ++i) {
    store->Append(0, MakeMessage("t", body + std::to_string(i)), tracker.Callback(i));
  }
  ASSERT_TRUE(tracker.Wait(kCount));
  const auto messages = ReadQueue(*store, "t", 0, 0, 500);
  ASSERT_EQ(messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; i += 97) EXPECT_EQ(messages[i].body, body + std::to_string(i));
}

TEST(MessageStoreTest, ReadHonoursLimitsAndBounds) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", std::string(100, 'x'))).ok());
  }
  auto r = store->Read("t", 0, 2, 3, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0].offset, 2);
  EXPECT_EQ(r->next_offset, 5);
  EXPECT_EQ(r->max_offset, 10);

  r = store->Read("t", 0, 0, 100, 250, {});  // about 250 bytes: stops once reached
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->messages.size(), 1u);
  EXPECT_LT(r->messages.size(), 10u);

  r = store->Read("t", 0, 0, 100, 1, {});  // always at least one message
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 1u);

  r = store->Read("t", 0, 10, 5, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->messages.empty());
  EXPECT_EQ(r->next_offset, 10);
  r = store->Read("t", 0, 50, 5, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->messages.empty());
  EXPECT_EQ(r->next_offset, 10);
  r = store->Read("t", 0, -5, 1, 1 << 20, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.at(0).offset, 0);

  EXPECT_EQ(store->Read("nope", 0, 0, 1, 1, {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->Read("t", 1, 0, 1, 1, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Read("t", 0, 0, 0, 1, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(MessageStoreTest, FiltersByTagHashUsingTheIndex) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.index_entries_per_file = 8;  // filtering crosses index files
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  const std::vector<std::string> tags = {"created", "paid", "shipped", ""};
  AppendTracker tracker;
  for (int i = 0; i < 100; ++i) {
    store->Append(0, MakeMessage("t", std::to_string(i), tags[i % 4]), tracker.Callback(i));
  }
  ASSERT_TRUE(tracker.Wait(100));

  auto r = store->Read("t", 0, 0, 1000, 1 << 20, {TagHash("paid")});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 25u);
  for (const Message& m : r->messages) EXPECT_EQ(m.tag, "paid");
  EXPECT_EQ(r->next_offset, 100);

  r = store->Read("t", 0, 0, 1000, 1 << 20, {TagHash("created"), TagHash("shipped")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->messages.size(), 50u);

  // max_messages counts matches; next_offset moves past the skipped ones.
  r = store->Read("t", 0, 0, 2, 1 << 20, {TagHash("shipped")});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].offset, 2);
  EXPECT_EQ(r->messages[1].offset, 6);
  EXPECT_EQ(r->next_offset, 7);

  r = store->Read("t", 0, 0, 10, 1 << 20, {TagHash("absent")});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->messages.empty());
  EXPECT_EQ(r->next_offset, 100);
}

TEST(MessageStoreTest, OffsetForTimestamp) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.index_entries_per_file = 4;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  std::vector<Timestamp> stored;
  for (int i = 0; i < 10; ++i) {
    // Each append in its own millisecond, waited for on the clock itself.
    const auto start = std::chrono::system_clock::now();
    while (std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()) <=
           std::chrono::floor<std::chrono::milliseconds>(start)) {
    }
    auto r = AppendSync(*store, 0, MakeMessage("t", std::to_string(i)));
    ASSERT_TRUE(r.ok());
    stored.push_back(r->stored_at);
  }
  for (int i = 0; i < 10; ++i) {
    auto offset = store->OffsetForTimestamp("t", 0, stored[i]);
    ASSERT_TRUE(offset.ok());
    EXPECT_EQ(*offset, i);
    if (i > 0) {
      // Just after the previous message's store time: this message.
      offset = store->OffsetForTimestamp("t", 0, stored[i - 1] + std::chrono::microseconds(1));
      EXPECT_EQ(*offset, i);
    }
  }
  EXPECT_EQ(*store->OffsetForTimestamp("t", 0, Timestamp{}), 0);
  EXPECT_EQ(*store->OffsetForTimestamp("t", 0, stored.back() + std::chrono::hours(1)), 10);
  EXPECT_EQ(store->OffsetForTimestamp("missing", 0, Timestamp{}).status().code(),
            StatusCode::kNotFound);
}

TEST(MessageStoreTest, TopicsArePersistedAndValidated) {
  TempDir dir;
  {
    auto store = OpenStore(Options(dir.path()));
    EXPECT_EQ(store->GetOrCreateTopic("a", 2)->queues, 2);
    EXPECT_EQ(store->GetOrCreateTopic("b")->queues, 4);
    EXPECT_EQ(store->GetOrCreateTopic("a", 9)->queues, 2) << "an existing topic keeps its queues";
    EXPECT_EQ(store->GetOrCreateTopic("x/y").status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store->GetOrCreateTopic(".hidden").status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store->GetOrCreateTopic("c", -1).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(store->GetOrCreateTopic("c", 100000).status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(store->FindTopic("c").has_value());
  }
  auto store = OpenStore(Options(dir.path()));
  const auto topics = store->ListTopics();
  ASSERT_EQ(topics.size(), 2u);
  EXPECT_EQ(topics[0].name, "a");
  EXPECT_EQ(topics[0].queues, 2);
  EXPECT_EQ(topics[1].name, "b");
  EXPECT_EQ(store->FindTopic("b")->queues, 4);
}

TEST(MessageStoreTest, AppendErrorsAreReportedThroughTheCallback) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.max_message_bytes = 1024;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());

  auto r = AppendSync(*store, 0, MakeMessage("t", std::string(1025, 'x')));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("max_message_bytes"), std::string::npos);
  EXPECT_TRUE(AppendSync(*store, 0, MakeMessage("t", std::string(1024, 'x'))).ok());

  r = AppendSync(*store, 0, MakeMessage("unknown", "x"));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("'unknown'"), std::string::npos);
  r = AppendSync(*store, 2, MakeMessage("t", "x"));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);

  // A refused append takes no queue offset.
  r = AppendSync(*store, 0, MakeMessage("t", "next"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->queue_offset, 1);
}

TEST(MessageStoreTest, RefusedAppendsInABatchLeaveTheOthersIntact) {
  TempDir dir;
  StoreOptions options = Options(dir.path(), FlushMode::kPeriodic);
  options.max_message_bytes = 100;
  options.segment_bytes = 8192;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  AppendTracker tracker;
  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i) {
    if (i % 7 == 3) {
      store->Append(0, MakeMessage("missing", "x"), tracker.Callback(i));
    } else if (i % 7 == 5) {
      store->Append(0, MakeMessage("t", std::string(101, 'x')), tracker.Callback(i));
    } else {
      store->Append(0, MakeMessage("t", std::to_string(i)), tracker.Callback(i));
    }
  }
  ASSERT_TRUE(tracker.Wait(kCount));
  std::vector<std::string> expected;
  for (int i = 0; i < kCount; ++i) {
    const auto r = tracker.result(i);
    if (i % 7 == 3 || i % 7 == 5) {
      EXPECT_FALSE(r.ok());
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->queue_offset, static_cast<int64_t>(expected.size()));
    expected.push_back(std::to_string(i));
  }
  std::vector<std::string> bodies;
  for (const Message& m : ReadQueue(*store, "t", 0)) bodies.push_back(m.body);
  EXPECT_EQ(bodies, expected);
}

TEST(MessageStoreTest, CallbacksRunOnTheWriterThread) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  std::thread::id callback_thread;
  AppendTracker tracker;
  store->Append(0, MakeMessage("t", "x"), [&](Result<AppendResult> r) {
    callback_thread = std::this_thread::get_id();
    tracker.Callback(0)(std::move(r));
  });
  ASSERT_TRUE(tracker.Wait(1));
  EXPECT_NE(callback_thread, std::this_thread::get_id());
}

// One AppendBatch of `body` to queue 0 of "t"; the thread its callback ran on.
std::thread::id AppendOneAndWait(MessageStore& store, const std::string& body, int queue = 0) {
  std::vector<MessageStore::AppendRequest> requests(1);
  requests[0].queue = queue;
  requests[0].fields = RecordFields{.topic = "t", .body = body};
  AppendTracker tracker;
  std::thread::id ran_on;
  requests[0].done = [&, callback = tracker.Callback(0)](Result<AppendResult> r) {
    ran_on = std::this_thread::get_id();
    callback(std::move(r));
  };
  store.AppendBatch(requests);
  EXPECT_TRUE(tracker.Wait(1));
  EXPECT_TRUE(tracker.result(0).ok()) << tracker.result(0).status().ToString();
  return ran_on;
}

// append_on_caller_when_idle: a batch that finds the writer idle is written, and made
// readable, on the calling thread. In periodic mode it is answered there too; in group-commit
// mode the syncer answers it after its fdatasync, so the caller never waits for the disk.
TEST(MessageStoreTest, AnIdleWriterLetsTheCallerWrite) {
  for (const FlushMode mode : {FlushMode::kPeriodic, FlushMode::kGroupCommit}) {
    SCOPED_TRACE(mode == FlushMode::kPeriodic ? "periodic" : "group commit");
    TempDir dir;
    StoreOptions options = Options(dir.path(), mode);
    options.append_on_caller_when_idle = true;
    std::atomic<int> published_on_caller{0};
    const std::thread::id caller = std::this_thread::get_id();
    options.on_published = [&] {
      if (std::this_thread::get_id() == caller) published_on_caller.fetch_add(1);
    };
    auto store = OpenStore(options);
    ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
    // The writer is idle once it has written a batch and gone back to waiting: some append
    // soon finds it so.
    int appended = 0;
    int answered_on_caller = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((published_on_caller.load() == 0 || appended < 200) &&
           std::chrono::steady_clock::now() < deadline) {
      if (AppendOneAndWait(*store, std::to_string(appended++)) == caller) ++answered_on_caller;
    }
    EXPECT_GT(published_on_caller.load(), 0)
        << "no append of " << appended << " was written by its caller";
    if (mode == FlushMode::kPeriodic) {
      EXPECT_GT(answered_on_caller, 0);
    } else {
      EXPECT_EQ(answered_on_caller, 0) << "a caller waited for the disk";
    }
    const std::vector<Message> messages = ReadQueue(*store, "t", 0);
    ASSERT_EQ(messages.size(), static_cast<size_t>(appended));
    for (int i = 0; i < appended; ++i) EXPECT_EQ(messages[i].body, std::to_string(i));
  }
}

// Callers writing in the writer's stead and the writer itself take turns: every append is
// answered once, each producer's order holds in its queue, and all of it is there after a
// reopen, with appends still coming in when Close starts.
TEST(MessageStoreTest, CallersAndTheWriterTakeTurnsWithoutLosingOrder) {
  TempDir dir;
  StoreOptions options = Options(dir.path(), FlushMode::kPeriodic);
  options.append_on_caller_when_idle = true;
  options.segment_bytes = 64 << 10;  // rolls too, on whichever thread writes
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 3000;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", kProducers).ok());
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::atomic<int> on_callers{0};
  std::vector<int> appended(kProducers, 0);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<std::string> bodies;
      std::vector<MessageStore::AppendRequest> requests;
      int i = 0;
      while (i < kPerProducer) {
        // Batches of 1 to 3, as a broker's produce requests come.
        const int n = std::min(1 + i % 3, kPerProducer - i);
        bodies.clear();
        for (int k = 0; k < n; ++k) bodies.push_back(std::to_string(i + k));
        requests.assign(static_cast<size_t>(n), {});
        for (int k = 0; k < n; ++k) {
          requests[k].queue = p;
          requests[k].fields = RecordFields{.topic = "t", .body = bodies[k]};
          requests[k].done = [&, caller = std::this_thread::get_id()](Result<AppendResult> r) {
            if (!r.ok()) failed.fetch_add(1);
            if (std::this_thread::get_id() == caller) on_callers.fetch_add(1);
            answered.fetch_add(1);
          };
        }
        store->AppendBatch(requests);
        i += n;
      }
      // On a loaded machine the writer may have been busy whenever those came in. Then one
      // append at a time, each waited for, until a caller has written in the writer's stead.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (on_callers.load() == 0 && std::chrono::steady_clock::now() < deadline) {
        if (AppendOneAndWait(*store, std::to_string(i++), p) == std::this_thread::get_id()) {
          on_callers.fetch_add(1);
        }
        answered.fetch_add(1);
      }
      appended[p] = i;
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(store->Close().ok());  // completes every append
  int total = 0;
  for (int count : appended) total += count;
  EXPECT_EQ(answered.load(), total);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(on_callers.load(), 0) << "no caller ever wrote in the writer's stead";
  auto reopened = OpenStore(options);
  for (int q = 0; q < kProducers; ++q) {
    const std::vector<Message> messages = ReadQueue(*reopened, "t", q, 0, 100000);
    ASSERT_EQ(messages.size(), static_cast<size_t>(appended[q]));
    for (int i = 0; i < appended[q]; ++i) ASSERT_EQ(messages[i].body, std::to_string(i));
  }
}

class FlushModeTest : public ::testing::TestWithParam<FlushMode> {};

TEST_P(FlushModeTest, AcknowledgedAppendsAreReadableAndSurviveReopen) {
  TempDir dir;
  const StoreOptions options = Options(dir.path(), GetParam());
  constexpr int kCount = 2000;
  {
    auto store = OpenStore(options);
    ASSERT_TRUE(store->GetOrCreateTopic("t", 4).ok());
    AppendTracker tracker;
    // Several producers at once: group commit shares syncs between them.
    std::vector<std::thread> producers;
    producers.reserve(4);
    for (int p = 0; p < 4; ++p) {
      producers.emplace_back([&, p] {
        for (int i = p; i < kCount; i += 4) {
          store->Append(p, MakeMessage("t", std::to_string(i)), tracker.Callback(i));
        }
      });
    }
    for (auto& t : producers) t.join();
    ASSERT_TRUE(tracker.Wait(kCount));
    for (int i = 0; i < kCount; ++i) ASSERT_TRUE(tracker.result(i).ok());
    int64_t total = 0;
    for (int q = 0; q < 4; ++q) total += static_cast<int64_t>(ReadQueue(*store, "t", q).size());
    EXPECT_EQ(total, kCount);
  }
  auto store = OpenStore(options);
  for (int q = 0; q < 4; ++q) {
    const auto messages = ReadQueue(*store, "t", q);
    ASSERT_EQ(messages.size(), static_cast<size_t>(kCount / 4));
    for (size_t i = 0; i < messages.size(); ++i) {
      EXPECT_EQ(messages[i].body, std::to_string(q + 4 * i));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FlushModeTest,
                         ::testing::Values(FlushMode::kGroupCommit, FlushMode::kPeriodic),
                         [](const auto& info) {
                           return info.param == FlushMode::kGroupCommit ? "GroupCommit"
                                                                        : "Periodic";
                         });

// Pages of `path` in [0, bytes) that are in the page cache.
size_t ResidentPages(const std::filesystem::path& path, size_t bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((bytes + page - 1) / page);
  size_t count = 0;
  if (::mincore(map, bytes, resident.data()) == 0) {
    for (unsigned char r : resident) count += r & 1u;
  }
  ::munmap(map, bytes);
  return count;
}

TEST_P(FlushModeTest, LogCacheLimitDropsOldPagesAndOldMessagesStayReadable) {
  TempDir dir;
  StoreOptions options = Options(dir.path(), GetParam());
  options.log_cache_bytes = 1u << 20;
  auto store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  constexpr int kCount = 4096;  // about 8 MiB of records
  auto body = [](int i) {
    return std::to_string(i) + ":" + std::string(2000, static_cast<char>('a' + i % 26));
  };
  AppendTracker tracker;
  for (int i = 0; i < kCount; ++i) {
    store->Append(0, MakeMessage("t", body(i)), tracker.Callback(static_cast<size_t>(i)));
    if (i == 200) {
      // A reader maps the first pages; they must go too, and be read again afterwards.
      ASSERT_TRUE(tracker.Wait(201));
      ASSERT_EQ(ReadQueue(*store, "t", 0).size(), 201u);
    }
  }
  ASSERT_TRUE(tracker.Wait(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(tracker.result(static_cast<size_t>(i)).ok());

  const auto segments = testing::SortedFiles(dir.path() / "commitlog");
  ASSERT_EQ(segments.size(), 1u);
  struct statfs fs;
  ASSERT_EQ(::statfs(segments[0].c_str(), &fs), 0);
  if (fs.f_type != TMPFS_MAGIC) {  // tmpfs keeps its pages whatever we advise
    // The first 4 MiB lie more than the 1 MiB kept behind the end (periodic mode: the pages
    // are dropped once written back, which the drop itself starts). Dropping is advice: the
    // kernel may keep a folio (2 MiB ones here) it was told to drop, for instance one still
    // under writeback. So the test writes a bounded amount while it waits for most of them
    // to go (each append wakes the thread that drops pages once per step of the log), and
    // asks that some did: without the limit, on a machine with memory to spare, all stay.
    constexpr size_t kOld = 4u << 20;
    const size_t old_pages = kOld / static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size_t resident = ResidentPages(segments[0], kOld);
    for (int padding_appends = 0; resident > old_pages / 4 && padding_appends < 64;
         ++padding_appends) {
      Message padding = MakeMessage("t", "padding");
      padding.body.assign(300000, 'z');
      const Result<AppendResult> appended = AppendSync(*store, 0, std::move(padding));
      ASSERT_TRUE(appended.ok()) << appended.status().ToString();
      resident = ResidentPages(segments[0], kOld);
    }
    EXPECT_LT(resident, old_pages);
  }
  const auto messages = ReadQueue(*store, "t", 0);
  ASSERT_GE(messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(messages[static_cast<size_t>(i)].body, body(i));
}

// Group commit with concurrent producers: appends complete in the order they were written,
// also across segment rolls (each of which cuts the zero fill back), and all survive a reopen.
TEST(MessageStoreTest, GroupCommitCompletesAppendsInLogOrderAcrossRolls) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.segment_bytes = 16 << 10;
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 1500;
  auto store = OpenStore(options);
  ASSERT_TRUE(store->GetOrCreateTopic("t", kProducers).ok());
  std::mutex mu;
  std::vector<int64_t> completed;  // commit-log offsets, in completion order
  int failures = 0;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        store->Append(p, MakeMessage("t", std::string(100, 'x')), [&](Result<AppendResult> r) {
          std::lock_guard lock(mu);
          if (r.ok()) {
            completed.push_back(r->commit_log_offset);
          } else {
            ++failures;
          }
        });
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(store->Close().ok());  // completes every append
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(completed.size(), static_cast<size_t>(kProducers * kPerProducer));
  EXPECT_TRUE(std::is_sorted(completed.begin(), completed.end()));
  EXPECT_GT(testing::SortedFiles(dir.path() / "commitlog").size(), 10u);
  auto reopened = OpenStore(options);
  for (int q = 0; q < kProducers; ++q) {
    EXPECT_EQ(ReadQueue(*reopened, "t", q, 0, 100000).size(), static_cast<size_t>(kPerProducer));
  }
}

TEST(MessageStoreTest, CloseCompletesPendingAppendsAndIsIdempotent) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path(), FlushMode::kPeriodic));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  std::atomic<int> ok{0};
  std::atomic<int> calls{0};
  constexpr int kCount = 20000;
  for (int i = 0; i < kCount; ++i) {
    store->Append(0, MakeMessage("t", "x"), [&](const Result<AppendResult>& r) {
      calls.fetch_add(1);
      if (r.ok()) ok.fetch_add(1);
    });
  }
  ASSERT_TRUE(store->Close().ok());
  EXPECT_EQ(calls.load(), kCount);
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_TRUE(store->Close().ok());

  Status after;
  store->Append(0, MakeMessage("t", "late"),
                [&](const Result<AppendResult>& r) { after = r.status(); });
  EXPECT_EQ(after.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Read("t", 0, 0, 1, 1, {}).status().code(), StatusCode::kFailedPrecondition);
  store.reset();

  // The lock is released: the directory opens again, with everything in it.
  auto reopened = OpenStore(Options(dir.path()));
  EXPECT_EQ(reopened->MaxOffset("t", 0), kCount);
}

TEST(MessageStoreTest, CallbacksMayAppend) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  ASSERT_TRUE(store->GetOrCreateTopic("dlq", 1).ok());
  AppendTracker tracker;
  store->Append(0, MakeMessage("t", "first"), [&](const Result<AppendResult>& r) {
    ASSERT_TRUE(r.ok());
    store->Append(0, MakeMessage("dlq", "second"), tracker.Callback(0));
  });
  ASSERT_TRUE(tracker.Wait(1));
  EXPECT_TRUE(tracker.result(0).ok());
  EXPECT_EQ(store->MaxOffset("dlq", 0), 1);
}

TEST(MessageStoreTest, WaitForDataWakesOnAppendAndTimesOut) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 2).ok());

  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(store->WaitForData("t", 0, 0, start + std::chrono::milliseconds(30)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));

  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    woke =
        store->WaitForData("t", 0, 0, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  });
  ASSERT_TRUE(AppendSync(*store, 1, MakeMessage("t", "other queue")).ok());
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("t", "this queue")).ok());
  waiter.join();
  EXPECT_TRUE(woke.load());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  // Data already there: no wait. A topic created while waiting is picked up.
  EXPECT_TRUE(store->WaitForData("t", 0, 0, std::chrono::steady_clock::now()));
  std::thread late_waiter([&] {
    woke = store->WaitForData("late", 0, 0,
                              std::chrono::steady_clock::now() + std::chrono::seconds(30));
  });
  ASSERT_TRUE(store->GetOrCreateTopic("late", 1).ok());
  ASSERT_TRUE(AppendSync(*store, 0, MakeMessage("late", "x")).ok());
  late_waiter.join();
  EXPECT_TRUE(woke.load());
}

TEST(MessageStoreTest, CloseWakesWaiters) {
  TempDir dir;
  auto store = OpenStore(Options(dir.path()));
  ASSERT_TRUE(store->GetOrCreateTopic("t", 1).ok());
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    EXPECT_FALSE(
        store->WaitForData("t", 0, 0, std::chrono::steady_clock::now() + std::chrono::seconds(60)));
    returned = true;
  });
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->Close().ok());
  waiter.join();
  EXPECT_TRUE(returned.load());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(MessageStoreTest, ConsumerOffsetsPersistAcrossReopen) {
  TempDir dir;
  {
    auto store = OpenStore(Options(dir.path()));
    ASSERT_TRUE(store->CommitOffset("billing", "orders", 3, 17).ok());
    ASSERT_TRUE(store->CommitOffset("billing@m1", "orders", 0, 4).ok());
    ASSERT_TRUE(store->CommitOffset("billing", "orders", 3, 18).ok());
    EXPECT_EQ(store->CommittedOffset("billing", "orders", 3), 18);
    EXPECT_EQ(store->CommittedOffset("shipping", "orders", 3), std::nullopt);
    ASSERT_TRUE(store->FlushOffsets().ok());
    ASSERT_TRUE(store->CommitOffset("late", "orders", 1, 2).ok());  // written by Close
  }
  auto store = OpenStore(Options(dir.path()));
  EXPECT_EQ(store->CommittedOffset("billing", "orders", 3), 18);
  EXPECT_EQ(store->CommittedOffset("billing@m1", "orders", 0), 4);
  EXPECT_EQ(store->CommittedOffset("late", "orders", 1), 2);
  EXPECT_EQ(store->CommitOffset("g", "orders", 0, -3).code(), StatusCode::kInvalidArgument);
}

TEST(MessageStoreTest, LockedDirectoryIsRefused) {
  TempDir dir;
  auto first = OpenStore(Options(dir.path()));
  ASSERT_NE(first, nullptr);
  auto second = MessageStore::Open(Options(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(dir.path().native()), std::string::npos);
  EXPECT_NE(second.status().message().find("locked by another process"), std::string::npos);
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos);
}

TEST(MessageStoreTest, LockHeldByAnotherProcessIsRefusedUntilItExits) {
  TempDir dir;
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(release[1]);
    auto store = MessageStore::Open(Options(dir.path()));
    const char status = store.ok() ? 'y' : 'n';
    if (::write(ready[1], &status, 1) != 1) ::_exit(2);
    char byte;
    // Holds the store until the parent closes its end of the pipe.
    while (::read(release[0], &byte, 1) > 0) {
    }
    if (store.ok()) (*store)->Close().IgnoreError();
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  char status = 0;
  ASSERT_EQ(::read(ready[0], &status, 1), 1);
  ASSERT_EQ(status, 'y');

  auto refused = MessageStore::Open(Options(dir.path()));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("pid " + std::to_string(child)), std::string::npos)
      << refused.status().ToString();

  ::close(release[1]);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  ::close(ready[0]);
  EXPECT_NE(OpenStore(Options(dir.path())), nullptr);
}

TEST(MessageStoreTest, UncreatableDirectoryIsAClearError) {
  TempDir dir;
  testing::WriteAll(dir.path() / "file", "not a directory");
  const auto data_dir = dir.path() / "file" / "sub";
  auto store = MessageStore::Open(Options(data_dir));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find(data_dir.native()), std::string::npos)
      << store.status().ToString();

  if (::geteuid() != 0) {  // root ignores permission bits
    const auto read_only = dir.path() / "read-only";
    std::filesystem::create_directory(read_only);
    std::filesystem::permissions(
        read_only, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    store = MessageStore::Open(Options(read_only / "data"));
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
    std::filesystem::permissions(read_only, std::filesystem::perms::owner_all);
  }
}

TEST(MessageStoreTest, InvalidOptionsAreRefused) {
  TempDir dir;
  StoreOptions options = Options(dir.path());
  options.segment_bytes = 10;
  EXPECT_EQ(MessageStore::Open(options).status().code(), StatusCode::kInvalidArgument);
  options = Options(dir.path());
  options.index_entries_per_file = 0;
  EXPECT_EQ(MessageStore::Open(options).status().code(), StatusCode::kInvalidArgument);
  options = Options("");
  EXPECT_EQ(MessageStore::Open(options).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace msgsdk::native
