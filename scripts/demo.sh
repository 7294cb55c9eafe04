#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs the dependencies, builds msgsdk and
# the demo (tests and benchmarks off, to be quick), then runs the demo. Arguments are passed
# to the demo unchanged.
#
# Usage: scripts/demo.sh [demo arguments...]
#   MSGSDK_BUILD_DIR  build tree (default: build in the repository root)
#   MSGSDK_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir="${MSGSDK_BUILD_DIR:-${MSGSDK_ROOT}/build}"
if [[ "${build_dir}" != /* ]]; then
  build_dir="${MSGSDK_ROOT}/${build_dir}"
fi

msgsdk_section "dependencies"
bash "${MSGSDK_ROOT}/scripts/install-deps.sh"

msgsdk_section "build (${build_dir})"
start=${SECONDS}
bash "${MSGSDK_ROOT}/scripts/build.sh" "${build_dir}" \
  -DMSGSDK_BUILD_EXAMPLES=ON -DMSGSDK_BUILD_TESTS=OFF -DMSGSDK_BUILD_BENCH=OFF
msgsdk_log "build: done in $(msgsdk_duration $((SECONDS - start)))"

demo="${build_dir}/examples/demo/msgsdk-demo"
if [[ ! -x "${demo}" ]]; then
  msgsdk_error "the build did not produce ${demo}"
  exit 1
fi

msgsdk_section "demo"
msgsdk_log "demo: ${demo}$(printf ' %q' "$@")"
exec "${demo}" "$@"
