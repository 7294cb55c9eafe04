#include "sidecar/client/routing_subscriber.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "core/names.h"
#include "core/routing/routing_table.h"
#include "msgsdk/v1/routing.grpc.pb.h"
#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {
namespace {

using Clock = std::chrono::steady_clock;

// Reconnect backoff after the stream broke or could not be opened.
constexpr auto kBackoffMin = std::chrono::milliseconds(100);
constexpr auto kBackoffMax = std::chrono::milliseconds(2000);
// How often what a version could not move yet is retried, and the client's topics are compared
// with what the service was last told: as often as a watched file is checked.
constexpr auto kTick = core::Engine::kRoutingPollInterval;
// How long a stopping client lets the service see its last answers and the end of its stream
// before it cancels the stream.
constexpr auto kCloseTimeout = std::chrono::seconds(1);
constexpr const char* kCacheVersionPrefix = "# version_info: ";

void Log(const std::string& line) { std::fprintf(stderr, "msgsdk: %s\n", line.c_str()); }

std::string Describe(const grpc::Status& status) { return FromGrpc(status).ToString(); }

// ---- The cache ----------------------------------------------------------------------------

// A routing version as the service sent it.
struct Snapshot {
  std::string version_info;
  std::string yaml;
  std::string source;
};

// The cache file: a few comment lines naming the version, then the YAML as the service sent
// it. The whole file is valid YAML (msgsdk route can read it) and parses to the same table.
std::string CacheText(const Snapshot& snapshot, const std::string& address) {
  return "# msgsdk routing cache: the last routing version this client received from the\n"
         "# routing service and applied; it starts from it when the service cannot be reached.\n" +
         std::string(kCacheVersionPrefix) + snapshot.version_info + "\n# service: " + address +
         "\n# source: " + snapshot.source + "\n" + snapshot.yaml;
}

std::string CachedVersionInfo(const std::string& text) {
  size_t begin = 0;
  while (begin < text.size() && text[begin] == '#') {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + begin, end - begin);
    if (line.starts_with(kCacheVersionPrefix)) {
      return std::string(line.substr(std::string_view(kCacheVersionPrefix).size()));
    }
    begin = end + 1;
  }
  return {};
}

Status ErrnoStatus(const std::string& what, const std::string& path) {
  const int error = errno;
  return {error == EACCES ? StatusCode::kPermissionDenied : StatusCode::kInternal,
          what + " " + path + ": " + std::generic_category().message(error)};
}

// Written to a temporary file and renamed over the cache, so that a reader (another process
// starting, this one after a crash) sees the previous version or this one, whole.
Status WriteCache(const std::string& path, const std::string& text) {
  const std::filesystem::path file(path);
  std::error_code error;
  std::filesystem::create_directories(file.parent_path(), error);
  if (error) {
    return InternalError("cannot create the routing cache directory " +
                         file.parent_path().string() + ": " + error.message());
  }
  static std::atomic<uint64_t> sequence{0};
  const std::string temporary = path + ".tmp-" + std::to_string(getpid()) + "-" +
                                std::to_string(sequence.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create", temporary);
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status status = ErrnoStatus("cannot write", temporary);
      ::close(fd);
      ::unlink(temporary.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  // Durable before it replaces the previous version: a crash must not leave an empty cache.
  if (::fdatasync(fd) != 0) {
    Status status = ErrnoStatus("cannot sync", temporary);
    ::close(fd);
    ::unlink(temporary.c_str());
    return status;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    Status status = ErrnoStatus("cannot rename " + temporary + " to", path);
    ::unlink(temporary.c_str());
    return status;
  }
  return OkStatus();
}

// The cached version, parsed; or why there is none usable.
struct Cached {
  std::shared_ptr<const core::RoutingTable> table;
  std::string version_info;
};

Result<Cached> ReadCache(const std::string& path, const core::BackendRegistry& registry) {
  MSGSDK_ASSIGN_OR_RETURN(std::string text, core::RoutingTable::ReadFile(path));
  MSGSDK_ASSIGN_OR_RETURN(auto table, core::RoutingTable::Parse(text, path, registry));
  return Cached{.table = std::move(table), .version_info = CachedVersionInfo(text)};
}

// ---- The stream ---------------------------------------------------------------------------

class Subscriber;

// One StreamRoutes call. gRPC's threads only hand snapshots to the subscriber's thread and
// write what it queued: nothing here blocks. Owned by the subscriber, which drops it only after
// OnDone.
//
// The subscriber's thread starts writes from outside the reactions, so the call holds a hold
// (gRPC's AddHold) until no such write can start any more: until the stream ended (its read
// failed) or the subscriber let it go. Without it, the call could complete, and its gRPC state
// be freed, between the subscriber's check and its write.
class RoutesCall final : public grpc::ClientBidiReactor<v1::RoutingRequest, v1::RoutingSnapshot> {
 public:
  RoutesCall(std::shared_ptr<Subscriber> subscriber, uint64_t generation)
      : subscriber_(std::move(subscriber)), generation_(generation) {}

  void Start(v1::RoutingDiscovery::Stub& stub, v1::RoutingRequest first) {
    stub.async()->StreamRoutes(&context_, this);
    Write(std::move(first));
    StartRead(&snapshot_);
    AddHold();
    StartCall();
  }

  // Queues a request; written after those before it. Dropped once the stream is ending.
  void Write(v1::RoutingRequest request) {
    std::lock_guard lock(mutex_);
    if (released_ || writes_done_ || broken_) return;
    queue_.push_back(std::move(request));
    WriteNextLocked();
  }

  // Half-closes the stream once what is queued is written: the service ends it.
  void CloseWrites() {
    std::lock_guard lock(mutex_);
    if (released_ || writes_done_) return;
    writes_done_ = true;
    if (!writing_) StartWritesDone();
  }

  // No write starts from outside the reactions any more: the call may complete. Idempotent.
  void Release() {
    std::lock_guard lock(mutex_);
    if (released_) return;
    released_ = true;
    RemoveHold();
  }

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) {
      broken_ = true;  // the stream is over; OnDone follows
      queue_.clear();
      return;
    }
    if (!queue_.empty()) {
      WriteNextLocked();
    } else if (writes_done_) {
      StartWritesDone();
    }
  }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void WriteNextLocked() {
    if (writing_ || queue_.empty()) return;
    writing_ = true;
    writing_request_ = std::move(queue_.front());
    queue_.pop_front();
    StartWrite(&writing_request_);
  }

  const std::shared_ptr<Subscriber> subscriber_;
  const uint64_t generation_;
  grpc::ClientContext context_;
  v1::RoutingSnapshot snapshot_;  // the read in progress

  std::mutex mutex_;
  std::deque<v1::RoutingRequest> queue_;
  v1::RoutingRequest writing_request_;
  bool writing_ = false;
  bool writes_done_ = false;
  bool broken_ = false;
  bool released_ = false;  // the hold is removed
};

// What Create starts from.
struct FirstVersion {
  std::shared_ptr<const core::RoutingTable> table;
  std::string version_info;
  // The service's snapshot (answered once the engine exists), or the cache.
  bool from_service = false;
  Snapshot snapshot;
  std::string nonce;
  uint64_t generation = 0;
};

// Everything the subscriber's thread, gRPC's threads and the owner share. Kept alive by the
// thread itself (and by a stream until its OnDone): the owner may go away on the thread.
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  struct Config {
    std::string address;
    std::string cache_path;
    std::string client_id;
    std::string requested_environment;
    std::string transport;
    std::shared_ptr<const core::BackendRegistry> registry;
  };

  explicit Subscriber(Config config) : config_(std::move(config)) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(64 << 20);
    // Reconnect quickly after a service restart (gRPC's default backoff starts at 1 s).
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(kBackoffMin.count()));
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(kBackoffMax.count()));
    channel_ =
        grpc::CreateCustomChannel(config_.address, grpc::InsecureChannelCredentials(), arguments);
    stub_ = v1::RoutingDiscovery::NewStub(channel_);
  }

  void Run();

  // Waits for the first version: the service's first valid snapshot, up to `timeout`; the
  // cache when the service is unreachable (at once) or said nothing usable in time.
  Result<FirstVersion> WaitForFirst(std::chrono::milliseconds timeout) {
    Result<Cached> cached = ReadCache(config_.cache_path, *config_.registry);
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, deadline, [&] {
      return first_.has_value() || stopping_ || (unreachable_ && cached.ok());
    });
    if (first_.has_value()) return std::move(*first_);
    starting_from_cache_ = true;  // a snapshot arriving now waits for the engine
    const std::string why = last_error_.empty() ? "no snapshot arrived" : last_error_;
    lock.unlock();
    if (!cached.ok()) {
      return UnavailableError("routing service at " + config_.address +
                              " gave no routing table within " + std::to_string(timeout.count()) +
                              " ms (" + why + "), and there is no usable cached version at " +
                              config_.cache_path + " (" + cached.status().ToString() + ")");
    }
    Log("routing service at " + config_.address + " gave no usable routing table (" + why +
        "): starting from the cached routing version " + cached->version_info + " at " +
        config_.cache_path);
    return FirstVersion{.table = std::move(cached->table),
                        .version_info = std::move(cached->version_info)};
  }

  // The engine made from `first` runs: later snapshots are applied to it.
  void Follow(const std::shared_ptr<core::Engine>& engine, const FirstVersion& first) {
    // Before the thread may apply (and cache) a later version.
    if (first.from_service) SaveToCache(first.snapshot);
    std::lock_guard lock(mutex_);
    engine_ = engine;
    attached_ = true;
    running_version_ = first.version_info;
    if (first.from_service) SendLocked(first.generation, Ack(first.version_info, first.nonce));
    changed_.notify_all();
  }

  // The first version could not be used (Engine::Create refused it).
  void RefuseFirst(const FirstVersion& first, const Status& why) {
    if (!first.from_service) return;
    std::lock_guard lock(mutex_);
    SendLocked(first.generation, Nack("", first.nonce, why));
  }

  void RequestStop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }

  // From a stream, on gRPC's threads.
  void Received(uint64_t generation, v1::RoutingSnapshot snapshot) {
    std::lock_guard lock(mutex_);
    if (generation == generation_) call_answered_ = true;
    received_.emplace_back(generation, std::move(snapshot));
    changed_.notify_all();
  }
  void CallDone(uint64_t generation, const grpc::Status& status) {
    std::lock_guard lock(mutex_);
    if (generation != generation_) return;
    call_done_ = true;
    call_status_ = status;
    changed_.notify_all();
  }

 private:
  static v1::RoutingRequest Ack(const std::string& version_info, const std::string& nonce) {
    v1::RoutingRequest request;
    request.set_version_info(version_info);
    request.set_response_nonce(nonce);
    return request;
  }
  static v1::RoutingRequest Nack(const std::string& keeps, const std::string& nonce,
                                 const Status& why) {
    v1::RoutingRequest request;
    request.set_version_info(keeps);
    request.set_response_nonce(nonce);
    ToProto(why, request.mutable_error_detail());
    return request;
  }

  // Onto the stream that carried the snapshot answered; a later stream hears the running
  // version in its first request instead.
  void SendLocked(uint64_t generation, v1::RoutingRequest request) {
    if (call_ && !call_done_ && generation == generation_) call_->Write(std::move(request));
  }

  v1::Node NodeNow(const std::shared_ptr<core::Engine>& engine) {
    v1::Node node;
    node.set_client_id(config_.client_id);
    node.set_transport(config_.transport);
    if (!engine) {
      node.set_environment(config_.requested_environment);
      return node;
    }
    node.set_environment(engine->environment());
    core::Engine::TopicsInUse topics = engine->Topics();
    for (auto& topic : topics.produces) node.add_produces(std::move(topic));
    for (auto& topic : topics.subscribes) node.add_subscribes(std::move(topic));
    // A change of these is sent at the next tick, like any change of the node.
    for (const MigrationProgress& progress : engine->Routing().migrations) {
      ToProto(progress, node.add_migrations());
    }
    return node;
  }

  static bool SameNode(const v1::Node& a, const v1::Node& b) {
    return a.SerializeAsString() == b.SerializeAsString();
  }

  void OpenCall(std::unique_lock<std::mutex>& lock);
  void Handle(uint64_t generation, v1::RoutingSnapshot snapshot,
              std::unique_lock<std::mutex>& lock);
  void Tick(std::unique_lock<std::mutex>& lock);
  void EndCall(std::unique_lock<std::mutex>& lock);
  void SaveToCache(const Snapshot& snapshot);

  const Config config_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RoutingDiscovery::Stub> stub_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::deque<std::pair<uint64_t, v1::RoutingSnapshot>> received_;
  std::shared_ptr<RoutesCall> call_;
  uint64_t generation_ = 0;  // of call_
  bool call_done_ = false;
  bool call_answered_ = false;  // call_ delivered a snapshot: the service is there
  grpc::Status call_status_;
  // Before the engine exists.
  std::optional<FirstVersion> first_;
  bool starting_from_cache_ = false;
  bool unreachable_ = false;  // an attempt to reach the service failed
  std::string last_error_;
  // Once it exists.
  bool attached_ = false;
  std::weak_ptr<core::Engine> engine_;
  std::string running_version_;
  v1::Node last_node_;      // what the current stream was last told
  bool in_outage_ = false;  // the service was found missing, and has not answered since

  // The thread only (and Follow, before the thread applies anything).
  std::string cache_failure_;
};

void RoutesCall::OnReadDone(bool ok) {
  if (!ok) {
    Release();  // the stream is over: OnDone follows once its last operations complete
    return;
  }
  subscriber_->Received(generation_, std::move(snapshot_));
  snapshot_.Clear();
  StartRead(&snapshot_);
}

void RoutesCall::OnDone(const grpc::Status& status) {
  // The subscriber drops this call once told; nothing may touch it after. The copy keeps the
  // subscriber alive until CallDone returns (its thread may end meanwhile, see Run's end).
  std::shared_ptr<Subscriber> subscriber = subscriber_;
  subscriber->CallDone(generation_, status);
}

void Subscriber::Run() {
  pthread_setname_np(pthread_self(), "msgsdk-routing");
  auto backoff = kBackoffMin;
  Clock::time_point reconnect_at = Clock::now();
  Clock::time_point next_tick = Clock::now() + kTick;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!call_ && Clock::now() >= reconnect_at) OpenCall(lock);
    const Clock::time_point wake = call_ ? next_tick : std::min(next_tick, reconnect_at);
    changed_.wait_until(lock, wake,
                        [&] { return stopping_ || !received_.empty() || (call_ && call_done_); });
    if (stopping_) break;
    while (!received_.empty() && !stopping_) {
      auto [generation, snapshot] = std::move(received_.front());
      received_.pop_front();
      Handle(generation, std::move(snapshot), lock);
      backoff = kBackoffMin;  // the service answers
    }
    if (call_ && call_done_) {
      const grpc::Status status = call_status_;
      const bool answered = call_answered_;
      call_.reset();
      call_done_ = false;
      // Reported once per outage, not at every attempt.
      if (!in_outage_) {
        Log("routing service at " + config_.address +
            (answered ? ": stream ended (" : " cannot be reached (") + Describe(status) + "); " +
            (attached_ ? "routing version " + running_version_ + " keeps running, " : "") +
            "retrying");
        in_outage_ = true;
      }
      last_error_ = Describe(status);
      unreachable_ = true;
      changed_.notify_all();
      reconnect_at = Clock::now() + backoff;
      backoff = std::min(backoff * 2, kBackoffMax);
    }
    if (Clock::now() >= next_tick) {
      Tick(lock);
      next_tick = Clock::now() + kTick;
    }
  }
  EndCall(lock);
  // The channel goes away here, on this thread. The last reference to the subscriber may be
  // dropped on a gRPC thread (a stream's OnDone holds one while it reports), and a channel
  // destroyed from within gRPC's own callback can leave its transport half torn down, to fail
  // an assertion in gRPC when the connection closes later.
  stub_.reset();
  channel_.reset();
}

void Subscriber::OpenCall(std::unique_lock<std::mutex>& lock) {
  std::shared_ptr<core::Engine> engine = engine_.lock();
  const uint64_t generation = ++generation_;
  call_done_ = false;
  call_answered_ = false;
  call_ = std::make_shared<RoutesCall>(shared_from_this(), generation);
  std::shared_ptr<RoutesCall> call = call_;
  const std::string running = running_version_;
  lock.unlock();
  // Reading the topics and starting the call take other locks: not under ours.
  v1::RoutingRequest first;
  *first.mutable_node() = NodeNow(engine);
  first.set_version_info(running);
  v1::Node sent = first.node();
  engine.reset();  // the last reference may go here: not under our lock
  call->Start(*stub_, std::move(first));
  lock.lock();
  if (generation == generation_) last_node_ = std::move(sent);
}

void Subscriber::Handle(uint64_t generation, v1::RoutingSnapshot snapshot,
                        std::unique_lock<std::mutex>& lock) {
  if (in_outage_) {
    Log("routing service at " + config_.address + " answers again");
    in_outage_ = false;
  }
  if (!attached_) {
    if (first_.has_value() || starting_from_cache_) {
      // The engine is being made from the first version or the cache: this one is offered
      // to it once it runs (or dropped if it is never made).
      changed_.wait(lock, [&] { return attached_ || stopping_; });
      if (stopping_) return;
    } else {
      const std::string source = "routing service " + config_.address + ": " + snapshot.source();
      lock.unlock();
      auto table = core::RoutingTable::Parse(snapshot.yaml(), source, *config_.registry);
      lock.lock();
      if (!table.ok()) {
        Log("routing version " + snapshot.version_info() + " from " + config_.address +
            " refused: " + table.status().ToString());
        last_error_ = "its routing version " + snapshot.version_info() +
                      " was refused: " + table.status().ToString();
        SendLocked(generation, Nack("", snapshot.nonce(), table.status()));
        return;
      }
      first_ = FirstVersion{.table = std::move(table).value(),
                            .version_info = snapshot.version_info(),
                            .from_service = true,
                            .snapshot = {.version_info = snapshot.version_info(),
                                         .yaml = std::move(*snapshot.mutable_yaml()),
                                         .source = snapshot.source()},
                            .nonce = snapshot.nonce(),
                            .generation = generation};
      changed_.notify_all();
      return;
    }
  }
  std::shared_ptr<core::Engine> engine = engine_.lock();
  if (!engine) return;  // closing
  if (snapshot.version_info() == running_version_) {
    // Sent again on a new stream (or by a restarted service): nothing to apply.
    SendLocked(generation, Ack(running_version_, snapshot.nonce()));
    lock.unlock();
    engine.reset();
    lock.lock();
    return;
  }
  const std::string keeps = running_version_;
  lock.unlock();
  const std::string source = "routing service " + config_.address + ": " + snapshot.source();
  Status status;
  auto table = core::RoutingTable::Parse(snapshot.yaml(), source, *config_.registry);
  if (!table.ok()) {
    status = table.status();
  } else {
    status = engine->Apply(std::move(table).value());
  }
  if (!status.ok()) engine->Reject(status);
  engine.reset();
  if (status.ok()) {
    SaveToCache({.version_info = snapshot.version_info(),
                 .yaml = snapshot.yaml(),
                 .source = snapshot.source()});
  }
  lock.lock();
  if (status.ok()) {
    running_version_ = snapshot.version_info();
    SendLocked(generation, Ack(running_version_, snapshot.nonce()));
  } else {
    SendLocked(generation, Nack(keeps, snapshot.nonce(), status));
  }
}

void Subscriber::Tick(std::unique_lock<std::mutex>& lock) {
  if (!attached_) return;
  std::shared_ptr<core::Engine> engine = engine_.lock();
  if (!engine) return;
  const uint64_t generation = generation_;
  const bool open = call_ && !call_done_;
  lock.unlock();
  engine->Reconcile();
  std::optional<v1::Node> node;
  if (open) node = NodeNow(engine);
  engine.reset();
  lock.lock();
  // Told again when it changed: a producer or subscription came or went.
  if (node.has_value() && generation == generation_ && !SameNode(*node, last_node_)) {
    v1::RoutingRequest update;
    *update.mutable_node() = *node;
    SendLocked(generation, std::move(update));
    last_node_ = std::move(*node);
  }
}

void Subscriber::EndCall(std::unique_lock<std::mutex>& lock) {
  if (!call_) return;
  // Half-closed first, so the service records the last answers and sees the client leave;
  // cancelled if it does not end the stream in time (or never answered: nothing to wait for).
  if (call_answered_) call_->CloseWrites();
  call_->Release();
  if (!call_answered_ || !changed_.wait_for(lock, kCloseTimeout, [&] { return call_done_; })) {
    call_->Cancel();
    changed_.wait(lock, [&] { return call_done_; });
  }
  call_.reset();
}

void Subscriber::SaveToCache(const Snapshot& snapshot) {
  Status status = WriteCache(config_.cache_path, CacheText(snapshot, config_.address));
  // Reported once per distinct failure: a full disk must not flood the log.
  std::string failure = status.ok() ? std::string() : status.ToString();
  if (!failure.empty() && failure != cache_failure_) {
    Log("cannot save routing version " + snapshot.version_info + " to the cache: " + failure);
  }
  cache_failure_ = std::move(failure);
}

// The engine's handle on the subscriber: owns the thread, and stops it with the engine.
class RoutingSubscriber final : public core::RoutingSource {
 public:
  explicit RoutingSubscriber(std::shared_ptr<Subscriber> subscriber)
      : subscriber_(std::move(subscriber)),
        thread_([subscriber = subscriber_] { subscriber->Run(); }) {}
  ~RoutingSubscriber() override { Stop(); }

  Subscriber& subscriber() { return *subscriber_; }

  void Stop() override {
    subscriber_->RequestStop();
    std::lock_guard lock(thread_mutex_);
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // it ends once the call into the engine that got here returns
    } else {
      thread_.join();
    }
  }

 private:
  const std::shared_ptr<Subscriber> subscriber_;
  std::mutex thread_mutex_;
  std::thread thread_;
};

}  // namespace

Result<std::shared_ptr<core::Engine>> CreateEngineFromRoutingService(
    const ClientOptions& options, std::shared_ptr<const core::BackendRegistry> registry,
    const std::string& transport) {
  const std::string address = core::RoutingServiceOf(options);
  if (address.empty()) {
    return InvalidArgumentError(
        "ClientOptions.routing_service and MSGSDK_ROUTING_SERVICE are empty: no routing service "
        "to follow");
  }
  if (!options.config_path.empty() || !options.config_yaml.empty()) {
    return InvalidArgumentError("ClientOptions: a client that follows the routing service at " +
                                address +
                                " takes no routing table of its own (config_path, config_yaml)");
  }
  const std::string client_id = core::ClientIdOf(options);
  MSGSDK_RETURN_IF_ERROR(core::ValidateName("client id", client_id).WithContext("ClientOptions"));
  auto subscriber = std::make_shared<Subscriber>(
      Subscriber::Config{.address = address,
                         .cache_path = core::RoutingCachePathOf(options),
                         .client_id = client_id,
                         .requested_environment = core::RequestedEnvironment(options),
                         .transport = transport,
                         .registry = registry});
  auto source = std::make_unique<RoutingSubscriber>(subscriber);
  MSGSDK_ASSIGN_OR_RETURN(FirstVersion first, subscriber->WaitForFirst(kFirstSnapshotTimeout));
  auto engine = core::Engine::Create(first.table, core::RequestedEnvironment(options), client_id,
                                     std::move(registry));
  if (!engine.ok()) {
    subscriber->RefuseFirst(first, engine.status());
    return engine.status().WithContext("routing version " + first.version_info + " of " +
                                       first.table->source());
  }
  subscriber->Follow(*engine, first);
  (*engine)->Attach(std::move(source));
  return engine;
}

}  // namespace msgsdk::sidecar
