// Reads the topic "quickstart" as consumer group "quickstart-readers", printing each
// message, until it has seen ten distinct messages (exit 0) or ten seconds passed (exit 1).
//
// Delivery is at-least-once, so a message may arrive twice (after a crash, say); it is
// printed each time but counted once, by its message_id.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

#include "msgsdk/msgsdk.h"

namespace {

constexpr int kExpected = 10;
constexpr auto kTimeout = std::chrono::seconds(10);
constexpr char kTopic[] = "quickstart";
constexpr char kGroup[] = "quickstart-readers";

int Fail(const char* what, const msgsdk::Status& status) {
  std::fprintf(stderr, "quickstart-consumer: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  auto client = msgsdk::Client::Create();
  if (!client.ok()) return Fail("creating the client", client.status());

  // Handlers run on the SDK's consumer threads, possibly several at once.
  std::mutex mu;
  std::condition_variable received;
  std::set<std::string> seen_ids;

  auto subscription = client->Subscribe(kTopic, kGroup, [&](const msgsdk::Message& message) {
    std::lock_guard<std::mutex> lock(mu);
    std::printf("received key=%s body=\"%s\" id=%s partition=%d offset=%lld attempt=%d\n",
                message.key.c_str(), message.body.c_str(), message.message_id.c_str(),
                static_cast<int>(message.partition), static_cast<long long>(message.offset),
                message.delivery_attempt);
    std::fflush(stdout);
    seen_ids.insert(message.message_id);
    received.notify_all();
    return msgsdk::ConsumeResult::kSuccess;
  });
  if (!subscription.ok()) return Fail("subscribing", subscription.status());

  bool complete = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    complete = received.wait_for(lock, kTimeout,
                                 [&] { return static_cast<int>(seen_ids.size()) >= kExpected; });
  }

  // Close before reading the count: no handler runs after this, and what was handled is
  // committed, so a second run of this group does not see these messages again.
  if (msgsdk::Status status = subscription->Close(); !status.ok()) {
    return Fail("closing the subscription", status);
  }
  if (msgsdk::Status status = client->Close(); !status.ok()) {
    return Fail("closing the client", status);
  }

  if (!complete) {
    std::fprintf(stderr,
                 "quickstart-consumer: timed out after %lld s with %zu of %d messages on topic "
                 "'%s' (group '%s')\n",
                 static_cast<long long>(kTimeout.count()), seen_ids.size(), kExpected, kTopic,
                 kGroup);
    return 1;
  }
  std::printf("received %zu messages from topic '%s' as group '%s'\n", seen_ids.size(), kTopic,
              kGroup);
  return 0;
}
