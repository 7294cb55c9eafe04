#include "backends/native/storage/store_metadata.h"

#include <string>

#include "gtest/gtest.h"

#include "backends/native/storage/consume_queue.h"
#include "unit/storage/storage_test_util.h"

namespace msgsdk::native {
namespace {

using testing::TempDir;

TEST(TopicNameTest, RefusesNamesThatAreNotPlainDirectoryNames) {
  EXPECT_TRUE(ValidateTopicName("order-events").ok());
  EXPECT_TRUE(ValidateTopicName("%DLQ%billing").ok());
  for (const std::string& bad :
       std::vector<std::string>{"", "a/b", ".hidden", "..", "tab\there", std::string(256, 'x')}) {
    const Status status = ValidateTopicName(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
  EXPECT_NE(ValidateTopicName("a/b").message().find("'a/b'"), std::string::npos);
}

TEST(TopicsFileTest, RoundTripsAndDetectsDamage) {
  const std::vector<TopicInfo> topics = {{"a", 8}, {"with space", 3}, {"z", 1}};
  const std::string content = EncodeTopics(topics);
  EXPECT_EQ(content.rfind("msgsdk-topics 1\n8 a\n", 0), 0u);
  auto decoded = DecodeTopics(content);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_EQ(decoded->size(), 3u);
  EXPECT_EQ((*decoded)[1].name, "with space");
  EXPECT_EQ((*decoded)[1].queues, 3);

  std::string damaged = content;
  damaged[18] = '9';
  EXPECT_EQ(DecodeTopics(damaged).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTopics(content.substr(0, content.size() - 12)).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTopics("").status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(DecodeTopics(EncodeTopics({})).ok());
}

TEST(CheckpointTest, RoundTripsAndDetectsDamage) {
  IndexCheckpoint checkpoint;
  checkpoint.log_offset = 987654321;
  checkpoint.queue_ends[{"a", 0}] = 10;
  checkpoint.queue_ends[{"b", 7}] = 1LL << 40;
  const std::string content = EncodeCheckpoint(checkpoint);
  auto decoded = DecodeCheckpoint(content);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->log_offset, checkpoint.log_offset);
  EXPECT_EQ(decoded->queue_ends, checkpoint.queue_ends);
  for (size_t i = 0; i < content.size(); i += 5) {
    std::string damaged = content;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x20);
    EXPECT_FALSE(DecodeCheckpoint(damaged).ok()) << "byte " << i;
  }
  EXPECT_FALSE(DecodeCheckpoint(content.substr(0, 10)).ok());
}

TEST(IndexEntryTest, EncodesAndValidates) {
  char slot[kIndexEntrySize] = {};
  IndexEntry entry;
  EXPECT_EQ(ConsumeQueue::DecodeEntry(slot, &entry), EntryState::kCorrupt);  // never written
  const IndexEntry written{1LL << 35, 321, 0xDEADBEEFCAFEF00Dull, 1700000000123};
  ConsumeQueue::EncodeEntry(written, slot);
  ASSERT_EQ(ConsumeQueue::DecodeEntry(slot, &entry), EntryState::kValid);
  EXPECT_EQ(entry.commit_log_offset, written.commit_log_offset);
  EXPECT_EQ(entry.size, written.size);
  EXPECT_EQ(entry.tag_hash, written.tag_hash);
  EXPECT_EQ(entry.stored_at_ms, written.stored_at_ms);
  slot[3] ^= 1;
  EXPECT_EQ(ConsumeQueue::DecodeEntry(slot, &entry), EntryState::kCorrupt);
  ConsumeQueue::EncodeEntry(IndexEntry{5, kLostEntrySize, 0, 1}, slot);
  EXPECT_EQ(ConsumeQueue::DecodeEntry(slot, &entry), EntryState::kLost);
}

}  // namespace
}  // namespace msgsdk::native
