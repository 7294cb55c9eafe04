#pragma once

// A connection to a msgsdk-broker daemon, shared by every producer and consumer of one native
// cluster. Requests are pipelined: many may be in flight on the connection, answered by
// request id. The connection is made on first use and made again after it breaks, trying the
// endpoints in turn with exponential backoff; requests written to a connection that breaks
// fail with kUnavailable (their outcome is unknown), requests not yet written wait for the
// next connection. Every request has a timeout.
//
// Threads: one I/O thread per client, which reads every response and runs the response
// callbacks; they must not block. A request made while the connection is idle (connected,
// nothing queued or being written) is written by the calling thread itself, without waiting
// for the I/O thread; the others are written by the I/O thread, in the order they were made.
// Thread-safety: all methods may be called concurrently.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/native/protocol/frame.h"
#include "msgsdk/result.h"

namespace msgsdk::native::client {

struct BrokerClientOptions {
  // "host:port", tried in order.
  std::vector<std::string> endpoints;
  std::chrono::milliseconds connect_timeout{3000};
  // Reconnect delays: doubled after every failed attempt, from min up to max.
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{2000};
  // Names the cluster in log lines and error messages.
  std::string cluster;
};

using ResponseCallback = std::function<void(Result<protocol::Frame>)>;

class BrokerClient {
 public:
  // Checks the endpoints (kInvalidArgument naming a malformed one) and starts the I/O thread.
  static Result<std::shared_ptr<BrokerClient>> Create(BrokerClientOptions options);
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  // Sends a request; `done` is called exactly once, on the I/O thread, with the response
  // frame, or kUnavailable (the connection broke after the request was written, or none
  // could be made before the timeout), kDeadlineExceeded (no answer within `timeout`),
  // kFailedPrecondition (the client is closed).
  void Call(protocol::FrameType type, const google::protobuf::MessageLite& request,
            std::chrono::milliseconds timeout, ResponseCallback done);
  // The same with a request encoded by the caller: `frame` starts with kFrameHeaderSize bytes
  // for the header (written here, with the request id), followed by the body.
  void CallWithFrame(protocol::FrameType type, std::string frame, std::chrono::milliseconds timeout,
                     ResponseCallback done);

  // A string whose memory held a frame already written (empty, its capacity kept), or an
  // empty one if there is none: a caller that builds frames builds the next one in it, and
  // so saves allocating, and faulting in, that memory again. Any thread.
  std::string TakeSpareFrame();

  // Hands back the body of a response frame once the caller is done with it: the next large
  // response (a fetch's) is received into its memory, instead of into new memory that must
  // be allocated, zeroed and faulted in. Any thread.
  void RecycleResponseBody(std::string&& body);

  // How many times a connection was lost so far. A change means the broker may have
  // restarted since (and forgotten its group members).
  uint64_t Disconnects() const;

  // Fails every pending request, closes the connection and stops the I/O thread. Idempotent.
  void Close();

  class Impl;

 private:
  explicit BrokerClient(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// A call that a thread waits on, and that another thread can abandon (a consumer that is
// closing stops waiting for its long poll). Thread-safety: all methods may be called
// concurrently.
class PendingCall {
 public:
  // The callback to pass to BrokerClient::Call.
  static ResponseCallback Completer(const std::shared_ptr<PendingCall>& call);
  // The response, or std::nullopt if Abandon was called first.
  std::optional<Result<protocol::Frame>> Wait();
  void Abandon();

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::optional<Result<protocol::Frame>> result_;
  bool abandoned_ = false;
};

// Parses a response frame as `Response` and returns it when its status is OK (the status
// otherwise, or the transport's error).
template <typename Response>
Result<Response> ParseResponse(Result<protocol::Frame> frame) {
  if (!frame.ok()) return frame.status();
  Response response;
  MSGSDK_RETURN_IF_ERROR(protocol::ParseFrameBody(*frame, &response));
  Status status = protocol::FromWire(response.status());
  if (!status.ok()) return status;
  return response;
}

// Call, then wait for the answer and parse it.
template <typename Response>
Result<Response> CallAndWait(BrokerClient& client, protocol::FrameType type,
                             const google::protobuf::MessageLite& request,
                             std::chrono::milliseconds timeout) {
  auto call = std::make_shared<PendingCall>();
  client.Call(type, request, timeout, PendingCall::Completer(call));
  auto frame = call->Wait();
  if (!frame)
    return CancelledError(protocol::FrameTypeName(static_cast<uint8_t>(type)) + " abandoned");
  return ParseResponse<Response>(std::move(*frame));
}

}  // namespace msgsdk::native::client
