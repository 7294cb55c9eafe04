#include "backends/native/client/broker_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <thread>
#include <unordered_map>
#include <utility>

#include <boost/asio.hpp>
#include <google/protobuf/message_lite.h>

#include "backends/native/protocol/address.h"
#include "backends/native/protocol/earliest_deadline_timer.h"

namespace msgsdk::native::client {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Frames written kept for reuse (TakeSpareFrame): as many as a producer keeps in flight, and
// each at most this large, so that a burst of large frames is not held on to.
constexpr size_t kMaxSpareFrames = 8;
constexpr size_t kMaxSpareFrameBytes = size_t{4} << 20;

}  // namespace

class BrokerClient::Impl {
 public:
  Impl(BrokerClientOptions options, std::vector<std::pair<std::string, uint16_t>> endpoints)
      : options_(std::move(options)),
        endpoints_(std::move(endpoints)),
        work_(asio::make_work_guard(io_)),
        socket_(io_),
        resolver_(io_),
        connect_timer_(io_),
        backoff_timer_(io_),
        expiry_timer_(io_,
                      [this] {
                        if (!closing_) ExpireDue();
                      }),
        backoff_(options_.reconnect_backoff_min),
        decoder_(protocol::FrameDirection::kResponse, protocol::kMaxFrameBodyLimit) {}

  void Start(const std::shared_ptr<Impl>& self) {
    // The thread keeps the state alive until its loop ends, even if the last handle is
    // dropped from a callback on this very thread.
    thread_ = std::thread([self] { self->io_.run(); });
  }

  void Call(protocol::FrameType type, const google::protobuf::MessageLite& request,
            std::chrono::milliseconds timeout, ResponseCallback done) {
    const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    std::string bytes;
    Status encoded = protocol::AppendFrame(static_cast<uint8_t>(type), id, request, &bytes);
    if (!encoded.ok()) {
      done(encoded);
      return;
    }
    Submit(id, type, timeout, std::move(bytes), std::move(done));
  }

  std::string TakeSpareFrame() {
    std::lock_guard lock(spare_mutex_);
    if (spare_frames_.empty()) return {};
    std::string frame = std::move(spare_frames_.back());
    spare_frames_.pop_back();
    return frame;
  }

  void RecycleResponseBody(std::string&& body) {
    if (body.capacity() < protocol::FrameDecoder::kInPlaceBodyBytes ||
        body.capacity() > protocol::FrameDecoder::kRecycledBodyBytes) {
      return;
    }
    std::lock_guard lock(spare_mutex_);
    // One is enough: a client has about one large response in its decoder at a time.
    if (body.capacity() <= spare_body_.capacity()) return;
    spare_body_ = std::move(body);
    has_spare_body_.store(true, std::memory_order_release);
  }

  void CallWithFrame(protocol::FrameType type, std::string frame, std::chrono::milliseconds timeout,
                     ResponseCallback done) {
    const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    Status sealed = protocol::SealFrame(static_cast<uint8_t>(type), id, &frame);
    if (!sealed.ok()) {
      done(sealed);
      return;
    }
    Submit(id, type, timeout, std::move(frame), std::move(done));
  }

  // Registers the request, then writes it from the calling thread when the connection is
  // idle (connected, nothing queued or being written): a request on a quiet connection then
  // costs no hand-off to the I/O thread, whose wake-up on this kind of machine is a good part
  // of a message's latency. Otherwise it is queued, and the I/O thread writes it with the
  // others. Either way its answer is read on the I/O thread.
  void Submit(uint64_t id, protocol::FrameType type, std::chrono::milliseconds timeout,
              std::string bytes, ResponseCallback done) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool arm_timer = false;
    bool kick = false;
    std::string written;  // the frame, when written whole here
    {
      std::unique_lock lock(mu_);
      if (closed_) {
        lock.unlock();
        done(FailedPreconditionError(Who() + " is closed"));
        return;
      }
      Pending& pending = pending_[id];
      pending.type = type;
      pending.done = std::move(done);
      pending.timeout = timeout;
      pending.deadline = deadline;
      if (deadline < timer_at_) {
        timer_at_ = deadline;
        arm_timer = true;
      }
      if (connected_fd_ >= 0 && !writing_ && queued_.empty()) {
        const size_t sent = WriteNow(bytes);
        pending.written = sent > 0;
        if (sent == bytes.size()) {
          written = std::move(bytes);
        } else {
          // The rest (or, if nothing went out, the whole frame) goes before anything else.
          queued_.push_back({id, sent > 0 ? bytes.substr(sent) : std::move(bytes), sent > 0});
          kick = true;
        }
      } else {
        queued_.push_back({id, std::move(bytes), false});
        // A write under way writes the queue when it ends.
        kick = !writing_;
      }
      if (kick && kick_posted_) kick = false;
      if (kick) kick_posted_ = true;
    }
    if (arm_timer) {
      asio::post(io_, [this, deadline] {
        if (!closing_) expiry_timer_.Include(deadline);
      });
    }
    if (kick) asio::post(io_, [this] { Kick(); });
    if (!written.empty()) KeepSpareFrame(std::move(written));
  }

  uint64_t disconnects() const { return disconnects_.load(std::memory_order_acquire); }

  void Close() {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
    }
    // Runs after every handler posted before it (one thread, handlers in order); requests
    // registered before closed_ was set are failed by it.
    asio::post(io_, [this] {
      closing_ = true;
      FailAll(FailedPreconditionError(Who() + " is closed"), /*only_written=*/false);
      CloseSocket();
      resolver_.cancel();
      connect_timer_.cancel();
      backoff_timer_.cancel();
      expiry_timer_.Cancel();
      work_.reset();
    });
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();  // the loop ends once this handler returns; the thread owns the state
    } else if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  struct Pending {
    protocol::FrameType type;
    ResponseCallback done;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::milliseconds timeout;
    bool written = false;  // wholly or in part: its outcome is unknown if the connection breaks
  };
  // A frame not yet handed to the socket.
  struct Queued {
    uint64_t id;
    std::string bytes;
    // The rest of a frame whose start was written (Submit): written next on this connection,
    // dropped with it.
    bool rest;
  };
  enum class State { kIdle, kConnecting, kConnected, kBackoff };

  std::string Who() const {
    return "msgsdk-broker connection of native cluster '" + options_.cluster + "'";
  }
  std::string EndpointName(size_t index) const {
    return endpoints_[index].first + ":" + std::to_string(endpoints_[index].second);
  }

  // Writes as much of `bytes` as the socket takes now. mu_ held, connected_fd_ open.
  size_t WriteNow(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      // MSG_NOSIGNAL: a broker that went away is an EPIPE here, never a SIGPIPE.
      const ssize_t n = ::send(connected_fd_, bytes.data() + sent, bytes.size() - sent,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        // A full socket: the I/O thread writes the rest. An error: its write meets it too,
        // and drops the connection.
        break;
      }
    }
    return sent;
  }

  // The pending request `id`, taken out; its callback is empty if there is none (answered
  // after it timed out). mu_ held.
  ResponseCallback TakePending(uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return {};
    ResponseCallback done = std::move(it->second.done);
    pending_.erase(it);
    return done;
  }

  // A frame written becomes a spare (TakeSpareFrame), if fewer are kept than a producer
  // keeps in flight.
  void KeepSpareFrame(std::string&& frame) {
    if (frame.capacity() > kMaxSpareFrameBytes) return;
    std::lock_guard lock(spare_mutex_);
    if (spare_frames_.size() >= kMaxSpareFrames) return;
    frame.clear();
    spare_frames_.push_back(std::move(frame));
  }

  // ---- I/O thread only from here on. ----

  // Queued requests are waiting (Submit): writes them, or connects first.
  void Kick() {
    {
      std::lock_guard lock(mu_);
      kick_posted_ = false;
    }
    if (closing_) return;
    if (state_ == State::kConnected) {
      Flush();
    } else if (state_ == State::kIdle) {
      Connect();
    }
  }

  // Callbacks run without mu_ held: they may send again.
  void Complete(uint64_t id, Result<protocol::Frame> result) {
    ResponseCallback done;
    {
      std::lock_guard lock(mu_);
      done = TakePending(id);
    }
    if (done) done(std::move(result));
  }

  void Expire(uint64_t id) {
    ResponseCallback done;
    Status status;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      const std::string what = protocol::FrameTypeName(static_cast<uint8_t>(it->second.type));
      const std::string after = std::to_string(it->second.timeout.count()) + " ms";
      if (it->second.written) {
        status = DeadlineExceededError(what + ": no answer from msgsdk-broker of native cluster '" +
                                       options_.cluster + "' at " + EndpointName(endpoint_index_) +
                                       " within " + after);
      } else {
        // Never written: take it off the queue, so it is not sent after being reported failed.
        for (auto q = queued_.begin(); q != queued_.end(); ++q) {
          if (q->id == id) {
            queued_.erase(q);
            break;
          }
        }
        status =
            UnavailableError(what + ": no connection to msgsdk-broker of native cluster '" +
                             options_.cluster + "' within " + after +
                             (last_error_.empty() ? "" : " (last error: " + last_error_ + ")"));
      }
      done = TakePending(id);
    }
    done(std::move(status));
  }

  // Fails the requests whose timeout has passed (one timer serves them all; see
  // EarliestDeadlineTimer).
  void ExpireDue() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<uint64_t> due;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, pending] : pending_) {
        if (pending.deadline <= now) due.push_back(id);
      }
    }
    // In request order, the order in which their deadlines passed when timeouts are equal.
    std::sort(due.begin(), due.end());
    for (uint64_t id : due) {
      Expire(id);
      if (closing_) return;  // a callback closed the client
    }
    auto earliest = std::chrono::steady_clock::time_point::max();
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, pending] : pending_) earliest = std::min(earliest, pending.deadline);
      // Under the lock: a request registered from now on sees whether it must set the timer
      // earlier.
      timer_at_ = earliest;
    }
    if (earliest != std::chrono::steady_clock::time_point::max()) {
      expiry_timer_.Include(earliest);
    }
  }

  // Fails the pending requests: those written to the connection, or all.
  void FailAll(const Status& status, bool only_written) {
    std::vector<ResponseCallback> failed;
    {
      std::lock_guard lock(mu_);
      std::vector<uint64_t> ids;
      for (const auto& [id, pending] : pending_) {
        if (!only_written || pending.written) ids.push_back(id);
      }
      std::sort(ids.begin(), ids.end());
      for (uint64_t id : ids) failed.push_back(TakePending(id));
      if (!only_written) queued_.clear();
    }
    for (ResponseCallback& done : failed) done(status);
  }

  void Connect() {
    state_ = State::kConnecting;
    const uint64_t epoch = ++epoch_;
    const auto& [host, port] = endpoints_[endpoint_index_];
    resolver_.async_resolve(
        host, std::to_string(port), tcp::resolver::numeric_service,
        [this, epoch](const boost::system::error_code& error,
                      const tcp::resolver::results_type& results) {
          if (epoch != epoch_ || closing_) return;
          if (error) {
            ConnectFailed("cannot resolve: " + error.message());
            return;
          }
          socket_ = tcp::socket(io_);
          connect_timer_.expires_after(options_.connect_timeout);
          connect_timer_.async_wait([this, epoch](const boost::system::error_code& e) {
            if (!e && epoch == epoch_ && state_ == State::kConnecting) {
              timed_out_ = true;
              CloseSocket();
            }
          });
          timed_out_ = false;
          asio::async_connect(
              socket_, results,
              [this, epoch](const boost::system::error_code& e, const tcp::endpoint&) {
                if (epoch != epoch_ || closing_) return;
                connect_timer_.cancel();
                if (e) {
                  ConnectFailed(timed_out_
                                    ? "connect timed out after " +
                                          std::to_string(options_.connect_timeout.count()) + " ms"
                                    : e.message());
                  return;
                }
                Connected();
              });
        });
  }

  void Connected() {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (!last_error_.empty()) {
      std::fprintf(stderr, "msgsdk native: cluster '%s' connected to msgsdk-broker at %s\n",
                   options_.cluster.c_str(), EndpointName(endpoint_index_).c_str());
    }
    state_ = State::kConnected;
    last_error_.clear();
    backoff_ = options_.reconnect_backoff_min;
    decoder_.Reset();
    {
      std::lock_guard lock(mu_);
      connected_fd_ = socket_.native_handle();
    }
    Read();
    Flush();
  }

  void ConnectFailed(const std::string& reason) {
    last_error_ = EndpointName(endpoint_index_) + ": " + reason;
    endpoint_index_ = (endpoint_index_ + 1) % endpoints_.size();
    ScheduleReconnect();
  }

  void ScheduleReconnect() {
    state_ = State::kBackoff;
    backoff_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, options_.reconnect_backoff_max);
    backoff_timer_.async_wait([this](const boost::system::error_code& error) {
      if (error || closing_) return;
      state_ = State::kIdle;
      bool work;
      {
        std::lock_guard lock(mu_);
        work = !queued_.empty();
      }
      // Reconnect only for work: an idle cluster holds no connection attempts.
      if (work) Connect();
    });
  }

  void Disconnect(const std::string& reason) {
    // Before the pending requests fail, so that their callers see the new count.
    disconnects_.fetch_add(1, std::memory_order_acq_rel);
    ++epoch_;
    CloseSocket();
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      // Their starts went out on the connection just lost; their requests fail below.
      std::erase_if(queued_, [](const Queued& q) { return q.rest; });
    }
    writing_frames_.clear();
    last_error_ = EndpointName(endpoint_index_) + ": " + reason;
    std::fprintf(stderr, "msgsdk native: cluster '%s': connection to msgsdk-broker lost (%s)\n",
                 options_.cluster.c_str(), last_error_.c_str());
    // Requests the broker may have received: their outcome is unknown. The others wait for
    // the next connection.
    FailAll(UnavailableError("native cluster '" + options_.cluster +
                             "': connection to msgsdk-broker at " + last_error_ +
                             " lost before the answer arrived (the request may have been "
                             "carried out)"),
            /*only_written=*/true);
    ScheduleReconnect();
  }

  void CloseSocket() {
    {
      // Before the descriptor is closed (and its number perhaps reused): no sender writes to it.
      std::lock_guard lock(mu_);
      connected_fd_ = -1;
    }
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // Gives the decoder the body handed back by RecycleResponseBody, if it can take it now
  // (before the next frame's header is decoded: then that frame is received into it).
  void OfferSpareBody() {
    if (!has_spare_body_.load(std::memory_order_acquire) || !decoder_.CanRecycle()) return;
    std::string body;
    {
      std::lock_guard lock(spare_mutex_);
      body = std::move(spare_body_);
      spare_body_ = std::string();
      has_spare_body_.store(false, std::memory_order_relaxed);
    }
    decoder_.Recycle(std::move(body));
  }

  void Read() {
    const uint64_t epoch = epoch_;
    OfferSpareBody();
    const std::span<char> space = decoder_.ReadSpace();
    socket_.async_read_some(asio::buffer(space.data(), space.size()),
                            [this, epoch](const boost::system::error_code& error, size_t bytes) {
                              if (epoch != epoch_ || closing_) return;
                              if (error) {
                                Disconnect(error == asio::error::eof
                                               ? "the broker closed the connection"
                                               : "read failed: " + error.message());
                                return;
                              }
                              decoder_.Commit(bytes);
                              while (true) {
                                OfferSpareBody();
                                auto frame = decoder_.Next();
                                if (!frame.ok()) {
                                  Disconnect("protocol error: " + frame.status().message());
                                  return;
                                }
                                if (!frame->has_value()) break;
                                const uint64_t id = (*frame)->header.request_id;
                                Complete(id, std::move(**frame));
                                if (epoch != epoch_ || closing_)
                                  return;  // a callback closed the client
                              }
                              Read();
                            });
  }

  // Writes every queued frame with one gather write (the frames are not copied together).
  void Flush() {
    if (state_ != State::kConnected) return;
    {
      std::lock_guard lock(mu_);
      // A write under way owns writing_frames_ until it ends (then it flushes again).
      if (writing_ || queued_.empty()) return;
      writing_ = true;
      writing_frames_.clear();
      for (Queued& q : queued_) {
        writing_frames_.push_back(std::move(q.bytes));
        auto it = pending_.find(q.id);
        if (it != pending_.end()) it->second.written = true;
      }
      queued_.clear();
    }
    writing_buffers_.clear();
    for (const std::string& frame : writing_frames_)
      writing_buffers_.push_back(asio::buffer(frame));
    const uint64_t epoch = epoch_;
    asio::async_write(socket_, writing_buffers_,
                      [this, epoch](const boost::system::error_code& error, size_t) {
                        if (epoch != epoch_ || closing_) return;
                        {
                          std::lock_guard lock(mu_);
                          writing_ = false;
                        }
                        if (error) {
                          Disconnect("write failed: " + error.message());
                          return;
                        }
                        KeepSpareFrames();
                        Flush();
                      });
  }

  // The frames just written become spares (TakeSpareFrame), as many as are kept.
  void KeepSpareFrames() {
    for (std::string& frame : writing_frames_) KeepSpareFrame(std::move(frame));
    writing_frames_.clear();
  }

  const BrokerClientOptions options_;
  const std::vector<std::pair<std::string, uint16_t>> endpoints_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> disconnects_{0};
  // Shared by the senders (Submit) and the I/O thread: the requests, the write queue, and
  // whether the socket may be written to from a sender's thread.
  std::mutex mu_;
  bool closed_ = false;
  std::unordered_map<uint64_t, Pending> pending_;
  std::deque<Queued> queued_;  // not yet handed to the socket
  bool writing_ = false;       // the I/O thread is writing
  bool kick_posted_ = false;   // a Kick is on its way to the I/O thread
  int connected_fd_ = -1;      // the socket's descriptor while connected
  // The earliest deadline the expiry timer is set for, or is about to be (max: not set).
  std::chrono::steady_clock::time_point timer_at_ = std::chrono::steady_clock::time_point::max();

  // I/O thread only.
  bool closing_ = false;
  State state_ = State::kIdle;
  tcp::socket socket_;
  tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer backoff_timer_;
  // Fires at the earliest deadline of the pending requests.
  protocol::EarliestDeadlineTimer expiry_timer_;
  bool timed_out_ = false;
  size_t endpoint_index_ = 0;
  std::chrono::milliseconds backoff_;
  std::string last_error_;
  uint64_t epoch_ = 0;  // bumped per connection: handlers of an older socket do nothing
  // The frames being written, and the buffers pointing into them.
  std::vector<std::string> writing_frames_;
  std::vector<asio::const_buffer> writing_buffers_;
  // Written frames kept for TakeSpareFrame.
  std::mutex spare_mutex_;
  std::vector<std::string> spare_frames_;  // guarded by spare_mutex_
  // A response body handed back (RecycleResponseBody) for the decoder.
  std::string spare_body_;  // guarded by spare_mutex_
  std::atomic<bool> has_spare_body_{false};
  protocol::FrameDecoder decoder_;
};

Result<std::shared_ptr<BrokerClient>> BrokerClient::Create(BrokerClientOptions options) {
  if (options.endpoints.empty()) {
    return InvalidArgumentError("native cluster '" + options.cluster + "': no endpoints");
  }
  std::vector<std::pair<std::string, uint16_t>> endpoints;
  for (const std::string& endpoint : options.endpoints) {
    std::string host;
    uint16_t port = 0;
    MSGSDK_RETURN_IF_ERROR(protocol::ParseHostPort(endpoint, &host, &port)
                               .WithContext("native cluster '" + options.cluster + "': endpoints"));
    if (port == 0) {
      return InvalidArgumentError("native cluster '" + options.cluster + "': endpoint '" +
                                  endpoint + "' has port 0");
    }
    endpoints.emplace_back(std::move(host), port);
  }
  auto impl = std::make_shared<Impl>(std::move(options), std::move(endpoints));
  impl->Start(impl);
  return std::shared_ptr<BrokerClient>(new BrokerClient(std::move(impl)));
}

BrokerClient::BrokerClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

BrokerClient::~BrokerClient() { impl_->Close(); }

void BrokerClient::Call(protocol::FrameType type, const google::protobuf::MessageLite& request,
                        std::chrono::milliseconds timeout, ResponseCallback done) {
  impl_->Call(type, request, timeout, std::move(done));
}

void BrokerClient::CallWithFrame(protocol::FrameType type, std::string frame,
                                 std::chrono::milliseconds timeout, ResponseCallback done) {
  impl_->CallWithFrame(type, std::move(frame), timeout, std::move(done));
}

std::string BrokerClient::TakeSpareFrame() { return impl_->TakeSpareFrame(); }

void BrokerClient::RecycleResponseBody(std::string&& body) {
  impl_->RecycleResponseBody(std::move(body));
}

uint64_t BrokerClient::Disconnects() const { return impl_->disconnects(); }

void BrokerClient::Close() { impl_->Close(); }

ResponseCallback PendingCall::Completer(const std::shared_ptr<PendingCall>& call) {
  return [call](Result<protocol::Frame> result) {
    std::lock_guard lock(call->mutex_);
    call->result_ = std::move(result);
    call->done_.notify_all();
  };
}

std::optional<Result<protocol::Frame>> PendingCall::Wait() {
  std::unique_lock lock(mutex_);
  done_.wait(lock, [this] { return result_.has_value() || abandoned_; });
  if (!result_) return std::nullopt;
  return std::move(result_);
}

void PendingCall::Abandon() {
  std::lock_guard lock(mutex_);
  abandoned_ = true;
  done_.notify_all();
}

}  // namespace msgsdk::native::client
