// The cells of the conformance matrix in this build: backend x transport.

#include <memory>
#include <string>

#include <cstdlib>
#include <cstdio>

#include "conformance/cluster_environment.h"
#include "fixtures/broker_fixture.h"
#include "testing/temp_dir.h"
#if defined(MSGSDK_CONFORMANCE_KAFKA)
#include "fixtures/kafka_fixture.h"
#endif
#if defined(MSGSDK_CONFORMANCE_REDIS)
#include "fixtures/redis_fixture.h"
#endif
#if defined(MSGSDK_CONFORMANCE_SIDECAR)
#include "fixtures/sidecar_fixture.h"
#endif

namespace msgsdk::conformance {
namespace {

// The embedded native broker in a fresh data directory.
class NativeEmbedded : public ClusterEnvironment {
 public:
  std::string RoutingYaml() const override {
    return "environments:\n"
           "  conformance:\n"
           "    clusters:\n"
           "      main:\n"
           "        backend: native\n"
           "        data_dir: " + dir_.str() + "\n"
           "        flush_mode: group_commit\n"
           "        poll_wait_ms: 100\n"
           "    default_cluster: main\n" +
           ConformanceClientSettings();
  }

 private:
  testing::TempDir dir_{"msgsdk-conformance"};
};

// A cell that cannot start its cluster cannot state anything: fail loudly, naming why.
[[noreturn]] void CannotStart(const std::string& cell, const Status& status) {
  std::fprintf(stderr, "conformance cell %s cannot start: %s\n", cell.c_str(),
               status.ToString().c_str());
  std::abort();
}

// A real msgsdk-broker process on a free loopback port with a fresh data directory, one per
// test; the backend reaches it over TCP.
class NativeBroker : public ClusterEnvironment {
 public:
  NativeBroker() {
    auto broker = test::BrokerProcess::Start({.binary = MSGSDK_BROKER_BINARY});
    if (!broker.ok()) CannotStart("native_broker", broker.status());
    broker_ = std::move(broker).value();
  }
  std::string RoutingYaml() const override {
    return "environments:\n"
           "  conformance:\n"
           "    clusters:\n"
           "      main: " +
           broker_->ClusterYaml("poll_wait_ms: 100, heartbeat_interval_ms: 100") +
           "\n"
           "    default_cluster: main\n" +
           ConformanceClientSettings();
  }

 private:
  std::unique_ptr<test::BrokerProcess> broker_;
};

#if defined(MSGSDK_CONFORMANCE_KAFKA)
// librdkafka's mock cluster (the real Kafka protocol on loopback), one per test.
class KafkaMock : public ClusterEnvironment {
 public:
  KafkaMock() {
    auto cluster = testing::KafkaMockCluster::Start(1);
    if (!cluster.ok()) CannotStart("kafka", cluster.status());
    cluster_ = std::move(cluster).value();
  }
  std::string RoutingYaml() const override {
    return "environments:\n"
           "  conformance:\n"
           "    clusters:\n" +
           cluster_->ClusterYaml("main") +
           "    default_cluster: main\n" +
           // The mock's group coordinator can hold a join or leave request until librdkafka's
           // request timeout (10 s) ends it: a close must outlast that to finish leaving.
           ConformanceClientSettings(20000);
  }

 private:
  std::unique_ptr<testing::KafkaMockCluster> cluster_;
};
#endif

#if defined(MSGSDK_CONFORMANCE_REDIS)
// A real redis-server on a free loopback port, one per test.
class RedisStreams : public ClusterEnvironment {
 public:
  RedisStreams() {
    auto server = test::RedisServer::Start();
    if (!server.ok()) CannotStart("redis", server.status());
    server_ = std::move(server).value();
  }
  std::string RoutingYaml() const override {
    return "environments:\n"
           "  conformance:\n"
           "    clusters:\n"
           "      main: " + server_->ClusterYaml() + "\n"
           "    default_cluster: main\n" + ConformanceClientSettings();
  }

 private:
  std::unique_ptr<test::RedisServer> server_;
};
#endif

#if defined(MSGSDK_CONFORMANCE_SIDECAR)
// A cell's cluster served by a real msgsdk-sidecar process; the suite's clients use the
// sidecar transport.
class ThroughSidecar : public ClusterEnvironment {
 public:
  explicit ThroughSidecar(std::unique_ptr<ClusterEnvironment> cluster)
      : cluster_(std::move(cluster)) {
    auto sidecar = testing::SidecarProcess::Start(
        {.routing_yaml = cluster_->RoutingYaml(), .environment = "conformance"});
    if (!sidecar.ok()) CannotStart("sidecar", sidecar.status());
    sidecar_ = std::move(sidecar).value();
  }
  std::string RoutingYaml() const override { return cluster_->RoutingYaml(); }
  ClientOptions Options() const override {
    return ClientOptions{.environment = "conformance", .sidecar = sidecar_->address()};
  }

 private:
  std::unique_ptr<ClusterEnvironment> cluster_;  // outlives the sidecar that uses it
  std::unique_ptr<testing::SidecarProcess> sidecar_;
};

template <typename Cluster>
std::unique_ptr<ClusterEnvironment> SidecarOver() {
  return std::make_unique<ThroughSidecar>(std::make_unique<Cluster>());
}
#endif

}  // namespace

std::vector<Cell> AllCells() {
  return {
      {"native_inprocess", [] { return std::make_unique<NativeEmbedded>(); }},
      {"native_broker", [] { return std::make_unique<NativeBroker>(); }},
#if defined(MSGSDK_CONFORMANCE_KAFKA)
      {"kafka_inprocess", [] { return std::make_unique<KafkaMock>(); }},
#endif
#if defined(MSGSDK_CONFORMANCE_REDIS)
      {"redis_inprocess", [] { return std::make_unique<RedisStreams>(); }},
#endif
#if defined(MSGSDK_CONFORMANCE_SIDECAR)
      {"native_sidecar", SidecarOver<NativeEmbedded>},
#if defined(MSGSDK_CONFORMANCE_KAFKA)
      {"kafka_sidecar", SidecarOver<KafkaMock>},
#endif
#if defined(MSGSDK_CONFORMANCE_REDIS)
      {"redis_sidecar", SidecarOver<RedisStreams>},
#endif
#endif
  };
}

}  // namespace msgsdk::conformance
