#pragma once

// Plain librdkafka clients for tests: write a record with no SDK headers, read back exactly
// what is stored (no consumer group, so no group join delay).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace msgsdk::testing {

struct RawRecord {
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::string value;
  int64_t timestamp_ms = -1;
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the last header named `name`, or nullopt.
  std::optional<std::string> Header(const std::string& name) const {
    std::optional<std::string> found;
    for (const auto& [n, v] : headers) {
      if (n == name) found = v;
    }
    return found;
  }
};

// Produces one record (no headers unless given) and waits for its acknowledgement.
// Returns the error name, or "" on success.
inline std::string ProduceRaw(
    const std::string& bootstrap, const std::string& topic, const std::optional<std::string>& key,
    const std::string& value, int64_t timestamp_ms = 0,
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) return errstr;
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
  for (const auto& [name, v] : headers) {
    rd_kafka_header_add(hdrs, name.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
  }
  const void* key_data = key ? key->data() : nullptr;
  const size_t key_size = key ? key->size() : 0;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key_data, key_size),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(timestamp_ms),
      RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(hdrs);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = rd_kafka_flush(rk, 10000);
  rd_kafka_destroy(rk);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2name(err);
}

// Reads `partitions` of `topic` from the beginning until `count` records arrived or
// `timeout` passed.
inline std::vector<RawRecord> ReadRaw(
    const std::string& bootstrap, const std::string& topic, int partitions, size_t count,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", "msgsdk-raw-reader", errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  std::vector<RawRecord> records;
  if (rk == nullptr) return records;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (records.size() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      RawRecord r;
      r.partition = m->partition;
      r.offset = m->offset;
      if (m->key != nullptr) r.key = std::string(static_cast<const char*>(m->key), m->key_len);
      r.value.assign(static_cast<const char*>(m->payload), m->len);
      r.timestamp_ms = rd_kafka_message_timestamp(m, &r.timestamp_type);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* v;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &size) == 0; ++i) {
          r.headers.emplace_back(name, v ? std::string(static_cast<const char*>(v), size) : "");
        }
      }
      records.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return records;
}

// The offsets `group` has committed for partitions 0..partitions-1 of `topic` (-1: none),
// read from the group coordinator without joining the group.
inline std::vector<int64_t> CommittedOffsets(const std::string& bootstrap, const std::string& group,
                                             const std::string& topic, int partitions) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof(errstr));
  std::vector<int64_t> out(partitions, -1);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) return out;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  if (rd_kafka_committed(rk, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) out[list->elems[i].partition] = list->elems[i].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

}  // namespace msgsdk::testing
