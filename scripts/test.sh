#!/usr/bin/env bash
# Every test, on a fresh Debian 12 machine or a developer's: installs the dependencies,
# builds Release (tests, benchmarks and examples on) and runs the whole CTest suite, runs the
# install test (find_package(msgsdk) from a tiny outside project), then builds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit and conformance tests again,
# then builds the libFuzzer targets with clang and runs each for a short while.
# Prints a summary of every phase with its duration; exits non-zero if anything failed.
#
# Usage: scripts/test.sh
#   MSGSDK_BUILD_DIR       Release build tree (default: build)
#   MSGSDK_ASAN_BUILD_DIR  sanitizer build tree (default: build-asan)
#   MSGSDK_JOBS            parallel compile jobs (default: number of cores)
#   MSGSDK_TEST_JOBS       tests run in parallel by ctest (default: 2)
#   MSGSDK_TEST_TIMEOUT    per-test timeout in seconds (default: 300)
#   MSGSDK_SKIP_ASAN=1     skip the sanitizer build and its tests (local quick runs only)
#   MSGSDK_FUZZ_BUILD_DIR  libFuzzer build tree (default: build-fuzz)
#   MSGSDK_FUZZ_SECONDS    how long each fuzz target runs (default: 30)
#   MSGSDK_SKIP_FUZZ=1     skip the fuzz build and runs (local quick runs only)
set -uo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

absolute() {
  if [[ "$1" == /* ]]; then printf '%s' "$1"; else printf '%s/%s' "${MSGSDK_ROOT}" "$1"; fi
}

build_dir="$(absolute "${MSGSDK_BUILD_DIR:-build}")"
asan_dir="$(absolute "${MSGSDK_ASAN_BUILD_DIR:-build-asan}")"
fuzz_dir="$(absolute "${MSGSDK_FUZZ_BUILD_DIR:-build-fuzz}")"
fuzz_seconds="${MSGSDK_FUZZ_SECONDS:-30}"
test_jobs="${MSGSDK_TEST_JOBS:-2}"
test_timeout="${MSGSDK_TEST_TIMEOUT:-300}"

# ---- Phase bookkeeping ----------------------------------------------------------------------

phase_names=()
phase_results=()
phase_seconds=()
failed_phases=0
tests_passed=0
tests_failed=0
tests_skipped=0
run_start=${SECONDS}

# run_phase <name> <command...>: runs one phase, records its outcome and duration.
run_phase() {
  local name="$1"
  shift
  msgsdk_section "[$((${#phase_names[@]} + 1))] ${name}"
  local start=${SECONDS}
  local rc=0
  "$@" || rc=$?
  local elapsed=$((SECONDS - start))
  local result="PASS"
  if ((rc != 0)); then
    result="FAIL (exit ${rc})"
    failed_phases=$((failed_phases + 1))
  fi
  phase_names+=("${name}")
  phase_results+=("${result}")
  phase_seconds+=("${elapsed}")
  msgsdk_log "---- ${name}: ${result} in $(msgsdk_duration "${elapsed}")"
  return "${rc}"
}

# skip_phase <name> <reason>: records a phase that could not run.
skip_phase() {
  msgsdk_section "[$((${#phase_names[@]} + 1))] $1"
  msgsdk_log "---- $1: SKIPPED ($2)"
  phase_names+=("$1")
  phase_results+=("SKIPPED: $2")
  phase_seconds+=(0)
}

print_summary() {
  local total=$((SECONDS - run_start))
  msgsdk_section "summary"
  local i
  for i in "${!phase_names[@]}"; do
    printf '  %-40s %8s  %s\n' "${phase_names[i]}" "$(msgsdk_duration "${phase_seconds[i]}")" \
      "${phase_results[i]}"
  done
  printf '  %-40s %8s\n' "total" "$(msgsdk_duration "${total}")"
  if ((failed_phases == 0)); then
    msgsdk_log "test.sh: all ${#phase_names[@]} phases passed"
  else
    msgsdk_log "test.sh: ${failed_phases} of ${#phase_names[@]} phases FAILED"
  fi
  local line="tests: ${tests_passed} passed, ${tests_failed} failed"
  if ((tests_skipped > 0)); then
    line+=", ${tests_skipped} skipped"
  fi
  msgsdk_log "${line}"
}

# ---- Phases ----------------------------------------------------------------------------------

print_environment() {
  msgsdk_log "repository: ${MSGSDK_ROOT}"
  msgsdk_log "system:     $(. /etc/os-release 2>/dev/null && printf '%s' "${PRETTY_NAME:-unknown}")," \
    "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  msgsdk_log "parallel:   ${MSGSDK_JOBS:-$(nproc)} compile jobs, ${test_jobs} test jobs," \
    "${test_timeout} s per-test timeout"
}

print_tools() {
  local tool
  for tool in c++ cmake ninja ccache; do
    if command -v "${tool}" >/dev/null 2>&1; then
      msgsdk_log "${tool}: $("${tool}" --version 2>&1 | head -n 1)"
    fi
  done
}

# Adds the counts from ctest's closing lines in <log> to the totals.
count_tests() {
  local log="$1"
  local summary
  summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "${log}" | tail -n 1)"
  [[ -n "${summary}" ]] || return 0
  local failed total skipped
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"${summary}")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"${summary}")"
  skipped="$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)[[:space:]]*$' "${log}" || true)"
  tests_failed=$((tests_failed + failed))
  tests_skipped=$((tests_skipped + skipped))
  tests_passed=$((tests_passed + total - failed - skipped))
}

# run_ctest <build-dir> [ctest arguments...]: runs ctest, keeping its output in the build tree.
run_ctest() {
  local dir="$1"
  shift
  local log="${dir}/ctest-output.log"
  local rc=0
  ctest --test-dir "${dir}" --output-on-failure --no-tests=error -j "${test_jobs}" \
    --timeout "${test_timeout}" "$@" 2>&1 | tee "${log}" || rc=$?
  count_tests "${log}"
  return "${rc}"
}

# True when the install test is already registered with CTest (label "install"), in which
# case the tests phase has run it.
install_test_in_ctest() {
  ctest --test-dir "${build_dir}" -N -L '^install$' 2>/dev/null | grep -qE 'Total Tests: [1-9]'
}

run_install_test() {
  bash "${MSGSDK_ROOT}/tests/install/run.sh" "${build_dir}"
}

run_asan_tests() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "${asan_dir}" -L 'unit|conformance'
}

# The libFuzzer targets need only the protocol and what it links: no tests, tools' extras,
# backends or gRPC.
build_fuzz() {
  local configure=(cmake -S "${MSGSDK_ROOT}" -B "${fuzz_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    -DCMAKE_CXX_COMPILER=clang++ -DMSGSDK_FUZZ=ON -DMSGSDK_BUILD_TESTS=OFF
    -DMSGSDK_BUILD_BENCH=OFF -DMSGSDK_BUILD_EXAMPLES=OFF -DMSGSDK_WITH_SIDECAR=OFF
    -DMSGSDK_WITH_KAFKA=OFF -DMSGSDK_WITH_REDIS=OFF)
  if [[ ! -f "${fuzz_dir}/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
    configure+=(-G Ninja)
  fi
  "${configure[@]}" && cmake --build "${fuzz_dir}" -j "$(msgsdk_jobs)" --target frame_decoder_fuzzer
}

run_fuzz() {
  local corpus="${fuzz_dir}/corpus/frame_decoder"
  mkdir -p "${corpus}"
  "${fuzz_dir}/tests/fuzz/frame_decoder_fuzzer" -max_total_time="${fuzz_seconds}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "${corpus}"
}

# ---- Main ------------------------------------------------------------------------------------

msgsdk_section "msgsdk test run"
print_environment

if ! run_phase "dependencies" bash "${MSGSDK_ROOT}/scripts/install-deps.sh"; then
  print_summary
  exit 1
fi
print_tools

if run_phase "build: release" bash "${MSGSDK_ROOT}/scripts/build.sh" "${build_dir}" \
  -DMSGSDK_BUILD_TESTS=ON -DMSGSDK_BUILD_BENCH=ON -DMSGSDK_BUILD_EXAMPLES=ON; then
  release_built=1
  run_phase "tests: release" run_ctest "${build_dir}"
  if install_test_in_ctest; then
    skip_phase "install test" "registered with CTest, ran with the release tests"
  else
    run_phase "install test" run_install_test
  fi
else
  release_built=0
  skip_phase "tests: release" "the release build failed"
  skip_phase "install test" "the release build failed"
fi

# The sanitizer build: -O1 -g1 keeps it quick to compile with symbolized reports, and leaves
# assertions on.
asan_configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"
  -DMSGSDK_SANITIZE=ON -DMSGSDK_BUILD_TESTS=ON -DMSGSDK_BUILD_BENCH=OFF
  -DMSGSDK_BUILD_EXAMPLES=OFF)
if [[ "${MSGSDK_SKIP_ASAN:-0}" == 1 ]]; then
  skip_phase "build: asan+ubsan" "MSGSDK_SKIP_ASAN=1"
  skip_phase "tests: asan+ubsan (unit, conformance)" "MSGSDK_SKIP_ASAN=1"
elif ((release_built == 0)); then
  # The same sources would fail the same way; spare the time.
  skip_phase "build: asan+ubsan" "the release build failed"
  skip_phase "tests: asan+ubsan (unit, conformance)" "the release build failed"
elif run_phase "build: asan+ubsan" bash "${MSGSDK_ROOT}/scripts/build.sh" "${asan_dir}" \
  "${asan_configure[@]}"; then
  run_phase "tests: asan+ubsan (unit, conformance)" run_asan_tests
else
  skip_phase "tests: asan+ubsan (unit, conformance)" "the sanitizer build failed"
fi

if [[ "${MSGSDK_SKIP_FUZZ:-0}" == 1 ]]; then
  skip_phase "build: fuzz (clang, libFuzzer)" "MSGSDK_SKIP_FUZZ=1"
  skip_phase "fuzz: frame decoder" "MSGSDK_SKIP_FUZZ=1"
elif run_phase "build: fuzz (clang, libFuzzer)" build_fuzz; then
  run_phase "fuzz: frame decoder (${fuzz_seconds}s)" run_fuzz
else
  skip_phase "fuzz: frame decoder" "the fuzz build failed"
fi

print_summary
((failed_phases == 0))
