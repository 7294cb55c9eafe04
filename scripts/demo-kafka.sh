#!/usr/bin/env bash
# The demo over Kafka, by switching the environment only: builds msgsdk, the demo and
# msgsdk-kafka-mock like scripts/demo.sh, starts librdkafka's mock Kafka cluster (the real
# Kafka protocol on loopback) as its own process, writes a routing table whose environment
# `kafka-demo` puts every topic on it, and runs the unchanged demo with MSGSDK_CONFIG and
# MSGSDK_ENV. The cluster and the scratch directory are removed on exit, also on failure or
# Ctrl-C. Arguments are passed to the demo. Against a real Kafka, only the routing table's
# `bootstrap` changes.
#
# Usage: scripts/demo-kafka.sh [demo arguments...]
#   MSGSDK_BUILD_DIR  build tree (default: build in the repository root)
#   MSGSDK_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

msgsdk_build_demo

mock="${build_dir}/tools/kafka_mock/msgsdk-kafka-mock"
if [[ ! -x "${mock}" ]]; then
  msgsdk_error "the build did not produce ${mock}"
  exit 1
fi

msgsdk_section "kafka mock cluster"
msgsdk_scratch msgsdk-demo-kafka

# Three brokers; the demo's topic is created with 8 partitions (the mock has no CreateTopics).
"${mock}" --ignore-stdin --brokers 3 --partitions 8 order-events >"${scratch}/bootstrap" \
  2>"${scratch}/mock.log" &
server_pid=$!
msgsdk_await_server msgsdk-kafka-mock "${scratch}/mock.log" 10 test -s "${scratch}/bootstrap"
bootstrap="$(head -n 1 "${scratch}/bootstrap")"
msgsdk_log "kafka mock cluster: ${bootstrap} (pid ${server_pid})"

config="${scratch}/routing.yaml"
cat >"${config}" <<YAML
# Every topic of the demo on the mock Kafka cluster started by scripts/demo-kafka.sh.
environments:
  kafka-demo:
    clusters:
      kafka-local:
        backend: kafka
        bootstrap: "${bootstrap}"
        session_timeout_ms: 6000
        heartbeat_interval_ms: 1500
    default_cluster: kafka-local
default_environment: kafka-demo
YAML

msgsdk_section "demo (MSGSDK_ENV=kafka-demo)"
msgsdk_log "demo: MSGSDK_CONFIG=${config} MSGSDK_ENV=kafka-demo ${demo}${*:+$(printf ' %q' "$@")}"
status=0
MSGSDK_CONFIG="${config}" MSGSDK_ENV=kafka-demo "${demo}" "$@" || status=$?
exit "${status}"
