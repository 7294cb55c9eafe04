#pragma once

// What every producer and subscription of one Kafka cluster shares: the settings, one
// librdkafka producer with the thread that serves its delivery reports, the view of broker
// reachability, and topic lookup and creation.
//
// Delivery reports come through librdkafka's C callback, are collected while a poll serves
// them and applied 64 at a time: the serving thread takes a tracker's lock once per group,
// not once per record.
//
// Who serves them: a thread that keeps sending serves them itself every kServeEvery sends,
// as a raw librdkafka producer does, so librdkafka frees each record on the thread that
// allocated it (glibc's malloc is slow when one thread frees what another allocated, and
// such a stream of records made the delivery thread spend half its time in free). The
// cluster's delivery thread serves them whenever no sending thread did for a moment. Only
// one thread serves at a time (serve_mu_), so reports are applied in the order librdkafka
// hands them out, and SendAsync callbacks still run on the SDK's callback pool.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "backends/kafka/kafka_config.h"
#include "core/backend.h"
#include "core/in_flight_gate.h"
#include "core/light_mutex.h"
#include "core/stashed_slab.h"
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

class KafkaCluster;
class SendTracker;

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};

// One send waiting for its delivery report: the message opaque librdkafka hands back with
// the report. Taken from its SendTracker's slab, given back once the report arrived.
struct PendingSend {
  explicit PendingSend(SendTracker* tracker) : tracker(tracker) {}
  SendTracker* const tracker;
  core::SendDone done;  // null once run or taken by Close
  size_t bytes = 0;
  // The callback has not run (nor been taken by Close). Set by the sending thread before it
  // enters the tracker's gate; cleared under the tracker's mutex.
  std::atomic<bool> pending{false};
};

// A delivery report, as collected by the thread that polls the producer: what librdkafka
// said, kept plain; the Result handed to the send's callback is made when it is applied.
struct DeliveryReport {
  PendingSend* send = nullptr;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  core::StoredPosition position;
  // Taken from `send` when the report is applied (the record is recycled meanwhile).
  core::SendDone done;
  size_t bytes = 0;  // of a failed send, for its status
};

// The pending sends of one BackendProducer, so its Close can wait for them or fail them.
// Each send has a record from the tracker's slab, reused: in steady state a send allocates
// nothing here. A sending thread takes no lock: it takes the record from a stash of its own
// and counts itself in at the tracker's gate. The delivery thread takes the tracker's mutex
// once per batch of reports.
// Lifetime: created by the producer, which calls Release() instead of deleting it; it goes
// away once released and every send handed to librdkafka has had its report (a report can
// come after the producer's Close gave up on it).
class SendTracker {
 public:
  SendTracker(KafkaCluster* cluster, std::string topic);
  SendTracker(const SendTracker&) = delete;
  SendTracker& operator=(const SendTracker&) = delete;

  KafkaCluster& cluster() const { return *cluster_; }
  const std::string& topic() const { return topic_; }

  // Hands `message` to librdkafka as a record of `topic` whose delivery report completes
  // `done`. True if librdkafka took it; otherwise `done` has run with the failure (the
  // producer or the cluster is closed, or librdkafka refused the record).
  bool Send(const Message& message, rd_kafka_topic_t* topic, const core::SendDone& done);
  // Applies reports [begin, end), all of sends of this tracker: runs each callback unless
  // Close already failed it (with `failure` when given, else with the report's result), then
  // recycles the sends.
  void Finish(DeliveryReport* begin, DeliveryReport* end, const Status* failure = nullptr);
  // Refuses new sends, waits until none is pending (and no callback is running) or
  // `deadline`, then takes the callbacks of those still pending (to be failed by the caller).
  std::vector<core::SendDone> Close(core::Deadline deadline);
  // The producer is done with the tracker (after Close).
  void Release();

 private:
  ~SendTracker();
  // The record never reached librdkafka: runs its callback with `status` now.
  void Abort(PendingSend* send, const Status& status);
  // The gate refused `send` (Close began): runs its callback with the failure, unless Close
  // took it.
  void Refuse(PendingSend* send);
  // After the callbacks of `count` sends ran: wakes Close, deletes the tracker if it was the
  // last thing it waited for.
  void EndCallbacks(int count);

  KafkaCluster* const cluster_;
  const std::string topic_;
  // Sends handed to librdkafka (or on their way) and not yet reported. Closed by Close.
  core::InFlightGate sends_;
  // Taken per group of reports, by Close and Release.
  mutable core::LightMutex mu_;
  std::condition_variable_any cv_;
  int running_ = 0;  // callbacks being run by Finish and Abort, plus each Finish under way; mu_
  bool released_ = false;
  core::StashedSlab<PendingSend> records_;
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

  // A handle of `topic` for Produce (the caller destroys it with rd_kafka_topic_destroy).
  Result<rd_kafka_topic_t*> NewTopicHandle(const std::string& topic);

  // Hands `message` to librdkafka as a record of `topic`; the delivery report completes
  // `send`. On an immediate failure the status is returned and `send` is left to the caller.
  // Called by SendTracker::Send only.
  Status Produce(const Message& message, rd_kafka_topic_t* topic, PendingSend* send);

  // Applies delivery reports collected by whoever polled the producer, and clears them.
  void ApplyReports(std::vector<DeliveryReport>& reports);

  // Called by a sending thread after each record it handed to librdkafka: every kServeEvery
  // records it serves the delivery reports that are ready, unless another thread is serving
  // them (then the delivery thread is asked to leave them to the senders).
  void AfterSend();

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
  explicit KafkaCluster(KafkaSettings settings);
  // librdkafka's dr_msg_cb: collects the report for ApplyReports.
  static void OnDeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  // Serves the producer's queue for up to `timeout_ms`, then applies the reports it gave.
  // The caller holds serve_mu_.
  void Poll(int timeout_ms);
  // Makes the poll another thread is waiting in return now (or the next one, if none is).
  // Not rd_kafka_yield: that only stops a dispatch from within one of its own callbacks (its
  // flag is the calling thread's), so from another thread it cuts no wait short.
  void InterruptPoll() { rd_kafka_queue_yield(main_queue_.get()); }
  void PollLoop();
  // The status of a failed delivery report of a send of `bytes` (for SendTracker::Finish).
  friend class SendTracker;
  Status ReportStatus(const SendTracker& tracker, size_t bytes, rd_kafka_resp_err_t err) const;
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
  std::unique_ptr<RdKafka::Producer> producer_;
  // producer_'s C handle, taken once: c_ptr() is a virtual call through a virtual base, on
  // every record sent.
  rd_kafka_t* rk_ = nullptr;
  // The producer's queue of delivery reports, for InterruptPoll (released before the
  // producer, as librdkafka requires).
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> main_queue_;

  // Set by Shutdown, which then waits until no send is being handed to librdkafka, so that
  // no record reaches librdkafka once it flushes (see HandOverMarks in the .cc file).
  std::atomic<bool> closed_{false};

  std::mutex shutdown_mu_;
  bool shut_down_ = false;
  std::atomic<bool> stop_polling_{false};
  std::thread poll_thread_;
  // Held by whoever serves the producer's queue (see the top of this file).
  std::mutex serve_mu_;
  // When a sending thread last served reports (a steady_clock time since its epoch, in its
  // ticks), and whether one found the delivery thread serving: the delivery thread then
  // leaves the reports to the senders.
  std::atomic<std::chrono::steady_clock::rep> sender_served_at_{0};
  std::atomic<bool> sender_wants_to_serve_{false};
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;  // wakes the delivery thread's pause for Shutdown

  std::mutex topics_mu_;
  std::set<std::string> known_topics_;
};

}  // namespace msgsdk::kafka
