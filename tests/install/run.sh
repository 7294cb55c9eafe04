#!/usr/bin/env bash
# Install test: installs msgsdk from a built tree into a temporary prefix, builds the
# stand-alone examples/quickstart project against it with find_package(msgsdk), then runs
# its producer and consumer on a fresh data directory and checks that the consumer received
# every message the producer sent.
#
# Usage: tests/install/run.sh [build-dir]   (default: build in the repository root; the tree
#                                           must be configured and built)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build_dir="${1:-build}"
if [[ "${build_dir}" != /* ]]; then
  build_dir="${root}/${build_dir}"
fi
message_count=10

log() {
  printf 'install test: %s\n' "$*"
}

fail() {
  printf 'install test: FAILED: %s\n' "$*" >&2
  exit 1
}

[[ -f "${build_dir}/CMakeCache.txt" ]] || fail "${build_dir} is not a configured build tree"

# Reads one variable from the build tree's CMake cache (empty if unset).
cache_value() {
  sed -n -E "s/^$1:[A-Z]+=(.*)$/\1/p" "${build_dir}/CMakeCache.txt" | head -n 1
}

work="$(mktemp -d -t msgsdk-install-test.XXXXXX)"
trap 'rm -rf "${work}"' EXIT
prefix="${work}/prefix"

log "installing ${build_dir} into a temporary prefix"
cmake --install "${build_dir}" --prefix "${prefix}" >"${work}/install.log" 2>&1 ||
  { cat "${work}/install.log" >&2; fail "cmake --install ${build_dir}"; }
[[ -f "${prefix}/include/msgsdk/msgsdk.h" ]] || fail "the install has no include/msgsdk/msgsdk.h"
config="$(find "${prefix}" -name msgsdkConfig.cmake -print -quit)"
[[ -n "${config}" ]] || fail "the install has no msgsdkConfig.cmake"
log "installed $(find "${prefix}" -type f | wc -l) files (package config: ${config#"${prefix}"/})"

# Build the application with the compiler (and sanitizer runtime) msgsdk was built with.
configure=(cmake -S "${root}/examples/quickstart" -B "${work}/quickstart"
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}")
if command -v ninja >/dev/null 2>&1; then
  configure+=(-G Ninja)
fi
compiler="$(cache_value CMAKE_CXX_COMPILER)"
if [[ -n "${compiler}" ]]; then
  configure+=("-DCMAKE_CXX_COMPILER=${compiler}")
fi
if [[ "$(cache_value MSGSDK_SANITIZE)" =~ ^(ON|TRUE|1|YES)$ ]]; then
  configure+=("-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer")
fi

log "configuring examples/quickstart against the install"
"${configure[@]}" >"${work}/configure.log" 2>&1 ||
  { cat "${work}/configure.log" >&2; fail "configuring examples/quickstart"; }
log "building examples/quickstart"
cmake --build "${work}/quickstart" >"${work}/build.log" 2>&1 ||
  { cat "${work}/build.log" >&2; fail "building examples/quickstart"; }

# A clean environment for the SDK: no routing table, so the built-in embedded cluster is used,
# with its data in a fresh directory. Each binary bounds its own run; the outer timeout only
# guards against a hang on close.
run_quickstart() {
  local name="$1"
  local rc=0
  (cd "${work}" &&
    env -u MSGSDK_CONFIG -u MSGSDK_ENV MSGSDK_DATA_DIR="${work}/data" \
      timeout 60 "${work}/quickstart/${name}") >"${work}/${name}.log" 2>&1 || rc=$?
  sed "s/^/  ${name}| /" "${work}/${name}.log"
  if ((rc == 124)); then
    fail "${name} did not finish within 60 s"
  elif ((rc != 0)); then
    fail "${name} exited with status ${rc}"
  fi
}

log "running quickstart-producer"
run_quickstart quickstart-producer
log "running quickstart-consumer"
run_quickstart quickstart-consumer

for ((i = 0; i < message_count; ++i)); do
  grep -qF "body=\"quickstart message ${i}\"" "${work}/quickstart-consumer.log" ||
    fail "the consumer did not print message ${i} (\"quickstart message ${i}\")"
done
log "PASSED: the consumer received all ${message_count} messages"
