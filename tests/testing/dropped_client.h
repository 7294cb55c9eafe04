#pragma once

// A send whose callback lets go of the last handles of its producer and client, for the tests
// that a callback may do so on every transport.

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <utility>

#include "msgsdk/msgsdk.h"

namespace msgsdk::testing {

// Sends one message through `producer`; its callback, once SendAsync has returned (a handle
// is not destroyed while a call on it is under way), destroys `producer` and `client` and
// reports the send's status. kDeadlineExceeded if the callback did not finish in `timeout`.
inline Status SendFromACallbackThatDropsItsClient(
    Client client, Producer producer, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  auto owned_client = std::make_shared<std::optional<Client>>(std::move(client));
  auto owned_producer = std::make_shared<std::optional<Producer>>(std::move(producer));
  std::promise<void> sent;
  std::shared_future<void> returned = sent.get_future().share();
  auto dropped = std::make_shared<std::promise<Status>>();
  std::future<Status> done = dropped->get_future();
  (*owned_producer)
      ->SendAsync({.body = "x"}, [owned_client, owned_producer, returned, dropped,
                                  timeout](const Result<SendReceipt>& receipt) {
        returned.wait_for(timeout);
        owned_producer->reset();
        owned_client->reset();
        dropped->set_value(receipt.status());
      });
  sent.set_value();
  owned_client.reset();
  owned_producer.reset();
  if (done.wait_for(timeout) != std::future_status::ready) {
    return DeadlineExceededError("the send's callback did not finish dropping its client");
  }
  return done.get();
}

}  // namespace msgsdk::testing
