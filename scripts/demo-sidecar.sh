#!/usr/bin/env bash
# The demo through msgsdk-sidecar, by configuration only: builds msgsdk, the demo and the
# sidecar like scripts/demo.sh, then runs examples/demo/through_sidecar.sh, which starts
# msgsdk-sidecar on a Unix socket in a scratch directory (serving the built-in embedded
# cluster there) and runs the unchanged demo with MSGSDK_SIDECAR pointing at it. Arguments are
# passed to the demo.
#
# Usage: scripts/demo-sidecar.sh [demo arguments...]
#   MSGSDK_BUILD_DIR  build tree (default: build in the repository root)
#   MSGSDK_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

msgsdk_build_demo
sidecar_bin="${build_dir}/sidecar/msgsdk-sidecar"
if [[ ! -x "${sidecar_bin}" ]]; then
  msgsdk_error "the build did not produce ${sidecar_bin} (configured with MSGSDK_WITH_SIDECAR=OFF?)"
  exit 1
fi
exec bash "${MSGSDK_ROOT}/examples/demo/through_sidecar.sh" "${sidecar_bin}" "${demo}" "$@"
