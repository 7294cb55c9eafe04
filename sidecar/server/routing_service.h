#pragma once

// The msgsdk.v1.RoutingDiscovery service (sidecar/proto/msgsdk/v1/routing.proto): the routing
// control plane of `msgsdk-sidecar --serve-routing FILE`. It watches FILE, pushes every new valid
// version of it to every connected client at once, and keeps, per client, what it ACKed or
// NACKed. A version that does not validate against the server's backend registry is never
// pushed: it is logged, and the running one keeps being served.
//
// Every stream is one reactor that never blocks a gRPC thread: a push only queues the snapshot
// on each stream (a newer one replaces one not yet written), so a client that stops reading or
// answering holds back its own stream and nothing else.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "core/backend_registry.h"
#include "core/routing/routing_table.h"
#include "core/routing/routing_watcher.h"
#include "msgsdk/result.h"
#include "msgsdk/v1/routing.grpc.pb.h"

namespace msgsdk::sidecar {

class RoutesStream;

// One version as the service pushes it. Immutable.
struct RoutingSnapshotVersion {
  // Orders versions within the service's life: a stream never sends an older one after a newer.
  uint64_t sequence = 0;
  std::string version_info;
  std::string yaml;
  std::string source;
};

// "<version>-<first 12 hex digits of the FNV-1a 64-bit hash of text>".
std::string RoutingVersionInfo(int64_t version, const std::string& text);

class RoutingDiscoveryService final : public v1::RoutingDiscovery::CallbackService {
 public:
  // Disconnected clients kept for ListClients at most; beyond it the longest unseen go first.
  static constexpr size_t kMaxDisconnectedClients = 10000;
  // Nonces a stream remembers: an answer to an older one is stale and ignored.
  static constexpr size_t kRememberedNonces = 16;

  // Reads and validates `path` against `registry` (its errors if it does not validate: a control
  // plane does not start on an invalid table), then watches it every `poll_interval`.
  static Result<std::unique_ptr<RoutingDiscoveryService>> Create(
      std::string path, std::shared_ptr<const core::BackendRegistry> registry,
      std::chrono::milliseconds poll_interval);
  ~RoutingDiscoveryService() override;

  grpc::ServerBidiReactor<v1::RoutingRequest, v1::RoutingSnapshot>* StreamRoutes(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListClients(grpc::CallbackServerContext* context,
                                        const v1::ListClientsRequest* request,
                                        v1::ListClientsResponse* response) override;

  // Shutting down: stops watching, refuses new streams, ends every open one with UNAVAILABLE,
  // and waits, up to `deadline`, until gRPC is done with them.
  void Drain(std::chrono::steady_clock::time_point deadline);

  // The version pushed now.
  std::shared_ptr<const RoutingSnapshotVersion> current() const;
  const std::string& path() const { return path_; }

  // From the streams.
  std::string NextNonce();
  // A stream's first request identified its client: records it and returns the version to send.
  std::shared_ptr<const RoutingSnapshotVersion> Connected(RoutesStream* stream,
                                                          const v1::RoutingRequest& request,
                                                          const std::string& peer);
  // Later requests. Only the newest stream of a client id speaks for it.
  void NodeChanged(RoutesStream* stream, const v1::Node& node);
  void Sent(RoutesStream* stream, const std::string& client_id, const std::string& version_info);
  void Answered(RoutesStream* stream, const std::string& client_id, const std::string& version_info,
                const v1::Status* nack, bool latest);
  void Seen(RoutesStream* stream, const std::string& client_id);
  void StreamDone(RoutesStream* stream, const std::string& client_id);

 private:
  struct ClientRecord {
    v1::ClientStatus status;
    RoutesStream* stream = nullptr;  // its newest stream while connected (identity only)
  };

  RoutingDiscoveryService(std::string path, std::shared_ptr<const core::BackendRegistry> registry);
  // A new valid version of the file: becomes current and goes to every stream.
  void Publish(const std::shared_ptr<const core::RoutingTable>& table, const std::string& text);
  // The record `stream` speaks for, or null (an older stream of a reconnected client).
  ClientRecord* RecordOfLocked(RoutesStream* stream, const std::string& client_id);
  void EvictLocked();

  const std::string path_;
  const std::shared_ptr<const core::BackendRegistry> registry_;
  std::unique_ptr<core::RoutingFileWatcher> watcher_;

  mutable std::mutex mutex_;
  std::condition_variable streams_done_;
  std::shared_ptr<const RoutingSnapshotVersion> current_;
  uint64_t next_nonce_ = 0;
  bool draining_ = false;
  std::set<std::shared_ptr<RoutesStream>> streams_;
  std::map<std::string, ClientRecord> clients_;  // by client id
};

}  // namespace msgsdk::sidecar
