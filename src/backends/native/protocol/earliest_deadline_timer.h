#pragma once

// A timer kept set for the earliest of many deadlines (the timeouts of a connection's requests,
// the waits of a broker's parked fetches), instead of a timer for each: arming and cancelling
// one per deadline cost an allocation and, whenever the earliest deadline changed, a system
// call. A deadline met in time leaves the timer as it is; when it fires, its owner handles
// what is due and includes the earliest deadline left.
//
// Header-only, for the client and the server alike (both build with Boost.Asio).
// Thread-safety: the io_context's thread only.

#include <chrono>
#include <functional>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace msgsdk::native::protocol {

class EarliestDeadlineTimer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  EarliestDeadlineTimer(boost::asio::io_context& io, std::function<void()> on_fire)
      : timer_(io), on_fire_(std::move(on_fire)) {}

  // The timer fires no later than `deadline`.
  void Include(TimePoint deadline) {
    if (armed_ && at_ <= deadline) return;
    armed_ = true;
    at_ = deadline;
    // Setting the expiry cancels a wait already started; its handler sees operation_aborted.
    timer_.expires_at(deadline);
    timer_.async_wait([this](const boost::system::error_code& error) {
      if (error) return;
      armed_ = false;
      on_fire_();
    });
  }

  void Cancel() {
    timer_.cancel();
    armed_ = false;
  }

 private:
  boost::asio::steady_timer timer_;
  std::function<void()> on_fire_;
  bool armed_ = false;
  TimePoint at_;
};

}  // namespace msgsdk::native::protocol
