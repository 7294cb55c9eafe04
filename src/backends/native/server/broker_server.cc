#include "backends/native/server/broker_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include "backends/native/protocol/address.h"
#include "backends/native/protocol/broker.pb.h"
#include "backends/native/protocol/convert.h"
#include "backends/native/protocol/earliest_deadline_timer.h"
#include "backends/native/protocol/frame.h"
#include "backends/native/protocol/wire_codec.h"
#include "backends/native/storage/message_codec.h"

namespace msgsdk::native::server {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using protocol::Frame;
using protocol::FrameType;
using Clock = std::chrono::steady_clock;

// Requests read from one connection and not yet answered; beyond this the connection stops
// reading until some are answered (a client pipelining without bound cannot grow our memory).
constexpr int kMaxInFlightPerConnection = 8192;
constexpr int32_t kMaxQueuesPerTopic = 1024;
constexpr int32_t kMaxFetchMessages = 65536;
constexpr int64_t kDefaultFetchBytes = int64_t{8} << 20;
constexpr int kMaxFetchPositions = 4096;

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

template <typename Response>
void SetStatus(const Status& status, Response* response) {
  protocol::ToWire(status, response->mutable_status());
}

}  // namespace

class Connection;

class BrokerServer::Impl : public std::enable_shared_from_this<BrokerServer::Impl> {
 public:
  Impl(ServerOptions options, std::unique_ptr<Broker> broker)
      : options_(std::move(options)),
        broker_(std::move(broker)),
        acceptor_(io_),
        sweep_timer_(io_),
        park_timer_(io_, [this] { AnswerExpiredParks(); }),
        accept_retry_timer_(io_) {}

  Status Listen();
  void Run();
  std::string endpoint() const { return endpoint_; }
  Status Shutdown(std::chrono::milliseconds timeout);

  // Called by connections, on the I/O thread.
  void Dispatch(const std::shared_ptr<Connection>& connection, const Frame& frame);
  void Forget(const std::shared_ptr<Connection>& connection);
  void CheckDrained();
  const ServerOptions& options() const { return options_; }
  bool draining() const { return draining_; }

 private:
  struct ParkedFetch {
    std::shared_ptr<Connection> connection;
    uint64_t request_id = 0;
    wire::FetchRequest request;
    std::chrono::steady_clock::time_point deadline;  // when its wait ends
  };

  void Accept();
  void Sweep();
  void BeginDrain();

  void HandleGetOrCreateTopic(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleProduce(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleFetch(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleCommitOffset(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleQueryOffset(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleGroup(const std::shared_ptr<Connection>& c, const Frame& frame);
  void HandleResetOffsets(const std::shared_ptr<Connection>& c, const Frame& frame);

  // One position of a fetch, read in place from the store.
  struct PositionRead {
    int32_t queue = 0;
    int64_t requested = 0;  // the offset asked for
    Status status;
    InPlaceReadResult read;
  };
  // Reads every position of `request` into `reads` (cleared first); true if there is
  // something to answer with (messages, a filter that skipped ahead, or an error).
  bool TryFetch(const wire::FetchRequest& request, std::vector<PositionRead>* reads);
  // Appends the body of the FetchResponse of `reads`, encoded straight from the log.
  static void AppendFetchBody(const std::vector<PositionRead>& reads, std::string* out);
  // Answers the parked fetches of `topic` that now find data.
  void WakeParked(const std::string& topic);
  // Answers a parked fetch with `reads`, or with a fresh read when there are none.
  void AnswerParked(uint64_t park_id, const std::vector<PositionRead>* reads = nullptr);
  // Answers the parked fetches whose wait is over (one timer serves them all; see
  // EarliestDeadlineTimer).
  void AnswerExpiredParks();

  const ServerOptions options_;
  std::unique_ptr<Broker> broker_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer sweep_timer_;
  protocol::EarliestDeadlineTimer park_timer_;  // ends the waits of parked fetches
  asio::steady_timer accept_retry_timer_;
  std::string endpoint_;
  std::thread thread_;

  // I/O thread only.
  std::set<std::shared_ptr<Connection>> connections_;
  std::map<uint64_t, ParkedFetch> parked_;
  uint64_t next_park_id_ = 0;
  // Decoded Produce requests and Fetch reads, reused from one request to the next.
  protocol::ProduceRequestReader produce_reader_;
  std::vector<MessageStore::AppendRequest> produce_appends_;
  std::vector<PositionRead> fetch_reads_;
  bool draining_ = false;
  std::promise<void>* drained_ = nullptr;

  std::atomic<uint64_t> round_robin_{0};
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
  Status shutdown_status_;
};

// One client connection. Lives on the I/O thread; kept alive by the server's set and by the
// handlers and callbacks that will answer its requests.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(BrokerServer::Impl& server, tcp::socket socket, std::string peer)
      : server_(server),
        socket_(std::move(socket)),
        peer_(std::move(peer)),
        decoder_(protocol::FrameDirection::kRequest, server.options().max_frame_bytes) {}

  const std::string& peer() const { return peer_; }
  bool closed() const { return closed_; }
  bool Idle() const { return closed_ || (in_flight_ == 0 && out_.empty() && !writing_); }
  bool WriteStalled(Clock::time_point now) const {
    return writing_ && now - last_write_progress_ > server_.options().write_stall_timeout;
  }

  void Start() { ReadMore(); }

  // Counts a request read; every one is answered by exactly one Respond.
  void Began() { ++in_flight_; }

  void Respond(uint8_t type, uint64_t request_id, const google::protobuf::MessageLite& body) {
    RespondWith([&body, type, request_id](std::string* out) {
      return protocol::AppendFrame(type, request_id, body, out);
    });
  }

  // Responds with a frame body encoded without the generated code: `write_body` appends it to
  // the string it is given.
  template <typename WriteBody>
  void RespondWithBody(uint8_t type, uint64_t request_id, WriteBody write_body) {
    RespondWith([&write_body, type, request_id](std::string* out) {
      const size_t start = protocol::BeginFrame(out);
      write_body(out);
      return protocol::EndFrame(type, request_id, start, out);
    });
  }

  // Closes the socket; `reason` is logged (empty: the client went away normally).
  void Close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    if (reason.empty()) {
      spdlog::debug("connection from {} closed", peer_);
    } else {
      spdlog::warn("closing connection from {}: {}", peer_, reason);
    }
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    server_.Forget(shared_from_this());
  }

  // Draining: no more requests are read; those already read are answered.
  void StopReading() {
    stop_reading_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_receive, ignored);
  }

 private:
  // Every response: `append_frame(out)` appends the whole frame and returns its status.
  template <typename AppendFrameTo>
  void RespondWith(AppendFrameTo append_frame) {
    --in_flight_;
    if (closed_) {
      server_.CheckDrained();
      return;
    }
    Status status = append_frame(&out_);
    if (!status.ok()) {
      Close("cannot encode a response: " + status.ToString());
      return;
    }
    Flush();
    MaybeResumeReading();
  }

  // Over its limits a connection is paused: frames already received wait in the decoder
  // and nothing more is read from the socket until answers have been written.
  bool OverLimits() const {
    return in_flight_ >= kMaxInFlightPerConnection ||
           out_.size() + (writing_buffer_.size() - written_) >=
               server_.options().max_pending_output_bytes;
  }

  void ReadMore() {
    if (closed_ || stop_reading_ || reading_ || paused_) return;
    reading_ = true;
    const std::span<char> space = decoder_.ReadSpace();
    socket_.async_read_some(
        asio::buffer(space.data(), space.size()),
        [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
          self->OnRead(error, bytes);
        });
  }

  void MaybeResumeReading() {
    if (!paused_ || OverLimits()) return;
    paused_ = false;
    ProcessFrames();
    ReadMore();
  }

  // Dispatches the complete frames received, until the connection is over its limits.
  void ProcessFrames() {
    while (!closed_ && !stop_reading_) {
      if (OverLimits()) {
        paused_ = true;
        return;
      }
      auto frame = decoder_.Next();
      if (!frame.ok()) {
        Close(frame.status().message());
        return;
      }
      if (!frame->has_value()) return;
      server_.Dispatch(shared_from_this(), **frame);
      // Every handler is done with the body when it returns (a produce request is copied
      // into the store's records, a parked fetch keeps its decoded request).
      decoder_.Recycle(std::move((*frame)->body));
    }
  }

  void OnRead(const boost::system::error_code& error, size_t bytes) {
    reading_ = false;
    if (closed_) return;
    if (error) {
      if (stop_reading_) return;  // draining: answer what was read, then the server closes
      if (error == asio::error::eof) {
        Status rest = decoder_.Finish();
        Close(rest.ok() ? "" : rest.message());
      } else if (error != asio::error::operation_aborted) {
        Close("read failed: " + error.message());
      }
      return;
    }
    decoder_.Commit(bytes);
    ProcessFrames();
    ReadMore();
  }

  void Flush() {
    if (closed_ || writing_) return;
    if (written_ == writing_buffer_.size()) {
      if (out_.empty()) return;
      writing_buffer_.swap(out_);
      out_.clear();
      written_ = 0;
    }
    writing_ = true;
    last_write_progress_ = Clock::now();
    WriteSome();
  }

  // Writes piecewise so that progress is seen: a client that reads slowly is not a stalled one.
  void WriteSome() {
    socket_.async_write_some(
        asio::buffer(writing_buffer_.data() + written_, writing_buffer_.size() - written_),
        [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
          if (self->closed_) return;
          if (error) {
            self->writing_ = false;
            self->Close("write failed: " + error.message());
            return;
          }
          self->written_ += bytes;
          self->last_write_progress_ = Clock::now();
          if (self->written_ < self->writing_buffer_.size()) {
            self->WriteSome();
            return;
          }
          self->writing_ = false;
          self->writing_buffer_.clear();
          self->written_ = 0;
          self->Flush();
          self->MaybeResumeReading();
          self->server_.CheckDrained();
        });
  }

  BrokerServer::Impl& server_;
  tcp::socket socket_;
  const std::string peer_;
  protocol::FrameDecoder decoder_;
  std::string out_;
  std::string writing_buffer_;
  size_t written_ = 0;  // bytes of writing_buffer_ already sent
  Clock::time_point last_write_progress_{};
  int in_flight_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;
  bool stop_reading_ = false;
  bool closed_ = false;
};

Status BrokerServer::Impl::Listen() {
  std::string host;
  uint16_t port = 0;
  MSGSDK_RETURN_IF_ERROR(protocol::ParseHostPort(options_.listen, &host, &port));
  boost::system::error_code error;
  tcp::resolver resolver(io_);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, error);
  if (error || results.empty()) {
    return InvalidArgumentError("listen address '" + options_.listen + "': cannot resolve '" +
                                host + "': " + error.message());
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), error);
  if (!error) acceptor_.set_option(tcp::acceptor::reuse_address(true), error);
  if (!error) acceptor_.bind(endpoint, error);
  if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return UnavailableError("cannot listen on " + options_.listen + ": " + error.message());
  }
  endpoint_ = FormatEndpoint(acceptor_.local_endpoint());
  return OkStatus();
}

void BrokerServer::Impl::Run() {
  Accept();
  Sweep();
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      // Handlers do not throw (errors are Statuses); anything else is a bug worth a loud end.
      spdlog::critical("I/O thread stopped by an exception: {}", e.what());
      std::abort();
    }
  });
}

void BrokerServer::Impl::Accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](const boost::system::error_code& error, tcp::socket socket) {
        if (error == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (error) {
          // Out of file descriptors, for example: try again shortly rather than spin.
          spdlog::error("accept failed: {}", error.message());
          self->accept_retry_timer_.expires_after(std::chrono::milliseconds(100));
          self->accept_retry_timer_.async_wait([self](const boost::system::error_code& e) {
            if (!e) self->Accept();
          });
          return;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto remote = socket.remote_endpoint(ignored);
        const std::string peer = ignored ? std::string("unknown peer") : FormatEndpoint(remote);
        spdlog::debug("connection from {}", peer);
        auto connection = std::make_shared<Connection>(*self, std::move(socket), peer);
        self->connections_.insert(connection);
        connection->Start();
        self->Accept();
      });
}

void BrokerServer::Impl::Sweep() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Connection>> stalled;
  for (const auto& connection : connections_) {
    if (connection->WriteStalled(now)) stalled.push_back(connection);
  }
  for (const auto& connection : stalled) {
    connection->Close("the client has not read its responses for " +
                      std::to_string(options_.write_stall_timeout.count()) + " ms");
  }
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (!error) self->Sweep();
  });
}

void BrokerServer::Impl::Forget(const std::shared_ptr<Connection>& connection) {
  connections_.erase(connection);
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->second.connection == connection) {
      // The request is dropped with its connection; count it answered.
      connection->RespondWithBody(0, 0, [](std::string*) {});
      it = parked_.erase(it);
    } else {
      ++it;
    }
  }
  CheckDrained();
}

void BrokerServer::Impl::CheckDrained() {
  if (!draining_ || drained_ == nullptr) return;
  for (const auto& connection : connections_) {
    if (!connection->Idle()) return;
  }
  drained_->set_value();
  drained_ = nullptr;
}

void BrokerServer::Impl::Dispatch(const std::shared_ptr<Connection>& c, const Frame& frame) {
  c->Began();
  switch (frame.header.request_type()) {
    case FrameType::kGetOrCreateTopic:
      return HandleGetOrCreateTopic(c, frame);
    case FrameType::kProduce:
      return HandleProduce(c, frame);
    case FrameType::kFetch:
      return HandleFetch(c, frame);
    case FrameType::kCommitOffset:
      return HandleCommitOffset(c, frame);
    case FrameType::kQueryOffset:
      return HandleQueryOffset(c, frame);
    case FrameType::kJoinGroup:
    case FrameType::kHeartbeat:
    case FrameType::kLeaveGroup:
      return HandleGroup(c, frame);
    case FrameType::kResetOffsets:
      return HandleResetOffsets(c, frame);
  }
  // The decoder lets only known types through.
  c->Close("unhandled " + protocol::FrameTypeName(frame.header.type));
}

// A body that does not parse costs the connection, like a bad header: the peer does not
// speak the protocol. Returns from the handler after closing.
#define MSGSDK_PARSE_OR_CLOSE(connection, frame, body)               \
  do {                                                               \
    Status parse_status_ = protocol::ParseFrameBody(frame, &(body)); \
    if (!parse_status_.ok()) {                                       \
      (connection)->Close(parse_status_.message());                  \
      return;                                                        \
    }                                                                \
  } while (false)

void BrokerServer::Impl::HandleGetOrCreateTopic(const std::shared_ptr<Connection>& c,
                                                const Frame& frame) {
  wire::GetOrCreateTopicRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  wire::GetOrCreateTopicResponse response;
  if (request.topic().empty()) {
    SetStatus(InvalidArgumentError("GetOrCreateTopic: empty topic name"), &response);
  } else if (request.queues() < 0 || request.queues() > kMaxQueuesPerTopic) {
    SetStatus(InvalidArgumentError("GetOrCreateTopic '" + request.topic() + "': queues " +
                                   std::to_string(request.queues()) + " is outside [0, " +
                                   std::to_string(kMaxQueuesPerTopic) + "]"),
              &response);
  } else {
    auto info = broker_->store().GetOrCreateTopic(request.topic(), request.queues());
    if (info.ok()) {
      response.set_queues(info->queues);
    } else {
      SetStatus(info.status(), &response);
    }
  }
  c->Respond(ResponseType(FrameType::kGetOrCreateTopic), frame.header.request_id, response);
}

// What one Produce request is waiting for: a result per entry, filled in by the store's
// writer thread, and answered by the I/O thread once the last one is in.
struct PendingProduce {
  std::shared_ptr<BrokerServer::Impl> server;
  std::shared_ptr<Connection> connection;
  uint64_t request_id = 0;
  std::string topic;
  std::vector<protocol::ProduceOutcome> results;
  std::atomic<size_t> remaining{0};
};

void BrokerServer::Impl::HandleProduce(const std::shared_ptr<Connection>& c, const Frame& frame) {
  const uint64_t request_id = frame.header.request_id;
  const uint8_t type = ResponseType(FrameType::kProduce);
  // Decoded without the generated code, into messages reused from one request to the next:
  // per message, that was most of the broker's CPU.
  protocol::ProduceRequestReader& request = produce_reader_;
  if (Status parsed = request.Read(frame); !parsed.ok()) {
    c->Close(parsed.message());
    return;
  }
  const std::string& topic = request.topic();
  auto info = broker_->store().FindTopic(topic);
  if (!info) {
    wire::ProduceResponse response;
    SetStatus(NotFoundError("Produce: topic '" + topic + "' does not exist"), &response);
    c->Respond(type, request_id, response);
    return;
  }
  const size_t entries = request.size();
  if (entries == 0) {
    c->Respond(type, request_id, wire::ProduceResponse());
    return;
  }
  auto owned = std::make_unique<PendingProduce>();
  owned->server = shared_from_this();
  owned->connection = c;
  owned->request_id = request_id;
  owned->topic = topic;
  owned->results.resize(entries);
  owned->remaining.store(entries, std::memory_order_relaxed);
  // Freed by the last completion's answer (below); the callbacks hold only the pointer and an
  // index, which std::function keeps inline: no allocation and no reference count per message.
  PendingProduce* state = owned.release();
  // Handed to the store at once: one lock and one wake-up of its writer for the request.
  std::vector<MessageStore::AppendRequest>& appends = produce_appends_;
  appends.resize(entries);
  for (size_t i = 0; i < entries; ++i) {
    int32_t queue = request.queue(i);
    // Views into the frame: the store encodes the records from them before AppendBatch
    // returns.
    const RecordFields& fields = request.fields(i);
    if (queue < 0) {
      queue = fields.key.empty()
                  ? static_cast<int32_t>(round_robin_.fetch_add(1, std::memory_order_relaxed) %
                                         static_cast<uint64_t>(info->queues))
                  : static_cast<int32_t>(TagHash(fields.key) % static_cast<uint64_t>(info->queues));
    }
    appends[i].queue = queue;
    appends[i].fields = fields;
    appends[i].done = [state, i](Result<AppendResult> result) {
      protocol::ProduceOutcome& out = state->results[i];
      if (result.ok()) {
        out.queue = result->queue;
        out.offset = result->queue_offset;
      } else {
        out.status = result.status();
      }
      if (state->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      // Runs on the store's writer thread (or this one, after Close): hand the answer to the
      // I/O thread, which owns the connection.
      auto& io = state->server->io_;
      asio::post(io, [pending = std::unique_ptr<PendingProduce>(state)] {
        pending->connection->RespondWithBody(
            ResponseType(FrameType::kProduce), pending->request_id, [&pending](std::string* out) {
              protocol::AppendProduceResponseBody(pending->results, out);
            });
        pending->server->WakeParked(pending->topic);
      });
    };
  }
  broker_->store().AppendBatch(appends);
  // A large request must not pin its memory for the rest of the connection's life.
  request.Trim(size_t{4} << 20);
  if (appends.capacity() * sizeof(appends[0]) > (size_t{4} << 20)) {
    appends.clear();
    appends.shrink_to_fit();
  }
}

bool BrokerServer::Impl::TryFetch(const wire::FetchRequest& request,
                                  std::vector<PositionRead>* reads) {
  reads->clear();
  const std::vector<uint64_t> tags(request.tag_hashes().begin(), request.tag_hashes().end());
  const int32_t max_messages = request.max_messages() > 0 ? request.max_messages() : 256;
  const int64_t max_bytes = request.max_bytes() > 0 ? request.max_bytes() : kDefaultFetchBytes;
  bool ready = false;
  // Read in place: the answer is encoded straight from the log (no Message in between).
  for (const auto& position : request.positions()) {
    PositionRead& out = reads->emplace_back();
    out.queue = position.queue();
    out.requested = position.offset();
    auto read = broker_->store().ReadInPlace(request.topic(), position.queue(), position.offset(),
                                             max_messages, max_bytes, tags);
    if (!read.ok()) {
      out.status = read.status();
      ready = true;
      continue;
    }
    out.read = std::move(read).value();
    if (!out.read.records.empty() || out.read.next_offset != position.offset()) ready = true;
  }
  return ready;
}

void BrokerServer::Impl::AppendFetchBody(const std::vector<PositionRead>& reads, std::string* out) {
  static const std::vector<RecordInPlace> kNoRecords;
  for (const PositionRead& position : reads) {
    if (!position.status.ok()) {
      protocol::AppendQueueData(position.queue, position.status, kNoRecords, position.requested, 0,
                                0, out);
      continue;
    }
    protocol::AppendQueueData(position.queue, OkStatus(), position.read.records,
                              position.read.next_offset, position.read.max_offset,
                              position.read.min_offset, out);
  }
}

void BrokerServer::Impl::HandleFetch(const std::shared_ptr<Connection>& c, const Frame& frame) {
  wire::FetchRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  const uint8_t type = ResponseType(FrameType::kFetch);
  Status invalid;
  if (request.positions_size() == 0 || request.positions_size() > kMaxFetchPositions) {
    invalid = InvalidArgumentError(
        "Fetch '" + request.topic() + "': " + std::to_string(request.positions_size()) +
        " positions; between 1 and " + std::to_string(kMaxFetchPositions) + " expected");
  } else if (request.max_messages() < 0 || request.max_messages() > kMaxFetchMessages) {
    invalid = InvalidArgumentError("Fetch '" + request.topic() + "': max_messages " +
                                   std::to_string(request.max_messages()) + " is outside [0, " +
                                   std::to_string(kMaxFetchMessages) + "]");
  } else if (request.max_bytes() < 0 || request.max_bytes() > options_.max_frame_bytes) {
    invalid = InvalidArgumentError("Fetch '" + request.topic() + "': max_bytes " +
                                   std::to_string(request.max_bytes()) + " is outside [0, " +
                                   std::to_string(options_.max_frame_bytes) + "]");
  } else if (request.wait_ms() > static_cast<uint64_t>(options_.max_fetch_wait.count())) {
    invalid = InvalidArgumentError(
        "Fetch '" + request.topic() + "': wait_ms " + std::to_string(request.wait_ms()) +
        " exceeds the broker's limit of " + std::to_string(options_.max_fetch_wait.count()));
  } else if (!broker_->store().FindTopic(request.topic())) {
    invalid = NotFoundError("Fetch: topic '" + request.topic() + "' does not exist");
  }
  if (!invalid.ok()) {
    wire::FetchResponse response;
    SetStatus(invalid, &response);
    c->Respond(type, frame.header.request_id, response);
    return;
  }
  if (TryFetch(request, &fetch_reads_) || request.wait_ms() == 0 || draining_) {
    c->RespondWithBody(type, frame.header.request_id,
                       [this](std::string* out) { AppendFetchBody(fetch_reads_, out); });
    // The segments the reads kept mapped are let go of now, not at the next fetch.
    fetch_reads_.clear();
    return;
  }
  // Nothing yet: park it. It is answered by WakeParked when its topic gets data, by its
  // timer when the wait ends, or at shutdown.
  const uint64_t park_id = ++next_park_id_;
  ParkedFetch& parked = parked_[park_id];
  parked.connection = c;
  parked.request_id = frame.header.request_id;
  parked.request = std::move(request);
  parked.deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(parked.request.wait_ms());
  park_timer_.Include(parked.deadline);
}

void BrokerServer::Impl::AnswerExpiredParks() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> due;
  for (const auto& [park_id, parked] : parked_) {
    if (parked.deadline <= now) due.push_back(park_id);
  }
  for (uint64_t park_id : due) AnswerParked(park_id);
  if (parked_.empty()) return;
  auto earliest = parked_.begin()->second.deadline;
  for (const auto& [park_id, parked] : parked_) earliest = std::min(earliest, parked.deadline);
  park_timer_.Include(earliest);
}

void BrokerServer::Impl::AnswerParked(uint64_t park_id, const std::vector<PositionRead>* reads) {
  auto it = parked_.find(park_id);
  if (it == parked_.end()) return;
  ParkedFetch parked = std::move(it->second);
  parked_.erase(it);
  if (reads == nullptr) {
    TryFetch(parked.request, &fetch_reads_);
    reads = &fetch_reads_;
  }
  parked.connection->RespondWithBody(ResponseType(FrameType::kFetch), parked.request_id,
                                     [reads](std::string* out) { AppendFetchBody(*reads, out); });
  fetch_reads_.clear();
}

void BrokerServer::Impl::WakeParked(const std::string& topic) {
  std::vector<std::pair<uint64_t, std::vector<PositionRead>>> ready;
  for (auto& [park_id, parked] : parked_) {
    if (parked.request.topic() != topic) continue;
    std::vector<PositionRead> reads;
    if (TryFetch(parked.request, &reads)) ready.emplace_back(park_id, std::move(reads));
  }
  for (auto& [park_id, reads] : ready) AnswerParked(park_id, &reads);
}

void BrokerServer::Impl::HandleCommitOffset(const std::shared_ptr<Connection>& c,
                                            const Frame& frame) {
  wire::CommitOffsetRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  wire::CommitOffsetResponse response;
  const auto respond = [&](const Status& status) {
    SetStatus(status, &response);
    c->Respond(ResponseType(FrameType::kCommitOffset), frame.header.request_id, response);
  };
  if (request.topic().empty() || request.group().empty()) {
    return respond(InvalidArgumentError("CommitOffset: topic and group must be set"));
  }
  if (request.broadcast() && request.member_id().empty()) {
    return respond(InvalidArgumentError("CommitOffset: a broadcast commit needs a member id"));
  }
  // A member commits only queues it owns: one whose session expired (and whose queues may
  // be consumed by another member now) must not move the group's position.
  if (!request.broadcast() && !request.member_id().empty()) {
    for (const auto& entry : request.offsets()) {
      if (!broker_->groups().Owns(request.group(), request.topic(), request.member_id(),
                                  entry.queue())) {
        // Aborted, as Kafka's lost assignment: the group moved on, nothing is wrong with
        // the request itself.
        return respond(AbortedError("CommitOffset: queue " + std::to_string(entry.queue()) +
                                    " of topic '" + request.topic() + "' is not owned by member '" +
                                    request.member_id() + "' of group '" + request.group() +
                                    "' (the group rebalanced or the session expired)"));
      }
    }
  }
  const std::string key =
      request.broadcast() ? request.group() + "@" + request.member_id() : request.group();
  std::vector<QueueOffset> offsets;
  offsets.reserve(static_cast<size_t>(request.offsets_size()));
  for (const auto& entry : request.offsets()) {
    offsets.push_back(QueueOffset{entry.queue(), entry.offset()});
  }
  // Answered once durable (in group-commit mode after the fdatasync that covers it, shared
  // with the commits of other connections), from the store's offsets thread.
  const uint64_t request_id = frame.header.request_id;
  broker_->store().CommitOffsets(
      key, request.topic(), offsets, [self = shared_from_this(), c, request_id](Status status) {
        asio::post(self->io_, [c, request_id, status = std::move(status)] {
          wire::CommitOffsetResponse response;
          SetStatus(status, &response);
          c->Respond(ResponseType(FrameType::kCommitOffset), request_id, response);
        });
      });
}

void BrokerServer::Impl::HandleQueryOffset(const std::shared_ptr<Connection>& c,
                                           const Frame& frame) {
  wire::QueryOffsetRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  wire::QueryOffsetResponse response;
  auto info = broker_->store().FindTopic(request.topic());
  if (!info) {
    SetStatus(NotFoundError("QueryOffset: topic '" + request.topic() + "' does not exist"),
              &response);
  } else if (request.queue() < 0 || request.queue() >= info->queues) {
    SetStatus(InvalidArgumentError("QueryOffset: topic '" + request.topic() + "' has no queue " +
                                   std::to_string(request.queue())),
              &response);
  } else {
    const std::string key =
        request.broadcast() ? request.group() + "@" + request.member_id() : request.group();
    auto committed = broker_->store().CommittedOffset(key, request.topic(), request.queue());
    response.set_has_committed(committed.has_value());
    response.set_committed(committed.value_or(0));
    response.set_min_offset(broker_->store().MinOffset(request.topic(), request.queue()));
    response.set_max_offset(broker_->store().MaxOffset(request.topic(), request.queue()));
  }
  c->Respond(ResponseType(FrameType::kQueryOffset), frame.header.request_id, response);
}

void BrokerServer::Impl::HandleGroup(const std::shared_ptr<Connection>& c, const Frame& frame) {
  wire::GroupRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  const FrameType kind = frame.header.request_type();
  wire::GroupResponse response;
  const auto respond = [&](const Status& status) {
    SetStatus(status, &response);
    c->Respond(ResponseType(kind), frame.header.request_id, response);
  };
  const std::string what = protocol::FrameTypeName(frame.header.type);
  if (request.topic().empty() || request.group().empty() || request.member_id().empty()) {
    return respond(InvalidArgumentError(what + ": topic, group and member id must be set"));
  }
  if (kind == FrameType::kLeaveGroup) {
    broker_->groups().Leave(request.group(), request.topic(), request.member_id());
    return respond(OkStatus());
  }
  auto info = broker_->store().FindTopic(request.topic());
  if (!info) {
    return respond(NotFoundError(what + ": topic '" + request.topic() + "' does not exist"));
  }
  GroupCoordinator::Assignment assignment;
  if (kind == FrameType::kJoinGroup) {
    const std::chrono::milliseconds timeout(request.session_timeout_ms());
    if (timeout < options_.min_session_timeout || timeout > options_.max_session_timeout) {
      return respond(InvalidArgumentError(
          what + ": session timeout " + std::to_string(timeout.count()) + " ms is outside [" +
          std::to_string(options_.min_session_timeout.count()) + ", " +
          std::to_string(options_.max_session_timeout.count()) + "] ms"));
    }
    assignment = broker_->groups().Join(request.group(), request.topic(), request.member_id(),
                                        info->queues, timeout);
  } else {
    const std::vector<int32_t> released(request.released().begin(), request.released().end());
    auto refreshed = broker_->groups().Refresh(request.group(), request.topic(),
                                               request.member_id(), info->queues, released);
    if (!refreshed) {
      return respond(NotFoundError(
          "Heartbeat: member '" + request.member_id() + "' is not in group '" + request.group() +
          "' of topic '" + request.topic() + "' (it left or its session expired); join again"));
    }
    assignment = std::move(*refreshed);
  }
  response.set_generation(assignment.generation);
  response.set_queues(info->queues);
  for (int32_t queue : assignment.owned) response.add_owned(queue);
  for (int32_t queue : assignment.to_release) response.add_to_release(queue);
  respond(OkStatus());
}

void BrokerServer::Impl::HandleResetOffsets(const std::shared_ptr<Connection>& c,
                                            const Frame& frame) {
  wire::ResetOffsetsRequest request;
  MSGSDK_PARSE_OR_CLOSE(c, frame, request);
  ResetTarget target;
  switch (request.kind()) {
    case wire::ResetOffsetsRequest::LATEST:
      target.kind = ResetTarget::Kind::kLatest;
      break;
    case wire::ResetOffsetsRequest::TIMESTAMP:
      target.kind = ResetTarget::Kind::kTimestamp;
      target.timestamp = FromUnixNanos(request.timestamp_ns());
      break;
    default:
      target.kind = ResetTarget::Kind::kEarliest;
      break;
  }
  wire::ResetOffsetsResponse response;
  SetStatus(broker_->ResetOffsets(request.topic(), request.group(), target), &response);
  c->Respond(ResponseType(FrameType::kResetOffsets), frame.header.request_id, response);
}

#undef MSGSDK_PARSE_OR_CLOSE

void BrokerServer::Impl::BeginDrain() {
  draining_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (const auto& connection : connections_) connection->StopReading();
  std::vector<uint64_t> ids;
  for (const auto& [park_id, parked] : parked_) ids.push_back(park_id);
  for (uint64_t park_id : ids) AnswerParked(park_id);
  CheckDrained();
}

Status BrokerServer::Impl::Shutdown(std::chrono::milliseconds timeout) {
  std::lock_guard lock(shutdown_mutex_);
  if (shut_down_) return shutdown_status_;
  shut_down_ = true;
  spdlog::info("shutting down: no new connections, answering in-flight requests");
  std::promise<void> drained;
  auto drained_future = drained.get_future();
  asio::post(io_, [this, &drained] {
    drained_ = &drained;
    BeginDrain();
  });
  Status status;
  if (drained_future.wait_for(timeout) != std::future_status::ready) {
    status = DeadlineExceededError("connections still busy after " +
                                   std::to_string(timeout.count()) + " ms were cut");
    spdlog::warn("shutdown: {}", status.message());
  }
  std::promise<void> closed;
  asio::post(io_, [this, &closed] {
    drained_ = nullptr;
    auto connections = connections_;
    for (const auto& connection : connections) connection->Close("");
    sweep_timer_.cancel();
    park_timer_.Cancel();
    accept_retry_timer_.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  io_.stop();
  thread_.join();
  // Completes appends still queued (their answers go nowhere now), flushes the log and the
  // offsets, and releases the data directory.
  Status closed_status = broker_->Close();
  io_.restart();
  io_.poll();
  if (!closed_status.ok()) {
    spdlog::error("closing the store: {}", closed_status.ToString());
    if (status.ok()) status = closed_status;
  }
  spdlog::info("shut down");
  shutdown_status_ = status;
  return status;
}

Result<std::unique_ptr<BrokerServer>> BrokerServer::Start(ServerOptions options) {
  MSGSDK_ASSIGN_OR_RETURN(std::unique_ptr<Broker> broker, Broker::Open(options.broker));
  const RecoveryReport recovery = broker->store().Recovery();
  if (recovery.truncated_bytes > 0) {
    spdlog::warn("recovery truncated {} bytes of the commit log: {}", recovery.truncated_bytes,
                 recovery.truncation);
  }
  if (recovery.index_rebuilt) {
    spdlog::warn("recovery rebuilt the queue indexes: {}", recovery.index_rebuild_reason);
  }
  if (recovery.offsets_truncated_bytes > 0) {
    spdlog::warn("recovery cut {} bytes off the consumer-offsets journal: {}",
                 recovery.offsets_truncated_bytes, recovery.offsets_truncation);
  }
  if (recovery.offsets_pulled_back > 0) {
    spdlog::warn(
        "recovery moved {} committed offsets back to the end of their queue (the commit log "
        "lost messages they had passed)",
        recovery.offsets_pulled_back);
  }
  if (recovery.retention_segments_finished > 0) {
    spdlog::info(
        "recovery removed {} commit-log segments that a retention deletion interrupted by the "
        "last stop had recorded as deleted",
        recovery.retention_segments_finished);
  }
  if (!recovery.log_start_damage.empty()) {
    spdlog::warn("recovery ignored the log start ({}): the log starts at its first segment",
                 recovery.log_start_damage);
  }
  auto impl = std::make_shared<Impl>(std::move(options), std::move(broker));
  MSGSDK_RETURN_IF_ERROR(impl->Listen());
  impl->Run();
  return std::unique_ptr<BrokerServer>(new BrokerServer(std::move(impl)));
}

BrokerServer::BrokerServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

BrokerServer::~BrokerServer() { impl_->Shutdown(std::chrono::seconds(10)).IgnoreError(); }

std::string BrokerServer::endpoint() const { return impl_->endpoint(); }

Status BrokerServer::Shutdown(std::chrono::milliseconds timeout) {
  return impl_->Shutdown(timeout);
}

}  // namespace msgsdk::native::server
