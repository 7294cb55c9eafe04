// Sends numbered messages to the topic in argv[1] one at a time, printing each acknowledged
// message id on its own line, until killed. Used by the conformance suite's crash test.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "msgsdk/msgsdk.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TOPIC (routing table in MSGSDK_CHILD_CONFIG_YAML)\n", argv[0]);
    return 2;
  }
  const char* yaml = std::getenv("MSGSDK_CHILD_CONFIG_YAML");
  auto client = msgsdk::Client::Create(
      {.config_yaml = yaml != nullptr ? yaml : "", .environment = "conformance"});
  if (!client.ok()) {
    std::fprintf(stderr, "child: %s\n", client.status().ToString().c_str());
    return 1;
  }
  auto producer = client->CreateProducer(argv[1]);
  if (!producer.ok()) {
    std::fprintf(stderr, "child: %s\n", producer.status().ToString().c_str());
    return 1;
  }
  for (long i = 0;; ++i) {
    auto receipt = producer->Send({.key = std::to_string(i % 13), .body = std::to_string(i)});
    if (!receipt.ok()) {
      std::fprintf(stderr, "child: %s\n", receipt.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n", receipt->message_id.c_str());
    std::fflush(stdout);
  }
}
