#include "core/backend_registry.h"

#include <utility>

#include "core/routing/diagnostics.h"

namespace msgsdk::core {

Status BackendRegistry::Register(std::unique_ptr<BackendFactory> factory) {
  if (factory == nullptr) return InvalidArgumentError("cannot register a null backend factory");
  std::string name = factory->name();
  if (name.empty()) return InvalidArgumentError("cannot register a backend factory without a name");
  if (factories_.count(name) != 0) {
    return AlreadyExistsError("a backend named '" + name + "' is already registered");
  }
  // A broken table would otherwise surface as confusing errors in every routing table.
  MSGSDK_RETURN_IF_ERROR(
      ValidatePropertyTable(factory->properties()).WithContext("backend '" + name + "'"));
  factories_.emplace(std::move(name), std::move(factory));
  return OkStatus();
}

Result<BackendFactory*> BackendRegistry::Find(const std::string& name) const {
  auto it = factories_.find(name);
  if (it != factories_.end()) return it->second.get();
  const std::vector<std::string> names = Names();
  return NotFoundError("unknown backend '" + name + "'" + diagnostics::DidYouMean(name, names) +
                       " (registered backends: " + diagnostics::JoinNames(names) + ")");
}

std::vector<std::string> BackendRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(factories_.size());
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

}  // namespace msgsdk::core
