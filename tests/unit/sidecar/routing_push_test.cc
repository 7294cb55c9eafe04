// The routing push service: a real `msgsdk-sidecar --serve-routing FILE` pushes every valid
// version of FILE to its clients, which apply it and answer with an ACK or a NACK; ListClients
// reports who runs which version. Clients start from their cache when the service is down, and
// reconnect when it comes back.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "fixtures/sidecar_fixture.h"
#include "msgsdk/msgsdk.h"
#include "msgsdk/v1/routing.grpc.pb.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace msgsdk {
namespace {

using namespace std::chrono_literals;

// Two embedded clusters, "a" and "b"; `orders` goes to `cluster` in version `version`.
class RoutingPushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service =
        testing::SidecarProcess::Start({.routing_yaml = Yaml(1, "a"), .serve_routing_only = true});
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(service).value();
  }

  std::string Yaml(int version, const std::string& cluster) const {
    return "version: " + std::to_string(version) +
           "\n"
           "environments:\n"
           "  dev:\n"
           "    clusters:\n"
           "      a: { backend: native, data_dir: " +
           (data_.path() / "a").string() +
           " }\n"
           "      b: { backend: native, data_dir: " +
           (data_.path() / "b").string() +
           " }\n"
           "    topics:\n"
           "      orders: { cluster: " +
           cluster + " }\n";
  }

  // Version 2 without a route for `orders`: valid for the service, refused by a client that
  // produces to `orders`.
  std::string YamlWithoutOrders(int version) const {
    return "version: " + std::to_string(version) +
           "\n"
           "environments:\n"
           "  dev:\n"
           "    clusters:\n"
           "      a: { backend: native, data_dir: " +
           (data_.path() / "a").string() +
           " }\n"
           "    topics:\n"
           "      payments: { cluster: a }\n";
  }

  // A new version of the served file, renamed over the old one as configuration tools do.
  void Publish(const std::string& text) {
    const std::string staged = service_->config_path() + ".new";
    std::ofstream(staged) << text;
    ASSERT_EQ(std::rename(staged.c_str(), service_->config_path().c_str()), 0);
  }

  Result<Client> Connect(const std::string& client_id, const std::string& cache_dir) {
    return Client::Create({.client_id = client_id,
                           .routing_service = service_->address(),
                           .routing_cache_dir = cache_dir});
  }

  Client Start(const std::string& client_id) {
    auto client = Connect(client_id, cache_.str());
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return std::move(client).value();
  }

  static int64_t Version(const Client& client) {
    auto state = client.Routing();
    return state.ok() ? state->version : -1;
  }

  v1::ListClientsResponse ListClients() {
    if (!stub_) {
      channel_ = grpc::CreateChannel(service_->address(), grpc::InsecureChannelCredentials());
      stub_ = v1::RoutingDiscovery::NewStub(channel_);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    context.set_wait_for_ready(true);
    v1::ListClientsResponse response;
    const grpc::Status status = stub_->ListClients(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // The client's entry in ListClients (empty client_id when it has none).
  v1::ClientStatus ClientStatus(const std::string& client_id) {
    const v1::ListClientsResponse response = ListClients();
    for (const auto& client : response.clients()) {
      if (client.client_id() == client_id) return client;
    }
    return {};
  }

  // Waits until the client's entry satisfies `condition`.
  template <typename Condition>
  bool WaitForClient(const std::string& client_id, Condition condition,
                     std::chrono::milliseconds timeout = 20s) {
    return testing::WaitUntil(
        [&] {
          const v1::ClientStatus status = ClientStatus(client_id);
          return status.client_id() == client_id && condition(status);
        },
        timeout);
  }

  static bool IsVersion(const std::string& version_info, int version) {
    return version_info.rfind(std::to_string(version) + "-", 0) == 0;
  }

  testing::TempDir data_{"msgsdk-routing-data"};
  testing::TempDir cache_{"msgsdk-routing-cache"};
  std::unique_ptr<testing::SidecarProcess> service_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RoutingDiscovery::Stub> stub_;
};

TEST_F(RoutingPushTest, TheFirstSnapshotAndEveryChangeReachTheClient) {
  Client client = Start("push-first");
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto before = producer->Send({.body = "one"});
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->cluster, "a");
  auto state = client.Routing();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, 1);
  EXPECT_NE(state->source.find("routing service " + service_->address()), std::string::npos)
      << state->source;

  const auto changed_at = std::chrono::steady_clock::now();
  Publish(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  std::printf("version 2 applied %lld ms after the file changed\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - changed_at)
                                         .count()));
  auto after = producer->Send({.body = "two"});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->cluster, "b");
  EXPECT_EQ(client.Routing()->applied, 2);
  EXPECT_EQ(client.Routing()->rejected, 0);

  // The service knows what the client runs and uses.
  ASSERT_TRUE(WaitForClient("push-first", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 2) && status.produces_size() == 1;
  }));
  const v1::ClientStatus status = ClientStatus("push-first");
  EXPECT_TRUE(status.connected());
  EXPECT_EQ(status.environment(), "dev");
  EXPECT_EQ(status.transport(), "in_process");
  EXPECT_EQ(status.produces(0), "orders");
  EXPECT_TRUE(status.pending_version_info().empty()) << status.pending_version_info();
  EXPECT_TRUE(status.nacked_version_info().empty());
  EXPECT_GT(status.last_seen_unix_ms(), 0);
  EXPECT_EQ(ListClients().version_info(), status.acked_version_info());
}

TEST_F(RoutingPushTest, ARefusedVersionIsNackedAndTheClientKeepsItsOwn) {
  Client producing = Start("push-producing");
  Client idle = Start("push-idle");
  auto producer = producing.CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  ASSERT_TRUE(producer->Send({.body = "one"}).ok());

  Publish(YamlWithoutOrders(2));
  ASSERT_TRUE(WaitForClient("push-producing", [](const v1::ClientStatus& status) {
    return IsVersion(status.nacked_version_info(), 2);
  }));
  ASSERT_TRUE(WaitForClient("push-idle", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 2);
  }));

  // Which client runs which version, and why one refused.
  const v1::ClientStatus refused = ClientStatus("push-producing");
  EXPECT_TRUE(IsVersion(refused.acked_version_info(), 1)) << refused.acked_version_info();
  EXPECT_EQ(refused.nack_error().code(), static_cast<int>(StatusCode::kFailedPrecondition));
  EXPECT_NE(refused.nack_error().message().find("'orders'"), std::string::npos)
      << refused.nack_error().message();
  EXPECT_TRUE(refused.pending_version_info().empty());
  EXPECT_TRUE(refused.connected());
  EXPECT_TRUE(ClientStatus("push-idle").nacked_version_info().empty());

  // The refusing client runs on, on its version, and counts the refusal.
  auto state = producing.Routing();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, 1);
  EXPECT_EQ(state->rejected, 1);
  EXPECT_NE(state->last_rejection.find("'orders'"), std::string::npos) << state->last_rejection;
  auto kept = producer->Send({.body = "still a"});
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->cluster, "a");
  EXPECT_EQ(Version(idle), 2);

  // A version it can run reaches it: the NACK stays on record beside the newer ACK.
  Publish(Yaml(3, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(producing) == 3; }, 10s));
  EXPECT_EQ(producer->Send({.body = "now b"})->cluster, "b");
  ASSERT_TRUE(WaitForClient("push-producing", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 3);
  }));
  EXPECT_TRUE(IsVersion(ClientStatus("push-producing").nacked_version_info(), 2));
}

TEST_F(RoutingPushTest, AFirstVersionWithoutTheClientsEnvironmentIsNackedAndCreateFails) {
  auto client = Client::Create({.environment = "prod",
                                .client_id = "push-prod",
                                .routing_service = service_->address(),
                                .routing_cache_dir = cache_.str()});
  ASSERT_EQ(client.status().code(), StatusCode::kNotFound) << client.status().ToString();
  EXPECT_NE(client.status().message().find("'prod'"), std::string::npos)
      << client.status().message();
  ASSERT_TRUE(WaitForClient("push-prod", [](const v1::ClientStatus& status) {
    return IsVersion(status.nacked_version_info(), 1) && !status.connected();
  }));
  const v1::ClientStatus status = ClientStatus("push-prod");
  EXPECT_EQ(status.nack_error().code(), static_cast<int>(StatusCode::kNotFound));
  EXPECT_TRUE(status.acked_version_info().empty());
  EXPECT_EQ(status.environment(), "prod");
  EXPECT_FALSE(std::filesystem::exists(cache_.path() / "snapshot.yaml"));
}

TEST_F(RoutingPushTest, AClientStartsFromItsCacheWhileTheServiceIsDown) {
  {
    Client first = Start("push-cache-1");
    Publish(Yaml(2, "b"));
    ASSERT_TRUE(testing::WaitUntil([&] { return Version(first) == 2; }, 10s));
    ASSERT_TRUE(WaitForClient("push-cache-1", [](const v1::ClientStatus& status) {
      return IsVersion(status.acked_version_info(), 2);
    }));
  }
  const std::string cache_file = (cache_.path() / "snapshot.yaml").string();
  ASSERT_TRUE(std::filesystem::exists(cache_file));
  ASSERT_TRUE(service_->Stop().ok());

  auto started = Connect("push-cache-2", cache_.str());
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  Client second = std::move(started).value();
  auto state = second.Routing();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, 2);
  EXPECT_EQ(state->source, cache_file);
  auto producer = second.CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto receipt = producer->Send({.body = "from the cache's route"});
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  EXPECT_EQ(receipt->cluster, "b");

  // With neither the service nor a cache, creating a client fails naming both.
  testing::TempDir empty{"msgsdk-routing-empty"};
  auto refused = Connect("push-cache-3", empty.str());
  ASSERT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find(service_->address()), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find(empty.str() + "/snapshot.yaml"), std::string::npos)
      << refused.status().message();

  // The service comes back: the client connects and ACKs the version it runs.
  ASSERT_TRUE(service_->Restart().ok());
  ASSERT_TRUE(WaitForClient("push-cache-2", [](const v1::ClientStatus& status) {
    return status.connected() && IsVersion(status.acked_version_info(), 2) &&
           status.pending_version_info().empty();
  }));
  EXPECT_EQ(second.Routing()->applied, 1);  // the same version: nothing applied again
}

TEST_F(RoutingPushTest, AfterARestartOfTheServiceTheClientReconnectsAndAcksAgain) {
  Client client = Start("push-restart");
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE(WaitForClient("push-restart", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 1);
  }));
  ASSERT_TRUE(service_->Stop().ok());
  // Sends go on while the control plane is away.
  EXPECT_EQ(producer->Send({.body = "alone"})->cluster, "a");
  Publish(Yaml(2, "b"));  // the version the service will find when it starts again
  ASSERT_TRUE(service_->Restart().ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 20s));
  EXPECT_EQ(producer->Send({.body = "after"})->cluster, "b");
  ASSERT_TRUE(WaitForClient("push-restart", [](const v1::ClientStatus& status) {
    return status.connected() && IsVersion(status.acked_version_info(), 2);
  }));
}

TEST_F(RoutingPushTest, ABadOrSilentStreamDisturbsOnlyItself) {
  Client client = Start("push-good");
  auto channel = grpc::CreateChannel(service_->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::RoutingDiscovery::NewStub(channel);

  {
    // No node in the first request.
    grpc::ClientContext context;
    auto stream = stub->StreamRoutes(&context);
    ASSERT_TRUE(stream->Write(v1::RoutingRequest()));
    v1::RoutingSnapshot snapshot;
    EXPECT_FALSE(stream->Read(&snapshot));
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("RoutingRequest.node"), std::string::npos)
        << status.error_message();
  }
  {
    // An answer to a nonce the stream never carried.
    grpc::ClientContext context;
    auto stream = stub->StreamRoutes(&context);
    v1::RoutingRequest hello;
    hello.mutable_node()->set_client_id("push-garbage");
    ASSERT_TRUE(stream->Write(hello));
    v1::RoutingSnapshot snapshot;
    ASSERT_TRUE(stream->Read(&snapshot));
    EXPECT_TRUE(IsVersion(snapshot.version_info(), 1));
    EXPECT_FALSE(snapshot.nonce().empty());
    EXPECT_NE(snapshot.yaml().find("orders"), std::string::npos);
    EXPECT_EQ(snapshot.source(), service_->config_path());
    v1::RoutingRequest ack;
    ack.set_version_info(snapshot.version_info());
    ack.set_response_nonce("999999");
    ASSERT_TRUE(stream->Write(ack));
    EXPECT_FALSE(stream->Read(&snapshot));
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("response_nonce '999999'"), std::string::npos)
        << status.error_message();
  }
  // A client that reads but never answers.
  grpc::ClientContext silent_context;
  auto silent = stub->StreamRoutes(&silent_context);
  v1::RoutingRequest hello;
  hello.mutable_node()->set_client_id("push-silent");
  ASSERT_TRUE(silent->Write(hello));
  v1::RoutingSnapshot first;
  ASSERT_TRUE(silent->Read(&first));

  Publish(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }, 10s));
  ASSERT_TRUE(WaitForClient("push-good", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 2);
  }));
  v1::RoutingSnapshot second;
  ASSERT_TRUE(silent->Read(&second));
  EXPECT_TRUE(IsVersion(second.version_info(), 2));
  EXPECT_NE(second.nonce(), first.nonce());
  const v1::ClientStatus status = ClientStatus("push-silent");
  EXPECT_TRUE(status.connected());
  EXPECT_TRUE(status.acked_version_info().empty());
  EXPECT_TRUE(IsVersion(status.pending_version_info(), 2)) << status.pending_version_info();
  ASSERT_TRUE(WaitForClient("push-garbage",
                            [](const v1::ClientStatus& status) { return !status.connected(); }));

  silent_context.TryCancel();
  silent->Finish();
  ASSERT_TRUE(WaitForClient("push-silent",
                            [](const v1::ClientStatus& status) { return !status.connected(); }));
}

TEST_F(RoutingPushTest, ASidecarFollowsTheControlPlaneForTheServicesBehindIt) {
  auto sidecar = testing::SidecarProcess::Start({.environment = "dev",
                                                 .routing_service = service_->unix_target(),
                                                 .extra_args = {"--client-id", "push-sidecar"}});
  ASSERT_TRUE(sidecar.ok()) << sidecar.status().ToString();
  auto client = Client::Create({.sidecar = (*sidecar)->address()});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto producer = client->CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  EXPECT_EQ(producer->Send({.body = "one"})->cluster, "a");

  Publish(Yaml(2, "b"));
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(*client) == 2; }, 10s));
  EXPECT_EQ(producer->Send({.body = "two"})->cluster, "b");
  ASSERT_TRUE(WaitForClient("push-sidecar", [](const v1::ClientStatus& status) {
    return IsVersion(status.acked_version_info(), 2) && status.produces_size() == 1;
  }));
  const v1::ClientStatus status = ClientStatus("push-sidecar");
  EXPECT_EQ(status.transport(), "sidecar");
  EXPECT_EQ(status.environment(), "dev");
  EXPECT_EQ(status.produces(0), "orders");
}

// The migration controller steps on the file the control plane serves, judging from what the
// clients connected to it report: the operator's `msgsdk migrate advance --routing-service`.
TEST_F(RoutingPushTest, TheMigrationControllerStepsOnTheReportsOfTheServicesClients) {
  Publish(Yaml(2, "a") + "migrations:\n  orders: { from: a, to: b, phase: A }\n");
  Client client = Start("push-migrating");
  ASSERT_TRUE(testing::WaitUntil([&] { return Version(client) == 2; }));
  testing::Collector collector;
  auto subscription = client.Subscribe("orders", "billing", [&](const Message& m) {
    collector.Add(m);
    return ConsumeResult::kSuccess;
  });
  ASSERT_TRUE(subscription.ok()) << subscription.status().ToString();
  auto producer = client.CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  std::set<std::string> sent;
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto receipt = producer->Send({.key = "k" + std::to_string(i % 3), .body = "m"});
      ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
      sent.insert(receipt->message_id);
    }
  };
  send(20);

  auto controller = MigrationController::Open({.routing_file = service_->config_path()});
  ASSERT_TRUE(controller.ok()) << controller.status().ToString();
  // Each step as soon as the reports allow it.
  auto advance = [&](const std::string& expected) {
    Result<MigrationReport> report = FailedPreconditionError("not tried");
    ASSERT_TRUE(testing::WaitUntil(
        [&] {
          auto reports = RoutingServiceReports(service_->address());
          if (!reports.ok() || reports->empty()) return false;
          report = controller->Advance("orders", *reports);
          return report.ok();
        },
        30s))
        << report.status().ToString();
    EXPECT_NE(report->done.find(expected), std::string::npos) << report->done;
    send(20);
  };
  // Not before the client runs the version and reports it.
  auto reports = RoutingServiceReports(service_->address());
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].client, "push-migrating");

  advance("in dual_write");
  advance("in cutover");
  advance("drain: {");
  advance("in B");
  ASSERT_TRUE(collector.WaitForDistinct(sent.size()))
      << collector.distinct() << " of " << sent.size();
  for (const auto& [id, count] : collector.count_by_id()) EXPECT_EQ(count, 1) << id;
  std::map<std::string, int> by_cluster;
  for (const auto& message : collector.messages()) ++by_cluster[message.cluster];
  EXPECT_GT(by_cluster["a"], 0);
  EXPECT_GT(by_cluster["b"], 0);
}

}  // namespace
}  // namespace msgsdk
