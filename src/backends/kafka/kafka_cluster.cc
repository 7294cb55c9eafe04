#include "backends/kafka/kafka_cluster.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <span>
#include <utility>

#include <librdkafka/rdkafka.h>

#include "backends/kafka/kafka_errors.h"
#include "backends/kafka/kafka_mapping.h"
#include "core/asymmetric_fence.h"

namespace msgsdk::kafka {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(core::Deadline deadline, int at_most = 1 << 30) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, at_most));
}

// Errors after which asking again may succeed: no broker answered (yet).
bool IsConnectivityError(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR__TRANSPORT || err == RdKafka::ERR__TIMED_OUT ||
         err == RdKafka::ERR__ALL_BROKERS_DOWN || err == RdKafka::ERR__RESOLVE ||
         err == RdKafka::ERR__WAIT_COORD || err == RdKafka::ERR_LEADER_NOT_AVAILABLE;
}

struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};

}  // namespace

// ---- ClusterEvents -------------------------------------------------------------------------

void ClusterEvents::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR: {
      if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN) {
        brokers_down_.store(true, std::memory_order_release);
      }
      std::string text = event.str();
      if (event.fatal()) {
        // A fatal error disables the handle for good: worth a line even without a logger.
        std::fprintf(stderr, "msgsdk: Kafka cluster '%s': fatal librdkafka error: %s\n",
                     cluster_.c_str(), text.c_str());
      }
      std::lock_guard lock(mu_);
      last_error_ = std::move(text);
      break;
    }
    case RdKafka::Event::EVENT_LOG:
      // Broker connection failures also arrive as error events and end up in the Status of
      // the operation they hurt; the log keeps what librdkafka deems a warning or worse.
      if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
        std::fprintf(stderr, "msgsdk: Kafka cluster '%s': librdkafka %s: %s\n", cluster_.c_str(),
                     event.fac().c_str(), event.str().c_str());
      }
      break;
    default:
      break;
  }
}

std::string ClusterEvents::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

// ---- SendTracker ---------------------------------------------------------------------------

namespace {
// Spare send records kept per tracker at most beyond a block's worth (see RecordSlab).
constexpr size_t kMaxSpareSends = 16384;
// Delivery reports applied per hold of a tracker's lock.
constexpr ptrdiff_t kReportChunk = 64;
// While a thread serves a producer's delivery reports: the cluster and the reports collected
// so far (else both null).
struct Collecting {
  KafkaCluster* cluster = nullptr;
  std::vector<DeliveryReport>* reports = nullptr;
};
thread_local Collecting collecting;
// A sending thread serves the delivery reports every this many records it sends (per
// thread), as often as the benchmark's raw producer polls.
constexpr int kServeEvery = 1000;
// The delivery thread leaves the reports to the sending threads while one served them this
// recently (longer than the gap between two serves of a thread sending steadily).
constexpr auto kSenderServeGrace = std::chrono::milliseconds(5);
// Records a thread sent since it last served delivery reports.
thread_local int sends_since_serve = 0;

// Shutdown must not flush while a send is being handed to librdkafka: the record would reach
// librdkafka after the flush, with no thread left to serve its delivery report. A counter of
// sends under way would cost every send two atomic read-modify-writes, each as much as a
// hundred instructions on the sending thread. Instead each thread marks, in memory of its
// own, the cluster it is handing a record to, then reads closed_ (a fence between: the light
// half of core/asymmetric_fence.h); the mark is cleared with a plain store once librdkafka
// returned. Shutdown sets closed_, makes the heavy half of the fence (after which a send
// either shows its mark or finds closed_ set), then waits until no thread's mark names its
// cluster.
struct HandOverMark;
struct HandOverMarks {
  std::mutex mutex;
  std::set<HandOverMark*> all;
};
// Never destroyed: a thread may end after static destruction began.
HandOverMarks& AllMarks() {
  static auto* marks = new HandOverMarks;
  return *marks;
}
struct HandOverMark {
  HandOverMark() {
    std::lock_guard lock(AllMarks().mutex);
    AllMarks().all.insert(this);
  }
  ~HandOverMark() {
    std::lock_guard lock(AllMarks().mutex);
    AllMarks().all.erase(this);
  }
  HandOverMark(const HandOverMark&) = delete;
  HandOverMark& operator=(const HandOverMark&) = delete;
  std::atomic<const KafkaCluster*> cluster{nullptr};
};
thread_local HandOverMark hand_over_mark;

// Whether some thread is handing a record to `cluster`.
bool HandingOver(const KafkaCluster* cluster) {
  std::lock_guard lock(AllMarks().mutex);
  return std::any_of(AllMarks().all.begin(), AllMarks().all.end(), [cluster](HandOverMark* mark) {
    return mark->cluster.load(std::memory_order_acquire) == cluster;
  });
}
}  // namespace

SendTracker::SendTracker(KafkaCluster* cluster, std::string topic)
    : cluster_(cluster),
      topic_(std::move(topic)),
      records_([this](void* where) { new (where) PendingSend(this); }, kMaxSpareSends) {}

SendTracker::~SendTracker() = default;

bool SendTracker::Send(const Message& message, rd_kafka_topic_t* topic,
                       const core::SendDone& done) {
  PendingSend* send = records_.Take();
  send->done = done;
  send->bytes = message.body.size() + message.key.size();
  // Before the gate: Close, once it closed the gate, finds every send that entered pending
  // (and, should it find a refused one pending, its callback).
  send->pending.store(true, std::memory_order_release);
  // Named once: each use of a thread_local with a constructor checks that it was made.
  HandOverMark& mark = hand_over_mark;
  mark.cluster.store(cluster_, std::memory_order_relaxed);
  // Enter fences between the stores above and the loads of the gate's and the cluster's
  // closed flags (in Produce).
  if (!sends_.Enter()) {
    mark.cluster.store(nullptr, std::memory_order_release);
    Refuse(send);
    return false;
  }
  // On success librdkafka holds the record until its delivery report.
  Status status = cluster_->Produce(message, topic, send);
  mark.cluster.store(nullptr, std::memory_order_release);
  if (!status.ok()) {
    Abort(send, status);
    return false;
  }
  return true;
}

void SendTracker::Refuse(PendingSend* send) {
  core::SendDone done;
  {
    std::lock_guard lock(mu_);
    // Close may have counted the refused send in for a moment and taken its callback.
    if (send->pending.load(std::memory_order_relaxed)) {
      send->pending.store(false, std::memory_order_relaxed);
      done = send->done;
    }
    send->done = {};
    records_.Give(std::span(&send, 1));
    cv_.notify_all();
  }
  if (done) {
    done(FailedPreconditionError("send to " + cluster_->DescribeTopic(topic_) +
                                 ": the producer is closed"));
  }
}

void SendTracker::Abort(PendingSend* send, const Status& status) {
  DeliveryReport report{.send = send};
  Finish(&report, &report + 1, &status);
}

void SendTracker::Finish(DeliveryReport* begin, DeliveryReport* end, const Status* failure) {
  if (begin == end) return;
  // This Finish counts itself as a running callback from its first chunk until EndCallbacks,
  // its last touch of the tracker: else, when Close had taken every callback of the last
  // chunk, that chunk's Exit could let Release delete the tracker under it.
  int running = 1;
  // In chunks, so Close waits for one chunk at most.
  // (Reports collected by a poll come kReportChunk at a time; an rd_kafka_flush brings all.)
  for (DeliveryReport* chunk = begin; chunk != end;) {
    DeliveryReport* const chunk_end = chunk + std::min<ptrdiff_t>(end - chunk, kReportChunk);
    std::array<PendingSend*, kReportChunk> reported;
    size_t count = 0;
    int chunk_taken = 0;
    {
      std::lock_guard lock(mu_);
      for (DeliveryReport* report = chunk; report != chunk_end; ++report) {
        PendingSend* send = report->send;
        reported[count++] = send;
        if (send->pending.load(std::memory_order_relaxed)) {  // else already failed by Close
          send->pending.store(false, std::memory_order_relaxed);
          report->done = send->done;
          // Loaded while the rest of the chunk is taken, for the callbacks below.
          report->done.Prefetch();
          report->bytes = send->bytes;
          ++chunk_taken;
        }
        send->done = {};
      }
      // Under the lock, with the count: the tracker is deleted once nothing is outstanding
      // and no callback runs, and its records with it.
      records_.Give(std::span(reported.data(), count));
      sends_.Exit(static_cast<int64_t>(count));
      running_ += chunk_taken + (chunk == begin ? 1 : 0);
    }
    for (DeliveryReport* report = chunk; report != chunk_end && chunk_taken > 0; ++report) {
      if (!report->done) continue;
      if (failure != nullptr) {
        report->done(*failure);
      } else if (report->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        report->done(report->position);
      } else {
        report->done(cluster_->ReportStatus(*this, report->bytes, report->err));
      }
      report->done = {};
    }
    running += chunk_taken;
    chunk = chunk_end;
  }
  EndCallbacks(running);
}

void SendTracker::EndCallbacks(int count) {
  bool last = false;
  {
    std::lock_guard lock(mu_);
    running_ -= count;
    if (sends_.closed()) cv_.notify_all();
    last = released_ && running_ == 0 && sends_.InFlight() == 0;
  }
  if (last) delete this;
}

std::vector<core::SendDone> SendTracker::Close(core::Deadline deadline) {
  std::unique_lock lock(mu_);
  sends_.Close();
  cv_.wait_until(lock, deadline, [this] { return sends_.InFlight() == 0 && running_ == 0; });
  std::vector<core::SendDone> expired;
  // The sends still pending are found among the slab's records: a list of them would cost
  // every report writes to its neighbours' records, long out of cache. Each stays
  // outstanding: its report gives the record back.
  records_.ForEach([&](PendingSend* send) {
    if (!send->pending.load(std::memory_order_acquire)) return;
    send->pending.store(false, std::memory_order_relaxed);
    expired.push_back(send->done);
    send->done = {};
  });
  return expired;
}

void SendTracker::Release() {
  bool last = false;
  {
    std::lock_guard lock(mu_);
    released_ = true;
    last = running_ == 0 && sends_.InFlight() == 0;
  }
  if (last) delete this;
}

// ---- KafkaCluster --------------------------------------------------------------------------

void KafkaCluster::OnDeliveryReport(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message,
                                    void* /*opaque*/) {
  auto* send = static_cast<PendingSend*>(message->_private);
  if (send == nullptr) return;
  if (collecting.reports != nullptr) {
    // The send's record was last touched when it was sent, often thousands of records ago:
    // it is loaded now, so that the cache misses of a whole group overlap instead of coming
    // one after another when the group is applied.
    core::PrefetchForWrite(send, sizeof(PendingSend));
    // Written in place: a report made on the stack and copied in was written in pieces and
    // read back whole, which the CPU cannot forward from its store buffer (a stall per field).
    DeliveryReport& report = collecting.reports->emplace_back();
    report.send = send;
    report.err = message->err;
    report.position = {message->partition, message->offset};
    // Applied in small groups while the poll goes on: one lock per group, and the group
    // stays in cache (a whole poll can bring tens of thousands of reports).
    if (collecting.reports->size() >= static_cast<size_t>(kReportChunk)) {
      collecting.cluster->ApplyReports(*collecting.reports);
    }
    return;
  }
  // Served by a poll that collects nothing (none in this backend does): apply it at once.
  std::vector<DeliveryReport> one = {DeliveryReport{
      .send = send, .err = message->err, .position = {message->partition, message->offset}}};
  send->tracker->cluster().ApplyReports(one);
}

Status KafkaCluster::ReportStatus(const SendTracker& tracker, size_t bytes,
                                  rd_kafka_resp_err_t code) const {
  const auto err = static_cast<RdKafka::ErrorCode>(code);
  // Not rd_kafka_message_errstr: on a delivery report the payload is the record, not a
  // NUL-terminated error text (librdkafka forbids it for producers).
  const char* errstr = rd_kafka_err2str(code);
  std::string context = "send to " + DescribeTopic(tracker.topic());
  if (err == RdKafka::ERR__MSG_TIMED_OUT) {
    context += ": not acknowledged within delivery_timeout_ms=" +
               std::to_string(settings_.delivery_timeout.count());
    if (events_->brokers_down()) {
      context += " (no broker reachable at '" + settings_.bootstrap + "'";
      const std::string last = events_->last_error();
      if (!last.empty()) context += ": " + last;
      context += ")";
    }
  } else if (err == RdKafka::ERR_MSG_SIZE_TOO_LARGE) {
    context += ": record of " + std::to_string(bytes) + " bytes is too large";
  }
  return KafkaStatus(err, context, errstr != nullptr ? errstr : "");
}

void KafkaCluster::ApplyReports(std::vector<DeliveryReport>& reports) {
  if (reports.empty()) return;
  // The SendAsync callbacks of these reports go to the callback pool in one hand-off.
  core::SendDoneBatch batch;
  bool answered = false;
  for (const DeliveryReport& report : reports) {
    answered = answered || report.err == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  if (answered) events_->NoteBrokerAnswered();
  // Consecutive reports of one tracker (usually all of them) are applied together.
  DeliveryReport* const end = reports.data() + reports.size();
  for (DeliveryReport* run = reports.data(); run != end;) {
    SendTracker* tracker = run->send->tracker;
    DeliveryReport* run_end = run + 1;
    while (run_end != end && run_end->send->tracker == tracker) ++run_end;
    tracker->Finish(run, run_end);
    run = run_end;
  }
  reports.clear();
}

void KafkaCluster::Poll(int timeout_ms) {
  // Per thread, so its capacity is reused from one poll to the next.
  thread_local std::vector<DeliveryReport> reports;
  // The SendAsync callbacks of the whole poll go to the callback pool in one hand-off, not
  // one per chunk of reports applied while it runs: a hand-off can cost a wake-up.
  core::SendDoneBatch batch;
  collecting = {.cluster = this, .reports = &reports};
  rd_kafka_poll(rk_, timeout_ms);
  collecting = {};
  ApplyReports(reports);
}

KafkaCluster::KafkaCluster(KafkaSettings settings)
    : settings_(std::move(settings)), events_(std::make_unique<ClusterEvents>(settings_.cluster)) {
  // Before any thread marks a hand-over (see HandOverMarks).
  core::EnableAsymmetricFences();
}

Result<std::shared_ptr<KafkaCluster>> KafkaCluster::Start(KafkaSettings settings) {
  std::shared_ptr<KafkaCluster> cluster(new KafkaCluster(std::move(settings)));
  const KafkaSettings& s = cluster->settings_;
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<RdKafka::Conf> conf, MakeProducerConf(s));
  std::string errstr;
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(cluster->events_.get()), errstr) !=
      RdKafka::Conf::CONF_OK) {
    return InternalError(s.Describe() + ": cannot install librdkafka callbacks: " + errstr);
  }
  // The C callback, not the C++ DeliveryReportCb: no wrapper object per record, and the
  // reports can be collected per poll (see Poll).
  rd_kafka_conf_set_dr_msg_cb(conf->c_ptr_global(), &KafkaCluster::OnDeliveryReport);
  cluster->producer_.reset(RdKafka::Producer::create(conf.get(), errstr));
  if (cluster->producer_ == nullptr) {
    return InvalidArgumentError(s.Describe() +
                                ": librdkafka refused the producer configuration: " + errstr);
  }
  cluster->rk_ = cluster->producer_->c_ptr();
  cluster->main_queue_.reset(rd_kafka_queue_get_main(cluster->rk_));
  cluster->poll_thread_ = std::thread([raw = cluster.get()] { raw->PollLoop(); });
  return cluster;
}

KafkaCluster::~KafkaCluster() { Shutdown(Clock::now()).IgnoreError(); }

void KafkaCluster::PollLoop() {
  pthread_setname_np(pthread_self(), "msgsdk-kreports");
  while (!stop_polling_.load(std::memory_order_acquire)) {
    // A thread that is sending serves the reports itself: stay out of its way until it has
    // not served them for kSenderServeGrace, counted from its last serve (so the reports of
    // its last sends wait no longer than that), or for as long after it asked.
    const auto now = Clock::now();
    auto resume =
        Clock::time_point(Clock::duration(sender_served_at_.load(std::memory_order_relaxed))) +
        kSenderServeGrace;
    if (sender_wants_to_serve_.exchange(false, std::memory_order_relaxed)) {
      resume = now + kSenderServeGrace;
    }
    if (resume > now) {
      std::unique_lock lock(idle_mu_);
      idle_cv_.wait_until(lock, resume,
                          [this] { return stop_polling_.load(std::memory_order_acquire); });
      continue;
    }
    std::lock_guard serve(serve_mu_);
    Poll(100);
  }
}

void KafkaCluster::AfterSend() {
  if (++sends_since_serve < kServeEvery) return;
  sends_since_serve = 0;
  // Not from within a serve of this thread (a completion that sends again).
  if (collecting.reports != nullptr) return;
  std::unique_lock serve(serve_mu_, std::try_to_lock);
  if (!serve.owns_lock()) {
    // The delivery thread is serving (or waiting for reports): ask it to stop, so the next
    // serve is this thread's.
    sender_wants_to_serve_.store(true, std::memory_order_relaxed);
    InterruptPoll();
    return;
  }
  sender_served_at_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  Poll(0);
}

std::string KafkaCluster::DescribeTopic(const std::string& topic) const {
  return "topic '" + topic + "' on " + settings_.Describe();
}

Result<rd_kafka_topic_t*> KafkaCluster::NewTopicHandle(const std::string& topic) {
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  if (handle == nullptr) {
    return KafkaStatus(static_cast<RdKafka::ErrorCode>(rd_kafka_last_error()),
                       "producing to " + DescribeTopic(topic));
  }
  return handle;
}

Status KafkaCluster::Produce(const Message& message, rd_kafka_topic_t* topic, PendingSend* send) {
  // Relaxed: the fence after the sender's mark orders this after Shutdown's store (see
  // HandOverMarks).
  if (closed_.load(std::memory_order_relaxed)) {
    return FailedPreconditionError("send to " + DescribeTopic(send->tracker->topic()) +
                                   ": the connection to the cluster is closed");
  }
  rd_kafka_headers_t* headers = EncodeHeaders(message);
  // rd_kafka_produceva rather than the RD_KAFKA_V_ macros of rd_kafka_producev, which are
  // GNU statement expressions. No key field for a message without one (librdkafka's default).
  rd_kafka_vu_t fields[7];
  size_t count = 0;
  fields[count].vtype = RD_KAFKA_VTYPE_RKT;
  fields[count++].u.rkt = topic;
  fields[count].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  fields[count++].u.i = RD_KAFKA_MSG_F_COPY;
  fields[count].vtype = RD_KAFKA_VTYPE_VALUE;
  fields[count].u.mem.ptr = const_cast<char*>(message.body.data());
  fields[count++].u.mem.size = message.body.size();
  if (!message.key.empty()) {
    fields[count].vtype = RD_KAFKA_VTYPE_KEY;
    fields[count].u.mem.ptr = const_cast<char*>(message.key.data());
    fields[count++].u.mem.size = message.key.size();
  }
  fields[count].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
  fields[count++].u.i64 = ToEpochMillis(message.born_at);
  fields[count].vtype = RD_KAFKA_VTYPE_HEADERS;
  fields[count++].u.headers = headers;
  fields[count].vtype = RD_KAFKA_VTYPE_OPAQUE;
  fields[count++].u.ptr = send;
  rd_kafka_error_t* error = rd_kafka_produceva(rk_, fields, count);
  if (error == nullptr) return OkStatus();
  const auto err = static_cast<RdKafka::ErrorCode>(rd_kafka_error_code(error));
  rd_kafka_error_destroy(error);
  rd_kafka_headers_destroy(headers);  // still ours: produceva takes them only on success
  std::string context = "send to " + DescribeTopic(send->tracker->topic());
  if (err == RdKafka::ERR_MSG_SIZE_TOO_LARGE) {
    context += ": record of " + std::to_string(send->bytes) +
               " bytes is larger than the producer's message.max.bytes (set it in the "
               "cluster's librdkafka map; brokers and topics have their own limit too)";
  } else if (err == RdKafka::ERR__QUEUE_FULL) {
    context += ": the producer's queue is full (librdkafka queue.buffering.max.messages)";
  }
  return KafkaStatus(err, context);
}

Result<std::unique_ptr<RdKafka::Metadata>> KafkaCluster::FetchMetadata(const std::string* topic,
                                                                       core::Deadline deadline) {
  const std::string what =
      topic == nullptr ? "the topics of " + settings_.Describe() : DescribeTopic(*topic);
  std::unique_ptr<RdKafka::Topic> only;
  if (topic != nullptr) {
    std::string errstr;
    only.reset(RdKafka::Topic::create(producer_.get(), *topic, nullptr, errstr));
    if (only == nullptr) {
      return InvalidArgumentError("looking up " + what + ": " + errstr);
    }
  }
  for (;;) {
    // Short slices, so a cluster known to be down is reported at once instead of at the
    // deadline.
    const int slice = std::max(1, RemainingMs(deadline, 250));
    RdKafka::Metadata* raw = nullptr;
    const RdKafka::ErrorCode err = producer_->metadata(topic == nullptr, only.get(), &raw, slice);
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    if (err == RdKafka::ERR_NO_ERROR) {
      events_->NoteBrokerAnswered();
      return metadata;
    }
    if (!IsConnectivityError(err)) return KafkaStatus(err, "looking up " + what);
    const bool down = events_->brokers_down();
    if (down || Clock::now() >= deadline) {
      std::string message = "looking up " + what + ": ";
      message += down ? "no broker reachable at '" + settings_.bootstrap + "'"
                      : "no broker answered within metadata_timeout_ms=" +
                            std::to_string(settings_.metadata_timeout.count());
      const std::string last = events_->last_error();
      if (!last.empty()) message += " (" + last + ")";
      return UnavailableError(std::move(message));
    }
  }
}

Result<KafkaCluster::TopicLookup> KafkaCluster::LookupTopic(const std::string& topic,
                                                            core::Deadline deadline) {
  // Asking for every topic never makes a broker auto-create the one we look for.
  MSGSDK_ASSIGN_OR_RETURN(auto metadata, FetchMetadata(nullptr, deadline));
  TopicLookup lookup;
  const int32_t controller = rd_kafka_controllerid(rk_, 0);
  for (const RdKafka::BrokerMetadata* broker : *metadata->brokers()) {
    if (broker->id() == controller) lookup.has_controller = true;
  }
  for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
    if (t->topic() != topic) continue;
    lookup.exists = t->err() != RdKafka::ERR_UNKNOWN_TOPIC_OR_PART && !t->partitions()->empty();
  }
  return lookup;
}

Result<std::vector<int32_t>> KafkaCluster::Partitions(const std::string& topic,
                                                      core::Deadline deadline) {
  MSGSDK_ASSIGN_OR_RETURN(auto metadata, FetchMetadata(nullptr, deadline));
  for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
    if (t->topic() != topic || t->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) continue;
    std::vector<int32_t> ids;
    for (const RdKafka::PartitionMetadata* p : *t->partitions()) ids.push_back(p->id());
    std::sort(ids.begin(), ids.end());
    if (!ids.empty()) return ids;
  }
  return NotFoundError(DescribeTopic(topic) + " does not exist");
}

Status KafkaCluster::EnsureTopic(const std::string& topic) {
  {
    std::lock_guard lock(topics_mu_);
    if (known_topics_.contains(topic)) return OkStatus();
  }
  const core::Deadline deadline = Clock::now() + settings_.metadata_timeout;
  MSGSDK_ASSIGN_OR_RETURN(const TopicLookup lookup, LookupTopic(topic, deadline));
  if (!lookup.exists) {
    if (!settings_.auto_create_topics) {
      return NotFoundError(DescribeTopic(topic) +
                           " does not exist and auto_create_topics is false (create it on the "
                           "cluster, or set auto_create_topics: true)");
    }
    if (lookup.has_controller) {
      MSGSDK_RETURN_IF_ERROR(CreateTopic(topic, deadline));
    } else {
      // Without a controller the Admin API cannot work (librdkafka's mock cluster names a
      // broker that does not exist); such clusters create topics when asked for them.
      MSGSDK_RETURN_IF_ERROR(WaitForBrokerAutoCreate(
          topic, deadline, "the cluster names no controller for the Admin API"));
    }
  }
  std::lock_guard lock(topics_mu_);
  known_topics_.insert(topic);
  return OkStatus();
}

Status KafkaCluster::CreateTopic(const std::string& topic, core::Deadline deadline) {
  char errstr[512] = {0};
  std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter> new_topic(rd_kafka_NewTopic_new(
      topic.c_str(), settings_.partitions, settings_.replication_factor, errstr, sizeof(errstr)));
  if (new_topic == nullptr) {
    return InvalidArgumentError("creating " + DescribeTopic(topic) + ": " + errstr);
  }
  std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  const int timeout_ms = std::max(1, RemainingMs(deadline));
  rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr, sizeof(errstr));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr, sizeof(errstr));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk_));
  rd_kafka_NewTopic_t* topics[] = {new_topic.get()};
  rd_kafka_CreateTopics(rk_, topics, 1, options.get(), queue.get());
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 1000));
  if (event == nullptr) {
    return UnavailableError("creating " + DescribeTopic(topic) +
                            ": no answer within metadata_timeout_ms=" +
                            std::to_string(settings_.metadata_timeout.count()));
  }
  auto err = static_cast<RdKafka::ErrorCode>(rd_kafka_event_error(event.get()));
  std::string detail =
      rd_kafka_event_error_string(event.get()) ? rd_kafka_event_error_string(event.get()) : "";
  if (err == RdKafka::ERR_NO_ERROR) {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        result ? rd_kafka_CreateTopics_result_topics(result, &count) : nullptr;
    if (count > 0) {
      err = static_cast<RdKafka::ErrorCode>(rd_kafka_topic_result_error(results[0]));
      const char* text = rd_kafka_topic_result_error_string(results[0]);
      detail = text ? text : "";
    }
  }
  if (err == RdKafka::ERR__UNSUPPORTED_FEATURE || err == RdKafka::ERR_UNSUPPORTED_VERSION ||
      err == RdKafka::ERR_INVALID_REQUEST) {
    return WaitForBrokerAutoCreate(topic, deadline, "the Admin API is unavailable: " + detail);
  }
  if (err != RdKafka::ERR_NO_ERROR && err != RdKafka::ERR_TOPIC_ALREADY_EXISTS) {
    return KafkaStatus(err, "creating " + DescribeTopic(topic), detail);
  }
  // Creation is asynchronous on the brokers: wait until the topic shows in metadata.
  for (auto backoff = std::chrono::milliseconds(20);;
       backoff = std::min(backoff * 2, std::chrono::milliseconds(500))) {
    MSGSDK_ASSIGN_OR_RETURN(const TopicLookup lookup, LookupTopic(topic, deadline));
    if (lookup.exists) return OkStatus();
    if (Clock::now() + backoff >= deadline) {
      return UnavailableError("creating " + DescribeTopic(topic) +
                              ": created, but not visible in metadata within "
                              "metadata_timeout_ms=" +
                              std::to_string(settings_.metadata_timeout.count()));
    }
    std::this_thread::sleep_for(backoff);
  }
}

Status KafkaCluster::WaitForBrokerAutoCreate(const std::string& topic, core::Deadline deadline,
                                             const std::string& why_no_admin) {
  // A metadata request for the topic itself lets the broker auto-create it
  // (allow.auto.create.topics is on when auto_create_topics is).
  for (auto backoff = std::chrono::milliseconds(20);;
       backoff = std::min(backoff * 2, std::chrono::milliseconds(500))) {
    MSGSDK_ASSIGN_OR_RETURN(auto metadata, FetchMetadata(&topic, deadline));
    for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
      if (t->topic() == topic && t->err() == RdKafka::ERR_NO_ERROR && !t->partitions()->empty()) {
        return OkStatus();
      }
    }
    if (Clock::now() + backoff >= deadline) {
      return NotFoundError(DescribeTopic(topic) + " does not exist and could not be created (" +
                           why_no_admin +
                           "; the brokers did not auto-create it within metadata_timeout_ms=" +
                           std::to_string(settings_.metadata_timeout.count()) + ")");
    }
    std::this_thread::sleep_for(backoff);
  }
}

Status KafkaCluster::Shutdown(core::Deadline deadline) {
  std::lock_guard shutdown_lock(shutdown_mu_);
  if (shut_down_) return OkStatus();
  shut_down_ = true;
  closed_.store(true);
  // A send being handed to librdkafka finishes first (it never blocks); later ones find
  // closed_ set (see HandOverMarks).
  core::HeavyFence();
  while (HandingOver(this)) std::this_thread::yield();
  Status status;
  if (producer_ != nullptr) {
    // The delivery thread may be waiting for reports while it serves: cut that wait short,
    // and keep it from serving again before this thread does.
    sender_wants_to_serve_.store(true, std::memory_order_relaxed);
    InterruptPoll();
    std::lock_guard serve(serve_mu_);
    // rd_kafka_flush serves delivery reports on this thread: collect them like Poll does.
    std::vector<DeliveryReport> reports;
    collecting = {.cluster = this, .reports = &reports};
    producer_->flush(RemainingMs(deadline));
    collecting = {};
    ApplyReports(reports);
    if (producer_->outq_len() > 0) {
      // Past the deadline: fail what is left rather than wait for it.
      producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
      const core::Deadline grace = Clock::now() + std::chrono::seconds(1);
      while (producer_->outq_len() > 0 && Clock::now() < grace) Poll(10);
      status = DeadlineExceededError("closing " + settings_.Describe() +
                                     ": sends still pending at the deadline were cancelled");
    }
  }
  stop_polling_.store(true, std::memory_order_release);
  { std::lock_guard lock(idle_mu_); }
  idle_cv_.notify_all();
  if (poll_thread_.joinable()) {
    InterruptPoll();
    poll_thread_.join();
  }
  return status;
}

}  // namespace msgsdk::kafka
