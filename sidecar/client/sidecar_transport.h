#pragma once

// The SDK's sidecar transport: the public API over msgsdk-sidecar's gRPC service, chosen by
// ClientOptions::sidecar or MSGSDK_SIDECAR. The sidecar holds the routing table, the backends,
// retries and dead letters; this side batches sends, runs the handlers, settles deliveries and
// reconnects with backoff when the sidecar restarts.

#include <memory>
#include <string>

#include "api/transport.h"

namespace msgsdk::sidecar {

// Connects to the sidecar at `address` ("host:port" or "unix:/path") and asks for its
// environment; kUnavailable naming the address if it does not answer within 10 s.
Result<std::shared_ptr<internal::ClientTransport>> ConnectSidecar(const std::string& address,
                                                                  const ClientOptions& options);

}  // namespace msgsdk::sidecar
