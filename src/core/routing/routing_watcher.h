#pragma once

// Watches a routing file and offers every new version of it to the engine: a change applies
// within a second, with no restart. A version that does not parse or validate never reaches
// the engine; the running version stays and the rejection is reported.
//
// The file is polled (stat every `interval`, and read only when its identity, size or
// modification time changed), not watched with inotify: polling sees every way a file is
// replaced (written in place, renamed over, a Kubernetes ConfigMap's symlink swap, a network
// file system) and costs one stat per interval.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/backend_registry.h"
#include "core/routing/routing_table.h"

namespace msgsdk::core {

class RoutingFileWatcher {
 public:
  // Called on the watcher's thread with each new valid version; returns why it was refused.
  using Offer = std::function<Status(std::shared_ptr<const RoutingTable>)>;
  // The same, with the file's text the version was parsed from (what a push service sends on).
  using OfferText = std::function<Status(std::shared_ptr<const RoutingTable>, const std::string&)>;
  // Called on the watcher's thread with a version that was refused (by parsing or by Offer).
  using Rejected = std::function<void(const Status&)>;
  // Called every interval, whether or not the file changed (the engine retries there what a
  // version could not do yet).
  using Tick = std::function<void()>;

  // `loaded_text` is the text of the version already running (no offer until it changes).
  RoutingFileWatcher(std::string path, std::string loaded_text,
                     std::shared_ptr<const BackendRegistry> registry,
                     std::chrono::milliseconds interval, Offer offer, Rejected rejected, Tick tick);
  RoutingFileWatcher(std::string path, std::string loaded_text,
                     std::shared_ptr<const BackendRegistry> registry,
                     std::chrono::milliseconds interval, OfferText offer, Rejected rejected,
                     Tick tick);
  ~RoutingFileWatcher();  // Stop()
  RoutingFileWatcher(const RoutingFileWatcher&) = delete;
  RoutingFileWatcher& operator=(const RoutingFileWatcher&) = delete;

  // Stops the thread: no callback starts after it returns, and none runs any more unless
  // Stop is called from a callback (the owner going away on the watcher's own thread), in
  // which case the thread ends when that callback returns. Idempotent.
  void Stop();

 private:
  // Everything the thread touches, kept alive by the thread itself: the watcher may be
  // destroyed from one of its own callbacks.
  struct State;

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace msgsdk::core
