# Shared helpers for the scripts in this folder. Source it; it does nothing on its own.
# shellcheck shell=bash

# The repository root, whatever directory the script was started from.
MSGSDK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MSGSDK_ROOT

# Every Debian package the build, the tests, the demo and the tools need. Kept in one place so
# the README, CI and developers install exactly the same set.
# shellcheck disable=SC2034  # used by the scripts that source this file
MSGSDK_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libyaml-cpp-dev libhiredis-dev librdkafka-dev libboost-dev libboost-system-dev
  libspdlog-dev libfmt-dev libcli11-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools kcat
  python3 python3-grpcio python3-protobuf
  clang
)

msgsdk_log() {
  printf '%s\n' "$*"
}

msgsdk_error() {
  printf 'error: %s\n' "$*" >&2
}

msgsdk_section() {
  printf '\n==== %s ====\n' "$*"
}

# msgsdk_scratch NAME: makes a scratch directory, `scratch`, removed on exit (also on failure
# or Ctrl-C) once the background server whose pid the caller puts in `server_pid` (if any) got
# SIGTERM and ended.
msgsdk_scratch() {
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/$1-XXXXXX")"
  server_pid=""
  trap msgsdk_scratch_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# shellcheck disable=SC2317  # runs from the EXIT trap
msgsdk_scratch_cleanup() {
  if [[ -n "${server_pid:-}" ]] && kill -0 "${server_pid}" 2>/dev/null; then
    kill -TERM "${server_pid}" 2>/dev/null || true
    wait "${server_pid}" 2>/dev/null || true
  fi
  rm -rf "${scratch}"
}

# msgsdk_await_server NAME LOG SECONDS COMMAND...: waits until COMMAND succeeds; exits with the
# last lines of LOG when the server started in the background (`server_pid`) has exited or
# SECONDS have passed.
msgsdk_await_server() {
  local name="$1" log="$2" deadline=$((SECONDS + $3))
  shift 3
  until "$@"; do
    if ! kill -0 "${server_pid}" 2>/dev/null || ((SECONDS >= deadline)); then
      msgsdk_error "${name} did not start; its log:"
      tail -n 20 "${log}" >&2 || true
      exit 1
    fi
    sleep 0.05
  done
}

# msgsdk_start_sidecar BINARY: starts msgsdk-sidecar in the background on a loopback port and a
# Unix socket in `scratch` (see msgsdk_scratch), serving the built-in embedded cluster in
# ${scratch}/data, and waits until it serves. Sets `socket` and `server_pid`.
msgsdk_start_sidecar() {
  socket="${scratch}/sidecar.sock"
  "$1" --listen 127.0.0.1:0 --unix "${socket}" --data-dir "${scratch}/data" \
    >"${scratch}/sidecar.out" 2>"${scratch}/sidecar.log" &
  server_pid=$!
  # It prints its address once it serves.
  msgsdk_await_server msgsdk-sidecar "${scratch}/sidecar.log" 30 \
    grep -qs "listening on" "${scratch}/sidecar.out"
}

# Formats a number of seconds as "42s" or "3m07s".
msgsdk_duration() {
  local seconds="$1"
  if ((seconds >= 60)); then
    printf '%dm%02ds' $((seconds / 60)) $((seconds % 60))
  else
    printf '%ds' "${seconds}"
  fi
}

# Parallel compile jobs: MSGSDK_JOBS, else one per core.
msgsdk_jobs() {
  if [[ -n "${MSGSDK_JOBS:-}" ]]; then
    printf '%s' "${MSGSDK_JOBS}"
  else
    nproc
  fi
}

# msgsdk_build_demo: the shared first half of the demo scripts. Installs the dependencies,
# builds msgsdk with the examples (tests and benchmarks off, to be quick) into
# $MSGSDK_BUILD_DIR (default: build), and sets `build_dir` and `demo` (the msgsdk-demo binary).
msgsdk_build_demo() {
  build_dir="${MSGSDK_BUILD_DIR:-${MSGSDK_ROOT}/build}"
  if [[ "${build_dir}" != /* ]]; then
    build_dir="${MSGSDK_ROOT}/${build_dir}"
  fi

  msgsdk_section "dependencies"
  bash "${MSGSDK_ROOT}/scripts/install-deps.sh"

  msgsdk_section "build (${build_dir})"
  local start=${SECONDS}
  bash "${MSGSDK_ROOT}/scripts/build.sh" "${build_dir}" \
    -DMSGSDK_BUILD_EXAMPLES=ON -DMSGSDK_BUILD_TESTS=OFF -DMSGSDK_BUILD_BENCH=OFF
  msgsdk_log "build: done in $(msgsdk_duration $((SECONDS - start)))"

  demo="${build_dir}/examples/demo/msgsdk-demo"
  if [[ ! -x "${demo}" ]]; then
    msgsdk_error "the build did not produce ${demo}"
    exit 1
  fi
}
