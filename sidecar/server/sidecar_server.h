#pragma once

// msgsdk-sidecar's gRPC server: the Messaging service, the RoutingDiscovery service (the routing
// control plane), or both, and the standard grpc.health.v1 health service, on a TCP address and
// optionally a Unix domain socket.

#include <chrono>
#include <memory>
#include <string>

#include "msgsdk/result.h"
#include "sidecar/server/messaging_service.h"
#include "sidecar/server/routing_service.h"

namespace msgsdk::sidecar {

struct SidecarOptions {
  // host:port; port 0 picks a free port (see SidecarServer::address).
  std::string listen = "127.0.0.1:7070";
  // A Unix domain socket path to serve as well (empty: none). A stale socket file is replaced.
  std::string unix_socket;
  ServiceOptions service;
};

class SidecarServer {
 public:
  // Binds and starts serving the Messaging service over `engine` and the RoutingDiscovery
  // service `routing`, each when given (at least one is); kUnavailable naming the address if it
  // cannot be bound.
  static Result<std::unique_ptr<SidecarServer>> Start(
      std::shared_ptr<core::Engine> engine, std::unique_ptr<RoutingDiscoveryService> routing,
      const SidecarOptions& options);
  ~SidecarServer();

  // The TCP address actually bound ("127.0.0.1:40123").
  const std::string& address() const { return address_; }

  // Graceful stop, bounded by `grace`: health turns NOT_SERVING, new calls are refused, open
  // streams end (their unsettled deliveries go back to the cluster, subscriptions close and
  // commit; routing streams end with UNAVAILABLE), in-flight publishes finish; then the engine
  // closes. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  SidecarServer() = default;

  std::shared_ptr<core::Engine> engine_;
  std::unique_ptr<MessagingService> service_;
  std::unique_ptr<RoutingDiscoveryService> routing_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string unix_socket_;
  bool stopped_ = false;
};

}  // namespace msgsdk::sidecar
