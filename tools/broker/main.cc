// msgsdk-broker: the native broker as a daemon that many processes reach over TCP.
//
//   msgsdk-broker --data-dir DIR [--listen HOST:PORT] [--flush-mode group_commit|periodic]
//                 [--flush-interval-ms N] [--max-message-bytes N] [--queues N]
//                 [--segment-bytes N] [--log-cache-bytes N] [--retention-ms N] [--retention-bytes
//                 N]
//                 [--retention-check-interval-ms N] [--log-level LEVEL] [--config FILE.yaml]
//
// Once listening it prints one line on standard output, "msgsdk-broker listening on
// HOST:PORT" (with the real port when --listen asked for port 0), and logs to standard error.
// SIGTERM or SIGINT: stops accepting, answers in-flight requests, flushes and exits 0.
// Exit status 1: the broker could not start (the reason is on standard error); 2: bad flags.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "backends/native/server/broker_server.h"

namespace {

using msgsdk::native::DescribeRetention;
using msgsdk::native::FlushMode;
using msgsdk::native::RetentionReport;
using msgsdk::native::server::BrokerServer;
using msgsdk::native::server::ServerOptions;

struct Settings {
  std::string listen = "127.0.0.1:9876";
  std::string data_dir;
  std::string flush_mode = "group_commit";
  int64_t flush_interval_ms = 200;
  int64_t max_message_bytes = 4 << 20;
  int64_t queues = 8;
  int64_t segment_bytes = int64_t{1} << 30;
  // Four times the store's (embedded) default: a daemon's consumers may lag its producers by
  // a second of writing (1 GiB at 1 KiB messages from 64 producers) and still read from
  // memory; with 256 MiB they fell to the disk and consumed 30% less.
  int64_t log_cache_bytes = int64_t{1} << 30;
  int64_t retention_ms = 0;
  int64_t retention_bytes = 0;
  int64_t retention_check_interval_ms = 60000;
  int64_t shutdown_timeout_ms = 10000;
  std::string log_level = "info";
};

// The range of each integer setting: checked on the flag by CLI11 and, for a value from the
// config file, after the file is applied.
struct IntRange {
  const char* key;
  const char* flag;
  int64_t Settings::*value;
  int64_t min;
  int64_t max;
};

constexpr int64_t kMaxRetentionMs = int64_t{100} * 365 * 24 * 3600 * 1000;  // about 100 years
constexpr int64_t kMaxRetentionBytes = int64_t{1} << 50;                    // 1 PiB

const std::vector<IntRange>& IntRanges() {
  static const std::vector<IntRange> ranges = {
      {"flush_interval_ms", "--flush-interval-ms", &Settings::flush_interval_ms, 1, 60000},
      {"max_message_bytes", "--max-message-bytes", &Settings::max_message_bytes, 1,
       int64_t{256} << 20},
      {"queues", "--queues", &Settings::queues, 1, 1024},
      {"segment_bytes", "--segment-bytes", &Settings::segment_bytes, 4096, int64_t{64} << 30},
      {"log_cache_bytes", "--log-cache-bytes", &Settings::log_cache_bytes, 0, int64_t{1} << 50},
      {"retention_ms", "--retention-ms", &Settings::retention_ms, 0, kMaxRetentionMs},
      {"retention_bytes", "--retention-bytes", &Settings::retention_bytes, 0, kMaxRetentionBytes},
      {"retention_check_interval_ms", "--retention-check-interval-ms",
       &Settings::retention_check_interval_ms, 10, 86400000},
      {"shutdown_timeout_ms", "--shutdown-timeout-ms", &Settings::shutdown_timeout_ms, 0, 600000},
  };
  return ranges;
}

const IntRange& RangeOf(const char* key) {
  for (const IntRange& range : IntRanges()) {
    if (std::string_view(range.key) == key) return range;
  }
  std::abort();  // every integer setting has a range
}

CLI::Range RangeCheck(const char* key) {
  const IntRange& range = RangeOf(key);
  return CLI::Range(range.min, range.max);
}

// An integer setting outside its range (a config file value), or empty.
std::string CheckRanges(const Settings& settings) {
  for (const IntRange& range : IntRanges()) {
    const int64_t value = settings.*range.value;
    if (value < range.min || value > range.max) {
      return fmt::format("{} ({}) is {}, outside [{}, {}]", range.key, range.flag, value, range.min,
                         range.max);
    }
  }
  return "";
}

// Applies the YAML file's keys (the flags' names with underscores) to `settings`, except
// those given on the command line, which win. Returns an error message, or empty.
std::string ApplyConfigFile(const std::string& path, const CLI::App& app, Settings* settings) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return fmt::format("config file {}: {}", path, e.what());
  }
  if (root.IsNull()) return "";
  if (!root.IsMap()) return fmt::format("config file {}: expected a map of settings", path);
  struct Key {
    std::string flag;
    std::function<void(const YAML::Node&)> apply;
  };
  const std::map<std::string, Key> keys = {
      {"listen",
       {"--listen", [&](const YAML::Node& n) { settings->listen = n.as<std::string>(); }}},
      {"data_dir",
       {"--data-dir", [&](const YAML::Node& n) { settings->data_dir = n.as<std::string>(); }}},
      {"flush_mode",
       {"--flush-mode", [&](const YAML::Node& n) { settings->flush_mode = n.as<std::string>(); }}},
      {"flush_interval_ms",
       {"--flush-interval-ms",
        [&](const YAML::Node& n) { settings->flush_interval_ms = n.as<int64_t>(); }}},
      {"max_message_bytes",
       {"--max-message-bytes",
        [&](const YAML::Node& n) { settings->max_message_bytes = n.as<int64_t>(); }}},
      {"queues", {"--queues", [&](const YAML::Node& n) { settings->queues = n.as<int64_t>(); }}},
      {"segment_bytes",
       {"--segment-bytes",
        [&](const YAML::Node& n) { settings->segment_bytes = n.as<int64_t>(); }}},
      {"log_cache_bytes",
       {"--log-cache-bytes",
        [&](const YAML::Node& n) { settings->log_cache_bytes = n.as<int64_t>(); }}},
      {"retention_ms",
       {"--retention-ms", [&](const YAML::Node& n) { settings->retention_ms = n.as<int64_t>(); }}},
      {"retention_bytes",
       {"--retention-bytes",
        [&](const YAML::Node& n) { settings->retention_bytes = n.as<int64_t>(); }}},
      {"retention_check_interval_ms",
       {"--retention-check-interval-ms",
        [&](const YAML::Node& n) { settings->retention_check_interval_ms = n.as<int64_t>(); }}},
      {"shutdown_timeout_ms",
       {"--shutdown-timeout-ms",
        [&](const YAML::Node& n) { settings->shutdown_timeout_ms = n.as<int64_t>(); }}},
      {"log_level",
       {"--log-level", [&](const YAML::Node& n) { settings->log_level = n.as<std::string>(); }}},
  };
  for (const auto& entry : root) {
    const auto name = entry.first.as<std::string>();
    auto it = keys.find(name);
    if (it == keys.end()) {
      std::string known;
      for (const auto& [key, unused] : keys) {
        if (!known.empty()) known += ", ";
        known += key;
      }
      return fmt::format("config file {}:{}: unknown setting '{}' (known: {})", path,
                         entry.first.Mark().line + 1, name, known);
    }
    if (app.count(it->second.flag) > 0) continue;
    try {
      it->second.apply(entry.second);
    } catch (const YAML::Exception& e) {
      return fmt::format("config file {}:{}: {}: {}", path, entry.second.Mark().line + 1, name,
                         e.what());
    }
  }
  return "";
}

int Run(int argc, char** argv) {
  Settings settings;
  std::string config_file;
  CLI::App app{"msgsdk-broker: the native msgsdk broker as a network daemon"};
  app.add_option("--config", config_file,
                 "YAML file of settings (the flags' names with underscores: data_dir, ...); "
                 "flags given on the command line win");
  app.add_option("--listen", settings.listen, "Address to listen on, host:port (port 0: any)")
      ->capture_default_str();
  app.add_option("--data-dir", settings.data_dir,
                 "Directory of the commit log, indexes and offsets (created if missing)");
  app.add_option("--flush-mode", settings.flush_mode,
                 "group_commit: acknowledge a send after the fdatasync covering it; periodic: "
                 "after the write, fdatasync every --flush-interval-ms")
      ->check(CLI::IsMember({"group_commit", "periodic"}))
      ->capture_default_str();
  app.add_option("--flush-interval-ms", settings.flush_interval_ms,
                 "periodic mode: how often the commit log and the consumer-offsets journal are "
                 "fdatasync'ed")
      ->check(RangeCheck("flush_interval_ms"))
      ->capture_default_str();
  app.add_option("--max-message-bytes", settings.max_message_bytes,
                 "Largest record stored (body, key, tag and properties)")
      ->check(RangeCheck("max_message_bytes"))
      ->capture_default_str();
  app.add_option("--queues", settings.queues, "Queues of a topic created by its first use")
      ->check(RangeCheck("queues"))
      ->capture_default_str();
  app.add_option("--segment-bytes", settings.segment_bytes,
                 "Size at which a commit-log segment is sealed")
      ->check(RangeCheck("segment_bytes"))
      ->capture_default_str();
  app.add_option("--log-cache-bytes", settings.log_cache_bytes,
                 "How much of the commit log's tail stays in the page cache; older pages are "
                 "dropped as it grows, so that writes reuse the memory just freed (0: the "
                 "kernel decides)")
      ->check(RangeCheck("log_cache_bytes"))
      ->capture_default_str();
  app.add_option("--retention-ms", settings.retention_ms,
                 "Delete a sealed commit-log segment once its newest message was stored this "
                 "long ago (0: keep forever)")
      ->check(RangeCheck("retention_ms"))
      ->capture_default_str();
  app.add_option("--retention-bytes", settings.retention_bytes,
                 "Delete sealed commit-log segments, oldest first, while the log holds more "
                 "than this (0: unlimited)")
      ->check(RangeCheck("retention_bytes"))
      ->capture_default_str();
  app.add_option("--retention-check-interval-ms", settings.retention_check_interval_ms,
                 "How often retention is checked")
      ->check(RangeCheck("retention_check_interval_ms"))
      ->capture_default_str();
  app.add_option("--shutdown-timeout-ms", settings.shutdown_timeout_ms,
                 "On SIGTERM, how long in-flight requests may take before connections are cut")
      ->check(RangeCheck("shutdown_timeout_ms"))
      ->capture_default_str();
  app.add_option("--log-level", settings.log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!config_file.empty()) {
    const std::string error = ApplyConfigFile(config_file, app, &settings);
    if (!error.empty()) {
      std::fprintf(stderr, "msgsdk-broker: %s\n", error.c_str());
      return 2;
    }
  }
  if (const std::string error = CheckRanges(settings); !error.empty()) {
    std::fprintf(stderr, "msgsdk-broker: %s%s\n",
                 config_file.empty() ? "" : ("config file " + config_file + ": ").c_str(),
                 error.c_str());
    return 2;
  }
  if (settings.data_dir.empty()) {
    std::fprintf(stderr, "msgsdk-broker: --data-dir (or data_dir in --config) is required\n");
    return 2;
  }
  if (settings.flush_mode != "group_commit" && settings.flush_mode != "periodic") {
    std::fprintf(stderr, "msgsdk-broker: flush mode '%s' is not group_commit or periodic\n",
                 settings.flush_mode.c_str());
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("msgsdk-broker");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(settings.log_level));

  // Every thread started from here on inherits the mask: SIGTERM and SIGINT are taken only by
  // the sigwait below. SIGPIPE from a client that went away must not end the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServerOptions options;
  options.listen = settings.listen;
  options.broker.store.data_dir = settings.data_dir;
  options.broker.store.flush_mode =
      settings.flush_mode == "periodic" ? FlushMode::kPeriodic : FlushMode::kGroupCommit;
  options.broker.store.flush_interval = std::chrono::milliseconds(settings.flush_interval_ms);
  // The I/O thread writes a lone produce request itself (periodic mode only).
  options.broker.store.append_on_caller_when_idle = true;
  options.broker.store.offset_flush_interval = options.broker.store.flush_interval;
  options.broker.store.max_message_bytes = static_cast<uint32_t>(settings.max_message_bytes);
  options.broker.store.default_queues = static_cast<int32_t>(settings.queues);
  options.broker.store.segment_bytes = static_cast<uint64_t>(settings.segment_bytes);
  options.broker.store.log_cache_bytes = static_cast<uint64_t>(settings.log_cache_bytes);
  options.broker.store.retention.max_age = std::chrono::milliseconds(settings.retention_ms);
  options.broker.store.retention.max_bytes = static_cast<uint64_t>(settings.retention_bytes);
  options.broker.store.retention.check_interval =
      std::chrono::milliseconds(settings.retention_check_interval_ms);
  options.broker.store.on_retention = [](const msgsdk::Result<RetentionReport>& report) {
    if (report.ok()) {
      spdlog::info("{}", DescribeRetention(*report));
    } else {
      spdlog::error("retention: {}", report.status().ToString());
    }
  };
  // A produce frame holds at least one message of the largest size, plus its envelope.
  options.max_frame_bytes = std::max<uint32_t>(
      options.max_frame_bytes, static_cast<uint32_t>(settings.max_message_bytes) + (1u << 20));

  auto server = BrokerServer::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("serving {} (flush mode {}, {} queues per new topic) on {}", settings.data_dir,
               settings.flush_mode, settings.queues, (*server)->endpoint());
  if (settings.retention_ms > 0 || settings.retention_bytes > 0) {
    spdlog::info("retention: {} ms, {} bytes (0: unlimited), checked every {} ms",
                 settings.retention_ms, settings.retention_bytes,
                 settings.retention_check_interval_ms);
  }
  std::printf("msgsdk-broker listening on %s\n", (*server)->endpoint().c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&stop_signals, &received);
  spdlog::info("received {}", received == SIGTERM ? "SIGTERM" : "SIGINT");
  msgsdk::Status status =
      (*server)->Shutdown(std::chrono::milliseconds(settings.shutdown_timeout_ms));
  server->reset();
  return status.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    // Errors are reported as statuses; an exception here is a bug (or out of memory).
    std::fprintf(stderr, "msgsdk-broker: unexpected exception: %s\n", e.what());
    return 1;
  }
}
