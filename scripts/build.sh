#!/usr/bin/env bash
# Configures and builds msgsdk (Release, Ninja when installed; ccache is picked up by the
# CMake files when installed).
#
# Usage: scripts/build.sh [build-dir] [extra cmake arguments...]
#   build-dir   default: build (relative paths are taken from the repository root)
#               cmake arguments (starting with -) may come without it
#   MSGSDK_JOBS parallel compile jobs (default: number of cores)
# Example: scripts/build.sh build-debug -DCMAKE_BUILD_TYPE=Debug -DMSGSDK_BUILD_BENCH=OFF
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_dir="build"
if (($# > 0)) && [[ "$1" != -* ]]; then
  build_dir="$1"
  shift
fi
if [[ "${build_dir}" != /* ]]; then
  build_dir="${MSGSDK_ROOT}/${build_dir}"
fi

for tool in cmake c++; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    msgsdk_error "${tool} not found: run scripts/install-deps.sh first"
    exit 1
  fi
done

configure=(cmake -S "${MSGSDK_ROOT}" -B "${build_dir}")
# Release unless the caller chose a build type.
if [[ " $* " != *" -DCMAKE_BUILD_TYPE"[=:]* ]]; then
  configure+=(-DCMAKE_BUILD_TYPE=Release)
fi
# The generator of an existing build tree cannot change; pass one only for a new tree.
if [[ ! -f "${build_dir}/CMakeCache.txt" ]]; then
  if command -v ninja >/dev/null 2>&1; then
    configure+=(-G Ninja)
  else
    msgsdk_log "build: ninja not found, using Unix Makefiles"
  fi
fi
if command -v ccache >/dev/null 2>&1; then
  msgsdk_log "build: compiling through ccache ($(ccache --version | head -n 1))"
fi

configure+=("$@")
msgsdk_log "build:$(printf ' %q' "${configure[@]}")"
"${configure[@]}"

jobs="$(msgsdk_jobs)"
msgsdk_log "build: cmake --build ${build_dir} -j ${jobs}"
cmake --build "${build_dir}" -j "${jobs}"
