#include "core/client_options.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace msgsdk::core {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace

std::string RequestedEnvironment(const ClientOptions& options) {
  return options.environment.empty() ? EnvOr("MSGSDK_ENV", "") : options.environment;
}

std::string ConfigPathOf(const ClientOptions& options) {
  return options.config_path.empty() ? EnvOr("MSGSDK_CONFIG", "") : options.config_path;
}

std::string ClientIdOf(const ClientOptions& options) {
  if (!options.client_id.empty()) return options.client_id;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

std::string DataDirOf(const ClientOptions& options) {
  return options.data_dir.empty() ? EnvOr("MSGSDK_DATA_DIR", "./msgsdk-data") : options.data_dir;
}

std::string RoutingServiceOf(const ClientOptions& options) {
  return options.routing_service.empty() ? EnvOr("MSGSDK_ROUTING_SERVICE", "")
                                         : options.routing_service;
}

std::string RoutingCachePathOf(const ClientOptions& options) {
  std::string dir = options.routing_cache_dir.empty() ? EnvOr("MSGSDK_ROUTING_CACHE", "")
                                                      : options.routing_cache_dir;
  if (dir.empty()) dir = (std::filesystem::path(DataDirOf(options)) / "routing-cache").string();
  return (std::filesystem::path(dir) / "snapshot.yaml").string();
}

}  // namespace msgsdk::core
