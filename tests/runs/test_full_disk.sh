#!/usr/bin/env bash
# full_disk_ranks: the disk fills up during a checkpoint of a 2-rank run. The job must end
# within seconds with status 1 and a message naming the checkpoint and ENOSPC (no crash in
# HDF5's exit-time cleanup, no hang of the other rank), leave no temporary file behind, and
# keep every earlier checkpoint intact: `info` verifies them, and a run resumed from the
# newest (the directory copied to a disk with room) ends bitwise equal to an uninterrupted
# run. Twice: checkpoints of a small model (the disk fills between checkpoints) and of a
# larger one (one checkpoint fits, the disk fills in the middle of the second one's data).
#   tests/runs/test_full_disk.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
# Needs root to mount a tmpfs (exit 77 = skipped otherwise).
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
SMALL=$TMP/small
runs_cleanup() { pkill -9 -P $$ 2>/dev/null; umount "$SMALL" 2>/dev/null; }


mkdir -p "$SMALL"
if [[ $(id -u) != 0 ]] || ! mount -t tmpfs -o size=1m tmpfs "$SMALL" 2>/dev/null; then
    echo "skipped: cannot mount a tmpfs (not root?)"; exit 77
fi
umount "$SMALL"

head -c 300000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/lm.h5" >/dev/null || fail "prepare"

# case NAME HIDDEN DISK_KB
case_full() {
    local name=$1 hidden=$2 kb=$3
    local args="--data $TMP/lm.h5 --hidden $hidden --batch 4 --bptt 16 --eval-batch 4
                --ckpt-every 10 --ckpt-minutes 0 --keep 0 --print-every 10 --deterministic
                --micro-batch 2"
    # shellcheck disable=SC2086
    run "$name-ref" 2 $args --steps 60 || { fail "$name: reference run: $(tail -3 "$TMP/$name-ref.log")"; return; }
    mount -t tmpfs -o "size=${kb}k" tmpfs "$SMALL" || { fail "$name: mount"; return; }
    local t0=$SECONDS rc
    # shellcheck disable=SC2086
    timeout -k 5 60 "$MPI" -np 2 "$BIN" train --out "$TMP/$name" --ckpt-dir "$SMALL/ck" $args \
        --steps 100000 > "$TMP/$name.log" 2>&1
    rc=$?
    local took=$((SECONDS - t0)) n
    n=$(find "$SMALL/ck" -name 'ckpt-*.h5' | wc -l)
    if [[ $rc == 1 ]] && grep -q "No space left on device" "$TMP/$name.log" &&
            grep "No space left on device" "$TMP/$name.log" | grep -q "/ck/\.ckpt-"; then
        ok "$name: disk full after $n checkpoint(s): status 1 in $took s: $(grep -m1 'No space left' "$TMP/$name.log" | cut -c1-150)"
    else
        fail "$name: status $rc after $took s (want 1 and ENOSPC named with the checkpoint): $(tail -5 "$TMP/$name.log")"
    fi
    if grep -q -i -E "segmentation fault|signal 11|core dumped|AddressSanitizer|runtime error" "$TMP/$name.log"; then
        fail "$name: a crash: $(grep -m1 -i -E 'segmentation|signal 11|core dumped|Sanitizer|runtime error' "$TMP/$name.log")"
    fi
    local left
    left=$(find "$SMALL/ck" -type f ! -name 'ckpt-*.h5' | tr '\n' ' ')
    [[ -z $left ]] && ok "$name: no temporary file left" || fail "$name: left behind: $left"
    [[ $n -ge 1 ]] || { fail "$name: no checkpoint was written before the disk filled"; umount "$SMALL"; return; }
    local bad=0 f
    for f in "$SMALL"/ck/ckpt-*.h5; do
        "$BIN" info "$f" > /dev/null 2>&1 || { bad=1; fail "$name: $f does not verify"; }
    done
    [[ $bad == 0 ]] && ok "$name: the $n checkpoint(s) written before the disk filled verify"
    cp -r "$SMALL/ck" "$TMP/$name-ck"
    umount "$SMALL"
    # shellcheck disable=SC2086
    if run "$name" 2 $args --ckpt-dir "$TMP/$name-ck" --steps 60 --resume auto; then
        if r=$(params_cmp "$TMP/$name/model.h5" "$TMP/$name-ref/model.h5" 0); then
            ok "$name: resumed from the newest checkpoint: bitwise equal to the uninterrupted run"
        else fail "$name: resumed run: $r"; fi
    else fail "$name: resume: $(tail -3 "$TMP/$name.log")"; fi
}

case_full small 16 600
case_full large 96 3500
echo "full_disk_ranks: $fails failure(s)"
[[ $fails -eq 0 ]]
