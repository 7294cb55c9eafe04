#include "core/routing/routing_watcher.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <condition_variable>
#include <mutex>
#include <utility>

namespace msgsdk::core {

struct RoutingFileWatcher::State {
  struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    int64_t modified_ns = 0;
    bool exists = false;
    friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
  };

  FileIdentity Identify() const;
  void Run();
  void Check();

  std::string path;
  std::shared_ptr<const BackendRegistry> registry;
  std::chrono::milliseconds interval{};
  OfferText offer;
  Rejected rejected;
  Tick tick;

  // The watcher's thread only.
  FileIdentity identity;
  std::string text;          // the text last offered or refused
  std::string read_failure;  // the last failure to read the file, reported once

  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
};

RoutingFileWatcher::RoutingFileWatcher(std::string path, std::string loaded_text,
                                       std::shared_ptr<const BackendRegistry> registry,
                                       std::chrono::milliseconds interval, Offer offer,
                                       Rejected rejected, Tick tick)
    : RoutingFileWatcher(
          std::move(path), std::move(loaded_text), std::move(registry), interval,
          OfferText([offer = std::move(offer)](std::shared_ptr<const RoutingTable> table,
                                               const std::string& /*text*/) {
            return offer(std::move(table));
          }),
          std::move(rejected), std::move(tick)) {}

RoutingFileWatcher::RoutingFileWatcher(std::string path, std::string loaded_text,
                                       std::shared_ptr<const BackendRegistry> registry,
                                       std::chrono::milliseconds interval, OfferText offer,
                                       Rejected rejected, Tick tick)
    : state_(std::make_shared<State>()) {
  state_->path = std::move(path);
  state_->registry = std::move(registry);
  state_->interval = interval;
  state_->offer = std::move(offer);
  state_->rejected = std::move(rejected);
  state_->tick = std::move(tick);
  state_->text = std::move(loaded_text);
  state_->identity = state_->Identify();
  thread_ = std::thread([state = state_] { state->Run(); });
}

RoutingFileWatcher::~RoutingFileWatcher() { Stop(); }

void RoutingFileWatcher::Stop() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // it sees `stopping` once the callback that called this returns
  } else {
    thread_.join();
  }
}

RoutingFileWatcher::State::FileIdentity RoutingFileWatcher::State::Identify() const {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return {};
  return {.device = info.st_dev,
          .inode = info.st_ino,
          .size = info.st_size,
          .modified_ns =
              static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec,
          .exists = true};
}

void RoutingFileWatcher::State::Run() {
  pthread_setname_np(pthread_self(), "msgsdk-routing");
  std::unique_lock lock(mutex);
  while (!wake.wait_for(lock, interval, [this] { return stopping; })) {
    lock.unlock();
    Check();
    lock.lock();
    if (stopping) break;
    lock.unlock();
    tick();
    lock.lock();
  }
}

void RoutingFileWatcher::State::Check() {
  const FileIdentity now = Identify();
  // Every write changes the identity (modification times have nanoseconds), so an unchanged
  // identity is an unchanged file and the common case costs one stat.
  if (now == identity && read_failure.empty()) return;
  identity = now;
  Result<std::string> read = RoutingTable::ReadFile(path);
  if (!read.ok()) {
    // A file being replaced can be missing for a moment: keep the running version and say so
    // once, not at every poll.
    if (read.status().message() != read_failure) {
      read_failure = read.status().message();
      rejected(read.status());
    }
    return;
  }
  read_failure.clear();
  if (*read == text) return;
  text = std::move(read).value();
  Result<std::shared_ptr<const RoutingTable>> table = RoutingTable::Parse(text, path, *registry);
  Status status = table.ok() ? offer(std::move(table).value(), text) : table.status();
  if (!status.ok()) rejected(status);
}

}  // namespace msgsdk::core
