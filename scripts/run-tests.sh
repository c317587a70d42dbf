#!/usr/bin/env bash
# Set up and run every test of rnntrain.
#
# Usage: bash scripts/run-tests.sh        (from any directory)
#   1. scripts/install-deps.sh (apt-get; skipped when everything is installed)
#   2. build dir $BUILD_DIR (default build): configure with -DRNNTRAIN_WERROR=ON,
#      build with -j$(nproc), run ctest --output-on-failure
#   3. build dir $ASAN_BUILD_DIR (default build-asan): the same with AddressSanitizer and
#      UndefinedBehaviorSanitizer (-DRNNTRAIN_SANITIZE=ON, Debug), run ctest again
# Relative build dirs are taken relative to the repository root. Both stages always run;
# the exit status is non-zero if any configure, build or test failed.
# Environment: BUILD_DIR, ASAN_BUILD_DIR, SKIP_ASAN=1 (plain stage only), SKIP_DEPS=1.
# The environment is passed to the tests as it is (OPENBLAS_* included); the test suite
# sets the MPI variables it needs itself.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd -- "$repo"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
JOBS=$(nproc 2>/dev/null || echo 2)

log() { echo "run-tests: $*"; }
header() { echo; echo "==================== $* ===================="; }

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  header "dependencies"
  bash scripts/install-deps.sh --tests || { echo "run-tests: ERROR: installing dependencies failed" >&2; exit 1; }
fi

logdir=$(mktemp -d "${TMPDIR:-/tmp}/rnntrain-tests.XXXXXX")
trap 'rm -rf -- "$logdir"' EXIT

failures=()
total_pass=0
total_fail=0
start=$SECONDS

# stage NAME DIR CMAKE_ARGS...: configure, build, ctest; record failures, never exit.
stage() {
  local name=$1 dir=$2; shift 2
  local t0=$SECONDS
  header "$name: configure ($dir)"
  if ! cmake -S . -B "$dir" -DBUILD_TESTING=ON "$@"; then
    failures+=("$name: configure"); return
  fi
  header "$name: build (-j$JOBS)"
  if ! cmake --build "$dir" -j"$JOBS"; then
    failures+=("$name: build"); return
  fi
  header "$name: ctest"
  local out="$logdir/$name.ctest" rc=0
  (cd -- "$dir" && ctest --output-on-failure) 2>&1 | tee "$out" || rc=$?
  # ctest's summary: "NN% tests passed, F tests failed out of T"
  local summary passed failed total
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1 || true)
  if [ -n "$summary" ]; then
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$summary")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$summary")
    passed=$((total - failed))
    total_pass=$((total_pass + passed)); total_fail=$((total_fail + failed))
  fi
  if [ "$rc" -ne 0 ]; then
    failures+=("$name: ctest (exit $rc)")
  elif [ -z "$summary" ]; then
    failures+=("$name: ctest ran no test")
  fi
  log "$name finished in $((SECONDS - t0)) s"
}

stage plain "$BUILD_DIR" -DRNNTRAIN_WERROR=ON

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  # Open MPI leaks by design: leak detection would fail every MPI test.
  export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  stage asan "$ASAN_BUILD_DIR" -DRNNTRAIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DRNNTRAIN_WERROR=ON
fi

header "summary"
if [ "${#failures[@]}" -gt 0 ]; then
  for f in "${failures[@]}"; do echo "run-tests: FAILED: $f" >&2; done
fi
log "finished in $((SECONDS - start)) s"
echo "tests: $total_pass passed, $total_fail failed"
[ "${#failures[@]}" -eq 0 ]
