#include "backends/native/client/remote_backend.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>

#include "backends/native/client/broker_client.h"
#include "backends/native/native_log.h"
#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "backends/native/protocol/wire_codec.h"
#include "backends/native/storage/message_codec.h"
#include "backends/native/storage/message_store.h"
#include "core/light_mutex.h"
#include "core/offset_tracker.h"

namespace msgsdk::native::client {
namespace {

using core::Deadline;
using core::Delivery;
using protocol::FrameType;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A Produce frame carries at most this many messages and about this many bytes (always at
// least one message), and a producer keeps at most this many frames in flight: sends made
// while they are answered wait and go together in the next frame. Eight frames keep the
// broker's writer busy through a group-commit sync (with four, 64 producers of 1 KiB
// messages sent 10 to 15% less: the frames arriving during a sync were all waiting for it).
constexpr size_t kMaxBatchMessages = 4096;
constexpr size_t kMaxBatchBytes = 1u << 20;
constexpr int kMaxFramesInFlight = 8;
constexpr int64_t kFetchMaxBytes = int64_t{8} << 20;
// A fetch answer up to this size may be applied on the client's I/O thread (see FetchOnce): a
// dozen 1 KiB messages or about a hundred small ones, tens of microseconds of decoding.
constexpr size_t kInlineFetchBytes = size_t{16} << 10;

struct RemoteSettings {
  milliseconds request_timeout{10000};
  milliseconds session_timeout{10000};
  milliseconds heartbeat_interval{1000};
  int32_t pull_batch = 256;
  milliseconds poll_wait{500};
  milliseconds commit_interval{100};
};

Result<int32_t> GetOrCreateTopic(BrokerClient& client, const std::string& topic,
                                 milliseconds timeout) {
  wire::GetOrCreateTopicRequest request;
  request.set_topic(topic);
  // 0: the daemon's queues-per-new-topic setting decides.
  request.set_queues(0);
  MSGSDK_ASSIGN_OR_RETURN(auto response,
                          CallAndWait<wire::GetOrCreateTopicResponse>(
                              client, FrameType::kGetOrCreateTopic, request, timeout));
  return response.queues();
}

// The sends one producer has in flight, so that its Close can wait for them.
class ProducerSends {
 public:
  void Started() { in_flight_.fetch_add(1); }

  void Finished(int64_t sends) {
    // The count too under the lock (once per answered batch): a Close that sees it reach
    // zero may destroy this object at once, so nothing may touch it after the lock is let
    // go; and a waiter between its check and its wait is not missed.
    std::lock_guard lock(mutex_);
    if (in_flight_.fetch_sub(sends) == sends) drained_.notify_all();
  }

  // False if sends are still in flight at `deadline`.
  bool WaitUntilDrained(Deadline deadline) {
    std::unique_lock lock(mutex_);
    return drained_.wait_until(lock, deadline, [this] { return in_flight_.load() == 0; });
  }

  // Every send is answered (or fails) within its request timeout, so this ends.
  void WaitUntilDrained() {
    std::unique_lock lock(mutex_);
    drained_.wait(lock, [this] { return in_flight_.load() == 0; });
  }

  int64_t in_flight() const { return in_flight_.load(); }

 private:
  std::mutex mutex_;
  std::condition_variable drained_;
  std::atomic<int64_t> in_flight_{0};
};

// The sends to one topic from every producer of it on this client, batched together into
// Produce frames (as librdkafka batches a partition's records whatever thread sends them):
// 64 producers of a topic fill frames as full as one does, instead of 64 times as many
// frames of a 64th of the size. One FIFO, so each producer's sends keep their order.
class TopicSender : public std::enable_shared_from_this<TopicSender> {
 public:
  TopicSender(std::shared_ptr<BrokerClient> client, std::string topic, int32_t queues,
              milliseconds timeout)
      : client_(std::move(client)),
        topic_(std::move(topic)),
        queues_(queues),
        timeout_(timeout),
        open_(topic_) {}

  const std::string& topic() const { return topic_; }

  // `done` is answered, then `sends` told, for every send.
  void Send(const Message& message, core::SendDone done, ProducerSends& sends) {
    // The same queue choice as embedded mode: a key keeps its queue, and so its order.
    const int32_t queue =
        message.key.empty()
            ? static_cast<int32_t>(next_queue_.fetch_add(1, std::memory_order_relaxed) % queues_)
            : static_cast<int32_t>(TagHash(message.key) % static_cast<uint64_t>(queues_));
    sends.Started();
    Status added;
    bool slot_free = false;
    {
      std::lock_guard lock(queue_mutex_);
      if (open_.entries() > 0 && open_.size() + message.body.size() > kMaxBatchBytes) {
        CloseOpenFrame();
      }
      // Encoded into the open frame at once: the core's message is only lent for the call.
      added = open_.Add(queue, message);
      if (added.ok()) {
        open_entries_.push_back({std::move(done), &sends});
        if (open_.entries() >= kMaxBatchMessages) CloseOpenFrame();
      }
      slot_free = frames_in_flight_ < kMaxFramesInFlight;
    }
    if (!added.ok()) {
      done(added.WithContext("sending to topic '" + topic_ + "'"));
      sends.Finished(1);
      return;
    }
    // With every frame slot taken there is nothing to send now: the answer that frees a slot
    // pumps (after it counted the slot free under queue_mutex_, so it sees this message).
    // That spares a sender two more lock round trips per message while the broker is busy.
    if (slot_free) Pump();
  }

 private:
  struct Entry {
    core::SendDone done;
    ProducerSends* sends;  // outlives the send: its producer waits for it before it goes
  };
  // A Produce frame and its entries, in order.
  struct Batch {
    std::string frame;
    std::vector<Entry> entries;
  };

  // The open frame's entries; the next frame's start with room for as many (instead of
  // growing, and moving every callback, a dozen times per frame). Under queue_mutex_.
  std::vector<Entry> TakeOpenEntries() {
    std::vector<Entry> entries = std::move(open_entries_);
    open_entries_ = {};
    open_entries_.reserve(entries.size());
    return entries;
  }

  // Queues the open frame as full. Under queue_mutex_.
  void CloseOpenFrame() {
    ready_.push_back(Batch{open_.TakeFrame(client_->TakeSpareFrame()), TakeOpenEntries()});
  }

  // Sends the full frames, then the open one, as long as fewer than kMaxFramesInFlight frames
  // are in flight. One sender at a time, so frames leave in the order their messages were
  // sent. Recursive: a Call that fails at once (a closed connection) answers, and pumps, on
  // this thread.
  void Pump() {
    std::lock_guard send_lock(send_mutex_);
    while (true) {
      Batch batch;
      {
        std::lock_guard lock(queue_mutex_);
        if (frames_in_flight_ >= kMaxFramesInFlight) return;
        if (!ready_.empty()) {
          batch = std::move(ready_.front());
          ready_.pop_front();
        } else if (open_.entries() > 0) {
          batch = Batch{open_.TakeFrame(client_->TakeSpareFrame()), TakeOpenEntries()};
        } else {
          return;
        }
        ++frames_in_flight_;
      }
      client_->CallWithFrame(FrameType::kProduce, std::move(batch.frame), timeout_,
                             [self = shared_from_this(), entries = std::move(batch.entries)](
                                 Result<protocol::Frame> frame) mutable {
                               self->Answered(entries, std::move(frame));
                             });
    }
  }

  void Answered(std::vector<Entry>& entries, Result<protocol::Frame> frame) {
    std::vector<protocol::ProduceOutcome> results;
    Status status = frame.status();
    if (frame.ok()) {
      Status decoded = protocol::DecodeProduceResponse(*frame, &status, &results);
      if (!decoded.ok()) status = decoded;
    }
    if (!status.ok()) status = status.WithContext("sending to topic '" + topic_ + "'");
    // The frame's callbacks reach the callback pool in one hand-off.
    const core::SendDoneBatch completions;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!status.ok()) {
        entries[i].done(status);
      } else if (i >= results.size()) {
        entries[i].done(InternalError("msgsdk-broker answered " + std::to_string(results.size()) +
                                      " results for " + std::to_string(entries.size()) +
                                      " messages"));
      } else if (results[i].status.ok()) {
        entries[i].done(core::StoredPosition{results[i].queue, results[i].offset});
      } else {
        entries[i].done(std::move(results[i].status));
      }
    }
    {
      std::lock_guard lock(queue_mutex_);
      --frames_in_flight_;
    }
    Pump();
    // Last: once its count is zero a producer may be destroyed. A run of one producer's sends
    // is counted out at once.
    size_t run_start = 0;
    for (size_t i = 1; i <= entries.size(); ++i) {
      if (i == entries.size() || entries[i].sends != entries[run_start].sends) {
        entries[run_start].sends->Finished(static_cast<int64_t>(i - run_start));
        run_start = i;
      }
    }
  }

  const std::shared_ptr<BrokerClient> client_;
  const std::string topic_;
  const int32_t queues_;
  const milliseconds timeout_;
  std::atomic<uint64_t> next_queue_{0};

  std::recursive_mutex send_mutex_;
  // Taken by every send of every producer of the topic: with 64 producers on two cores a
  // LightMutex, which checks again a few times before it sleeps, cost the client about 10%
  // less CPU per message than std::mutex.
  core::LightMutex queue_mutex_;
  protocol::ProduceFrameBuilder open_;  // guarded by queue_mutex_
  std::vector<Entry> open_entries_;
  std::deque<Batch> ready_;  // full frames waiting for a slot
  int frames_in_flight_ = 0;
};

class RemoteProducer : public core::BackendProducer {
 public:
  explicit RemoteProducer(std::shared_ptr<TopicSender> sender) : sender_(std::move(sender)) {}

  ~RemoteProducer() override { sends_.WaitUntilDrained(); }

  void Send(const Message& message, core::SendDone done) override {
    sender_->Send(message, std::move(done), sends_);
  }

  Status Close(Deadline deadline) override {
    if (!sends_.WaitUntilDrained(deadline)) {
      return DeadlineExceededError(std::to_string(sends_.in_flight()) + " sends to topic '" +
                                   sender_->topic() + "' still pending at close");
    }
    return OkStatus();
  }

 private:
  const std::shared_ptr<TopicSender> sender_;
  ProducerSends sends_;
};

// One subscription: joins the broker's group (clustering) or reads every queue with its own
// offsets (broadcast), long-polls the queues it owns, and commits the acknowledged prefix.
class RemoteConsumer : public core::BackendConsumer {
 public:
  RemoteConsumer(std::shared_ptr<BrokerClient> client, core::SubscriptionSpec spec,
                 core::DeliverySink& sink, int32_t queues, RemoteSettings settings)
      : client_(std::move(client)),
        spec_(std::move(spec)),
        sink_(sink),
        queues_(queues),
        settings_(settings),
        broadcast_(spec_.mode == SubscriptionMode::kBroadcast) {
    for (const auto& tag : spec_.tags) tag_hashes_.push_back(TagHash(tag));
    thread_ = std::thread([this] { Run(); });
  }

  ~RemoteConsumer() override { Close(Clock::now()).IgnoreError(); }

  void Ack(const Delivery& delivery) override {
    const Delivery* const one = &delivery;
    AckAll(std::span(&one, 1));
  }
  // The core acknowledges a handler thread's batch at once: one lock for all of it.
  void AckAll(std::span<const Delivery* const> deliveries) override {
    std::lock_guard lock(mutex_);
    core::AckOwned(owned_, deliveries);
  }

  Status Close(Deadline) override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      if (current_call_) current_call_->Abandon();
      wake_.notify_all();
    }
    {
      // No answer is applied on the I/O thread from now on (one being applied is waited for);
      // a fetch still in flight is answered into the relay, which drops it.
      std::unique_lock lock(relay_->mutex);
      relay_->consumer = nullptr;
      relay_->changed.notify_all();
      relay_->changed.wait(lock, [this] { return !relay_->applying; });
    }
    std::lock_guard join_lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    return close_status_;
  }

 private:
  struct OwnedQueue {
    core::OffsetTracker tracker;
    int64_t fetch_offset = 0;
    int64_t committed = -1;
  };

  bool Stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  // Waits until `deadline` or Close.
  void Pause(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, deadline, [this] { return stopping_; });
  }

  // A request the loop waits for; Close abandons the wait (kCancelled).
  template <typename Response>
  Result<Response> Request(FrameType type, const google::protobuf::MessageLite& request,
                           milliseconds timeout) {
    return ParseResponse<Response>(RequestFrame(type, request, timeout));
  }

  // The same, answering with the response frame itself.
  Result<protocol::Frame> RequestFrame(FrameType type, const google::protobuf::MessageLite& request,
                                       milliseconds timeout) {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<PendingCall> call, Send(type, request, timeout));
    return Take(call);
  }

  // A request sent without waiting for it; Take waits.
  Result<std::shared_ptr<PendingCall>> Send(FrameType type,
                                            const google::protobuf::MessageLite& request,
                                            milliseconds timeout) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return CancelledError("the subscription is closing");
    }
    auto call = std::make_shared<PendingCall>();
    client_->Call(type, request, timeout, PendingCall::Completer(call));
    return call;
  }

  Result<protocol::Frame> Take(const std::shared_ptr<PendingCall>& call) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return CancelledError("the subscription is closing");
      current_call_ = call;
    }
    auto frame = call->Wait();
    {
      std::lock_guard lock(mutex_);
      current_call_.reset();
    }
    if (!frame) return CancelledError("the subscription is closing");
    return std::move(*frame);
  }

  wire::GroupRequest MakeGroupRequest(const std::vector<int32_t>& released = {}) const {
    wire::GroupRequest request;
    request.set_topic(spec_.topic);
    request.set_group(spec_.group);
    request.set_member_id(spec_.member_id);
    request.set_session_timeout_ms(static_cast<uint32_t>(settings_.session_timeout.count()));
    for (int32_t queue : released) request.add_released(queue);
    return request;
  }

  void Log(const std::string& what, const Status& status) {
    std::fprintf(stderr, "msgsdk native: subscription of group '%s' to topic '%s': %s: %s\n",
                 spec_.group.c_str(), spec_.topic.c_str(), what.c_str(), status.ToString().c_str());
  }

  void Run() {
    pthread_setname_np(pthread_self(), "msgsdk-nfetch");
    bool joined = false;
    auto next_heartbeat = Clock::now();
    // The client's lost connections when the membership was last confirmed. A lost connection
    // may be a broker that restarted and forgot the group: until a heartbeat confirms the
    // membership (or the member joins again), nothing is fetched.
    confirmed_disconnects_ = client_->Disconnects();
    std::vector<int32_t> all_queues;
    all_queues.reserve(static_cast<size_t>(queues_));
    for (int32_t queue = 0; queue < queues_; ++queue) all_queues.push_back(queue);
    while (!Stopping()) {
      // Broadcast: every queue, each from this member's own position. Queues whose position
      // could not be read yet (no connection) are tried again on every round.
      if (broadcast_) AddQueues(all_queues);
      const bool unconfirmed = !broadcast_ && client_->Disconnects() != confirmed_disconnects_;
      if (!broadcast_ && (!joined || unconfirmed || Clock::now() >= next_heartbeat)) {
        const FrameType type = joined ? FrameType::kHeartbeat : FrameType::kJoinGroup;
        const uint64_t disconnects = client_->Disconnects();
        auto response =
            Request<wire::GroupResponse>(type, MakeGroupRequest(), settings_.request_timeout);
        next_heartbeat = Clock::now() + settings_.heartbeat_interval;
        if (response.ok()) {
          joined = true;
          confirmed_disconnects_ = disconnects;
          if (!Apply(std::move(response).value())) joined = false;
        } else if (response.status().code() == StatusCode::kNotFound && joined) {
          // Expired (or the broker restarted): another member may own our queues by now.
          Log("left the group", response.status());
          LoseAll();
          joined = false;
          continue;
        } else if (response.status().code() != StatusCode::kCancelled) {
          Log(joined ? "heartbeat" : "joining the group", response.status());
          if (!joined || unconfirmed) Pause(next_heartbeat);
          continue;
        }
      }
      bool idle;
      {
        std::lock_guard lock(mutex_);
        idle = owned_.empty();
      }
      if (idle) {
        Pause(broadcast_ ? Clock::now() + settings_.poll_wait : next_heartbeat);
        continue;
      }
      if (!sink_.WaitForCapacity(Clock::now() + settings_.poll_wait)) continue;
      auto wait = settings_.poll_wait;
      if (!broadcast_) {
        const auto until_heartbeat =
            std::chrono::duration_cast<milliseconds>(next_heartbeat - Clock::now());
        wait = std::clamp(until_heartbeat, milliseconds(0), settings_.poll_wait);
      }
      Status fetched = FetchOnce(wait);
      if (!fetched.ok() && fetched.code() != StatusCode::kCancelled) {
        Log("fetching", fetched);
        Pause(Clock::now() + settings_.poll_wait);
      }
      CommitInBackground();
    }
    // Closing: handlers of everything we own finish (or are abandoned), then commit and
    // leave, without abandoning these requests.
    std::vector<int32_t> all;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) all.push_back(queue);
    }
    sink_.Revoke(all);
    // Sent after any background commit on the same connection, so applied after it.
    Status status = CommitQueues(all);
    if (status.code() == StatusCode::kAborted) {
      // The broker no longer counts this member as the owner (its session expired, or the
      // broker restarted and the heartbeat has not joined again yet): the queues' next owner
      // starts from the last committed position, as at-least-once delivery allows. Not a
      // failure of this close, as for Kafka.
      Log("final commit refused", status);
      status = OkStatus();
    }
    if (!broadcast_ && joined) {
      auto left = CallAndWait<wire::GroupResponse>(*client_, FrameType::kLeaveGroup,
                                                   MakeGroupRequest(), settings_.request_timeout);
      if (!left.ok() && status.ok()) status = left.status().WithContext("leaving the group");
    }
    WaitForBackgroundCommit();
    std::lock_guard lock(mutex_);
    owned_.clear();
    close_status_ = status;
  }

  // Takes in an assignment: releases what moved to another member (after its handlers
  // finished and its position was committed), starts what is new. False if the member is
  // no longer in the group.
  bool Apply(wire::GroupResponse response) {
    while (response.to_release_size() > 0) {
      std::vector<int32_t> release(response.to_release().begin(), response.to_release().end());
      sink_.Revoke(release);
      for (int32_t queue : release) {
        // If this commit fails the next owner starts earlier and redelivers: no loss.
        CommitQueues({queue}).IgnoreError();
        std::lock_guard lock(mutex_);
        owned_.erase(queue);
      }
      auto next = CallAndWait<wire::GroupResponse>(
          *client_, FrameType::kHeartbeat, MakeGroupRequest(release), settings_.request_timeout);
      if (!next.ok()) {
        if (next.status().code() == StatusCode::kNotFound) {
          LoseAll();
          return false;
        }
        // The broker still counts us as owner; the next heartbeat asks again.
        Log("releasing queues", next.status());
        return true;
      }
      response = std::move(next).value();
    }
    const std::vector<int32_t> owned(response.owned().begin(), response.owned().end());
    std::vector<int32_t> lost;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) {
        if (std::find(owned.begin(), owned.end(), queue) == owned.end()) lost.push_back(queue);
      }
    }
    if (!lost.empty()) {
      // Owned here but not on the broker (it restarted, or our session lapsed between two
      // heartbeats): stop at once; the new owner starts from the committed position.
      sink_.Revoke(lost);
      std::lock_guard lock(mutex_);
      for (int32_t queue : lost) owned_.erase(queue);
    }
    AddQueues(owned);
    return true;
  }

  // Starts consuming the queues not owned yet, from the committed position (or the start
  // position when the group has none).
  void AddQueues(const std::vector<int32_t>& queues) {
    for (int32_t queue : queues) {
      {
        std::lock_guard lock(mutex_);
        if (owned_.count(queue) != 0) continue;
      }
      wire::QueryOffsetRequest request;
      request.set_topic(spec_.topic);
      request.set_group(spec_.group);
      request.set_member_id(spec_.member_id);
      request.set_broadcast(broadcast_);
      request.set_queue(queue);
      auto response = Request<wire::QueryOffsetResponse>(FrameType::kQueryOffset, request,
                                                         settings_.request_timeout);
      if (!response.ok()) {
        if (response.status().code() != StatusCode::kCancelled) {
          Log("querying the offset of queue " + std::to_string(queue), response.status());
        }
        continue;  // taken in on the next assignment
      }
      int64_t start;
      if (response->has_committed()) {
        start = response->committed();
        if (start < response->min_offset()) {
          // Retention deleted what the group had not read yet: it continues at the start.
          LogWarning(
              RetentionSkipWarning(spec_.group, spec_.topic, queue, start, response->min_offset()));
          start = response->min_offset();
        }
      } else if (spec_.start_from == StartPosition::kLatest) {
        start = response->max_offset();
      } else {
        start = response->min_offset();
      }
      std::lock_guard lock(mutex_);
      // What the broker holds, so that a start moved up by retention is committed too.
      owned_.emplace(queue, OwnedQueue{core::OffsetTracker(start), start,
                                       response->has_committed() ? response->committed() : -1});
    }
  }

  // Our queues may be consumed by another member now: drop them without committing.
  void LoseAll() {
    std::vector<int32_t> all;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) all.push_back(queue);
    }
    sink_.Revoke(all);
    std::lock_guard lock(mutex_);
    owned_.clear();
  }

  // A Fetch sent and not yet applied: what it asked for, so that an answer for a queue whose
  // position moved since (released, or taken again at another offset) is not applied.
  struct SentFetch {
    uint64_t id = 0;                       // as in FetchRelay::awaited
    std::map<int32_t, int64_t> positions;  // queue -> the offset asked for
    uint64_t disconnects = 0;              // the client's lost connections when it was sent
  };

  // The fetch in flight and its answer, between the consuming thread and the I/O thread.
  // Shared with the fetch callbacks, which may run after the consumer is gone (a long poll
  // outlives Close).
  struct FetchRelay {
    explicit FetchRelay(RemoteConsumer* c) : consumer(c) {}
    std::mutex mutex;
    std::condition_variable changed;
    RemoteConsumer* consumer;       // null once the consumer closes: answers are dropped
    uint64_t awaited = 0;           // the id of the fetch in flight (0: none)
    bool parked = false;            // the consuming thread waits in FetchOnce
    bool applying = false;          // the I/O thread runs ApplyFetch
    Clock::time_point hand_back{};  // the I/O thread applies answers until then
    // For the consuming thread: the awaited fetch's answer, or why the I/O thread stopped
    // applying answers (OK: an answer without messages, so no next fetch was sent).
    std::optional<Result<protocol::Frame>> answer;
    std::optional<Status> handed_back;
  };

  // The answer to fetch `id`, on the I/O thread of the subscriptions' connection. While the
  // consuming thread waits for it in FetchOnce, a small answer is applied right here, and the
  // next one too, as long as each brings messages, the core has room for more and the
  // consuming thread has nothing else due: the messages go from the connection straight to
  // the handler pool, one thread hand-off fewer, and the consuming thread sleeps on (at
  // 10,000 msgs/s this took a fifth off the median end-to-end latency in periodic mode).
  // Anything else is handed to the consuming thread.
  static void OnFetchAnswer(const std::shared_ptr<FetchRelay>& relay, uint64_t id,
                            Result<protocol::Frame> answer) {
    std::unique_lock lock(relay->mutex);
    if (relay->consumer == nullptr || id != relay->awaited) return;  // closed, or given up
    if (relay->parked && answer.ok() && answer->body.size() <= kInlineFetchBytes &&
        Clock::now() < relay->hand_back) {
      relay->applying = true;
      RemoteConsumer* const consumer = relay->consumer;
      lock.unlock();
      // Full: the consuming thread waits for room first, as it does for its own fetches.
      std::optional<Status> applied;
      if (consumer->sink_.WaitForCapacity(Clock::now())) {
        applied = consumer->ApplyFetch(std::move(answer).value());
      }
      lock.lock();
      relay->applying = false;
      if (applied && applied->ok() && relay->awaited != 0 && relay->consumer != nullptr) {
        // The consuming thread stays parked, unless its deadline came while this ran: it
        // then waits for `applying` to clear.
        if (!relay->parked) relay->changed.notify_all();
        return;
      }
      if (applied) {
        relay->handed_back = std::move(*applied);
      } else {
        relay->answer = std::move(answer);
      }
    } else {
      relay->answer = std::move(answer);
    }
    relay->changed.notify_all();
  }

  // Sends the next fetch: it becomes the one in flight.
  Status SendFetch(milliseconds wait) {
    wire::FetchRequest request;
    request.set_topic(spec_.topic);
    SentFetch sent;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [queue, state] : owned_) {
        wire::FetchPosition* position = request.add_positions();
        position->set_queue(queue);
        position->set_offset(state.fetch_offset);
        sent.positions.emplace(queue, state.fetch_offset);
      }
    }
    request.set_max_messages(settings_.pull_batch);
    request.set_max_bytes(kFetchMaxBytes);
    request.set_wait_ms(static_cast<uint32_t>(wait.count()));
    for (uint64_t hash : tag_hashes_) request.add_tag_hashes(hash);
    sent.disconnects = client_->Disconnects();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return CancelledError("the subscription is closing");
    }
    {
      std::lock_guard lock(relay_->mutex);
      sent.id = relay_->awaited = ++fetches_sent_;
    }
    in_flight_ = std::move(sent);
    client_->Call(FrameType::kFetch, request, settings_.request_timeout + wait,
                  [relay = relay_, id = in_flight_->id](Result<protocol::Frame> answer) {
                    OnFetchAnswer(relay, id, std::move(answer));
                  });
    return OkStatus();
  }

  // Forgets the fetch in flight: its answer, if any comes, is dropped.
  void DropFetch() {
    in_flight_.reset();
    std::lock_guard lock(relay_->mutex);
    relay_->awaited = 0;
    relay_->answer.reset();
  }

  // Waits, for `wait` at most, for the fetch in flight (sending one first if there is none,
  // long-polling for `wait`) and applies its answer. While a busy stream's messages are handed
  // out, the next fetch is already on its way (sent as soon as the last one was applied), so the
  // broker reads and sends the next messages meanwhile instead of waiting for this thread.
  Status FetchOnce(milliseconds wait) {
    const auto deadline = Clock::now() + wait;
    // One sent before a connection was lost is not waited for (its answer, if any, is
    // dropped): it may have gone to a broker that no longer counts this member as the owner.
    if (in_flight_ && (in_flight_->disconnects != client_->Disconnects() ||
                       (!broadcast_ && in_flight_->disconnects != confirmed_disconnects_))) {
      DropFetch();
    }
    fetch_wait_ = wait;
    if (!in_flight_) MSGSDK_RETURN_IF_ERROR(SendFetch(wait));
    std::optional<Result<protocol::Frame>> answer;
    std::optional<Status> handed_back;
    {
      std::unique_lock lock(relay_->mutex);
      // Meanwhile the I/O thread may apply the answers (OnFetchAnswer) with this thread's
      // fetch state. It hands them back once a commit may be due; this thread is back at the
      // deadline in any case.
      relay_->parked = true;
      relay_->hand_back = std::min(deadline, Clock::now() + settings_.commit_interval);
      relay_->changed.wait_until(lock, deadline, [this] {
        return relay_->answer.has_value() || relay_->handed_back.has_value() ||
               relay_->consumer == nullptr;
      });
      relay_->parked = false;
      relay_->changed.wait(lock, [this] { return !relay_->applying; });
      if (relay_->consumer == nullptr) return CancelledError("the subscription is closing");
      answer = std::exchange(relay_->answer, std::nullopt);
      handed_back = std::exchange(relay_->handed_back, std::nullopt);
    }
    if (handed_back) return *handed_back;
    if (!answer) return OkStatus();  // the deadline: the fetch stays in flight
    if (!answer->ok()) {
      DropFetch();
      return answer->status();
    }
    return ApplyFetch(std::move(*answer).value());
  }

  // Applies the answer to the fetch in flight, hands its messages to the core and, if there
  // were any, sends the next fetch. Runs on the consuming thread, or on the I/O thread while
  // the consuming thread waits in FetchOnce (then only this uses the consuming thread's
  // state).
  Status ApplyFetch(protocol::Frame frame) {
    const SentFetch sent = std::move(*in_flight_);
    DropFetch();
    if (!broadcast_ && client_->Disconnects() != confirmed_disconnects_) {
      // Answered after a lost connection, maybe by a broker that restarted and no longer
      // counts this member as the queues' owner: fetched again once the membership is
      // confirmed.
      return UnavailableError(
          "the connection to msgsdk-broker was lost; the group membership is checked before "
          "fetching again");
    }
    // Decoded straight into the records the core hands back spent (no generated objects in
    // between, no allocation per message): the fetch path's largest costs per message
    // otherwise.
    Status status;
    Status decoded = protocol::DecodeFetchResponse(
        frame, spec_.topic, &status, &fetched_, [this](size_t i) -> Message& {
          core::Delivery& delivery = core::RecordToDecodeInto(deliveries_, i);
          delivery.receipt.clear();
          return delivery.message;
        });
    client_->RecycleResponseBody(std::move(frame.body));
    MSGSDK_RETURN_IF_ERROR(decoded);
    MSGSDK_RETURN_IF_ERROR(status);
    // Those of owned queues at the asked positions move to the front, in the response's order
    // (each queue's in queue order); the rest stay behind with their buffers.
    size_t count = 0;
    for (const protocol::FetchedQueue& data : fetched_) {
      if (!data.status.ok()) Log("reading queue " + std::to_string(data.queue), data.status);
      std::lock_guard lock(mutex_);
      auto it = owned_.find(data.queue);
      if (it == owned_.end()) continue;
      auto asked = sent.positions.find(data.queue);
      if (asked == sent.positions.end() || asked->second != it->second.fetch_offset) continue;
      // The broker read from the queue's start: the messages before it were deleted.
      if (data.min_offset > it->second.fetch_offset) {
        LogWarning(RetentionSkipWarning(spec_.group, spec_.topic, data.queue,
                                        it->second.fetch_offset, data.min_offset));
      }
      for (size_t i = data.first_message; i < data.first_message + data.message_count; ++i) {
        it->second.tracker.Delivered(deliveries_[i]->message.offset);
        if (i != count) deliveries_[count].swap(deliveries_[i]);
        ++count;
      }
      it->second.tracker.FetchedUpTo(data.next_offset);
      it->second.fetch_offset = data.next_offset;
    }
    if (count > 0) {
      // Failing to send it is no error here: the next round sends it again.
      SendFetch(fetch_wait_).IgnoreError();
      // One call for every queue's messages: one lock of the core and one wake-up of its
      // handlers per fetch.
      sink_.DeliverSwapping(std::span(deliveries_.data(), count));
    }
    return OkStatus();
  }

  // A CommitOffset request for the acknowledged prefix of those of `queues` owned whose
  // position moved since the last commit; no offsets if none did. Under mutex_.
  wire::CommitOffsetRequest CommitRequestLocked(const std::vector<int32_t>& queues) const {
    wire::CommitOffsetRequest request;
    request.set_topic(spec_.topic);
    request.set_group(spec_.group);
    request.set_member_id(spec_.member_id);
    request.set_broadcast(broadcast_);
    for (int32_t queue : queues) {
      auto it = owned_.find(queue);
      if (it == owned_.end()) continue;
      const int64_t position = it->second.tracker.CommitPosition();
      if (position == it->second.committed) continue;
      wire::OffsetEntry* entry = request.add_offsets();
      entry->set_queue(queue);
      entry->set_offset(position);
    }
    return request;
  }

  // Under mutex_. Positions only move forward: a commit answered late does not take back a
  // later one.
  void MarkCommittedLocked(const wire::CommitOffsetRequest& request) {
    for (const auto& entry : request.offsets()) {
      auto it = owned_.find(entry.queue());
      if (it != owned_.end()) {
        it->second.committed = std::max(it->second.committed, entry.offset());
      }
    }
  }

  // Commits and waits (releasing queues, closing).
  Status CommitQueues(const std::vector<int32_t>& queues) {
    wire::CommitOffsetRequest request;
    {
      std::lock_guard lock(mutex_);
      request = CommitRequestLocked(queues);
    }
    if (request.offsets_size() == 0) return OkStatus();
    auto response = CallAndWait<wire::CommitOffsetResponse>(*client_, FrameType::kCommitOffset,
                                                            request, settings_.request_timeout);
    if (!response.ok()) return response.status().WithContext("committing offsets");
    std::lock_guard lock(mutex_);
    MarkCommittedLocked(request);
    return OkStatus();
  }

  std::vector<int32_t> OwnedQueues() {
    std::vector<int32_t> queues;
    std::lock_guard lock(mutex_);
    for (const auto& [queue, state] : owned_) queues.push_back(queue);
    return queues;
  }

  // Commits what was acknowledged without waiting: the loop fetches on meanwhile (a commit is
  // answered once durable, in group-commit mode after an fdatasync, which would otherwise hold
  // back every fetch). One commit at a time; a failed one is made again on a later round, and
  // until then a crash redelivers. At most one per commit_interval: in group-commit mode each
  // costs the broker an fdatasync, which its commit log's own would otherwise queue behind.
  void CommitInBackground() {
    const auto now = Clock::now();
    if (now < next_commit_) return;
    const std::vector<int32_t> queues = OwnedQueues();
    auto request = std::make_shared<wire::CommitOffsetRequest>();
    {
      std::lock_guard lock(mutex_);
      if (commit_in_flight_) return;
      *request = CommitRequestLocked(queues);
      if (request->offsets_size() == 0) return;
      commit_in_flight_ = true;
    }
    next_commit_ = now + settings_.commit_interval;
    client_->Call(FrameType::kCommitOffset, *request, settings_.request_timeout,
                  [this, request](Result<protocol::Frame> frame) {
                    const bool committed =
                        ParseResponse<wire::CommitOffsetResponse>(std::move(frame)).ok();
                    std::lock_guard lock(mutex_);
                    if (committed) MarkCommittedLocked(*request);
                    commit_in_flight_ = false;
                    wake_.notify_all();
                  });
  }

  // Before the consumer goes away: its background commit's answer touches it.
  void WaitForBackgroundCommit() {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [this] { return !commit_in_flight_; });
  }

  const std::shared_ptr<BrokerClient> client_;
  const core::SubscriptionSpec spec_;
  core::DeliverySink& sink_;
  const int32_t queues_;
  const RemoteSettings settings_;
  const bool broadcast_;
  std::vector<uint64_t> tag_hashes_;

  // The consuming thread only: see Run and CommitInBackground.
  uint64_t confirmed_disconnects_ = 0;
  Clock::time_point next_commit_{};
  std::mutex mutex_;
  // Close, and the end of a background commit.
  std::condition_variable wake_;
  bool stopping_ = false;
  bool commit_in_flight_ = false;
  std::shared_ptr<PendingCall> current_call_;
  // The fetch in flight and the long-poll wait of the next ones. The consuming thread's, lent
  // to the I/O thread while it waits in FetchOnce.
  std::optional<SentFetch> in_flight_;
  milliseconds fetch_wait_{0};
  uint64_t fetches_sent_ = 0;
  const std::shared_ptr<FetchRelay> relay_ = std::make_shared<FetchRelay>(this);
  std::map<int32_t, OwnedQueue> owned_;
  // The last fetch's answer, kept for its capacity (like in_flight_), and the records its
  // messages are decoded into (see DeliverySink::DeliverSwapping).
  std::vector<protocol::FetchedQueue> fetched_;
  std::vector<core::DeliveryPtr> deliveries_;
  Status close_status_;
  std::mutex join_mutex_;
  std::thread thread_;
};

class RemoteBackend : public core::Backend {
 public:
  RemoteBackend(std::shared_ptr<BrokerClient> client, BrokerClientOptions client_options,
                RemoteSettings settings)
      : client_(std::move(client)),
        client_options_(std::move(client_options)),
        settings_(settings) {
    capabilities_.backend = "native";
    capabilities_.broadcast = true;
    capabilities_.server_side_tag_filter = true;
    capabilities_.replay = true;
  }

  const Capabilities& capabilities() const override { return capabilities_; }

  Result<std::unique_ptr<core::BackendProducer>> CreateProducer(const std::string& topic) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> client, Live());
    MSGSDK_ASSIGN_OR_RETURN(int32_t queues,
                            GetOrCreateTopic(*client, topic, settings_.request_timeout));
    std::lock_guard lock(mutex_);
    std::shared_ptr<TopicSender> sender = senders_[topic].lock();
    if (!sender) {
      sender = std::make_shared<TopicSender>(std::move(client), topic, queues,
                                             settings_.request_timeout);
      senders_[topic] = sender;
    }
    // Forget the topics no producer sends to any more.
    std::erase_if(senders_, [](const auto& entry) { return entry.second.expired(); });
    return std::unique_ptr<core::BackendProducer>(new RemoteProducer(std::move(sender)));
  }

  Result<std::unique_ptr<core::BackendConsumer>> Subscribe(const core::SubscriptionSpec& spec,
                                                           core::DeliverySink& sink) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> client, Live());
    MSGSDK_ASSIGN_OR_RETURN(int32_t queues,
                            GetOrCreateTopic(*client, spec.topic, settings_.request_timeout));
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> consumers, LiveForConsumers());
    return std::unique_ptr<core::BackendConsumer>(
        new RemoteConsumer(std::move(consumers), spec, sink, queues, settings_));
  }

  Status ResetOffsets(const std::string& topic, const std::string& group,
                      const ResetTarget& target) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> client, Live());
    wire::ResetOffsetsRequest request;
    request.set_topic(topic);
    request.set_group(group);
    switch (target.kind) {
      case ResetTarget::Kind::kEarliest:
        request.set_kind(wire::ResetOffsetsRequest::EARLIEST);
        break;
      case ResetTarget::Kind::kLatest:
        request.set_kind(wire::ResetOffsetsRequest::LATEST);
        break;
      case ResetTarget::Kind::kTimestamp:
        request.set_kind(wire::ResetOffsetsRequest::TIMESTAMP);
        request.set_timestamp_ns(ToUnixNanos(target.timestamp));
        break;
    }
    return CallAndWait<wire::ResetOffsetsResponse>(*client, FrameType::kResetOffsets, request,
                                                   settings_.request_timeout)
        .status();
  }

  Result<std::vector<core::PartitionPosition>> Positions(
      const core::SubscriptionSpec& spec) override {
    MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> client, Live());
    MSGSDK_ASSIGN_OR_RETURN(const int32_t queues,
                            GetOrCreateTopic(*client, spec.topic, settings_.request_timeout));
    std::vector<core::PartitionPosition> positions;
    for (int32_t queue = 0; queue < queues; ++queue) {
      wire::QueryOffsetRequest request;
      request.set_topic(spec.topic);
      request.set_group(spec.group);
      request.set_member_id(spec.member_id);
      request.set_broadcast(spec.mode == SubscriptionMode::kBroadcast);
      request.set_queue(queue);
      MSGSDK_ASSIGN_OR_RETURN(
          auto response, CallAndWait<wire::QueryOffsetResponse>(
                             *client, FrameType::kQueryOffset, request, settings_.request_timeout));
      positions.push_back({.partition = queue,
                           .end = response.max_offset(),
                           .committed = response.has_committed() ? response.committed() : -1,
                           .start = response.min_offset()});
    }
    return positions;
  }

  Status Close(Deadline) override {
    // Producers and consumers hold the connections too; each closes when its last user is gone.
    std::lock_guard lock(mutex_);
    client_.reset();
    consumer_client_.reset();
    return OkStatus();
  }

 private:
  Result<std::shared_ptr<BrokerClient>> Live() {
    std::lock_guard lock(mutex_);
    if (!client_) return FailedPreconditionError("native cluster is closed");
    return client_;
  }

  // The connection of this cluster's subscriptions, made with the first one. Their I/O thread
  // hands small fetch answers to the handlers itself (RemoteConsumer::OnFetchAnswer); on the
  // producers' connection that work would hold up the Produce frames written meanwhile, and in
  // group-commit mode a frame that misses the sync starting then waits a whole one more.
  Result<std::shared_ptr<BrokerClient>> LiveForConsumers() {
    std::lock_guard lock(mutex_);
    if (!client_) return FailedPreconditionError("native cluster is closed");
    if (!consumer_client_) {
      MSGSDK_ASSIGN_OR_RETURN(consumer_client_, BrokerClient::Create(client_options_));
    }
    return consumer_client_;
  }

  std::mutex mutex_;
  std::shared_ptr<BrokerClient> client_;  // producers and requests of the backend's own
  const BrokerClientOptions client_options_;
  std::shared_ptr<BrokerClient> consumer_client_;  // subscriptions; made on first use
  // Each topic's sender, shared by its producers while any is open. Under mutex_.
  std::map<std::string, std::weak_ptr<TopicSender>> senders_;
  const RemoteSettings settings_;
  Capabilities capabilities_;
};

}  // namespace

Result<core::BackendPtr> CreateRemoteBackend(const core::ClusterConfig& config) {
  BrokerClientOptions options;
  options.cluster = config.name;
  options.endpoints = config.GetList("endpoints");
  options.connect_timeout = config.GetDuration("connect_timeout_ms", options.connect_timeout);
  options.reconnect_backoff_min =
      config.GetDuration("reconnect_backoff_ms", options.reconnect_backoff_min);
  options.reconnect_backoff_max =
      config.GetDuration("reconnect_backoff_max_ms", options.reconnect_backoff_max);
  if (options.reconnect_backoff_max < options.reconnect_backoff_min) {
    return InvalidArgumentError("native cluster '" + config.name + "' (" + config.source +
                                "): reconnect_backoff_max_ms is below reconnect_backoff_ms");
  }
  RemoteSettings settings;
  settings.request_timeout = config.GetDuration("request_timeout_ms", settings.request_timeout);
  settings.session_timeout = config.GetDuration("session_timeout_ms", settings.session_timeout);
  settings.heartbeat_interval =
      config.GetDuration("heartbeat_interval_ms", settings.heartbeat_interval);
  settings.pull_batch = static_cast<int32_t>(config.GetInt("pull_batch", settings.pull_batch));
  settings.poll_wait = config.GetDuration("poll_wait_ms", settings.poll_wait);
  settings.commit_interval = config.GetDuration("commit_interval_ms", settings.commit_interval);
  if (settings.heartbeat_interval >= settings.session_timeout) {
    return InvalidArgumentError("native cluster '" + config.name + "' (" + config.source +
                                "): heartbeat_interval_ms must be below session_timeout_ms");
  }
  MSGSDK_ASSIGN_OR_RETURN(std::shared_ptr<BrokerClient> client, BrokerClient::Create(options));
  return core::BackendPtr(
      std::make_shared<RemoteBackend>(std::move(client), std::move(options), settings));
}

}  // namespace msgsdk::native::client
