#!/usr/bin/env bash
# Checks the C++ sources against .clang-format and .clang-tidy.
#
# Usage: scripts/lint.sh [--fix] [--format-only] [build-dir]
#   --fix          rewrite files with clang-format instead of reporting (clang-tidy only reports)
#   --format-only  skip clang-tidy (which needs a configured build tree and takes minutes)
#   build-dir      tree whose compile_commands.json clang-tidy uses (default: build; it is
#                  configured with scripts/build.sh first if it has none)
#   MSGSDK_JOBS    parallel clang-tidy processes (default: number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

fix=0
tidy=1
build_dir="build"
for arg in "$@"; do
  case "${arg}" in
    --fix) fix=1 ;;
    --format-only) tidy=0 ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      msgsdk_error "unknown option ${arg} (see --help)"
      exit 2
      ;;
    *) build_dir="${arg}" ;;
  esac
done
if [[ "${build_dir}" != /* ]]; then
  build_dir="${MSGSDK_ROOT}/${build_dir}"
fi

bash "${MSGSDK_ROOT}/scripts/install-deps.sh" clang-format clang-tidy

cd "${MSGSDK_ROOT}"
# Our C++ sources: tracked and new files, never build trees or ignored files.
source_dirs=(include src tests examples bench tools sidecar)
existing_dirs=()
for dir in "${source_dirs[@]}"; do
  [[ -d "${dir}" ]] && existing_dirs+=("${dir}")
done
mapfile -t files < <(
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "${existing_dirs[@]}"
  else
    find "${existing_dirs[@]}" -type f
  fi | grep -E '\.(h|hpp|cc|cpp)$' | grep -vE '\.pb\.(h|cc)$' | sort -u
)
if ((${#files[@]} == 0)); then
  msgsdk_error "no C++ sources found under ${existing_dirs[*]}"
  exit 1
fi

status=0

msgsdk_section "clang-format (${#files[@]} files)"
if ((fix)); then
  clang-format -i "${files[@]}"
  msgsdk_log "clang-format: formatted ${#files[@]} files"
else
  unformatted=()
  for file in "${files[@]}"; do
    if ! clang-format --dry-run --Werror "${file}" >/dev/null 2>&1; then
      unformatted+=("${file}")
    fi
  done
  if ((${#unformatted[@]} > 0)); then
    printf '  %s\n' "${unformatted[@]}"
    msgsdk_log "clang-format: ${#unformatted[@]} files need formatting (scripts/lint.sh --fix)"
    status=1
  else
    msgsdk_log "clang-format: all files formatted"
  fi
fi

if ((tidy)); then
  msgsdk_section "clang-tidy"
  if [[ ! -f "${build_dir}/compile_commands.json" ]]; then
    bash "${MSGSDK_ROOT}/scripts/build.sh" "${build_dir}"
  fi
  # Headers are checked through the sources that include them (HeaderFilterRegex).
  mapfile -t sources < <(printf '%s\n' "${files[@]}" | grep -E '\.(cc|cpp)$' |
    sed "s|^|${MSGSDK_ROOT}/|")
  # Only sources the build tree compiles have compile commands.
  mapfile -t sources < <(printf '%s\n' "${sources[@]}" |
    grep -xFf <(sed -n -E 's/^[[:space:]]*"file": "(.*)",?$/\1/p' \
      "${build_dir}/compile_commands.json") || true)
  if ((${#sources[@]} == 0)); then
    msgsdk_log "clang-tidy: no compiled sources in ${build_dir}/compile_commands.json"
  else
    log="${build_dir}/clang-tidy.log"
    # run-clang-tidy always asks for colours; the log is for reading and grepping.
    run-clang-tidy -quiet -p "${build_dir}" -j "$(msgsdk_jobs)" \
      -extra-arg=-Wno-unknown-warning-option "${sources[@]}" 2>&1 |
      sed -E 's/\x1b\[[0-9;]*m//g' >"${log}" || true
    # Its exit status does not reflect warnings; the diagnostics do. A header's diagnostics
    # repeat for every source that includes it: report each once.
    mapfile -t diagnostics < <(grep -E ': (warning|error): ' "${log}" | sort -u)
    if ((${#diagnostics[@]} > 0)); then
      printf '%s\n' "${diagnostics[@]}"
      msgsdk_log "clang-tidy: ${#diagnostics[@]} diagnostics (with context: ${log})"
      status=1
    else
      msgsdk_log "clang-tidy: ${#sources[@]} sources clean"
    fi
  fi
fi

exit "${status}"
