#include "sidecar/server/sidecar_server.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <grpcpp/health_check_service_interface.h>

namespace msgsdk::sidecar {
namespace {

// Whole batches of 4 MiB messages must fit in one gRPC message.
constexpr int kMaxGrpcMessageBytes = 256 << 20;

}  // namespace

Result<std::unique_ptr<SidecarServer>> SidecarServer::Start(
    std::shared_ptr<core::Engine> engine, std::unique_ptr<RoutingDiscoveryService> routing,
    const SidecarOptions& options) {
  if (!engine && !routing) {
    return InvalidArgumentError("msgsdk-sidecar serves messaging, routing, or both: neither given");
  }
  std::unique_ptr<SidecarServer> sidecar(new SidecarServer());
  sidecar->engine_ = std::move(engine);
  sidecar->routing_ = std::move(routing);
  if (sidecar->engine_) {
    sidecar->service_ = std::make_unique<MessagingService>(sidecar->engine_, options.service);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  if (!options.unix_socket.empty()) {
    if (unlink(options.unix_socket.c_str()) != 0 && errno != ENOENT) {
      return FailedPreconditionError("unix socket " + options.unix_socket +
                                     " exists and cannot be replaced: " + std::strerror(errno));
    }
    builder.AddListeningPort("unix:" + options.unix_socket, grpc::InsecureServerCredentials());
    sidecar->unix_socket_ = options.unix_socket;
  }
  if (sidecar->service_) builder.RegisterService(sidecar->service_.get());
  if (sidecar->routing_) builder.RegisterService(sidecar->routing_.get());
  sidecar->server_ = builder.BuildAndStart();
  if (!sidecar->server_ || port == 0) {
    return UnavailableError(
        "cannot serve on " + options.listen +
        (options.unix_socket.empty() ? "" : " and unix:" + options.unix_socket) +
        " (address in use, not local, or malformed)");
  }
  const size_t colon = options.listen.rfind(':');
  sidecar->address_ = options.listen.substr(0, colon) + ":" + std::to_string(port);
  return sidecar;
}

SidecarServer::~SidecarServer() { Shutdown(std::chrono::seconds(10)); }

void SidecarServer::Shutdown(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  if (server_) {
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  }
  // The service ends its streams and answers its publishes itself. gRPC's own Shutdown would
  // also wait for idle client connections to go away, so once the service is drained it is
  // told to stop at once (what is left is cancelled).
  if (routing_) routing_->Drain(deadline);
  if (service_) service_->Drain(deadline);
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();  // before the services it calls
  }
  // Before the services go: a publish still unanswered when the drain gave up is answered by
  // a send callback that calls into the messaging service, and the engine's Close waits for
  // every send callback to return.
  if (engine_) engine_->Close().IgnoreError();
  service_.reset();
  routing_.reset();
  if (!unix_socket_.empty()) unlink(unix_socket_.c_str());
}

}  // namespace msgsdk::sidecar
