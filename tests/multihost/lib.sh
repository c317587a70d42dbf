# Shared by the tests of tests/multihost/ (sourced, not run). Sets up a private work dir
# and, on request, 2 namespace hosts through scripts/netns-hosts.sh; tears everything down
# on exit. Exit status 77 = skipped (ctest SKIP_RETURN_CODE).
#
# The caller sets BIN (rnntrain) and REPO (repository root) and sources this file.

mh_name=$(basename -- "$0" .sh)
mh_log() { echo "[$mh_name] $*"; }
mh_fail() { echo "[$mh_name] FAIL: $*" >&2; exit 1; }
mh_skip() { echo "[$mh_name] SKIP: $*"; exit 77; }

[ -x "$BIN" ] || mh_fail "rnntrain binary not found: $BIN"
[ -f "$REPO/scripts/netns-hosts.sh" ] || mh_fail "not the repository root: $REPO"
command -v mpirun >/dev/null || mh_skip "mpirun not found"
NETNS="$REPO/scripts/netns-hosts.sh"

# The launcher environment must come from this test, not from the caller's shell.
for v in $(env | sed -n 's/^\(OMPI_MCA_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
unset OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK PMIX_RANK PMI_RANK PMI_SIZE RNNTRAIN_MPI
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
export OPENBLAS_NUM_THREADS=1

# Namespaces of this run are named rnntmh<PID>-br, rnntmh<PID>-h<i>: concurrent runs (two
# build trees testing at once) never touch each other's. Namespaces left by an earlier run
# that was SIGKILLed (no trap ran; its PID is gone) are removed here.
mh_netns_prefix="rnntmh$$"
mh_clean_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^rnntmh[0-9]+-(br|h[0-9]+)$' || true); do
    pid=${ns#rnntmh}; pid=${pid%%-*}
    if [ "$pid" != "$$" ] && ! kill -0 "$pid" 2>/dev/null; then
      mh_log "removing stale namespace $ns (its test, PID $pid, is gone)"
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rnntrain-$mh_name.XXXXXX")
export NETNS_PREFIX=$mh_netns_prefix NETNS_STATE=$WORK/netns
mh_netns_up=0
mh_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # every process of this run has $WORK in its command line: end them by PID
  local pids
  pids=$(mh_job_pids)
  [ -z "$pids" ] || { mh_log "killing leftover processes: $pids"; kill -9 $pids 2>/dev/null || true; }
  if [ "$mh_netns_up" = 1 ]; then "$NETNS" down >/dev/null 2>&1 || mh_log "netns down failed"; fi
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || [ -z "${KEEP_WORK:-}" ]; then rm -rf -- "$WORK"; else mh_log "work dir kept: $WORK"; fi
  exit "$rc"
}
trap mh_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PIDs of live (non-zombie) processes whose command line mentions $WORK, this shell excluded.
mh_job_pids() {
  local p st
  for p in $(pgrep -f -- "$WORK" 2>/dev/null || true); do
    [ "$p" = "$$" ] && continue
    st=$(ps -o stat= -p "$p" 2>/dev/null || true)
    case "$st" in ''|Z*) continue ;; esac
    echo "$p"
  done | tr '\n' ' '
}
# PIDs of live rnntrain processes of this run (any namespace; the PID namespace is shared).
mh_rank_pids() {
  local p
  for p in $(mh_job_pids); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = rnntrain ] && echo "$p"
  done | tr '\n' ' '
}
# The MPI rank of a process (from its environment).
mh_rank_of() {
  tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'
}

# mh_hosts_up N: N namespace hosts, or skip when network namespaces are not permitted.
mh_hosts_up() {
  [ "$(id -u)" -eq 0 ] || mh_skip "needs root for ip netns"
  command -v ip >/dev/null || mh_skip "iproute2 (ip) not installed"
  if ! ip netns add "${mh_netns_prefix}-probe" 2>/dev/null; then
    mh_skip "ip netns not permitted here"
  fi
  ip netns del "${mh_netns_prefix}-probe" 2>/dev/null || true
  mh_clean_stale
  mh_netns_up=1
  "$NETNS" up "$1" || mh_fail "netns-hosts.sh up $1 failed"
  # shellcheck disable=SC1091
  . "$NETNS_STATE/env"
  # One rank per host, placed by the hostfile (slots=1 each): check both hosts really run one.
  local where
  where=$(timeout -k 5 30 "$NETNS_STATE/mpirun.sh" -np "$1" sh -c \
    'ip -4 -o addr show dev eth0 | awk "{print \$4}"' 2>&1) || mh_fail "mpirun across the hosts failed: $where"
  [ "$(echo "$where" | sort -u | grep -c /24)" -eq "$1" ] ||
    mh_fail "ranks did not land on $1 distinct hosts: $where"
  mh_log "hosts up; one rank per host at: $(echo "$where" | sort | tr '\n' ' ')"
}

# mh_prepare_data: first 300 KB of moby-dick.txt -> $WORK/data.h5
mh_prepare_data() {
  head -c 300000 "$REPO/datasets/moby-dick.txt" >"$WORK/moby300k.txt"
  "$BIN" prepare --input "$WORK/moby300k.txt" --output "$WORK/data.h5" >"$WORK/prepare.log" 2>&1 ||
    { cat "$WORK/prepare.log"; mh_fail "rnntrain prepare failed"; }
}
