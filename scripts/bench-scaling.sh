#!/usr/bin/env bash
# Communication and weak-scaling benchmark for data-parallel rnntrain (figures for
# docs/scaling.md). Needs root (network namespaces) and a built rnntrain.
#
# Usage: bash scripts/bench-scaling.sh          (from any directory; about 5 minutes)
#        bash scripts/bench-scaling.sh model ALPHA_US BW_MBS GFLOPS [LABEL]
#             only print the scaling model's tables for a link (latency ALPHA_US, bandwidth
#             BW_MBS) and a per-rank compute rate (GFLOPS); MODEL_H, MODEL_P choose the
#             hidden sizes and rank counts (see model() below)
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
#        the two 2-rank runs again with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2^31-1
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
#   WAIT_IDLE=X: on a shared machine, before each measurement wait until the other processes
#   use less than X cores (sampled over 2 s), at most WAIT_MAX [1800] s each time; the
#   busy level found is logged in $OUT/idle.log. 0 = never wait (default).
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
WAIT_IDLE=${WAIT_IDLE:-0}
WAIT_MAX=${WAIT_MAX:-1800}
SKIP_NETNS=${SKIP_NETNS:-0}

die() { echo "bench-scaling: ERROR: $*" >&2; exit 1; }
say() { echo "bench-scaling: $*" >&2; }

# busy_cores: cores in use (all processes) over a 2 s sample of /proc/stat
busy_cores() {
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  sleep 2
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
    bu = y[1] - x[1]; id = y[2] - x[2]; printf "%.2f\n", (bu + id > 0 ? n * bu / (bu + id) : 0) }'
}
# wait_idle WHAT: with WAIT_IDLE set, wait until the machine is (nearly) idle
wait_idle() {
  [ "$WAIT_IDLE" != 0 ] || return 0
  local t0=$SECONDS b
  while :; do
    b=$(busy_cores)
    if awk -v b="$b" -v x="$WAIT_IDLE" 'BEGIN { exit !(b < x) }'; then
      echo "$(date -u +%H:%M:%S) $1: busy $b cores before the start (waited $((SECONDS - t0)) s)" >>"$OUT/idle.log"
      return 0
    fi
    if [ $((SECONDS - t0)) -ge "$WAIT_MAX" ]; then
      echo "$(date -u +%H:%M:%S) $1: NOT idle, busy $b cores; started anyway after $WAIT_MAX s" >>"$OUT/idle.log"
      return 0
    fi
    sleep 3
  done
}

# model ALPHA_US BW_MBS GFLOPS [LABEL]: the scaling model of docs/scaling.md, in tables.
# LSTM, LAYERS layers, V=256, E=H, BATCH1 streams x BPTT steps per rank, one rank computing
# at GFLOPS. Per step: compute t_c = F_tok * tokens / rate (F_tok = 3 x forward FLOPs);
# ring all-reduce of S = 4P bytes: t_ar = 2(p-1)/p * S/BW + 2(p-1)*alpha. "overlap": per-layer
# buckets (output layer, layer L, ..., layer 1, embedding) all-reduced one after another,
# each started as soon as the backward pass has produced it (backward = 2/3 of t_c, spread
# over the layers by their FLOPs), so only what is left after the backward is exposed.
# p*: the smallest rank count at which t_ar >= t_c (ring; and with the 2 log2(p) alpha
# latency of recursive halving/doubling).
model() {
  awk -v alpha="$(awk -v a="$1" 'BEGIN { print a * 1e-6 }')" -v bw="$(awk -v b="$2" 'BEGIN { print b * 1e6 }')" \
      -v rate="$(awk -v r="$3" 'BEGIN { print r * 1e9 }')" -v label="${4:-}" -v L="$LAYERS" -v V=256 \
      -v tokens="$((BATCH1 * BPTT))" -v hs="${MODEL_H:-128 256 512 1024 2048}" -v ps="${MODEL_P:-2 16 128 1024 8192}" '
  function ar(bytes, p) { return p < 2 ? 0 : 2 * (p - 1) / p * bytes / bw + 2 * (p - 1) * alpha }
  function ar_rd(bytes, p) { return p < 2 ? 0 : 2 * (p - 1) / p * bytes / bw + 2 * log(p) / log(2) * alpha }
  BEGIN {
    printf "# model%s: alpha %.1f us, BW %.0f MB/s, %.1f GFLOP/s per rank, %d tokens per rank per step, LSTM %d layers, V %d\n",
      (label != "" ? " (" label ")" : ""), alpha * 1e6, bw / 1e6, rate / 1e9, tokens, L, V
    printf "%6s %10s %8s %10s %9s | %6s %9s %8s %8s %8s\n", "H", "params", "MB", "MFLOP/tok", "t_c ms",
      "p", "t_ar ms", "eff", "eff_ovl", "ovl_gain"
    nh = split(hs, H, " "); np = split(ps, P, " ")
    for (i = 1; i <= nh; i++) {
      h = H[i]; layer = 4 * h * (h + h) + 8 * h; outp = V * h + V; emb = V * h
      params = L * layer + outp + emb; bytes = 4 * params
      ffwd = L * 2 * 4 * h * (h + h) + 2 * h * V; ftok = 3 * ffwd
      tc = ftok * tokens / rate; tb = tc * 2 / 3
      for (j = 1; j <= np; j++) {
        p = P[j]
        # buckets in backward order, with their ready times
        nb = 0; t = tb * (2 * h * V) / ffwd; nb++; bb[nb] = 4 * outp; rr[nb] = t
        for (k = L; k >= 1; k--) { t += tb * (2 * 4 * h * 2 * h) / ffwd; nb++; bb[nb] = 4 * layer; rr[nb] = t }
        nb++; bb[nb] = 4 * emb; rr[nb] = tb
        end = 0
        for (k = 1; k <= nb; k++) { st = (rr[k] > end ? rr[k] : end); end = st + ar(bb[k], p) }
        exposed = end > tb ? end - tb : 0
        tar = ar(bytes, p)
        eff = tc / (tc + tar); effo = tc / (tc + exposed)
        printf "%6d %10d %8.1f %10.2f %9.1f | %6d %9.2f %8.3f %8.3f %7.1f%%\n", h, params, bytes / 1e6, ftok / 1e6,
          tc * 1e3, p, tar * 1e3, eff, effo, 100 * (effo / eff - 1)
      }
      # p*: first p (up to 2^24) with t_ar >= t_c
      pr = 0; pd = 0
      for (p = 2; p <= 16777216; p *= 2) { if (!pr && ar(bytes, p) >= tc) pr = p; if (!pd && ar_rd(bytes, p) >= tc) pd = p }
      printf "%6d   communication >= compute from p = %s (ring), %s (recursive halving/doubling); bandwidth term alone: %.1f ms\n",
        h, (pr ? pr : "never (<= 2^24)"), (pd ? pd : "never (<= 2^24)"), 2 * bytes / bw * 1e3
    }
  }'
}
if [ "${1:-}" = model ]; then
  shift
  [ $# -ge 3 ] || die "usage: bench-scaling.sh model ALPHA_US BW_MBS GFLOPS [LABEL]"
  model "$@"
  exit 0
fi
[ -x "$BIN" ] || die "no rnntrain at $BIN (build: cmake -S $repo -B $repo/build && cmake --build $repo/build -j2)"
command -v mpicc >/dev/null || die "mpicc not found (apt-get install libopenmpi-dev)"
mkdir -p "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)

# The launcher environment comes from here, not from the caller's shell.
for v in $(env | sed -n 's/^\(OMPI_MCA_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
unset OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK PMIX_RANK PMI_RANK PMI_SIZE RNNTRAIN_MPI
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
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
  echo "rnntrain: $BIN (repository HEAD $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "busy cores (all processes, 2 s sample) at start: $(busy_cores)"
} | tee "$OUT/machine.txt" >&2
: >"$OUT/idle.log"

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
  # small validation split: the final validation of each run is not part of the measure
  "$BIN" prepare --input "$repo/datasets/moby-dick.txt" --output "$OUT/moby.h5" \
    --split 0.98,0.01,0.01 >/dev/null
fi

# ---- 2. ping-pong and all-reduce -------------------------------------------------------
pp_args=(--lstm 128,256,512,1024 --layers "$LAYERS" --vocab 256)
[ "$QUICK" = 1 ] && pp_args+=(--quick)
if [ "$SKIP_NETNS" != 1 ]; then
  say "ping-pong + all-reduce, 2 namespace hosts over TCP"
  wait_idle comm-tcp
  # --bind-to none: each namespace host believes it owns all cores; binding would put
  # both ranks on core 0.
  timeout -k 10 600 "$NETNS_STATE/mpirun.sh" -np 2 --bind-to none \
    "$OUT/bench_pingpong" "${pp_args[@]}" --json "$OUT/comm-tcp.jsonl" | tee "$OUT/comm-tcp.txt"
fi
say "ping-pong + all-reduce, 2 local ranks over shared memory"
wait_idle comm-shm
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
# cw METRICS: mean share of the step spent waiting for gradient sums, lines after the first
cw() {
  sed -n 's/.*"kind": "train".*"comm_wait": \([^,]*\),.*/\1/p' "$1" |
    awk 'NR > 1 { s += $1; n++ } END { if (n) printf "%.1f%%\n", 100 * s / n; else print "?" }'
}
run_one() { # NAME LAUNCHER... : one training run, prints its tokens/s
  local name=$1; shift
  local dir="$OUT/runs/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  wait_idle "$name"
  say "weak scaling: $name"
  timeout -k 10 900 "$@" --out "$dir" >"$dir/log.txt" 2>&1 || { cat "$dir/log.txt" >&2; die "run $name failed"; }
  tps "$dir/metrics.jsonl"
}
# Configurations: 1 rank; 2 ranks on this host (shared memory); 2 ranks on 2 namespace
# hosts (TCP); the last two again with glibc's mmap disabled and no heap trimming
# (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_): without it, the temporary buffers of the
# non-blocking per-bucket all-reduces are fresh pages every step (see docs/scaling.md).
NOMMAP=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647)
CONFIGS="one shm tcp shm-nommap tcp-nommap"
[ "$SKIP_NETNS" != 1 ] || CONFIGS="one shm shm-nommap"
declare -A best bestrun
for r in $(seq 1 "$REPEAT"); do
  for c in $CONFIGS; do
    case $c in
      one) cmd=("$BIN" "${train_args[@]}" --batch "$BATCH1") ;;
      shm) cmd=(mpirun -np 2 --bind-to none --mca btl self,vader "$BIN" "${train_args[@]}" --batch $((2 * BATCH1))) ;;
      tcp) cmd=("$NETNS_STATE/mpirun.sh" -np 2 --bind-to none "$BIN" "${train_args[@]}" --batch $((2 * BATCH1))) ;;
      shm-nommap) cmd=(env "${NOMMAP[@]}" mpirun -np 2 --bind-to none --mca btl self,vader
                       -x MALLOC_MMAP_MAX_ -x MALLOC_TRIM_THRESHOLD_ "$BIN" "${train_args[@]}" --batch $((2 * BATCH1))) ;;
      tcp-nommap) cmd=(env "${NOMMAP[@]}" "$NETNS_STATE/mpirun.sh" -np 2 --bind-to none
                       -x MALLOC_MMAP_MAX_ -x MALLOC_TRIM_THRESHOLD_ "$BIN" "${train_args[@]}" --batch $((2 * BATCH1))) ;;
    esac
    v=$(run_one "$c-r$r" "${cmd[@]}")
    if [ "$(awk -v a="$v" -v b="${best[$c]:-0}" 'BEGIN { print (a > b) }')" = 1 ]; then
      best[$c]=$v; bestrun[$c]=$c-r$r
    fi
  done
done
core=$(sed -n 's/^ranks .*BLAS threads (\([^)]*\)).*/\1/p' "$OUT/runs/one-r1/log.txt" | head -n1)
params=$(sed -n 's/.*| \([0-9]*\) parameters.*/\1/p' "$OUT/runs/one-r1/log.txt" | head -n1)

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
sustained_bw() { # FILE -> the best median MB/s over messages >= 16 MiB (what a gradient sees)
  sed -n 's/.*"kind": "pingpong", "bytes": \([0-9]*\),.*"mb_s": \([^,]*\),.*/\1 \2/p' "$1" |
    awk '$1 >= 16777216 && $2 > m { m = $2 } END { printf "%.0f\n", m }'
}
flops_tok=$(awk -v H="$HIDDEN" -v L="$LAYERS" 'BEGIN { f = 2 * H * 256
  for (k = 0; k < L; k++) f += 2 * 4 * H * (H + H); printf "%.0f\n", 3 * f }')
{
  echo "== machine"
  cat "$OUT/machine.txt"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ ! -s "$OUT/idle.log" ] || { echo "idle waits (WAIT_IDLE=$WAIT_IDLE):"; sed 's/^/  /' "$OUT/idle.log"; }
  echo "openblas core (rnntrain log): ${core:-?}"
  for kind in tcp shm; do
    f="$OUT/comm-$kind.jsonl"
    [ -f "$f" ] || continue
    echo
    echo "== point-to-point, 2 ranks, $([ "$kind" = tcp ] && echo "2 namespace hosts over TCP" || echo "1 host, shared memory")"
    lat=$(pp "$f" 1 min_half_rtt_us); latm=$(pp "$f" 1 half_rtt_us)
    lat64=$(pp "$f" 64 min_half_rtt_us)
    bw=$(sustained_bw "$f"); bwpeak=$(best_bw "$f"); bw64m=$(pp "$f" 67108864 mb_s)
    echo "latency (half round trip, 1 B): best ${lat} us, median ${latm} us; 64 B: best ${lat64} us"
    echo "bandwidth (ping-pong): sustained ${bw} MB/s (best median, messages >= 16 MiB); peak ${bwpeak} MB/s (best loop, >= 1 MiB); median at 64 MiB ${bw64m} MB/s"
    for mal in default nommap; do
      echo "allreduce (2 ranks), LSTM ${LAYERS}xH gradients, float32, malloc $mal (model: bytes/sustained bw + 2*best lat):"
      for h in 128 256 512 1024; do
        n=$(ar "$f" "$h" floats "$mal"); ms=$(ar "$f" "$h" ms "$mal"); mn=$(ar "$f" "$h" min_ms "$mal")
        bus=$(ar "$f" "$h" busbw_mb_s "$mal")
        [ -n "$n" ] || continue
        pred=$(awk -v n="$n" -v l="$lat" -v bw="$bw" 'BEGIN { printf "%.2f", (4 * n / (bw * 1e6) + 2 * l * 1e-6) * 1e3 }')
        printf "  H=%-5s %9s floats %6.1f MB  median %9.3f ms  best %9.3f ms  busbw %8.1f MB/s  model %s ms\n" \
          "$h" "$n" "$(awk -v n="$n" 'BEGIN { print 4 * n / 1e6 }')" "$ms" "$mn" "$bus" "$pred"
      done
    done
    if grep -q '"kind": "buckets"' "$f"; then
      echo "per-layer buckets (output, layer ${LAYERS}..1, embedding), ms median: one blocking all-reduce | blocking per bucket | MPI_Iallreduce all + MPI_Waitall"
      grep '"kind": "buckets"' "$f" | sed -n 's/.*"what": "\([^"]*\)".*"whole_ms": \([^,]*\), "per_bucket_ms": \([^,]*\), "nonblocking_ms": \([^,]*\),.*/\1 \2 \3 \4/p' |
        awk '{ printf "  %s %s %-8s %9.3f | %9.3f | %9.3f\n", $1, $2, $3, $4, $5, $6 }'
    fi
  done
  echo
  echo "== weak scaling: LSTM ${LAYERS}x${HIDDEN} (${params:-?} parameters, $flops_tok FLOP/token for training), T=$BPTT, 1 BLAS thread per rank, $STEPS steps, best of $REPEAT"
  g1=$(awk -v t="${best[one]:-0}" -v f="$flops_tok" 'BEGIN { printf "%.1f", t * f / 1e9 }')
  echo "1 rank  x batch $BATCH1: ${best[one]:-?} tokens/s ($g1 GFLOP/s)"
  for c in $CONFIGS; do
    [ "$c" != one ] || continue
    case $c in
      shm) what="2 ranks x batch $((2 * BATCH1)), 1 host, shared memory" ;;
      tcp) what="2 ranks x batch $((2 * BATCH1)), 2 namespace hosts, TCP" ;;
      shm-nommap) what="2 ranks, shared memory, MALLOC_MMAP_MAX_=0" ;;
      tcp-nommap) what="2 ranks, TCP, MALLOC_MMAP_MAX_=0" ;;
    esac
    printf '%-48s %9s tokens/s  ratio %s  comm wait %s\n' "$what:" "${best[$c]:-?}" \
      "$(awk -v a="${best[$c]:-0}" -v b="${best[one]:-1}" 'BEGIN { printf "%.3f", a / b }')" \
      "$(cw "$OUT/runs/${bestrun[$c]:-none}/metrics.jsonl" 2>/dev/null)"
  done
  echo "all rounds (tokens/s, comm wait):"
  for d in "$OUT"/runs/*/; do printf '  %-16s %9s  %s\n' "$(basename "$d")" "$(tps "$d/metrics.jsonl")" "$(cw "$d/metrics.jsonl")"; done
  echo "(target: ratio >= 1.85)"
  echo
  echo "== scaling model with these figures (details: docs/scaling.md)"
  [ ! -f "$OUT/comm-tcp.jsonl" ] || model "$(pp "$OUT/comm-tcp.jsonl" 1 min_half_rtt_us)" \
    "$(sustained_bw "$OUT/comm-tcp.jsonl")" "$g1" "measured namespace TCP link, measured 1-core rate"
} | tee "$OUT/summary.txt"

{
  printf '{"hidden": %s, "layers": %s, "bptt": %s, "steps": %s, "flops_per_token": %s, "parameters": %s, ' \
    "$HIDDEN" "$LAYERS" "$BPTT" "$STEPS" "$flops_tok" "${params:-null}"
  printf '"openblas_core": "%s", "tokens_per_s": {' "${core:-}"
  sep=""
  for c in $CONFIGS; do printf '%s"%s": %s' "$sep" "$c" "${best[$c]:-null}"; sep=", "; done
  printf '}}\n'
} >"$OUT/summary.json"
say "done: $OUT/summary.txt"
