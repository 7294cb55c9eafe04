// The SDK's sidecar transport chosen by the routing file: `transport: { sidecar: ADDRESS }`.

#include <fstream>

#include <gtest/gtest.h>

#include "fixtures/sidecar_fixture.h"
#include "msgsdk/msgsdk.h"
#include "testing/temp_dir.h"

namespace msgsdk {
namespace {

class SidecarTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sidecar = testing::SidecarProcess::Start(
        {.routing_yaml = "version: 4\n"
                         "environments:\n"
                         "  test:\n"
                         "    clusters:\n"
                         "      main: { backend: native, data_dir: " +
                         data_.str() +
                         " }\n"
                         "    default_cluster: main\n",
         .environment = "test"});
    ASSERT_TRUE(sidecar.ok()) << sidecar.status().ToString();
    sidecar_ = std::move(sidecar).value();
  }

  std::string WriteClientFile(const std::string& text) {
    const auto path = files_.path() / "client.yaml";
    std::ofstream(path) << text;
    return path.string();
  }

  testing::TempDir data_{"msgsdk-sidecar-data"};
  testing::TempDir files_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
};

TEST_F(SidecarTransportTest, TheRoutingFileSendsTheClientToTheSidecar) {
  const std::string path =
      WriteClientFile("transport:\n  sidecar: \"" + sidecar_->unix_target() + "\"\n");
  auto client = Client::Create({.config_path = path});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ(client->environment(), "test");
  auto producer = client->CreateProducer("orders");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto receipt = producer->Send({.body = "through the sidecar"});
  ASSERT_TRUE(receipt.ok()) << receipt.status().ToString();
  EXPECT_EQ(receipt->cluster, "main");
  // The sidecar's routing table runs, not the client's file.
  auto routing = client->Routing();
  ASSERT_TRUE(routing.ok()) << routing.status().ToString();
  EXPECT_EQ(routing->version, 4);
  EXPECT_NE(routing->source, path);
  EXPECT_EQ(routing->applied, 1);
}

TEST_F(SidecarTransportTest, AnEmptySidecarAddressNamesTheField) {
  const std::string path = WriteClientFile("transport:\n  sidecar: \"\"\n");
  auto client = Client::Create({.config_path = path});
  ASSERT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("client.yaml:2:"), std::string::npos)
      << client.status().message();
  EXPECT_NE(client.status().message().find("transport.sidecar"), std::string::npos)
      << client.status().message();
}

}  // namespace
}  // namespace msgsdk
