#include "sidecar/server/routing_service.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <utility>
#include <vector>

#include "core/names.h"
#include "sidecar/common/convert.h"

namespace msgsdk::sidecar {
namespace {

int64_t UnixMillisNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Log(const std::string& line) { std::fprintf(stderr, "msgsdk-sidecar: %s\n", line.c_str()); }

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE, "msgsdk-sidecar is shutting down");

// A stream refused before it started (the service is shutting down).
class RefusedRoutesStream final
    : public grpc::ServerBidiReactor<v1::RoutingRequest, v1::RoutingSnapshot> {
 public:
  explicit RefusedRoutesStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

std::string RoutingVersionInfo(int64_t version, const std::string& text) {
  uint64_t hash = 14695981039346656037ULL;  // FNV-1a 64-bit offset basis
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;  // FNV prime
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return std::to_string(version) + "-" + std::string(hex, 12);
}

// One StreamRoutes call: the snapshots the service pushes go out one write at a time (a newer
// one replaces one still queued), and the client's answers are recorded. Lives until gRPC is
// done with it (OnDone).
class RoutesStream final : public grpc::ServerBidiReactor<v1::RoutingRequest, v1::RoutingSnapshot>,
                           public std::enable_shared_from_this<RoutesStream> {
 public:
  RoutesStream(RoutingDiscoveryService& service, std::string peer)
      : service_(service), peer_(std::move(peer)) {}

  // gRPC holds the stream through `self_` until OnDone.
  void Begin() {
    self_ = shared_from_this();
    StartRead(&request_);
  }

  // A new version for the client. Ignored before the client said who it is (it then receives
  // the current version) and when it is not newer than what the stream sent or queued.
  void Push(std::shared_ptr<const RoutingSnapshotVersion> snapshot) {
    std::lock_guard lock(mutex_);
    if (!identified_) return;
    QueueLocked(std::move(snapshot));
  }

  void End(const grpc::Status& status) {
    std::lock_guard lock(mutex_);
    FinishLocked(status);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mutex_);
    if (!ok) {
      // The client half-closed (it stops) or the stream broke.
      FinishLocked(grpc::Status::OK);
      return;
    }
    if (finished_) return;
    Status status = TakeRequestLocked();
    request_.Clear();
    if (!status.ok()) {
      FinishLocked(ToGrpc(status));
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      return;
    }
    if (finish_pending_) {
      finish_pending_ = false;
      Finish(finish_status_);
      return;
    }
    WriteLocked();
  }

  void OnCancel() override {
    std::lock_guard lock(mutex_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled"));
  }

  void OnDone() override {
    service_.StreamDone(this, client_id_);
    // Dropping `self_` may delete this object: nothing may follow.
    std::shared_ptr<RoutesStream> self;
    std::lock_guard lock(mutex_);
    self = std::move(self_);
  }

 private:
  struct Sent {
    uint64_t nonce;
    std::string version_info;
  };

  Status TakeRequestLocked() {
    if (!identified_) return IdentifyLocked();
    service_.Seen(this, client_id_);
    bool understood = false;
    if (request_.has_node()) {
      if (request_.node().client_id() != client_id_) {
        return InvalidArgumentError("RoutingRequest.node.client_id '" +
                                    request_.node().client_id() + "': this stream belongs to '" +
                                    client_id_ + "' (a client id cannot change within a stream)");
      }
      service_.NodeChanged(this, request_.node());
      understood = true;
    }
    if (!request_.response_nonce().empty()) {
      MSGSDK_RETURN_IF_ERROR(TakeAnswerLocked());
      understood = true;
    }
    if (!understood) {
      return InvalidArgumentError(
          "RoutingRequest: after the first request, a request answers a snapshot "
          "(response_nonce) or updates the node (node); this one does neither");
    }
    return OkStatus();
  }

  Status IdentifyLocked() {
    if (!request_.has_node()) {
      return InvalidArgumentError(
          "RoutingRequest.node: the first request of a stream must say who the client is");
    }
    MSGSDK_RETURN_IF_ERROR(core::ValidateName("client id", request_.node().client_id())
                               .WithContext("RoutingRequest.node.client_id"));
    if (!request_.response_nonce().empty()) {
      return InvalidArgumentError("RoutingRequest.response_nonce '" + request_.response_nonce() +
                                  "': the first request of a stream answers no snapshot");
    }
    client_id_ = request_.node().client_id();
    // Under our lock, so that a push racing with this one is either seen by Connected (as the
    // current version) or queued after it (it finds the stream identified).
    std::shared_ptr<const RoutingSnapshotVersion> current =
        service_.Connected(this, request_, peer_);
    identified_ = true;
    QueueLocked(std::move(current));
    return OkStatus();
  }

  Status TakeAnswerLocked() {
    const std::string& text = request_.response_nonce();
    uint64_t nonce = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), nonce);
    const auto it = std::find_if(sent_.begin(), sent_.end(),
                                 [&](const Sent& sent) { return sent.nonce == nonce; });
    if (error != std::errc() || end != text.data() + text.size() ||
        (it == sent_.end() && (sent_.empty() || nonce > sent_.front().nonce))) {
      return InvalidArgumentError("RoutingRequest.response_nonce '" + text +
                                  "': this stream never carried that nonce");
    }
    if (it == sent_.end()) return OkStatus();  // stale: answers a version long replaced
    const bool latest = &*it == &sent_.back();
    if (request_.has_error_detail() && request_.error_detail().code() != 0) {
      service_.Answered(this, client_id_, it->version_info, &request_.error_detail(), latest);
      return OkStatus();
    }
    if (request_.version_info() != it->version_info) {
      return InvalidArgumentError("RoutingRequest.version_info '" + request_.version_info() +
                                  "' does not match '" + it->version_info +
                                  "', the version of the snapshot with nonce " + text +
                                  " (an ACK names the version it applied)");
    }
    service_.Answered(this, client_id_, it->version_info, nullptr, latest);
    return OkStatus();
  }

  void QueueLocked(std::shared_ptr<const RoutingSnapshotVersion> snapshot) {
    if (finished_ || !snapshot || snapshot->sequence <= queued_sequence_) return;
    queued_sequence_ = snapshot->sequence;
    queued_ = std::move(snapshot);
    WriteLocked();
  }

  void WriteLocked() {
    if (writing_ || finished_ || !queued_) return;
    const std::shared_ptr<const RoutingSnapshotVersion> snapshot = std::move(queued_);
    queued_.reset();
    const std::string nonce = service_.NextNonce();
    response_.Clear();
    response_.set_version_info(snapshot->version_info);
    response_.set_nonce(nonce);
    response_.set_yaml(snapshot->yaml);
    response_.set_source(snapshot->source);
    sent_.push_back({std::stoull(nonce), snapshot->version_info});
    if (sent_.size() > RoutingDiscoveryService::kRememberedNonces) sent_.pop_front();
    service_.Sent(this, client_id_, snapshot->version_info);
    writing_ = true;
    StartWrite(&response_);
  }

  // Ends the stream once (after the write in progress: one operation of each kind at a time).
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    queued_.reset();
    if (writing_) {
      finish_pending_ = true;
      finish_status_ = status;
    } else {
      Finish(status);
    }
  }

  RoutingDiscoveryService& service_;
  const std::string peer_;
  std::shared_ptr<RoutesStream> self_;
  v1::RoutingRequest request_;  // the read in progress

  std::mutex mutex_;
  bool identified_ = false;
  std::string client_id_;  // set once, before identified_
  bool finished_ = false;
  bool finish_pending_ = false;
  grpc::Status finish_status_;
  bool writing_ = false;
  v1::RoutingSnapshot response_;  // the write in progress
  std::shared_ptr<const RoutingSnapshotVersion> queued_;
  uint64_t queued_sequence_ = 0;  // of the newest version queued or sent
  std::deque<Sent> sent_;         // the last kRememberedNonces, oldest first
};

Result<std::unique_ptr<RoutingDiscoveryService>> RoutingDiscoveryService::Create(
    std::string path, std::shared_ptr<const core::BackendRegistry> registry,
    std::chrono::milliseconds poll_interval) {
  MSGSDK_ASSIGN_OR_RETURN(std::string text, core::RoutingTable::ReadFile(path));
  MSGSDK_ASSIGN_OR_RETURN(auto table, core::RoutingTable::Parse(text, path, *registry));
  std::unique_ptr<RoutingDiscoveryService> service(
      new RoutingDiscoveryService(std::move(path), registry));
  service->Publish(table, text);
  RoutingDiscoveryService* raw = service.get();
  // The watcher is stopped (Drain) before the service goes away.
  service->watcher_ = std::make_unique<core::RoutingFileWatcher>(
      service->path_, std::move(text), std::move(registry), poll_interval,
      core::RoutingFileWatcher::OfferText(
          [raw](const std::shared_ptr<const core::RoutingTable>& table, const std::string& text) {
            raw->Publish(table, text);
            return OkStatus();
          }),
      [raw](const Status& status) {
        Log("routing version refused, " + raw->current()->version_info +
            " keeps being served: " + status.ToString());
      },
      [] {});
  return service;
}

RoutingDiscoveryService::RoutingDiscoveryService(
    std::string path, std::shared_ptr<const core::BackendRegistry> registry)
    : path_(std::move(path)), registry_(std::move(registry)) {}

RoutingDiscoveryService::~RoutingDiscoveryService() { Drain(std::chrono::steady_clock::now()); }

std::shared_ptr<const RoutingSnapshotVersion> RoutingDiscoveryService::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void RoutingDiscoveryService::Publish(const std::shared_ptr<const core::RoutingTable>& table,
                                      const std::string& text) {
  auto snapshot = std::make_shared<RoutingSnapshotVersion>();
  snapshot->version_info = RoutingVersionInfo(table->version(), text);
  snapshot->yaml = text;
  snapshot->source = path_;
  std::vector<std::shared_ptr<RoutesStream>> streams;
  {
    std::lock_guard lock(mutex_);
    snapshot->sequence = current_ ? current_->sequence + 1 : 1;
    current_ = snapshot;
    streams.assign(streams_.begin(), streams_.end());
  }
  Log("routing version " + snapshot->version_info + " of " + path_ + " is served" +
      (streams.empty() ? "" : ", pushed to " + std::to_string(streams.size()) + " streams"));
  for (const auto& stream : streams) stream->Push(snapshot);
}

std::string RoutingDiscoveryService::NextNonce() {
  std::lock_guard lock(mutex_);
  return std::to_string(++next_nonce_);
}

RoutingDiscoveryService::ClientRecord* RoutingDiscoveryService::RecordOfLocked(
    RoutesStream* stream, const std::string& client_id) {
  auto it = clients_.find(client_id);
  return it != clients_.end() && it->second.stream == stream ? &it->second : nullptr;
}

std::shared_ptr<const RoutingSnapshotVersion> RoutingDiscoveryService::Connected(
    RoutesStream* stream, const v1::RoutingRequest& request, const std::string& peer) {
  const int64_t now = UnixMillisNow();
  std::lock_guard lock(mutex_);
  ClientRecord& record = clients_[request.node().client_id()];
  // A newer stream of a client id takes its place: the older one, if still open, is a
  // connection its client already gave up.
  record.stream = stream;
  v1::ClientStatus& status = record.status;
  status.set_client_id(request.node().client_id());
  status.set_environment(request.node().environment());
  status.set_transport(request.node().transport());
  *status.mutable_produces() = request.node().produces();
  *status.mutable_subscribes() = request.node().subscribes();
  *status.mutable_migrations() = request.node().migrations();
  status.set_connected(true);
  if (!request.version_info().empty()) status.set_acked_version_info(request.version_info());
  status.clear_pending_version_info();
  status.set_last_seen_unix_ms(now);
  status.set_connected_at_unix_ms(now);
  status.set_peer(peer);
  return current_;
}

void RoutingDiscoveryService::NodeChanged(RoutesStream* stream, const v1::Node& node) {
  std::lock_guard lock(mutex_);
  ClientRecord* record = RecordOfLocked(stream, node.client_id());
  if (record == nullptr) return;
  record->status.set_environment(node.environment());
  record->status.set_transport(node.transport());
  *record->status.mutable_produces() = node.produces();
  *record->status.mutable_subscribes() = node.subscribes();
  *record->status.mutable_migrations() = node.migrations();
}

void RoutingDiscoveryService::Sent(RoutesStream* stream, const std::string& client_id,
                                   const std::string& version_info) {
  std::lock_guard lock(mutex_);
  ClientRecord* record = RecordOfLocked(stream, client_id);
  if (record != nullptr) record->status.set_pending_version_info(version_info);
}

void RoutingDiscoveryService::Answered(RoutesStream* stream, const std::string& client_id,
                                       const std::string& version_info, const v1::Status* nack,
                                       bool latest) {
  {
    std::lock_guard lock(mutex_);
    ClientRecord* record = RecordOfLocked(stream, client_id);
    if (record == nullptr) return;
    if (nack != nullptr) {
      record->status.set_nacked_version_info(version_info);
      *record->status.mutable_nack_error() = *nack;
    } else {
      record->status.set_acked_version_info(version_info);
    }
    if (latest) record->status.clear_pending_version_info();
    record->status.set_last_seen_unix_ms(UnixMillisNow());
  }
  if (nack != nullptr) {
    Log("client '" + client_id + "' refused routing version " + version_info + ": " +
        FromProto(*nack).ToString());
  }
}

void RoutingDiscoveryService::Seen(RoutesStream* stream, const std::string& client_id) {
  std::lock_guard lock(mutex_);
  ClientRecord* record = RecordOfLocked(stream, client_id);
  if (record != nullptr) record->status.set_last_seen_unix_ms(UnixMillisNow());
}

void RoutingDiscoveryService::StreamDone(RoutesStream* stream, const std::string& client_id) {
  std::shared_ptr<RoutesStream> last;  // released after the lock
  std::lock_guard lock(mutex_);
  for (auto it = streams_.begin(); it != streams_.end(); ++it) {
    if (it->get() == stream) {
      last = *it;
      streams_.erase(it);
      break;
    }
  }
  if (ClientRecord* record = RecordOfLocked(stream, client_id)) {
    record->stream = nullptr;
    record->status.set_connected(false);
    record->status.clear_pending_version_info();
    record->status.set_last_seen_unix_ms(UnixMillisNow());
    EvictLocked();
  }
  streams_done_.notify_all();
}

void RoutingDiscoveryService::EvictLocked() {
  size_t disconnected = 0;
  for (const auto& [id, record] : clients_) {
    if (!record.status.connected()) ++disconnected;
  }
  while (disconnected > kMaxDisconnectedClients) {
    auto oldest = clients_.end();
    for (auto it = clients_.begin(); it != clients_.end(); ++it) {
      if (it->second.status.connected()) continue;
      if (oldest == clients_.end() ||
          it->second.status.last_seen_unix_ms() < oldest->second.status.last_seen_unix_ms()) {
        oldest = it;
      }
    }
    clients_.erase(oldest);
    --disconnected;
  }
}

grpc::ServerBidiReactor<v1::RoutingRequest, v1::RoutingSnapshot>*
RoutingDiscoveryService::StreamRoutes(grpc::CallbackServerContext* context) {
  auto stream = std::make_shared<RoutesStream>(*this, context->peer());
  {
    std::lock_guard lock(mutex_);
    if (draining_) return new RefusedRoutesStream(kShuttingDown);
    streams_.insert(stream);
  }
  stream->Begin();
  return stream.get();
}

grpc::ServerUnaryReactor* RoutingDiscoveryService::ListClients(
    grpc::CallbackServerContext* context, const v1::ListClientsRequest* /*request*/,
    v1::ListClientsResponse* response) {
  {
    std::lock_guard lock(mutex_);
    response->set_version_info(current_->version_info);
    for (const auto& [id, record] : clients_) *response->add_clients() = record.status;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void RoutingDiscoveryService::Drain(std::chrono::steady_clock::time_point deadline) {
  if (watcher_) watcher_->Stop();
  std::vector<std::shared_ptr<RoutesStream>> open;
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    open.assign(streams_.begin(), streams_.end());
  }
  for (auto& stream : open) stream->End(kShuttingDown);
  open.clear();
  std::unique_lock lock(mutex_);
  streams_done_.wait_until(lock, deadline, [this] { return streams_.empty(); });
}

}  // namespace msgsdk::sidecar
