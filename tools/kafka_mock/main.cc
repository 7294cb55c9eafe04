// msgsdk-kafka-mock: librdkafka's mock Kafka cluster as a process, so that separate programs
// (kcat, the msgsdk CLI, the sidecar, the demo) can share one cluster on loopback.
//
//   msgsdk-kafka-mock [--brokers N] [--partitions P] [topic[:partitions]]...
//
// Prints the bootstrap list ("127.0.0.1:40123,...") on one line of standard output, then
// runs until SIGTERM or SIGINT, or until its standard input reaches end of file when that is
// a pipe, a socket or a terminal (so it ends with the process that started it).

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace {

struct TopicSpec {
  std::string name;
  int partitions = 0;
};

bool ParseTopic(const std::string& text, int default_partitions, TopicSpec* out) {
  const size_t colon = text.rfind(':');
  out->name = text.substr(0, colon);
  out->partitions = default_partitions;
  if (colon != std::string::npos) {
    const char* begin = text.data() + colon + 1;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(begin, end, out->partitions);
    if (ec != std::errc() || ptr != end || out->partitions < 1) return false;
  }
  return !out->name.empty();
}

// Watching stdin makes sense only when something holds its other end: a pipe, a socket or
// a terminal. /dev/null or a file would end the cluster at once.
bool StdinIsWatchable() {
  struct stat st;
  if (fstat(STDIN_FILENO, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO);
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  int default_partitions = 4;
  bool ignore_stdin = false;
  std::vector<std::string> topic_args;
  CLI::App app{"Runs librdkafka's mock Kafka cluster on loopback and prints its bootstrap list."};
  app.add_option("--brokers", brokers, "Number of brokers")->check(CLI::Range(1, 64));
  app.add_option("--partitions", default_partitions,
                 "Partitions of topics given without a count (auto-created topics get 4)")
      ->check(CLI::Range(1, 100000));
  app.add_flag("--ignore-stdin", ignore_stdin,
               "Run until a signal only, even when standard input is a pipe or a terminal");
  app.add_option("topics", topic_args, "Topics to create, as name or name:partitions");
  CLI11_PARSE(app, argc, argv);

  std::vector<TopicSpec> topics;
  for (const std::string& arg : topic_args) {
    TopicSpec spec;
    if (!ParseTopic(arg, default_partitions, &spec)) {
      std::fprintf(stderr,
                   "msgsdk-kafka-mock: invalid topic '%s' (expected name or "
                   "name:partitions with partitions >= 1)\n",
                   arg.c_str());
      return 2;
    }
    topics.push_back(spec);
  }

  // Every thread (librdkafka's included) inherits this mask; the main thread takes the
  // signals with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (owner == nullptr) {
    std::fprintf(stderr, "msgsdk-kafka-mock: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t* mock = rd_kafka_mock_cluster_new(owner, brokers);
  if (mock == nullptr) {
    std::fprintf(stderr, "msgsdk-kafka-mock: could not start the mock cluster\n");
    rd_kafka_destroy(owner);
    return 1;
  }
  for (const TopicSpec& topic : topics) {
    const rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(mock, topic.name.c_str(), topic.partitions, 1);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "msgsdk-kafka-mock: creating topic '%s': %s\n", topic.name.c_str(),
                   rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(mock);
      rd_kafka_destroy(owner);
      return 1;
    }
  }

  std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(mock));
  std::fflush(stdout);

  if (!ignore_stdin && StdinIsWatchable()) {
    std::thread([] {
      char buffer[256];
      while (read(STDIN_FILENO, buffer, sizeof(buffer)) > 0) {
      }
      kill(getpid(), SIGTERM);
    }).detach();
  }
  int received = 0;
  sigwait(&signals, &received);

  rd_kafka_mock_cluster_destroy(mock);
  rd_kafka_destroy(owner);
  return 0;
}
