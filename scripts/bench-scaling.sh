#!/usr/bin/env bash
# Communication and weak-scaling benchmark for data-parallel rnntrain (figures for
# docs/scaling.md). Needs root (network namespaces) and a built rnntrain.
#
# Usage: bash scripts/bench-scaling.sh          (from any directory; about 3-4 minutes)
#
#   1. 2 namespace hosts (scripts/netns-hosts.sh, prefix rnntbench) joined by a bridge;
#      Open MPI between them over TCP only (btl self,tcp)
#   2. scripts/bench_pingpong.c across the 2 hosts (TCP) and, for comparison, 2 local ranks
#      (shared memory, btl self,vader): ping-pong latency (half round trip) and bandwidth,
#      MPI_Allreduce time at the gradient sizes of 2-layer LSTMs (H = 128, 256, 512, 1024),
#      with glibc's default malloc and with mmap disabled (see bench_pingpong.c)
#   3. weak scaling of a 2x512 LSTM, T=64, 1 BLAS thread per rank, OPENBLAS_CORETYPE unset:
#        1 rank,  --batch 32                 (no launcher)
#        2 ranks, --batch 64, this host      (mpirun -np 2, shared memory)
#        2 ranks, --batch 64, 2 netns hosts  (mpirun over TCP)
#      tokens/s = (tokens_last - tokens_first) / (elapsed_last - elapsed_first) over the
#      metrics lines, i.e. the first --print-every interval (start-up) excluded;
#      ratio = tokens/s(2 ranks) / tokens/s(1 rank); target >= 1.85
#   4. summary: $OUT/summary.txt (also printed) and $OUT/summary.json
#
# Environment (defaults in brackets):
#   OUT [/tmp/rnntrain-bench-scaling]   BIN [build/rnntrain]   STEPS [30]  PRINT_EVERY [5]
#   HIDDEN [512]  LAYERS [2]  BPTT [64]  BATCH1 [32] (per rank)  REPEAT [1] (weak-scaling
#   rounds, interleaved; the best tokens/s of each configuration is used)
#   QUICK=1 (shorter ping-pong/all-reduce loops)  SKIP_NETNS=1 (local runs only)
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-/tmp/rnntrain-bench-scaling}
BIN=${BIN:-$repo/build/rnntrain}
STEPS=${STEPS:-30}
PRINT_EVERY=${PRINT_EVERY:-5}
HIDDEN=${HIDDEN:-512}
LAYERS=${LAYERS:-2}
BPTT=${BPTT:-64}
BATCH1=${BATCH1:-32}
REPEAT=${REPEAT:-1}
QUICK=${QUICK:-0}
SKIP_NETNS=${SKIP_NETNS:-0}

die() { echo "bench-scaling: ERROR: $*" >&2; exit 1; }
say() { echo "bench-scaling: $*" >&2; }
[ -x "$BIN" ] || die "no rnntrain at $BIN (build: cmake -S $repo -B $repo/build && cmake --build $repo/build -j2)"
command -v mpicc >/dev/null || die "mpicc not found (apt-get install libopenmpi-dev)"
mkdir -p "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)

# The launcher environment comes from here, not from the caller's shell.
for v in $(env | sed -n 's/^\(OMPI_MCA_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
unset OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK PMIX_RANK PMI_RANK PMI_SIZE RNNTRAIN_MPI
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OPENBLAS_CORETYPE=Haswell (exported by the interactive shell) halves sgemm speed: unset it.
unset OPENBLAS_CORETYPE
export OPENBLAS_NUM_THREADS=1

export NETNS_PREFIX=rnntbench NETNS_STATE=$OUT/netns
netns_up=0
cleanup() {
  local rc=$?
  [ "$netns_up" = 0 ] || "$repo/scripts/netns-hosts.sh" down >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  kernel: $(uname -r)"
  echo "cpus: $(nproc) ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "open mpi: $(mpirun --version 2>/dev/null | head -n1)"
  echo "rnntrain: $BIN ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
} | tee "$OUT/machine.txt" >&2

# ---- 1. hosts, bench program, data -----------------------------------------------------
mpicc -O2 -Wall -Wextra -o "$OUT/bench_pingpong" "$repo/scripts/bench_pingpong.c"
if [ "$SKIP_NETNS" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root for network namespaces (or SKIP_NETNS=1)"
  netns_up=1
  "$repo/scripts/netns-hosts.sh" up 2
  # shellcheck disable=SC1091
  . "$NETNS_STATE/env"
fi
if [ ! -s "$OUT/moby.h5" ]; then
  "$BIN" prepare --input "$repo/datasets/moby-dick.txt" --output "$OUT/moby.h5" >/dev/null
fi

# ---- 2. ping-pong and all-reduce -------------------------------------------------------
pp_args=(--lstm 128,256,512,1024 --layers "$LAYERS" --vocab 256)
[ "$QUICK" = 1 ] && pp_args+=(--quick)
if [ "$SKIP_NETNS" != 1 ]; then
  say "ping-pong + all-reduce, 2 namespace hosts over TCP"
  # --bind-to none: each namespace host believes it owns all cores; binding would put
  # both ranks on core 0.
  timeout -k 10 600 "$NETNS_STATE/mpirun.sh" -np 2 --bind-to none \
    "$OUT/bench_pingpong" "${pp_args[@]}" --json "$OUT/comm-tcp.jsonl" | tee "$OUT/comm-tcp.txt"
fi
say "ping-pong + all-reduce, 2 local ranks over shared memory"
timeout -k 10 600 mpirun -np 2 --bind-to none --mca btl self,vader \
  "$OUT/bench_pingpong" "${pp_args[@]}" --json "$OUT/comm-shm.jsonl" | tee "$OUT/comm-shm.txt"

# ---- 3. weak scaling ---------------------------------------------------------------------
train_args=(train --data "$OUT/moby.h5" --model lstm --layers "$LAYERS" --hidden "$HIDDEN"
            --bptt "$BPTT" --steps "$STEPS" --print-every "$PRINT_EVERY" --eval-batch 64
            --threads 1)
# tps METRICS: tokens/s over the train lines after the first
tps() {
  sed -n 's/.*"kind": "train".*"tokens": \([0-9]*\),.*"elapsed": \([^,]*\),.*/\1 \2/p' "$1" |
    awk 'NR == 1 { t0 = $1; e0 = $2 } { t = $1; e = $2 } END { if (NR < 2 || e <= e0) print 0; else printf "%.1f\n", (t - t0) / (e - e0) }'
}
run_one() { # NAME LAUNCHER... : one training run, prints its tokens/s
  local name=$1; shift
  local dir="$OUT/runs/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  say "weak scaling: $name"
  timeout -k 10 900 "$@" --out "$dir" >"$dir/log.txt" 2>&1 || { cat "$dir/log.txt" >&2; die "run $name failed"; }
  tps "$dir/metrics.jsonl"
}
declare -A best
for r in $(seq 1 "$REPEAT"); do
  v=$(run_one "1rank-r$r" "$BIN" "${train_args[@]}" --batch "$BATCH1")
  [ "$(awk -v a="$v" -v b="${best[one]:-0}" 'BEGIN{print (a > b)}')" = 1 ] && best[one]=$v
  v=$(run_one "2ranks-shm-r$r" mpirun -np 2 --bind-to none --mca btl self,vader \
        "$BIN" "${train_args[@]}" --batch $((2 * BATCH1)))
  [ "$(awk -v a="$v" -v b="${best[shm]:-0}" 'BEGIN{print (a > b)}')" = 1 ] && best[shm]=$v
  if [ "$SKIP_NETNS" != 1 ]; then
    v=$(run_one "2ranks-tcp-r$r" "$NETNS_STATE/mpirun.sh" -np 2 --bind-to none \
          "$BIN" "${train_args[@]}" --batch $((2 * BATCH1)))
    [ "$(awk -v a="$v" -v b="${best[tcp]:-0}" 'BEGIN{print (a > b)}')" = 1 ] && best[tcp]=$v
  fi
done
core=$(sed -n 's/^ranks .*BLAS threads (\([^)]*\)).*/\1/p' "$OUT/runs/1rank-r1/log.txt" | head -n1)
params=$(sed -n 's/.*| \([0-9]*\) parameters.*/\1/p' "$OUT/runs/1rank-r1/log.txt" | head -n1)

# ---- 4. summary ----------------------------------------------------------------------------
# field FILE KIND FILTER KEY: the value of KEY in the line of KIND that contains FILTER
field() {
  grep -F "\"kind\": \"$2\"" "$1" | grep -F -- "$3" | head -n1 |
    sed -n "s/.*\"$4\": \"\{0,1\}\([^,\"}]*\).*/\1/p"
}
pp() { field "$1" pingpong "\"bytes\": $2," "$3"; }              # FILE BYTES KEY
ar() { # FILE H KEY MALLOC(default|nommap)
  grep -F "\"malloc\": \"$4\"" "$1" | grep -F "\"lstm ${LAYERS}x$2 V=256\"" | head -n1 |
    sed -n "s/.*\"$3\": \"\{0,1\}\([^,\"}]*\).*/\1/p"
}
best_bw() { # FILE -> best max_mb_s over messages >= 1 MiB
  sed -n 's/.*"kind": "pingpong", "bytes": \([0-9]*\),.*"max_mb_s": \([^}]*\)}.*/\1 \2/p' "$1" |
    awk '$1 >= 1048576 && $2 > m { m = $2 } END { printf "%.0f\n", m }'
}
flops_tok=$(awk -v H="$HIDDEN" -v L="$LAYERS" 'BEGIN { f = 2 * H * 256
  for (k = 0; k < L; k++) f += 2 * 4 * H * (H + H); printf "%.0f\n", 3 * f }')
{
  echo "== machine"
  cat "$OUT/machine.txt"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "openblas core (rnntrain log): ${core:-?}"
  for kind in tcp shm; do
    f="$OUT/comm-$kind.jsonl"
    [ -f "$f" ] || continue
    echo
    echo "== point-to-point, 2 ranks, $([ "$kind" = tcp ] && echo "2 namespace hosts over TCP" || echo "1 host, shared memory")"
    lat=$(pp "$f" 1 min_half_rtt_us); latm=$(pp "$f" 1 half_rtt_us)
    lat64=$(pp "$f" 64 min_half_rtt_us)
    bw=$(best_bw "$f"); bw64m=$(pp "$f" 67108864 mb_s)
    echo "latency (half round trip, 1 B): best ${lat} us, median ${latm} us; 64 B: best ${lat64} us"
    echo "bandwidth (ping-pong): best ${bw} MB/s (messages >= 1 MiB); median at 64 MiB ${bw64m} MB/s"
    for mal in default nommap; do
      echo "allreduce (2 ranks), LSTM ${LAYERS}xH gradients, float32, malloc $mal (model: bytes/bw + 2*lat, best figures):"
      for h in 128 256 512 1024; do
        n=$(ar "$f" "$h" floats "$mal"); ms=$(ar "$f" "$h" ms "$mal"); mn=$(ar "$f" "$h" min_ms "$mal")
        bus=$(ar "$f" "$h" busbw_mb_s "$mal")
        [ -n "$n" ] || continue
        pred=$(awk -v n="$n" -v l="$lat" -v bw="$bw" 'BEGIN { printf "%.2f", (4 * n / (bw * 1e6) + 2 * l * 1e-6) * 1e3 }')
        printf "  H=%-5s %9s floats %6.1f MB  median %9.3f ms  best %9.3f ms  busbw %8.1f MB/s  model %s ms\n" \
          "$h" "$n" "$(awk -v n="$n" 'BEGIN { print 4 * n / 1e6 }')" "$ms" "$mn" "$bus" "$pred"
      done
    done
  done
  echo
  echo "== weak scaling: LSTM ${LAYERS}x${HIDDEN} (${params:-?} parameters, $flops_tok FLOP/token for training), T=$BPTT, 1 BLAS thread per rank, $STEPS steps, best of $REPEAT"
  g1=$(awk -v t="${best[one]:-0}" -v f="$flops_tok" 'BEGIN { printf "%.1f", t * f / 1e9 }')
  echo "1 rank  x batch $BATCH1:            ${best[one]:-?} tokens/s  ($g1 GFLOP/s)"
  echo "2 ranks x batch $((2 * BATCH1)) (shared mem): ${best[shm]:-?} tokens/s  ratio $(awk -v a="${best[shm]:-0}" -v b="${best[one]:-1}" 'BEGIN { printf "%.3f", a / b }')"
  [ "$SKIP_NETNS" = 1 ] ||
  echo "2 ranks x batch $((2 * BATCH1)) (2 hosts TCP): ${best[tcp]:-?} tokens/s  ratio $(awk -v a="${best[tcp]:-0}" -v b="${best[one]:-1}" 'BEGIN { printf "%.3f", a / b }')"
  echo "(target: ratio >= 1.85)"
} | tee "$OUT/summary.txt"

{
  printf '{"hidden": %s, "layers": %s, "bptt": %s, "steps": %s, "flops_per_token": %s, "parameters": %s, ' \
    "$HIDDEN" "$LAYERS" "$BPTT" "$STEPS" "$flops_tok" "${params:-null}"
  printf '"tps_1rank": %s, "tps_2ranks_shm": %s, "tps_2ranks_tcp": %s, "openblas_core": "%s"}\n' \
    "${best[one]:-null}" "${best[shm]:-null}" "${best[tcp]:-null}" "${core:-}"
} >"$OUT/summary.json"
say "done: $OUT/summary.txt"
