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

msgsdk_build_demo

msgsdk_section "demo"
msgsdk_log "demo: ${demo}$(printf ' %q' "$@")"
exec "${demo}" "$@"
