// msgsdk-sidecar as a process, through its published gRPC API (the generated C++ stubs, as any
// client would use them): publish, subscribe with credit, settle, health, routes, bad clients,
// and the graceful drain on SIGTERM. The cluster is an embedded native one in the sidecar.

#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixtures/sidecar_fixture.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "msgsdk/v1/messaging.grpc.pb.h"
#include "testing/temp_dir.h"

namespace msgsdk::sidecar {
namespace {

using namespace std::chrono_literals;

std::chrono::system_clock::time_point In(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

// One Subscribe stream of a test client.
class Stream {
 public:
  Stream(v1::Messaging::Stub& stub, const std::string& topic, const std::string& group,
         uint32_t credit, const std::string& tag_filter = "") {
    context_.set_deadline(In(60s));
    context_.set_wait_for_ready(true);  // through a reconnect after a sidecar restart
    stream_ = stub.Subscribe(&context_);
    v1::SubscribeRequest request;
    request.mutable_start()->set_topic(topic);
    request.mutable_start()->set_group(group);
    request.mutable_start()->set_tag_filter(tag_filter);
    request.mutable_start()->set_retry_backoff_ms(10);
    request.mutable_start()->set_max_attempts(3);
    request.set_credit(credit);
    EXPECT_TRUE(stream_->Write(request));
  }
  ~Stream() {
    if (!finished_) {
      context_.TryCancel();
      stream_->Finish().ok();
    }
  }

  // The next response (Started or deliveries); false when the stream ended.
  bool Read(v1::SubscribeResponse* response) { return stream_->Read(response); }

  // Reads until `n` deliveries arrived (Started is skipped).
  std::vector<v1::Delivery> ReadDeliveries(size_t n) {
    std::vector<v1::Delivery> deliveries;
    v1::SubscribeResponse response;
    while (deliveries.size() < n && stream_->Read(&response)) {
      for (auto& delivery : *response.mutable_deliveries()) deliveries.push_back(delivery);
    }
    return deliveries;
  }

  bool Send(const v1::SubscribeRequest& request) { return stream_->Write(request); }
  bool Settle(const std::vector<v1::Delivery>& deliveries,
              v1::Settle::Outcome outcome = v1::Settle::ACK, uint32_t credit = 0,
              int64_t retry_delay_ms = 0) {
    v1::SubscribeRequest request;
    request.set_credit(credit);
    for (const auto& delivery : deliveries) {
      v1::Settle* settle = request.add_settles();
      settle->set_delivery_id(delivery.delivery_id());
      settle->set_outcome(outcome);
      settle->set_retry_delay_ms(retry_delay_ms);
      if (outcome != v1::Settle::ACK) settle->set_reason("test says so");
    }
    return stream_->Write(request);
  }

  // Closes the client's side and returns how the sidecar ended the stream.
  grpc::Status Close() {
    stream_->WritesDone();
    v1::SubscribeResponse ignored;
    while (stream_->Read(&ignored)) {
    }
    finished_ = true;
    return stream_->Finish();
  }
  // Waits for the sidecar to end the stream (after bad input or a shutdown).
  grpc::Status Ended() {
    v1::SubscribeResponse ignored;
    while (stream_->Read(&ignored)) {
    }
    finished_ = true;
    return stream_->Finish();
  }
  void Cancel() {
    context_.TryCancel();
    Ended();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>> stream_;
  bool finished_ = false;
};

class SidecarServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::SidecarProcessOptions options;
    options.environment = "test";
    options.routing_yaml = "environments:\n"
                           "  test:\n"
                           "    clusters:\n"
                           "      main:\n"
                           "        backend: native\n"
                           "        data_dir: " + data_.str() + "\n"
                           "        poll_wait_ms: 50\n"
                           "    default_cluster: main\n";
    auto sidecar = testing::SidecarProcess::Start(options);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status().ToString();
    sidecar_ = std::move(sidecar).value();
    Connect();
  }

  void Connect() {
    // gRPC shares connections between channels to one target by default; a test that restarts
    // the sidecar wants a fresh connection, not the one to the process that went away.
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(sidecar_->address(), grpc::InsecureChannelCredentials(),
                                         arguments);
    stub_ = v1::Messaging::NewStub(channel_);
  }

  // Publishes bodies "<prefix>0".. with keys k<i % 4> and tag "t<i % 2>"; expects every result OK.
  std::vector<std::string> Publish(const std::string& topic, int count,
                                   const std::string& prefix = "m") {
    grpc::ClientContext context;
    context.set_deadline(In(30s));
    v1::PublishRequest request;
    request.set_topic(topic);
    std::vector<std::string> bodies;
    for (int i = 0; i < count; ++i) {
      v1::Message* message = request.add_messages();
      message->set_body(prefix + std::to_string(i));
      message->set_key("k" + std::to_string(i % 4));
      message->set_tag("t" + std::to_string(i % 2));
      (*message->mutable_properties())["n"] = std::to_string(i);
      bodies.push_back(message->body());
    }
    v1::PublishResponse response;
    const grpc::Status status = stub_->Publish(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), count);
    for (const auto& result : response.results()) {
      EXPECT_EQ(result.status().code(), 0) << result.status().message();
      EXPECT_EQ(result.message_id().size(), 32u);
      EXPECT_EQ(result.cluster(), "main");
    }
    return bodies;
  }

  static std::multiset<std::string> Bodies(const std::vector<v1::Delivery>& deliveries) {
    std::multiset<std::string> bodies;
    for (const auto& delivery : deliveries) bodies.insert(delivery.message().body());
    return bodies;
  }

  testing::TempDir data_{"msgsdk-sidecar-data"};
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Messaging::Stub> stub_;
};

TEST_F(SidecarServiceTest, PublishedMessagesAreDeliveredIntact) {
  const auto bodies = Publish("orders", 100);
  Stream stream(*stub_, "orders", "billing", 1000);
  v1::SubscribeResponse first;
  ASSERT_TRUE(stream.Read(&first));
  ASSERT_TRUE(first.has_started());
  EXPECT_EQ(first.started().cluster(), "main");
  // Deliveries may come in the same response as Started.
  std::vector<v1::Delivery> deliveries(first.deliveries().begin(), first.deliveries().end());
  for (auto& more : stream.ReadDeliveries(100 - deliveries.size())) deliveries.push_back(more);
  ASSERT_EQ(deliveries.size(), 100u);
  EXPECT_EQ(Bodies(deliveries), std::multiset<std::string>(bodies.begin(), bodies.end()));
  for (const auto& delivery : deliveries) {
    const v1::Message& m = delivery.message();
    const int n = std::stoi(m.properties().at("n"));
    EXPECT_EQ(m.body(), "m" + std::to_string(n));
    EXPECT_EQ(m.key(), "k" + std::to_string(n % 4));
    EXPECT_EQ(m.tag(), "t" + std::to_string(n % 2));
    EXPECT_EQ(m.topic(), "orders");
    EXPECT_EQ(m.cluster(), "main");
    EXPECT_EQ(m.delivery_attempt(), 1);
    EXPECT_EQ(m.message_id().size(), 32u);
    EXPECT_GT(m.born_at_unix_ms(), 0);
    EXPECT_GT(m.stored_at_unix_ms(), 0);
  }
  ASSERT_TRUE(stream.Settle(deliveries));
  EXPECT_TRUE(stream.Close().ok());

  // Acknowledged: the group's next stream starts after them.
  Publish("orders", 1, "after");
  Stream again(*stub_, "orders", "billing", 10);
  const auto next = again.ReadDeliveries(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].message().body(), "after0");
}

TEST_F(SidecarServiceTest, UnsettledDeliveriesNeverExceedTheCredit) {
  Publish("orders", 20);
  Stream stream(*stub_, "orders", "g", 5);
  const auto first = stream.ReadDeliveries(5);
  ASSERT_EQ(first.size(), 5u);
  // Settling one frees one slot: the next response carries exactly one delivery.
  ASSERT_TRUE(stream.Settle({first[0]}));
  v1::SubscribeResponse response;
  ASSERT_TRUE(stream.Read(&response));
  EXPECT_EQ(response.deliveries_size(), 1);
  // More credit lets the rest come.
  ASSERT_TRUE(stream.Settle({}, v1::Settle::ACK, /*credit=*/100));
  const auto rest = stream.ReadDeliveries(14);
  EXPECT_EQ(rest.size(), 14u);
}

TEST_F(SidecarServiceTest, AStreamThatEndsHandsItsDeliveriesBack) {
  Publish("orders", 10);
  {
    Stream greedy(*stub_, "orders", "g", 100);
    ASSERT_EQ(greedy.ReadDeliveries(10).size(), 10u);
    greedy.Cancel();  // never settles: a client that crashed
  }
  Stream next(*stub_, "orders", "g", 100);
  const auto again = next.ReadDeliveries(10);
  ASSERT_EQ(again.size(), 10u);
  EXPECT_EQ(Bodies(again).size(), 10u);
}

TEST_F(SidecarServiceTest, RetryAndDeadLetterSettlements) {
  Publish("orders", 2);
  Stream stream(*stub_, "orders", "g", 100);
  const auto first = stream.ReadDeliveries(2);
  ASSERT_EQ(first.size(), 2u);
  ASSERT_TRUE(stream.Settle({first[0]}, v1::Settle::RETRY, 0, /*retry_delay_ms=*/20));
  ASSERT_TRUE(stream.Settle({first[1]}, v1::Settle::DEAD_LETTER));
  const auto retried = stream.ReadDeliveries(1);
  ASSERT_EQ(retried.size(), 1u);
  EXPECT_EQ(retried[0].message().body(), first[0].message().body());
  EXPECT_EQ(retried[0].message().delivery_attempt(), 2);
  ASSERT_TRUE(stream.Settle(retried));

  Stream letters(*stub_, "__dlq.g", "inspect", 10);
  const auto dead = letters.ReadDeliveries(1);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message().body(), first[1].message().body());
  EXPECT_EQ(dead[0].message().properties().at("msgsdk.dlq.reason"), "test says so");
}

TEST_F(SidecarServiceTest, BadStreamsEndAloneAndOthersCarryOn) {
  Publish("orders", 4);
  Stream healthy(*stub_, "orders", "healthy", 100);
  ASSERT_EQ(healthy.ReadDeliveries(4).size(), 4u);

  {  // no start
    grpc::ClientContext context;
    auto raw = stub_->Subscribe(&context);
    v1::SubscribeRequest request;
    request.set_credit(10);
    ASSERT_TRUE(raw->Write(request));
    v1::SubscribeResponse ignored;
    while (raw->Read(&ignored)) {
    }
    const grpc::Status status = raw->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("first request must carry start"), std::string::npos);
  }
  {  // settles something it never received
    Stream liar(*stub_, "orders", "liar", 10);
    v1::Delivery fake;
    fake.set_delivery_id(424242);
    liar.Settle({fake});
    const grpc::Status status = liar.Ended();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("424242"), std::string::npos);
  }
  {  // an invalid group name
    Stream bad(*stub_, "orders", "bad group!", 10);
    EXPECT_EQ(bad.Ended().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The healthy stream still works.
  Publish("orders", 1, "later");
  const auto later = healthy.ReadDeliveries(1);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].message().body(), "later0");
}

TEST_F(SidecarServiceTest, PublishAnswersEachMessage) {
  grpc::ClientContext context;
  context.set_deadline(In(30s));
  v1::PublishRequest request;
  request.set_topic("orders");
  request.add_messages()->set_body("fine");
  request.add_messages();  // empty body
  v1::PublishResponse response;
  ASSERT_TRUE(stub_->Publish(&context, request, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).status().code(), 0);
  EXPECT_EQ(response.results(1).status().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(response.results(1).status().message().find("empty body"), std::string::npos);

  grpc::ClientContext bad_topic;
  bad_topic.set_deadline(In(30s));
  request.set_topic("no spaces allowed");
  const grpc::Status status = stub_->Publish(&bad_topic, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SidecarServiceTest, RouteAndHealth) {
  grpc::ClientContext context;
  context.set_deadline(In(30s));
  v1::GetRouteRequest request;
  request.set_topic("orders");
  v1::GetRouteResponse route;
  ASSERT_TRUE(stub_->GetRoute(&context, request, &route).ok());
  EXPECT_EQ(route.environment(), "test");
  EXPECT_EQ(route.cluster(), "main");
  EXPECT_EQ(route.capabilities().backend(), "native");
  EXPECT_FALSE(route.matched_by().empty());

  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext health_context;
  health_context.set_deadline(In(30s));
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(&health_context, {}, &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(SidecarServiceTest, ServesTheUnixSocketToo) {
  auto channel = grpc::CreateChannel(sidecar_->unix_target(), grpc::InsecureChannelCredentials());
  auto stub = v1::Messaging::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(In(30s));
  v1::PublishRequest request;
  request.set_topic("orders");
  request.add_messages()->set_body("over a unix socket");
  v1::PublishResponse response;
  ASSERT_TRUE(stub->Publish(&context, request, &response).ok());
  EXPECT_EQ(response.results(0).status().code(), 0);
}

TEST_F(SidecarServiceTest, SigtermDrainsAndARestartRedeliversWhatWasHeld) {
  Publish("orders", 6);
  Stream stream(*stub_, "orders", "g", 100);
  const auto held = stream.ReadDeliveries(6);
  ASSERT_EQ(held.size(), 6u);
  ASSERT_TRUE(stream.Settle({held[0], held[1]}));  // two done, four held

  // The client keeps reading, as clients do: it hears the sidecar end the stream.
  grpc::Status ended;
  std::thread reader([&] { ended = stream.Ended(); });
  ASSERT_TRUE(sidecar_->Stop().ok());  // exits 0 within the grace period
  reader.join();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);

  ASSERT_TRUE(sidecar_->Restart().ok());
  Connect();
  // Every delivery the client held comes again. (The two it acknowledged may come again as
  // well: offsets are committed for the acknowledged prefix of each queue.)
  Stream after(*stub_, "orders", "g", 100);
  std::set<std::string> expected;
  for (size_t i = 2; i < held.size(); ++i) expected.insert(held[i].message().body());
  std::set<std::string> seen;
  v1::SubscribeResponse response;
  while (!std::includes(seen.begin(), seen.end(), expected.begin(), expected.end()) &&
         after.Read(&response)) {
    for (const auto& delivery : response.deliveries()) seen.insert(delivery.message().body());
  }
  EXPECT_TRUE(std::includes(seen.begin(), seen.end(), expected.begin(), expected.end()))
      << "the stream ended with: " << after.Ended().error_message() << " after " << seen.size();
}

}  // namespace
}  // namespace msgsdk::sidecar
