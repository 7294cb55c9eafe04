#include "unit/redis/redis_test_util.h"

#include <atomic>
#include <cstdio>
#include <future>
#include <sstream>

#include <gtest/gtest.h>

#include "backends/redis/redis_options.h"

namespace msgsdk::redis::testing {

void RecordingSink::Deliver(std::vector<core::Delivery> batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!batch.empty()) batch_partitions_.push_back(batch.front().message.partition);
    for (core::Delivery& delivery : batch) deliveries_.push_back(std::move(delivery));
  }
  cv_.notify_all();
}

bool RecordingSink::WaitForCapacity(core::Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return deliveries_.size() - released_ < capacity_; });
}

void RecordingSink::Revoke(const std::vector<int32_t>& partitions) {
  std::lock_guard<std::mutex> lock(mu_);
  revoked_.push_back(partitions);
}

std::vector<core::Delivery> RecordingSink::WaitFor(size_t count,
                                                   std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return deliveries_.size() >= count; });
  return deliveries_;
}

std::vector<core::Delivery> RecordingSink::deliveries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return deliveries_;
}

std::vector<std::vector<int32_t>> RecordingSink::revoked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return revoked_;
}

std::vector<int32_t> RecordingSink::batch_partitions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batch_partitions_;
}

void RecordingSink::set_capacity(size_t capacity) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    capacity_ = capacity;
  }
  cv_.notify_all();
}

void RecordingSink::Release(size_t count) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ += count;
  }
  cv_.notify_all();
}

core::ClusterConfig RedisConfigFor(const std::string& endpoint,
                                   const std::map<std::string, std::string>& extra) {
  core::ClusterConfig config;
  config.name = "redis-test";
  config.backend = "redis";
  config.source = "test";
  for (const core::PropertySpec& spec : RedisPropertyTable()) {
    if (!spec.default_value.empty()) config.properties[spec.name] = spec.default_value;
  }
  config.properties["endpoint"] = endpoint;
  // Short timeouts keep failing tests fast.
  config.properties["connect_timeout_ms"] = "1000";
  config.properties["command_timeout_ms"] = "2000";
  config.properties["block_ms"] = "200";
  for (const auto& [name, value] : extra) config.properties[name] = value;
  return config;
}

core::ClusterConfig RedisConfig(const test::RedisServer& server,
                                const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all = extra;
  if (!server.password().empty() && !all.contains("password")) {
    all["password"] = server.password();
  }
  return RedisConfigFor(server.endpoint(), all);
}

Message MakeMessage(std::string body, std::string key, std::string tag, Properties properties) {
  static std::atomic<uint64_t> counter{0};
  Message message;
  message.body = std::move(body);
  message.key = std::move(key);
  message.tag = std::move(tag);
  message.properties = std::move(properties);
  message.born_at = std::chrono::system_clock::now();
  char id[40];
  std::snprintf(id, sizeof(id), "%016llx%016llx",
                static_cast<unsigned long long>(message.born_at.time_since_epoch().count()),
                static_cast<unsigned long long>(counter.fetch_add(1)));
  message.message_id = std::string(id, 32);
  return message;
}

Result<core::StoredPosition> SendSync(core::BackendProducer& producer, Message message,
                                      std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Result<core::StoredPosition>>>();
  auto future = promise->get_future();
  producer.Send(std::move(message), [promise](const Result<core::StoredPosition>& result) {
    promise->set_value(result);
  });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return DeadlineExceededError("send did not complete in time");
  }
  return future.get();
}

std::string TestTopic() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return name;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace msgsdk::redis::testing
