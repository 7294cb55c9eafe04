#include "sidecar/client/routing_clients.h"

#include <charconv>
#include <chrono>

#include <grpcpp/grpcpp.h>

#include "msgsdk/v1/routing.grpc.pb.h"
#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {
namespace {

constexpr std::chrono::seconds kTimeout{10};

// The `version:` of a version_info "<version>-<hash>"; -1 if it has none (never ACKed).
int64_t VersionOf(const std::string& version_info) {
  int64_t version = -1;
  const auto dash = version_info.find('-');
  if (dash == std::string::npos) return -1;
  const auto [end, error] =
      std::from_chars(version_info.data(), version_info.data() + dash, version);
  return error == std::errc() && end == version_info.data() + dash ? version : -1;
}

}  // namespace

Result<std::vector<RoutingState>> ListRoutingClients(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::RoutingDiscovery::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kTimeout);
  v1::ListClientsResponse response;
  const grpc::Status status = stub->ListClients(&context, {}, &response);
  if (!status.ok()) {
    return FromGrpc(status).WithContext("routing service at " + address + ": ListClients");
  }
  std::vector<RoutingState> clients;
  for (const v1::ClientStatus& client : response.clients()) {
    if (!client.connected()) continue;
    RoutingState state{.client = client.client_id(),
                       .version = VersionOf(client.acked_version_info())};
    for (const v1::MigrationProgress& progress : client.migrations()) {
      state.migrations.push_back(FromProto(progress));
    }
    clients.push_back(std::move(state));
  }
  return clients;
}

}  // namespace msgsdk::sidecar
