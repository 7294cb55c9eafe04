// Sends ten messages to the topic "quickstart".
//
// With no configuration (no MSGSDK_CONFIG), the client uses the built-in embedded cluster:
// the messages are stored under MSGSDK_DATA_DIR (default ./msgsdk-data), where
// quickstart-consumer finds them.

#include <cstdio>
#include <string>

#include "msgsdk/msgsdk.h"

namespace {

constexpr int kMessageCount = 10;
constexpr char kTopic[] = "quickstart";

int Fail(const char* what, const msgsdk::Status& status) {
  std::fprintf(stderr, "quickstart-producer: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  auto client = msgsdk::Client::Create();
  if (!client.ok()) return Fail("creating the client", client.status());

  auto producer = client->CreateProducer(kTopic);
  if (!producer.ok()) return Fail("creating the producer", producer.status());

  for (int i = 0; i < kMessageCount; ++i) {
    const std::string n = std::to_string(i);
    auto receipt = producer->Send({.key = "k" + n, .body = "quickstart message " + n});
    if (!receipt.ok()) return Fail("sending", receipt.status());
    std::printf("sent message %d: id=%s cluster=%s partition=%d offset=%lld\n", i,
                receipt->message_id.c_str(), receipt->cluster.c_str(),
                static_cast<int>(receipt->partition), static_cast<long long>(receipt->offset));
  }

  if (msgsdk::Status status = producer->Close(); !status.ok()) {
    return Fail("closing the producer", status);
  }
  if (msgsdk::Status status = client->Close(); !status.ok()) {
    return Fail("closing the client", status);
  }
  std::printf("sent %d messages to topic '%s'\n", kMessageCount, kTopic);
  return 0;
}
