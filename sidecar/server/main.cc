// msgsdk-sidecar: the msgsdk core and its backends behind the msgsdk.v1 gRPC API
// (sidecar/proto/msgsdk/v1/messaging.proto), for services in any language; and the routing
// control plane (sidecar/proto/msgsdk/v1/routing.proto) that pushes a routing file to clients.
//
//   msgsdk-sidecar [--listen HOST:PORT] [--unix PATH] [--config FILE | --routing-service ADDR]
//                  [--env NAME] [--serve-routing FILE]
//
// The routing table comes from --config or MSGSDK_CONFIG, or from the routing service
// --routing-service or MSGSDK_ROUTING_SERVICE names, the environment from --env or MSGSDK_ENV,
// as for an in-process client; with none, an embedded native cluster in ./msgsdk-data serves
// every topic. --serve-routing FILE also serves FILE to routing clients; alone (no routing table
// for the sidecar's own messaging), the process is only the control plane. Prints
// "msgsdk-sidecar listening on HOST:PORT" on standard output once it serves (port 0 picks a free
// port). SIGTERM or SIGINT drains and exits.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "api/default_registry.h"
#include "core/client_options.h"
#include "core/engine.h"
#include "sidecar/client/routing_subscriber.h"
#include "sidecar/server/routing_service.h"
#include "sidecar/server/sidecar_server.h"

int main(int argc, char** argv) {
  CLI::App app{"msgsdk-sidecar: the msgsdk messaging API over gRPC (package msgsdk.v1)"};
  msgsdk::sidecar::SidecarOptions options;
  msgsdk::ClientOptions client;
  int drain_ms = 10000;
  app.add_option("--listen", options.listen, "TCP address to serve, host:port (port 0: any free)")
      ->capture_default_str();
  app.add_option("--unix", options.unix_socket, "Unix domain socket to serve as well");
  std::string serve_routing;
  auto* config =
      app.add_option("--config", client.config_path, "Routing table (default: $MSGSDK_CONFIG)");
  app.add_option("--routing-service", client.routing_service,
                 "Take the routing table from this routing service, host:port or unix:/path "
                 "(default: $MSGSDK_ROUTING_SERVICE)")
      ->excludes(config);
  app.add_option("--routing-cache", client.routing_cache_dir,
                 "Cache directory of the routing service's last version (default: "
                 "$MSGSDK_ROUTING_CACHE, else <data-dir>/routing-cache)");
  app.add_option("--serve-routing", serve_routing,
                 "Serve this routing file to routing clients (the RoutingDiscovery service)");
  app.add_option("--env", client.environment, "Environment (default: $MSGSDK_ENV)");
  app.add_option("--data-dir", client.data_dir,
                 "Data directory of the default embedded cluster when there is no routing table");
  app.add_option("--client-id", client.client_id, "Name of this sidecar in its clusters");
  app.add_option("--drain-timeout-ms", drain_ms, "Longest graceful shutdown")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600000));
  app.add_option("--max-inflight-per-stream", options.service.max_inflight_per_stream,
                 "Deliveries a Subscribe stream holds at most (unsent or unsettled)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  CLI11_PARSE(app, argc, argv);

  // Signals are taken by sigwait below, never delivered to gRPC's or the SDK's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto registry = msgsdk::internal::DefaultBackendRegistry();
  std::unique_ptr<msgsdk::sidecar::RoutingDiscoveryService> routing;
  if (!serve_routing.empty()) {
    auto created = msgsdk::sidecar::RoutingDiscoveryService::Create(
        serve_routing, registry, msgsdk::core::Engine::kRoutingPollInterval);
    if (!created.ok()) {
      std::fprintf(stderr, "msgsdk-sidecar: --serve-routing: %s\n",
                   created.status().ToString().c_str());
      return 2;
    }
    routing = std::move(created).value();
  }
  // Alone, --serve-routing makes a control plane: messaging runs when it has a routing table.
  const std::string routing_service = msgsdk::core::RoutingServiceOf(client);
  const char* config_from_environment = std::getenv("MSGSDK_CONFIG");
  const bool messaging = !routing || !client.config_path.empty() || !routing_service.empty() ||
                         (config_from_environment != nullptr && *config_from_environment != '\0');
  std::shared_ptr<msgsdk::core::Engine> engine;
  if (messaging) {
    auto created = routing_service.empty()
                       ? msgsdk::core::Engine::Create(client, registry)
                       : msgsdk::sidecar::CreateEngineFromRoutingService(
                             client, registry, msgsdk::sidecar::kTransportSidecar);
    if (!created.ok()) {
      std::fprintf(stderr, "msgsdk-sidecar: %s\n", created.status().ToString().c_str());
      return 2;
    }
    engine = std::move(created).value();
  }
  const std::string environment = engine ? engine->environment() : "";
  const std::string served_routing =
      routing ? routing->path() + " (" + routing->current()->version_info + ")" : "";
  auto server =
      msgsdk::sidecar::SidecarServer::Start(std::move(engine), std::move(routing), options);
  if (!server.ok()) {
    std::fprintf(stderr, "msgsdk-sidecar: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("msgsdk-sidecar listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);
  const std::string where = (*server)->address() +
                            (options.unix_socket.empty() ? "" : " and unix:" + options.unix_socket);
  if (!environment.empty()) {
    std::fprintf(stderr, "msgsdk-sidecar: serving environment '%s' on %s\n", environment.c_str(),
                 where.c_str());
  }
  if (!served_routing.empty()) {
    std::fprintf(stderr, "msgsdk-sidecar: serving routing %s on %s\n", served_routing.c_str(),
                 where.c_str());
  }

  int signal = 0;
  sigwait(&signals, &signal);
  std::fprintf(stderr, "msgsdk-sidecar: %s, draining (at most %d ms)\n",
               signal == SIGTERM ? "SIGTERM" : "SIGINT", drain_ms);
  (*server)->Shutdown(std::chrono::milliseconds(drain_ms));
  std::fprintf(stderr, "msgsdk-sidecar: stopped\n");
  return 0;
}
