#pragma once

// What every producer and subscription of one Kafka cluster shares: the settings, one
// librdkafka producer with the thread that serves its delivery reports, the view of broker
// reachability, and topic lookup and creation.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

#include "backends/kafka/kafka_config.h"
#include "core/backend.h"
#include "msgsdk/message.h"
#include "msgsdk/result.h"

namespace msgsdk::kafka {

// librdkafka's error and log events of one cluster's handles. Thread-safe.
class ClusterEvents : public RdKafka::EventCb {
 public:
  explicit ClusterEvents(std::string cluster) : cluster_(std::move(cluster)) {}
  void event_cb(RdKafka::Event& event) override;

  // Every broker failed and none answered since.
  bool brokers_down() const { return brokers_down_.load(std::memory_order_acquire); }
  // A broker answered (a metadata response, a delivery report, a fetched record).
  void NoteBrokerAnswered() { brokers_down_.store(false, std::memory_order_release); }
  // The last error librdkafka reported, "" if none.
  std::string last_error() const;

 private:
  const std::string cluster_;
  std::atomic<bool> brokers_down_{false};
  mutable std::mutex mu_;
  std::string last_error_;
};

// One send waiting for its delivery report. Owned by librdkafka (as the message opaque)
// from a successful produce() until the report; its callback is run by whoever completes it
// first: the report, or the producer's Close at its deadline.
struct PendingSend;

// The pending sends of one BackendProducer, so its Close can wait for them or fail them.
// Sends are kept in an intrusive list: adding and finishing one allocates nothing.
class SendTracker {
 public:
  // Registers a send; false if the tracker is closed (the send is refused).
  bool Add(PendingSend* send);
  // Runs the send's callback with `result` unless Close already failed it.
  void Finish(PendingSend* send, Result<core::StoredPosition> result);
  // Refuses new sends, waits until none is pending (and no callback is running) or
  // `deadline`, then takes the callbacks of those still pending (to be failed by the caller).
  std::vector<core::SendDone> Close(core::Deadline deadline);
  bool closed() const;

 private:
  void Unlink(PendingSend* send);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  PendingSend* head_ = nullptr;  // pending sends, newest first
  size_t pending_ = 0;
  bool closed_ = false;
  // Callbacks being run by Finish; Close waits for them too.
  std::atomic<int> running_{0};
  std::atomic<bool> closing_{false};
};

struct PendingSend {
  std::shared_ptr<SendTracker> tracker;
  core::SendDone done;
  std::string topic;
  size_t bytes = 0;
  // SendTracker's list, guarded by its mutex.
  PendingSend* prev = nullptr;
  PendingSend* next = nullptr;
  bool linked = false;
};

class KafkaCluster {
 public:
  // Creates the producer handle and its poll thread. Connecting is lazy: an unreachable
  // cluster is not an error here.
  static Result<std::shared_ptr<KafkaCluster>> Start(KafkaSettings settings);
  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  const KafkaSettings& settings() const { return settings_; }
  ClusterEvents& events() { return *events_; }

  // Hands `message` to librdkafka; the delivery report completes `send`. On an immediate
  // failure the status is returned and `send` is left to the caller.
  Status Produce(const std::string& topic, const Message& message, PendingSend* send);

  // Makes sure `topic` exists (creating it when auto_create_topics allows), bounded by
  // metadata_timeout_ms. kNotFound naming topic and cluster if it does not and may not be
  // created; kUnavailable if no broker can be reached.
  Status EnsureTopic(const std::string& topic);

  // The partitions of an existing topic (kNotFound if it does not exist).
  Result<std::vector<int32_t>> Partitions(const std::string& topic, core::Deadline deadline);

  // Flushes pending sends until `deadline`, cancels the rest, stops the poll thread.
  // Afterwards Produce fails with kFailedPrecondition. Idempotent.
  Status Shutdown(core::Deadline deadline);

  // "topic 'x' on Kafka cluster 'main' (routing.yaml:3:5)".
  std::string DescribeTopic(const std::string& topic) const;

 private:
  class DeliveryReports;
  explicit KafkaCluster(KafkaSettings settings);
  void PollLoop();
  // Metadata of all topics (topic == nullptr) or one, retried until `deadline`, failing
  // early once every broker is known to be down.
  Result<std::unique_ptr<RdKafka::Metadata>> FetchMetadata(const std::string* topic,
                                                           core::Deadline deadline);
  struct TopicLookup {
    bool exists = false;
    // The metadata names a controller among its brokers (the Admin API needs one; the mock
    // cluster names none).
    bool has_controller = false;
  };
  Result<TopicLookup> LookupTopic(const std::string& topic, core::Deadline deadline);
  Status CreateTopic(const std::string& topic, core::Deadline deadline);
  Status WaitForBrokerAutoCreate(const std::string& topic, core::Deadline deadline,
                                 const std::string& why_no_admin);

  const KafkaSettings settings_;
  std::unique_ptr<ClusterEvents> events_;
  std::unique_ptr<DeliveryReports> delivery_reports_;
  std::unique_ptr<RdKafka::Producer> producer_;

  // Produce holds it shared; Shutdown exclusively, so no produce() races the flush.
  std::shared_mutex state_mu_;
  bool closed_ = false;

  std::mutex shutdown_mu_;
  bool shut_down_ = false;
  std::atomic<bool> stop_polling_{false};
  std::thread poll_thread_;

  std::mutex topics_mu_;
  std::set<std::string> known_topics_;
};

}  // namespace msgsdk::kafka
