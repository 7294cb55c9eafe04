#pragma once

// Consuming: one RedisConsumer per subscription, with two threads and two connections.
//  - The reader owns the reading: it long-polls XREADGROUP ... BLOCK over the streams this
//    member reads, re-reads its own pending entries after (re)connecting, takes over entries
//    other members left idle longer than claim_idle_ms (XAUTOCLAIM), and, for exclusive
//    streams, keeps the member's share of the topic's streams (acquire, release, revoke).
//  - The worker writes the acknowledgements (pipelined XACK, many ids per command), keeps the
//    entries the core still holds from looking idle (XCLAIM ... JUSTID on the ones this
//    consumer still owns), and renews the member's heartbeat and stream leases.
//
// Exclusive streams (clustering groups, stream_assignment "exclusive"): each member of the
// group heartbeats into a sorted set "<prefix>:<topic>:members:<group>" (scores are expiry
// times on the server's clock); every member sorts the live members, and the member at index
// i reads the streams p with p % members == i. A stream is held through a lease key
// "<prefix>:<topic>:<p>:lease:<group>" (SET NX PX, renewed every lease_ms / 3). A member
// gives a stream up by revoking it in the core, writing its acknowledgements, handing its
// pending entries back and deleting the lease; the next owner first takes over every
// pending entry of the stream (XAUTOCLAIM with no idle time), then reads new entries, so
// per-key order holds across the hand-over.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/redis/redis_codec.h"
#include "backends/redis/redis_connection.h"
#include "backends/redis/redis_log.h"
#include "backends/redis/redis_state.h"
#include "core/backend.h"

namespace msgsdk::redis {

// The entry ids of one stream that the core holds (delivered, not acknowledged yet): what
// must not be handed to the core twice, and what the worker keeps from looking idle. Entries
// arrive and are acknowledged mostly in stream order, so a sorted vector whose acknowledged
// slots are dropped in bulk serves every operation without an allocation per entry.
// Not thread-safe (RedisConsumer guards it with its mutex).
class HeldEntries {
 public:
  // False if `id` is held already.
  bool Insert(const EntryId& id);
  // False if `id` was not held.
  bool Erase(const EntryId& id);
  void Clear();
  size_t size() const { return held_; }
  // Appends every held id to `out`, in stream order.
  void AppendTo(std::vector<EntryId>& out) const;

 private:
  struct Slot {
    EntryId id;
    bool held = false;
  };
  std::vector<Slot>::iterator Find(const EntryId& id);

  // Sorted by id; slots no longer held are removed once they are the majority.
  std::vector<Slot> slots_;
  size_t held_ = 0;
};

// Creates `group` on every stream (XGROUP CREATE ... MKSTREAM) starting at `start_id`
// ("0": earliest, "$": latest). Groups that exist keep their position.
Status CreateGroups(Connection& connection, const std::vector<std::string>& streams,
                    const std::string& group, std::string_view start_id);

class RedisConsumer final : public core::BackendConsumer {
 public:
  // Creates the groups, then starts the threads. Errors (server down, wrong password, a key
  // of another type...) are returned before anything runs.
  static Result<std::unique_ptr<RedisConsumer>> Start(std::shared_ptr<BackendState> state,
                                                      const core::SubscriptionSpec& spec,
                                                      core::DeliverySink& sink);
  ~RedisConsumer() override;

  void Ack(const core::Delivery& delivery) override;
  Status Close(core::Deadline deadline) override;

  const std::string& group_name() const { return group_; }
  const std::string& consumer_name() const { return consumer_; }
  // The partitions this member reads now (all of them unless streams are exclusive).
  std::vector<int32_t> owned_partitions();

 private:
  using Clock = std::chrono::steady_clock;
  using Counts = std::unordered_map<std::string, int64_t>;
  // Acknowledgements to write: partition and entry id.
  using AckList = std::vector<std::pair<int32_t, EntryId>>;

  RedisConsumer(std::shared_ptr<BackendState> state, core::SubscriptionSpec spec,
                core::DeliverySink& sink, std::string group, std::string consumer,
                std::string name_key, bool exclusive);

  bool stopping();
  // Waits for room in the core; false once the consumer is stopping.
  bool WaitCapacity();
  bool HasCapacityNow();

  // ---- Reader thread ----
  void ReaderLoop();
  Status RecoverOwnPending();
  Status ClaimIdle(bool& more);
  // Takes over every pending entry of a stream this member just acquired.
  Status ClaimAll(size_t partition);
  Status CollectDeadConsumers();
  // Reads new entries (XREADGROUP ... BLOCK `block` ... >) and hands them to the core. With
  // `read_ahead`, after a full batch it asks for the next one before delivering this one; that
  // read stays outstanding (read_ahead_) and is answered by the next ReadNew.
  Status ReadNew(std::chrono::milliseconds block, bool read_ahead);
  // Writes an XREADGROUP over the streams this member reads (not waiting for the reply).
  Status SendRead(std::chrono::milliseconds block);
  Status Rebalance();
  Status Acquire(size_t partition, bool& acquired);
  // Stops reading `partition` and revokes it in the core; when `release`, also writes its
  // acknowledgements, hands its pending entries back and deletes the lease.
  Status GiveUp(size_t partition, bool release);
  void SetOwned(size_t partition, bool owned);
  Result<Counts> PendingCounts(Connection& connection, const std::string& stream,
                               std::string_view first, std::string_view last, size_t count);
  // Hands the entries (a reply array) of one partition to the core in one batch, skipping
  // the ones it already holds; entries deleted while pending are acknowledged. Returns how
  // many went.
  size_t DeliverEntries(int32_t partition, const redisReply* entries, const Counts* counts);
  int32_t PartitionOf(std::string_view stream) const;

  // ---- Worker thread ----
  void WorkerLoop();
  Status RenewHeld();
  Status RenewLeases();
  void FinishWorker(core::Deadline deadline);

  // ---- Either thread, each with its own connection ----
  Status FlushAcks(Connection& connection, AckList& acks);
  // Makes this consumer's pending entries on `partitions` claimable by any member at once.
  Status HandBack(Connection& connection, const std::vector<size_t>& partitions,
                  core::Deadline deadline, int64_t& handed_back);
  // Learns reader_client_id_ on a freshly connected reader connection.
  Status LearnReaderClientId();
  // Ends the reader's connection on the server (CLIENT KILL ID); false when that cannot be
  // known to have happened.
  bool KillReaderOnServer();

  std::shared_ptr<BackendState> state_;
  const RedisOptions& options_;
  core::SubscriptionSpec spec_;
  core::DeliverySink& sink_;
  const std::string group_;
  const std::string consumer_;
  const std::string name_key_;
  const bool exclusive_;
  // Exclusive streams: this member's entry in the members set, and the key names.
  const std::string lease_token_;
  std::string members_key_;
  std::vector<std::string> lease_keys_;
  std::vector<std::string> streams_;
  std::unordered_map<std::string, int32_t> stream_index_;
  const std::chrono::milliseconds rebalance_interval_;

  Connection reader_connection_;
  Connection worker_connection_;
  // The server's id of the reader's connection (CLIENT ID); 0 when unknown (an ACL that
  // forbids CLIENT). Close kills that connection on the server before handing entries back:
  // a blocked XREADGROUP the server answers after the hand-back would otherwise leave entries
  // pending on a consumer that is gone.
  std::atomic<int64_t> reader_client_id_{0};
  // Reader thread only.
  std::vector<bool> reading_;
  std::vector<std::string> claim_cursor_;
  FieldList fields_;
  std::vector<EntryId> entry_ids_;
  // The records entries are decoded into, kept with their buffers (see DeliverEntries).
  std::vector<core::DeliveryPtr> deliveries_;
  // An XREADGROUP is written and its reply not read yet; and the key its errors name.
  bool read_ahead_ = false;
  std::string_view read_key_;
  const std::string read_count_;
  FailureLog reader_log_;
  FailureLog worker_log_;
  // What the failure logs name when they recover (built once: the loops report every round).
  const std::string reader_what_;
  const std::string worker_what_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Written under mu_ (waits check it under mu_); read without it on the reader's hot path.
  std::atomic<bool> stopping_{false};
  bool final_phase_ = false;
  core::Deadline final_deadline_{};
  Status final_status_;
  // Partitions this member holds (what the worker renews leases of).
  std::vector<bool> owned_;
  // Leases the worker found taken by another member; the reader revokes them.
  std::vector<int32_t> lost_;
  // Entry ids handed to the core and not acknowledged yet, per partition.
  std::vector<HeldEntries> held_;
  AckList acks_;
  // The worker is writing acknowledgements it took from acks_.
  bool worker_flushing_ = false;

  std::mutex close_mu_;
  bool closed_ = false;
  Status close_status_;
  std::thread reader_;
  std::thread worker_;
};

}  // namespace msgsdk::redis
