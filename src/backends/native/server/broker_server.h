#pragma once

// The network front of the native broker: msgsdk-broker's TCP server. It serves the protocol
// of protocol/frame.h over the same Broker (storage engine, group coordinator) as embedded
// mode.
//
// Threads: one I/O thread runs every connection (reads, request handling, writes), so no
// request handler blocks: produce requests complete from the store's writer thread once
// durable (per the flush mode), and a fetch that finds nothing is parked and answered when
// data arrives on its topic or its wait ends. A connection that sends a bad frame is closed
// with its reason logged; no other connection notices.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "backends/native/broker/broker.h"
#include "msgsdk/result.h"

namespace msgsdk::native::server {

struct ServerOptions {
  // "host:port"; port 0 picks a free port (see BrokerServer::endpoint).
  std::string listen = "127.0.0.1:9876";
  // The storage engine and the groups (data directory, flush mode, queues per new topic,
  // maximum message size).
  BrokerOptions broker;
  // Largest frame body accepted from a client; a larger one closes the connection.
  uint32_t max_frame_bytes = 64u << 20;
  // A client that stops reading its responses: once this much output is queued the
  // connection stops reading requests, and if none of it can be written for
  // write_stall_timeout the connection is closed.
  size_t max_pending_output_bytes = 64u << 20;
  std::chrono::milliseconds write_stall_timeout{30000};
  // Bounds of what clients may ask for.
  std::chrono::milliseconds max_fetch_wait{60000};
  std::chrono::milliseconds min_session_timeout{100};
  std::chrono::milliseconds max_session_timeout{300000};
};

class BrokerServer {
 public:
  // Opens the broker (recovering its data directory), binds the listening socket and starts
  // serving. kInvalidArgument for a malformed listen address, kUnavailable if it cannot be
  // bound, or the broker's own errors.
  static Result<std::unique_ptr<BrokerServer>> Start(ServerOptions options);
  ~BrokerServer();
  BrokerServer(const BrokerServer&) = delete;
  BrokerServer& operator=(const BrokerServer&) = delete;

  // The bound address, "host:port" (the real port when 0 was asked for).
  std::string endpoint() const;

  // Graceful stop: stops accepting and reading, answers parked fetches with what they have,
  // lets in-flight requests (sends waiting for their flush) complete and their responses be
  // written, then closes every connection and the broker (flushing the log and the offsets).
  // Connections still busy after `timeout` are cut. Idempotent.
  Status Shutdown(std::chrono::milliseconds timeout);

  class Impl;

 private:
  explicit BrokerServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace msgsdk::native::server
