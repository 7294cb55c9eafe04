#pragma once

// A program the tests start and stop themselves (the sidecar, a broker): spawned with its
// standard output on a pipe, so a test can read the line it prints when it is ready; stopped
// with SIGTERM and, past a deadline, SIGKILL; always reaped.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "msgsdk/result.h"

extern char** environ;

namespace msgsdk::testing {

class ChildProcess {
 public:
  // Starts `argv[0]` (a path) with `argv`; `env` entries ("NAME=value") are added to this
  // process's environment, replacing a variable of the same name. Standard input is
  // `stdin_path`, or /dev/null when it is empty. Standard error is appended to `stderr_path`,
  // or inherited when it is empty (the log then lands in the test's output).
  static Result<ChildProcess> Start(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env = {},
                                    const std::string& stderr_path = "",
                                    const std::string& stdin_path = "") {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
      return InternalError(std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(
        &actions, STDIN_FILENO, stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    if (!stderr_path.empty()) {
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644);
    }
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> environment;
    auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& added) {
        return name_of(added) == name_of(entry);
      });
      if (!replaced) environment.emplace_back(entry);
    }
    environment.insert(environment.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int error = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (error != 0) {
      ::close(out[0]);
      return InternalError("cannot start " + argv[0] + ": " + std::strerror(error));
    }
    return ChildProcess(pid, out[0], argv[0]);
  }

  ChildProcess(ChildProcess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        stdout_(std::exchange(other.stdout_, -1)),
        name_(std::move(other.name_)),
        buffered_(std::move(other.buffered_)) {}
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess() {
    Stop(std::chrono::seconds(20)).IgnoreError();
    if (stdout_ >= 0) ::close(stdout_);
  }

  pid_t pid() const { return pid_; }
  bool running() { return pid_ > 0 && !Reap(/*block=*/false); }

  // The next line of its standard output (without the newline), waiting up to `timeout`.
  Result<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const size_t newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return DeadlineExceededError(name_ + " printed no line within " +
                                     std::to_string(timeout.count()) + " ms");
      }
      pollfd fd{.fd = stdout_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR)
        return InternalError(std::string("poll: ") + std::strerror(errno));
      if (ready <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(stdout_, chunk, sizeof(chunk));
      if (n == 0) return UnavailableError(name_ + " closed its output (it exited)");
      if (n > 0) buffered_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Everything it writes to standard output from here until it closes it (normally: until it
  // exits), waiting up to `timeout` (kDeadlineExceeded, with what was read so far).
  Result<std::string> ReadToEnd(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string text = std::exchange(buffered_, {});
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return DeadlineExceededError(name_ + " did not close its output within " +
                                     std::to_string(timeout.count()) + " ms; it printed:\n" + text);
      }
      pollfd fd{.fd = stdout_, .events = POLLIN, .revents = 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno != EINTR)
        return InternalError(std::string("poll: ") + std::strerror(errno));
      if (ready <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(stdout_, chunk, sizeof(chunk));
      if (n == 0) return text;
      if (n > 0) text.append(chunk, static_cast<size_t>(n));
    }
  }

  // Waits up to `timeout` for it to exit on its own and returns its exit status
  // (kDeadlineExceeded if it is still running; kInternal if a signal ended it).
  Result<int> Wait(std::chrono::milliseconds timeout) {
    if (pid_ > 0) {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (!Reap(/*block=*/false)) {
        if (std::chrono::steady_clock::now() >= deadline) {
          return DeadlineExceededError(name_ + " did not exit within " +
                                       std::to_string(timeout.count()) + " ms");
        }
        ::usleep(1000);  // no notification for a child's exit short of SIGCHLD handling
      }
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    return InternalError(name_ + " ended by signal " + std::to_string(WTERMSIG(status_)));
  }

  // SIGTERM, then SIGKILL if it has not exited within `grace` (kDeadlineExceeded). Otherwise
  // how it ended: OK for a zero exit status.
  Status Stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return OkStatus();
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Reap(/*block=*/false)) return ExitStatus();
      ::usleep(2000);  // no notification for a child's exit short of SIGCHLD handling
    }
    Kill();
    return DeadlineExceededError(name_ + " did not exit within " + std::to_string(grace.count()) +
                                 " ms of SIGTERM and was killed");
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }

 private:
  ChildProcess(pid_t pid, int out, std::string name)
      : pid_(pid), stdout_(out), name_(std::move(name)) {}

  bool Reap(bool block) {
    int status = 0;
    pid_t done;
    do {
      done = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    } while (done < 0 && errno == EINTR);
    if (done == pid_ || (done < 0 && errno == ECHILD)) {
      pid_ = -1;
      status_ = status;
      return true;
    }
    return false;
  }

  Status ExitStatus() const {
    if (WIFEXITED(status_) && WEXITSTATUS(status_) == 0) return OkStatus();
    if (WIFEXITED(status_)) {
      return InternalError(name_ + " exited with status " + std::to_string(WEXITSTATUS(status_)));
    }
    return InternalError(name_ + " ended by signal " + std::to_string(WTERMSIG(status_)));
  }

  pid_t pid_ = -1;
  int stdout_ = -1;
  std::string name_;
  std::string buffered_;
  int status_ = 0;
};

}  // namespace msgsdk::testing
