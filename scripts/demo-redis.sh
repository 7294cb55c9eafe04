#!/usr/bin/env bash
# The demo over Redis Streams, by switching the environment only: builds msgsdk and the demo
# like scripts/demo.sh, starts a private redis-server on a free loopback port with a scratch
# directory, writes a routing table whose environment `redis-demo` puts every topic on that
# server, and runs the unchanged demo with MSGSDK_CONFIG and MSGSDK_ENV. The server and its
# directory are removed on exit, also on failure or Ctrl-C. Arguments are passed to the demo.
#
# Usage: scripts/demo-redis.sh [demo arguments...]
#   MSGSDK_BUILD_DIR  build tree (default: build in the repository root)
#   MSGSDK_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

msgsdk_build_demo

msgsdk_section "redis-server"
msgsdk_scratch msgsdk-demo-redis

# A loopback port that was free a moment ago; another process may take it before
# redis-server binds it, so the start is retried with a new port.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) until the server answers PING; fails early when it exited.
wait_ready() {
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if ! kill -0 "${server_pid}" 2>/dev/null; then
      return 1
    fi
    if [[ "$(redis-cli -h 127.0.0.1 -p "${port}" ping 2>/dev/null)" == "PONG" ]]; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

port=""
for _ in 1 2 3 4 5; do
  port="$(free_port)"
  # A demo server: no persistence, its data lives only as long as this script.
  redis-server --port "${port}" --bind 127.0.0.1 --protected-mode no --dir "${scratch}" \
    --daemonize no --logfile "${scratch}/redis.log" --save "" --appendonly no &
  server_pid=$!
  if wait_ready; then
    break
  fi
  kill -KILL "${server_pid}" 2>/dev/null || true
  wait "${server_pid}" 2>/dev/null || true
  server_pid=""
done
if [[ -z "${server_pid}" ]]; then
  msgsdk_error "redis-server did not start; its log:"
  tail -n 20 "${scratch}/redis.log" >&2 || true
  exit 1
fi
msgsdk_log "redis-server: $(redis-server --version | cut -d' ' -f3) on 127.0.0.1:${port}" \
  "(pid ${server_pid}, data in ${scratch})"

config="${scratch}/routing.yaml"
cat >"${config}" <<YAML
# Every topic of the demo on the private redis-server started by scripts/demo-redis.sh.
environments:
  redis-demo:
    clusters:
      redis-local:
        backend: redis
        endpoint: "127.0.0.1:${port}"
    default_cluster: redis-local
default_environment: redis-demo
YAML

msgsdk_section "demo (MSGSDK_ENV=redis-demo)"
msgsdk_log "demo: MSGSDK_CONFIG=${config} MSGSDK_ENV=redis-demo ${demo}${*:+$(printf ' %q' "$@")}"
status=0
MSGSDK_CONFIG="${config}" MSGSDK_ENV=redis-demo "${demo}" "$@" || status=$?
exit "${status}"
