#pragma once

// The backends this build knows, by name. A registry is an object, not a global: a client
// gets the default one (every backend compiled in), tests may build their own.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace msgsdk::core {

// Thread-safety: fill it with Register before sharing it; the const methods may then be called
// concurrently (a client holds it as std::shared_ptr<const BackendRegistry>).
class BackendRegistry {
 public:
  // kAlreadyExists if a factory of that name is registered; kInvalidArgument for a null
  // factory, an empty name, or a property table ValidatePropertyTable rejects.
  Status Register(std::unique_ptr<BackendFactory> factory);
  // kNotFound listing the registered names on a miss.
  Result<BackendFactory*> Find(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, std::unique_ptr<BackendFactory>> factories_;
};

}  // namespace msgsdk::core
