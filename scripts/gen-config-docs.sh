#!/usr/bin/env bash
# Regenerates the property reference in docs/configuration.md (the part between
# "<!-- BEGIN GENERATED PROPERTIES -->" and "<!-- END GENERATED PROPERTIES -->") from the
# property tables in the code. The CTest test config_reference_is_current fails until this has
# been run after a table changed.
#
# Usage: scripts/gen-config-docs.sh [build-dir]
#   build-dir   an existing or new build tree (default: build; relative paths are taken from
#               the repository root). Only the generator and what it links are built.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir="${1:-build}"
if [[ "${build_dir}" != /* ]]; then
  build_dir="${MSGSDK_ROOT}/${build_dir}"
fi

if [[ ! -f "${build_dir}/CMakeCache.txt" ]]; then
  configure=(cmake -S "${MSGSDK_ROOT}" -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release)
  if command -v ninja >/dev/null 2>&1; then
    configure+=(-G Ninja)
  fi
  msgsdk_log "gen-config-docs:$(printf ' %q' "${configure[@]}")"
  "${configure[@]}"
fi

msgsdk_log "gen-config-docs: building msgsdk-config-reference in ${build_dir}"
cmake --build "${build_dir}" --target msgsdk-config-reference -j "$(msgsdk_jobs)"

generator="$(find "${build_dir}" -type f -name msgsdk-config-reference -perm -u+x | head -n 1)"
if [[ -z "${generator}" ]]; then
  msgsdk_error "msgsdk-config-reference was not found in ${build_dir}"
  exit 1
fi
"${generator}" --update "${MSGSDK_ROOT}/docs/configuration.md"
