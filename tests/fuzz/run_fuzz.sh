#!/bin/sh
# Fuzz the HDF5 readers (issue 15): make valid seed files with BIN in a temporary directory,
# then run tests/fuzz/fuzz_readers.py against BIN (best an ASan/UBSan build:
#   cmake -S . -B build-asan -DRNNTRAIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug).
#
#   tests/fuzz/run_fuzz.sh BIN [CASES (300)] [SECONDS (240)]
#
# Environment: FUZZ_SEED (default 1), FUZZ_JOBS (cases at once, default 1), FUZZ_WORK (work
# directory to use and keep; default a temporary one, removed when no case failed).
# Exit status: the script's (0 no failure, 1 failures, kept in WORK/failures/NNN), 2 on a setup
# problem, 77 (skipped) when /usr/bin/python3 cannot import h5py and numpy.
set -eu

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: $0 BIN [CASES] [SECONDS]" >&2
    exit 2
fi
case "$1" in /*) bin=$1 ;; *) bin=$(pwd)/$1 ;; esac
cases=${2:-300}
seconds=${3:-240}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=/usr/bin/python3

if ! [ -x "$py" ] || ! "$py" -c 'import h5py, numpy' 2>/dev/null; then
    echo "run_fuzz: skipped: $py cannot import h5py and numpy" >&2
    exit 77
fi
if ! [ -x "$bin" ]; then
    echo "run_fuzz: $bin is not an executable" >&2
    exit 2
fi
command -v timeout >/dev/null || { echo "run_fuzz: needs timeout (coreutils)" >&2; exit 2; }

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
export OPENBLAS_NUM_THREADS=1

if [ -n "${FUZZ_WORK:-}" ]; then
    work=$FUZZ_WORK
    keep=1
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/rnntrain-fuzz.XXXXXX")
    keep=0
fi
seeds=$work/seeds
rm -rf "$seeds"
mkdir -p "$seeds"

# The seeds: small valid files of every kind the readers take.
(
    cd "$seeds"
    head -c 20000 "$repo/datasets/moby-dick.txt" >moby.txt
    head -n 200 "$repo/datasets/digits.csv" >digits.csv
    for w in cat dog bird fish horse mouse sheep goat cow pig duck hen frog toad wolf bear \
             lion deer seal moth; do
        printf '%s\t%s\n' "$w" "$(echo "$w" | sed 's/./& /g; s/ $//')"
    done >pairs.tsv
    tr="--hidden 8 --batch 4 --bptt 8 --steps 2 --ckpt-every 2"
    "$bin" prepare --input moby.txt --output lm.h5
    "$bin" prepare --csv digits.csv --task classify --steps 8 --features 8 --output seq.h5
    "$bin" prepare --pairs pairs.tsv --source chars --target symbols --output s2s.h5
    for t in lm seq s2s; do
        # shellcheck disable=SC2086
        "$bin" train --data $t.h5 --out run-$t $tr
        cp run-$t/model.h5 $t-model.h5
        cp run-$t/checkpoints/ckpt-0000000002.h5 $t-ckpt.h5
    done
) >"$work/seeds.log" 2>&1 || {
    echo "run_fuzz: making the seed files failed (log: $work/seeds.log):" >&2
    tail -n 20 "$work/seeds.log" >&2
    exit 2
}

status=0
"$py" "$here/fuzz_readers.py" --bin "$bin" --work "$work" --seeds "$seeds" --cases "$cases" \
    --seconds "$seconds" --seed "${FUZZ_SEED:-1}" --jobs "${FUZZ_JOBS:-1}" || status=$?

if [ "$status" -eq 0 ] && [ "$keep" -eq 0 ]; then
    rm -rf "$work"
else
    echo "run_fuzz: work directory kept: $work"
fi
exit "$status"
