// msgsdk-sidecar: the msgsdk core and its backends behind the msgsdk.v1 gRPC API
// (sidecar/proto/msgsdk/v1/messaging.proto), for services in any language.
//
//   msgsdk-sidecar [--listen HOST:PORT] [--unix PATH] [--config FILE] [--env NAME]
//
// The routing table comes from --config or MSGSDK_CONFIG, the environment from --env or
// MSGSDK_ENV, as for an in-process client; with neither, an embedded native cluster in
// ./msgsdk-data serves every topic. Prints "msgsdk-sidecar listening on HOST:PORT" on standard
// output once it serves (port 0 picks a free port). SIGTERM or SIGINT drains and exits.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "api/default_registry.h"
#include "core/engine.h"
#include "sidecar/server/sidecar_server.h"

int main(int argc, char** argv) {
  CLI::App app{"msgsdk-sidecar: the msgsdk messaging API over gRPC (package msgsdk.v1)"};
  msgsdk::sidecar::SidecarOptions options;
  msgsdk::ClientOptions client;
  int drain_ms = 10000;
  app.add_option("--listen", options.listen, "TCP address to serve, host:port (port 0: any free)")
      ->capture_default_str();
  app.add_option("--unix", options.unix_socket, "Unix domain socket to serve as well");
  app.add_option("--config", client.config_path, "Routing table (default: $MSGSDK_CONFIG)");
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

  auto engine = msgsdk::core::Engine::Create(client, msgsdk::internal::DefaultBackendRegistry());
  if (!engine.ok()) {
    std::fprintf(stderr, "msgsdk-sidecar: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  const std::string environment = (*engine)->environment();
  auto server = msgsdk::sidecar::SidecarServer::Start(std::move(engine).value(), options);
  if (!server.ok()) {
    std::fprintf(stderr, "msgsdk-sidecar: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("msgsdk-sidecar listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "msgsdk-sidecar: serving environment '%s' on %s%s\n", environment.c_str(),
               (*server)->address().c_str(),
               options.unix_socket.empty() ? "" : (" and unix:" + options.unix_socket).c_str());

  int signal = 0;
  sigwait(&signals, &signal);
  std::fprintf(stderr, "msgsdk-sidecar: %s, draining (at most %d ms)\n",
               signal == SIGTERM ? "SIGTERM" : "SIGINT", drain_ms);
  (*server)->Shutdown(std::chrono::milliseconds(drain_ms));
  std::fprintf(stderr, "msgsdk-sidecar: stopped\n");
  return 0;
}
