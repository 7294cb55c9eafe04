#!/usr/bin/env bash
# Runs the unchanged demo through msgsdk-sidecar, by configuration only: starts the sidecar on
# a Unix socket in a scratch directory (serving the built-in embedded cluster there), and runs
# the demo with MSGSDK_SIDECAR pointing at it. The sidecar drains and stops on exit, also on
# failure or Ctrl-C, and the scratch directory is removed. Exits with the demo's status.
# Used by scripts/demo-sidecar.sh (after building) and by the demo_through_sidecar test.
#
# Usage: examples/demo/through_sidecar.sh SIDECAR_BINARY DEMO_BINARY [demo arguments...]
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"

if (($# < 2)); then
  msgsdk_error "usage: $0 SIDECAR_BINARY DEMO_BINARY [demo arguments...]"
  exit 2
fi
sidecar_bin="$1"
demo="$2"
shift 2
for binary in "${sidecar_bin}" "${demo}"; do
  if [[ ! -x "${binary}" ]]; then
    msgsdk_error "${binary} is not an executable"
    exit 2
  fi
done

msgsdk_section "msgsdk-sidecar"
msgsdk_scratch msgsdk-demo-sidecar

msgsdk_start_sidecar "${sidecar_bin}"
msgsdk_log "msgsdk-sidecar: $(cat "${scratch}/sidecar.out") and unix:${socket}" \
  "(pid ${server_pid}, embedded cluster in ${scratch}/data)"

msgsdk_section "demo (through the sidecar)"
msgsdk_log "demo: MSGSDK_SIDECAR=unix:${socket} ${demo}$(printf ' %q' "$@")"
MSGSDK_SIDECAR="unix:${socket}" "${demo}" "$@"
