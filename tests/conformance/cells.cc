// The cells of the conformance matrix in this build: backend x transport.

#include <memory>
#include <string>

#include "conformance/cluster_environment.h"
#include "testing/temp_dir.h"

namespace msgsdk::conformance {
namespace {

// The embedded native broker in a fresh data directory.
class NativeEmbedded : public ClusterEnvironment {
 public:
  std::string RoutingYaml() const override {
    return "environments:\n"
           "  conformance:\n"
           "    clusters:\n"
           "      main:\n"
           "        backend: native\n"
           "        data_dir: " + dir_.str() + "\n"
           "        flush_mode: group_commit\n"
           "        poll_wait_ms: 100\n"
           "    default_cluster: main\n" +
           std::string(kConformanceClientSettings);
  }

 private:
  testing::TempDir dir_{"msgsdk-conformance"};
};

}  // namespace

std::vector<Cell> AllCells() {
  return {
      {"native_inprocess", [] { return std::make_unique<NativeEmbedded>(); }},
  };
}

}  // namespace msgsdk::conformance
