#!/usr/bin/env bash
# A throwaway SLURM cluster on this machine, for trying the job scripts in slurm/ and for
# the SLURM tests: munged, slurmctld and one slurmd (or N slurmd in network namespaces).
# Nothing is installed or changed outside the state directory (and, with --nodes N > 1,
# a few network namespaces); `down` stops exactly the daemons `up` started, by PID.
#
# Usage: scripts/slurm-cluster.sh COMMAND [--dir DIR] [options]
#   up   [--nodes N] [--cpus C] [--kill-wait S] [--slurmd-timeout T]
#            start munged (as user munge), slurmctld and the slurmd(s); wait until every
#            node is idle. N = 1 (default): one node named `hostname -s` at 127.0.0.1.
#            N > 1: nodes node1..nodeN, each slurmd in its own network namespace (10.213.77.0/24,
#            joined by a bridge in a namespace of its own, no route out), with its own
#            hostname, /etc/hosts and /tmp; slurmctld in another namespace. C = CPUs per node
#            (default: nproc for one node, 2 for several; more than the machine has is allowed).
#            S = SLURM's KillWait, seconds between SIGTERM and SIGKILL (default 30).
#            T = SLURM's SlurmdTimeout: a node whose slurmd has not answered for T seconds
#            is set DOWN, its jobs end NODE_FAIL or are requeued (default: SLURM's, 300 s).
#   down [--purge]
#            cancel the cluster's jobs, stop its daemons by the PIDs in their pid files
#            (SIGTERM, then SIGKILL after 15 s), kill leftover job step daemons of this cluster,
#            delete its namespaces. --purge also removes DIR. Safe to repeat.
#   node-kill NAME
#            the node NAME (node1..nodeN, N > 1) dies: every process in its network namespace
#            (its slurmd, its slurmstepd, the job's processes there) is SIGKILLed at once.
#   node-start NAME
#            start NAME's slurmd again (after node-kill: nothing may run in its namespace)
#            and wait until it has registered with slurmctld. First removes what the dead
#            step daemons left (their PMIx sockets in the spool, which would make the next
#            step of the same job on NAME fail) and empties the node's /tmp, as a reboot
#            would. A node SLURM set DOWN meanwhile returns to service by itself
#            (ReturnToService=2) once it registers.
#   exec -- CMD [ARGS...]
#            run a SLURM client (sbatch, squeue, scontrol, srun, ...) against the cluster:
#            SLURM_CONF is set and, for N > 1, CMD runs in the controller's network namespace.
#   env      print `export SLURM_CONF=...` (N = 1 only: clients then work from this shell)
#   status   daemons, nodes and jobs
#
# DIR (default $SLURM_CLUSTER_DIR, else /var/tmp/rnntrain-slurm-$UID) holds everything:
# slurm.conf, cluster.env, munge/ (key, socket, log), ctld/ (state, log), nodes/NAME/ (spool,
# log, and for N > 1 the node's private /tmp). With N > 1 it must not be under /tmp, which
# the nodes do not share. Runs as root (munged runs as user munge, the SLURM daemons and jobs
# as root). Needs: munge, slurmctld, slurmd, slurm-client (scripts/install-deps.sh --tests installs
# them); for N > 1 also ip (iproute2), nsenter and unshare (util-linux).
#
# Example:
#   scripts/slurm-cluster.sh up --dir /var/tmp/c1
#   scripts/slurm-cluster.sh exec --dir /var/tmp/c1 -- sbatch --wrap hostname
#   scripts/slurm-cluster.sh down --dir /var/tmp/c1 --purge
set -euo pipefail

prog=slurm-cluster
die() { echo "$prog: ERROR: $*" >&2; exit 1; }
log() { [ "${QUIET:-0}" = 1 ] || echo "$prog: $*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=$1; shift
case "$cmd" in -h|--help|help) usage; exit 0 ;; esac

DIR=${SLURM_CLUSTER_DIR:-/var/tmp/rnntrain-slurm-$(id -u)}
NODES=1
CPUS=
KILL_WAIT=30
SLURMD_TIMEOUT=
NODE_ARG=
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --nodes) [ $# -ge 2 ] || die "--nodes needs a value"; NODES=$2; shift 2 ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --cpus) [ $# -ge 2 ] || die "--cpus needs a value"; CPUS=$2; shift 2 ;;
    --cpus=*) CPUS=${1#*=}; shift ;;
    --kill-wait) [ $# -ge 2 ] || die "--kill-wait needs a value"; KILL_WAIT=$2; shift 2 ;;
    --kill-wait=*) KILL_WAIT=${1#*=}; shift ;;
    --slurmd-timeout) [ $# -ge 2 ] || die "--slurmd-timeout needs a value"; SLURMD_TIMEOUT=$2; shift 2 ;;
    --slurmd-timeout=*) SLURMD_TIMEOUT=${1#*=}; shift ;;
    --purge) PURGE=1; shift ;;
    -q|--quiet) QUIET=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) [ "$cmd" = exec ] && break
       case "$cmd" in node-kill|node-start) [ -z "$NODE_ARG" ] && { NODE_ARG=$1; shift; continue; } ;; esac
       die "unknown option '$1' (see --help)" ;;
  esac
done
case "$NODES" in ''|*[!0-9]*) die "--nodes must be a positive integer" ;; esac
[ "$NODES" -ge 1 ] && [ "$NODES" -le 64 ] || die "--nodes must be between 1 and 64"
case "$KILL_WAIT" in ''|*[!0-9]*) die "--kill-wait must be a non-negative integer" ;; esac
[ -z "$CPUS" ] || case "$CPUS" in *[!0-9]*|0) die "--cpus must be a positive integer" ;; esac
[ -z "$SLURMD_TIMEOUT" ] || case "$SLURMD_TIMEOUT" in *[!0-9]*|0) die "--slurmd-timeout must be a positive integer" ;; esac
case "$DIR" in /*) ;; *) DIR="$(pwd -P)/$DIR" ;; esac
DIR=${DIR%/}
ENVFILE="$DIR/cluster.env"
CONF="$DIR/slurm.conf"
MARK="RNNTRAIN_SLURM_CLUSTER=$DIR"   # in the environment of every daemon we start
SUBNET=10.213.77

# ---------------------------------------------------------------- process helpers
# Fork-free (bash builtins reading /proc): forks are slow on a busy machine and we scan
# every process.
# stat_field PID N: field N (3 = state, 4 = parent PID) of /proc/PID/stat.
stat_field() {
  local line f
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }                # drop "pid (comm) ", comm may hold spaces
  read -r -a f <<<"$line"
  echo "${f[$(($2 - 3))]}"
}
# alive PID: the process exists and is not a zombie.
alive() {
  local line
  [ -n "$1" ] || return 1
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  line=${line##*) }
  [ "${line%% *}" != Z ] && [ "${line%% *}" != X ]
}
# has_env PID VAR=VALUE: the process's environment holds exactly that entry.
has_env() {
  local e envs=()
  { mapfile -d '' -t envs <"/proc/$1/environ"; } 2>/dev/null || return 1
  for e in "${envs[@]}"; do [ "$e" = "$2" ] && return 0; done
  return 1
}
# ours PID: the process carries this cluster's marker, or its command line names DIR
# (guards against a PID that was recycled after the daemon died).
ours() {
  local a args=()
  has_env "$1" "$MARK" && return 0
  { mapfile -d '' -t args <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  for a in "${args[@]}"; do case "$a" in *"$DIR/"*) return 0 ;; esac; done
  return 1
}
pidfile_pid() { local p=; [ -s "$1" ] && { read -r p <"$1"; } 2>/dev/null; echo "${p//[!0-9]/}"; }
# Every PID recorded in this cluster's pid files that is still one of our live daemons.
daemon_pids() {
  local f pid
  for f in "$DIR/munge/munged.pid" "$DIR/ctld/slurmctld.pid" "$DIR"/nodes/*/slurmd.pid; do
    [ -e "$f" ] || continue
    pid=$(pidfile_pid "$f")
    [ -n "$pid" ] && alive "$pid" && ours "$pid" && echo "$pid"
  done
  return 0
}
# Processes outside the pid files that belong to this cluster: slurmstepd (their working
# directory is a node directory under DIR; they overwrite their own environment) and job
# processes (SLURM_CLUSTER_NAME=our cluster's unique name and a SLURM_JOB_ID), plus anything
# carrying our marker. Never the daemons themselves, this shell or its ancestors.
marked_pids() {
  local p pid comm cwd skip=" " a=$$ f e envs is_job is_ours
  for f in "$DIR/munge/munged.pid" "$DIR/ctld/slurmctld.pid" "$DIR"/nodes/*/slurmd.pid; do
    [ -e "$f" ] && skip+="$(pidfile_pid "$f") "
  done
  while [ -n "$a" ] && [ "$a" -gt 1 ]; do skip+="$a "; a=$(stat_field "$a" 4 || true); done
  skip+="${BASHPID:-$$} "
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    case "$skip" in *" $pid "*) continue ;; esac
    comm=
    { read -r comm <"$p/comm"; } 2>/dev/null || continue
    if [ "$comm" = slurmstepd ]; then
      cwd=$(readlink "$p/cwd" 2>/dev/null || true)
      case "$cwd/" in "$DIR"/*) alive "$pid" && echo "$pid" ;; esac
      continue
    fi
    envs=()
    { mapfile -d '' -t envs <"$p/environ"; } 2>/dev/null || continue
    is_job=0 is_ours=0
    for e in "${envs[@]}"; do
      case "$e" in
        "$MARK") is_ours=1 ;;
        "SLURM_CLUSTER_NAME=rnntrain${C_ID:-?}") is_ours=$((is_ours + 2)) ;;
        SLURM_JOB_ID=*) is_job=1 ;;
      esac
    done
    if [ "$is_ours" = 1 ] || [ "$is_ours" = 3 ] || { [ "$is_ours" = 2 ] && [ "$is_job" = 1 ]; }; then
      alive "$pid" && echo "$pid"
    fi
  done
  return 0
}
# stop_pids SECONDS PID...: SIGTERM, wait up to SECONDS, then SIGKILL; wait until gone.
stop_pids() {
  local limit=$1; shift
  [ $# -gt 0 ] || return 0
  local pid t
  kill -TERM "$@" 2>/dev/null || true
  for ((t = 0; t < limit * 10; t++)); do
    local left=()
    for pid in "$@"; do alive "$pid" && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if alive "$pid"; then log "PID $pid still running after ${limit} s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for ((t = 0; t < 50; t++)); do
    local left2=()
    for pid in "$@"; do alive "$pid" && left2+=("$pid"); done
    [ ${#left2[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  log "WARNING: could not stop PID(s) $*"
  return 1
}
# wait_file FILE SECONDS: until FILE exists and is non-empty.
wait_file() {
  local t
  for ((t = 0; t < $2 * 10; t++)); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

load_env() {
  [ -f "$ENVFILE" ] || return 1
  # shellcheck disable=SC1090
  . "$ENVFILE"
}
ns_names() { # every namespace of this cluster
  [ "${C_NODES:-1}" -gt 1 ] || return 0
  echo "$C_NS-br"; echo "$C_NS-ctl"
  local i; for ((i = 1; i <= C_NODES; i++)); do echo "$C_NS-node$i"; done
}
client() { # client CMD...: run a SLURM client with a time bound, in the controller's namespace
  if [ "${C_NODES:-1}" -gt 1 ]; then
    SLURM_CONF=$CONF timeout -k 5 20 nsenter --net="/run/netns/$C_NS-ctl" -- "$@"
  else
    SLURM_CONF=$CONF timeout -k 5 20 "$@"
  fi
}

# ---------------------------------------------------------------- down
do_down() {
  if ! load_env; then
    log "no cluster in $DIR (no $ENVFILE): nothing to stop"
    if [ "$PURGE" = 1 ] && [ -d "$DIR" ]; then rm -rf -- "$DIR"; fi
    return 0
  fi
  local t0=$SECONDS ctld
  ctld=$(pidfile_pid "$DIR/ctld/slurmctld.pid")
  # 1. Cancel the jobs and give them KillWait (+ a little) to end, so that their step
  #    daemons clean up (pmix directories, spool files) before the slurmd go away.
  if [ -n "$ctld" ] && alive "$ctld" && ours "$ctld"; then
    local jobs
    jobs=$(client squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      client scancel $jobs >/dev/null 2>&1 || true
      local t
      for ((t = 0; t < (C_KILL_WAIT + 10) * 5; t++)); do
        [ -z "$(client squeue -h -t all -o '%A %T' 2>/dev/null | grep -vE ' (COMPLETED|CANCELLED|FAILED|TIMEOUT|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY)$' || true)" ] && break
        sleep 0.2
      done
    fi
  fi
  # 2. The daemons, by the PIDs in their pid files: slurmd(s), slurmctld, then munged.
  local f pid nodes=() others=()
  for f in "$DIR"/nodes/*/slurmd.pid; do
    [ -e "$f" ] || continue
    pid=$(pidfile_pid "$f")
    [ -n "$pid" ] && alive "$pid" && ours "$pid" && nodes+=("$pid")
  done
  [ ${#nodes[@]} -eq 0 ] || { log "stopping slurmd (PID ${nodes[*]})"; stop_pids 15 "${nodes[@]}" || true; }
  if [ -n "$ctld" ] && alive "$ctld" && ours "$ctld"; then
    log "stopping slurmctld (PID $ctld)"; stop_pids 15 "$ctld" || true
  fi
  # 3. Job step daemons (and anything they left) that carry our marker.
  mapfile -t others < <(marked_pids)
  [ ${#others[@]} -eq 0 ] || { log "stopping leftover processes of this cluster (PID ${others[*]})"; stop_pids 5 "${others[@]}" || true; }
  pid=$(pidfile_pid "$DIR/munge/munged.pid")
  if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then
    log "stopping munged (PID $pid)"; stop_pids 15 "$pid" || true
  fi
  # 4. Namespaces: whatever still runs inside them is ours by construction.
  local ns
  while read -r ns; do
    [ -n "$ns" ] || continue
    [ -e "/run/netns/$ns" ] || continue
    mapfile -t others < <(ip netns pids "$ns" 2>/dev/null || true)
    [ ${#others[@]} -eq 0 ] || { log "stopping processes left in namespace $ns (PID ${others[*]})"; stop_pids 5 "${others[@]}" || true; }
    ip netns del "$ns" 2>/dev/null || log "WARNING: could not delete namespace $ns"
  done < <(ns_names)
  local left
  left=$(daemon_pids | tr '\n' ' ')
  if [ -n "${left// /}" ]; then
    log "WARNING: still running: $left"
    return 1
  fi
  rm -f -- "$ENVFILE"
  [ "$PURGE" = 1 ] && rm -rf -- "$DIR"
  log "cluster in $DIR stopped in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- up
free_port_pair() { # two consecutive TCP ports nobody listens on (root namespace)
  local used p i
  used=$(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}' | sort -u || true)
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM % 20000) * 2))
    grep -qx "$p" <<<"$used" || grep -qx "$((p + 1))" <<<"$used" || { echo "$p"; return 0; }
  done
  die "no free TCP port pair found"
}

write_conf() {
  local ctl_host ctl_addr nodelines=""
  if [ "$NODES" -eq 1 ]; then
    ctl_host=$(hostname -s); ctl_addr=127.0.0.1
    nodelines="NodeName=$ctl_host NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN"
  else
    ctl_host=$(hostname -s); ctl_addr=$SUBNET.2
    local i
    for ((i = 1; i <= NODES; i++)); do
      nodelines+="NodeName=node$i NodeAddr=$SUBNET.$((10 + i)) CPUs=$CPUS State=UNKNOWN"$'\n'
    done
  fi
  cat >"$CONF" <<EOF
# Throwaway cluster written by scripts/slurm-cluster.sh ($(date -u +%FT%TZ)); stop it with
#   scripts/slurm-cluster.sh down --dir $DIR
ClusterName=rnntrain$ID
SlurmctldHost=$ctl_host($ctl_addr)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
JobRequeue=1
ReturnToService=2
KillWait=$KILL_WAIT
${SLURMD_TIMEOUT:+SlurmdTimeout=$SLURMD_TIMEOUT
}MinJobAge=900
InactiveLimit=0
FirstJobId=$FIRST_JOB
StateSaveLocation=$DIR/ctld/state
SlurmctldPidFile=$DIR/ctld/slurmctld.pid
SlurmctldLogFile=$DIR/ctld/slurmctld.log
SlurmdSpoolDir=$DIR/nodes/%n/spool
SlurmdPidFile=$DIR/nodes/%n/slurmd.pid
SlurmdLogFile=$DIR/nodes/%n/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$nodelines
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local m="$DIR/munge"
  install -d -m 0755 -o munge -g munge "$m"
  runuser -u munge -- mungekey --create --keyfile="$m/munge.key" >/dev/null 2>&1 \
    || { rm -f -- "$m/munge.key"; runuser -u munge -- sh -c "umask 077; head -c 128 /dev/urandom >'$m/munge.key'"; }
  env "$MARK" runuser -u munge -- munged --socket="$m/munge.socket" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" --key-file="$m/munge.key" \
    || die "munged failed to start (log: $m/munged.log)"
  wait_file "$m/munged.pid" 10 || die "munged wrote no pid file (log: $m/munged.log)"
  local t
  for ((t = 0; t < 100; t++)); do
    munge -S "$m/munge.socket" -n 2>/dev/null | unmunge -S "$m/munge.socket" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged does not answer on $m/munge.socket (log: $m/munged.log)"
}

make_namespaces() {
  local br="$C_NS-br" i
  ip netns add "$br"
  ip -n "$br" link set lo up
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  # host NS ADDR: a namespace joined to the bridge by a veth pair, eth0 = ADDR/24.
  host() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$br" link add "v$3" type veth peer name eth0 netns "$1"
    ip -n "$br" link set "v$3" master br0
    ip -n "$br" link set "v$3" up
    ip -n "$1" addr add "$2/24" dev eth0
    ip -n "$1" link set eth0 up
  }
  host "$C_NS-ctl" "$SUBNET.2" ctl
  for ((i = 1; i <= NODES; i++)); do host "$C_NS-node$i" "$SUBNET.$((10 + i))" "n$i"; done
  {
    echo "127.0.0.1 localhost"
    echo "$SUBNET.2 $(hostname -s)"
    for ((i = 1; i <= NODES; i++)); do echo "$SUBNET.$((10 + i)) node$i"; done
  } >"$DIR/hosts"
}

start_slurmd() { # start_slurmd NAME
  local n=$1 d="$DIR/nodes/$1"
  mkdir -p "$d/spool"
  if [ "$NODES" -eq 1 ]; then
    env "$MARK" SLURM_CONF="$CONF" slurmd -f "$CONF" -N "$n" \
      || die "slurmd failed to start (log: $d/slurmd.log)"
  else
    install -d -m 1777 "$d/tmp"
    # Own network, hostname, /etc/hosts and /tmp: a separate machine as far as the job sees.
    env "$MARK" SLURM_CONF="$CONF" nsenter --net="/run/netns/$C_NS-$n" -- \
      unshare --mount --uts --propagation private -- sh -ec \
      'hostname "$1"; mount --bind "$2/tmp" /tmp; mount --bind "$3" /etc/hosts; exec slurmd -f "$4" -N "$1"' \
      sh "$n" "$d" "$DIR/hosts" "$CONF" \
      || die "slurmd $n failed to start (log: $d/slurmd.log)"
  fi
}

do_up() {
  [ "$(id -u)" -eq 0 ] || die "run as root (munged runs as user munge; slurmd must be root)"
  local c
  for c in munged mungekey munge unmunge slurmctld slurmd sinfo scontrol runuser ss; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found: install slurmctld slurmd slurm-client munge (scripts/install-deps.sh --tests)"
  done
  id munge >/dev/null 2>&1 || die "no user munge (install the munge package)"
  if [ "$NODES" -gt 1 ]; then
    for c in ip nsenter unshare; do command -v "$c" >/dev/null 2>&1 || die "$c not found (needed for --nodes > 1)"; done
    case "$DIR/" in /tmp/*) die "with --nodes > 1 the state dir must not be under /tmp (each node has its own /tmp): $DIR" ;; esac
  fi
  if load_env; then
    [ -z "$(daemon_pids)" ] || die "a cluster is already running in $DIR (stop it: $0 down --dir $DIR)"
    rm -f -- "$ENVFILE"
  fi
  [ -n "$CPUS" ] || { if [ "$NODES" -eq 1 ]; then CPUS=$(nproc); else CPUS=2; fi; }
  local t0=$SECONDS
  ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  PORT=$(free_port_pair)
  FIRST_JOB=$(( (RANDOM % 30000 + 1) * 1000 ))
  mkdir -p -- "$DIR"
  chmod 0755 "$DIR"
  rm -rf -- "$DIR/munge" "$DIR/ctld" "$DIR/nodes"
  mkdir -p "$DIR/ctld/state" "$DIR/nodes"
  cat >"$ENVFILE" <<EOF
C_NODES=$NODES
C_CPUS=$CPUS
C_NS=rnnslurm-$ID
C_ID=$ID
C_PORT=$PORT
C_KILL_WAIT=$KILL_WAIT
EOF
  load_env
  # From here on, a failure takes down whatever was started.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "up failed: tearing down"; QUIET=0 do_down || true; fi' EXIT
  write_conf
  start_munge
  local names=() i
  if [ "$NODES" -eq 1 ]; then
    names=("$(hostname -s)")
    env "$MARK" SLURM_CONF="$CONF" slurmctld -f "$CONF" -c \
      || die "slurmctld failed to start (log: $DIR/ctld/slurmctld.log)"
  else
    make_namespaces
    for ((i = 1; i <= NODES; i++)); do names+=("node$i"); done
    env "$MARK" SLURM_CONF="$CONF" nsenter --net="/run/netns/$C_NS-ctl" -- slurmctld -f "$CONF" -c \
      || die "slurmctld failed to start (log: $DIR/ctld/slurmctld.log)"
  fi
  wait_file "$DIR/ctld/slurmctld.pid" 15 || die "slurmctld wrote no pid file (log: $DIR/ctld/slurmctld.log)"
  for c in "${names[@]}"; do start_slurmd "$c"; done
  for c in "${names[@]}"; do
    wait_file "$DIR/nodes/$c/slurmd.pid" 15 || die "slurmd $c wrote no pid file (log: $DIR/nodes/$c/slurmd.log)"
  done
  # Ready when every node is idle.
  local states t
  for ((t = 0; t < 300; t++)); do
    states=$(client sinfo -h -N -o '%N %T' 2>/dev/null || true)
    if [ "$(grep -c ' idle$' <<<"$states" || true)" -eq "$NODES" ]; then
      trap - EXIT
      log "up in $((SECONDS - t0)) s: $NODES node(s) x $CPUS CPUs, state in $DIR"
      log "  clients: $0 exec --dir $DIR -- sbatch ...   (or: export SLURM_CONF=$CONF$([ "$NODES" -gt 1 ] && echo " and run them under nsenter --net=/run/netns/$C_NS-ctl"))"
      log "  stop:    $0 down --dir $DIR"
      return 0
    fi
    sleep 0.1
  done
  die "nodes not idle after 30 s: $(tr '\n' ';' <<<"$states") (logs in $DIR/ctld, $DIR/nodes)"
}

# ---------------------------------------------------------------- one node dies, comes back
node_arg() { # check NODE_ARG names a node of this multi-node cluster
  load_env || die "no cluster in $DIR"
  NODES=$C_NODES
  [ "$C_NODES" -gt 1 ] || die "$cmd needs a cluster of several nodes (up --nodes N)"
  [ -n "$NODE_ARG" ] || die "$cmd needs a node name (node1..node$C_NODES)"
  case "$NODE_ARG" in node[1-9]|node[1-9][0-9]) ;; *) die "no node '$NODE_ARG' (node1..node$C_NODES)" ;; esac
  [ "${NODE_ARG#node}" -le "$C_NODES" ] || die "no node '$NODE_ARG' (node1..node$C_NODES)"
  [ -e "/run/netns/$C_NS-$NODE_ARG" ] || die "no namespace $C_NS-$NODE_ARG"
}
# ns_pids NS: live processes in network namespace NS (fork-free: test -ef compares the
# namespace inodes).
ns_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ "$p/ns/net" -ef "/run/netns/$1" ] 2>/dev/null && alive "${p#/proc/}" && echo "${p#/proc/}"
  done
  return 0
}
do_node_kill() {
  node_arg
  local ns="$C_NS-$NODE_ARG" pids=() all=() t
  # SIGKILL everything at once, then again whatever was forked meanwhile, until none is left.
  for ((t = 0; t < 50; t++)); do
    mapfile -t pids < <(ns_pids "$ns")
    [ ${#pids[@]} -gt 0 ] || break
    kill -KILL "${pids[@]}" 2>/dev/null || true
    all+=("${pids[@]}")
    sleep 0.1
  done
  [ ${#pids[@]} -eq 0 ] || die "processes left in $ns after SIGKILL: ${pids[*]}"
  log "$NODE_ARG killed: SIGKILL to PID ${all[*]:-(none)}"
}
do_node_start() {
  node_arg
  local f="$DIR/nodes/$NODE_ARG/slurmd.pid" pid st t
  pid=$(pidfile_pid "$f")
  if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then die "slurmd of $NODE_ARG is running (PID $pid)"; fi
  local left=()
  mapfile -t left < <(ns_pids "$C_NS-$NODE_ARG")
  [ ${#left[@]} -eq 0 ] || die "processes still run on $NODE_ARG (PID ${left[*]}): node-kill it first"
  rm -f -- "$f"
  # What the node's dead slurmstepd left behind: their PMIx server sockets and directories in
  # the spool (stepd.slurm.pmix.JOB.STEP, pmix.JOB.STEP), which SLURM 22.05 does not remove
  # (a requeued job's step on this node then fails: "Cannot bind() UNIX socket ...: Address
  # already in use"), and the node's /tmp, which a reboot would have emptied.
  local d="$DIR/nodes/$NODE_ARG" stale=() x
  for x in "$d/spool"/stepd.slurm.pmix.* "$d/spool"/pmix.* "$d/tmp"/* "$d/tmp"/.[!.]*; do
    [ -e "$x" ] || [ -L "$x" ] && stale+=("$x")
  done
  if [ ${#stale[@]} -gt 0 ]; then
    rm -rf -- "${stale[@]}"
    log "$NODE_ARG: removed what its dead step daemons left: ${stale[*]#"$d/"}"
  fi
  # Registered when slurmctld shows the new slurmd's start time (seconds: never start in
  # the second the previous one started) and no longer flags the node as not responding.
  started() { client scontrol -o show node "$NODE_ARG" 2>/dev/null | tr ' ' '\n' | sed -n 's/^SlurmdStartTime=//p'; }
  local before
  before=$(started || true)
  [ "$before" != "$(date +%FT%T)" ] || sleep 1
  start_slurmd "$NODE_ARG"
  wait_file "$f" 15 || die "slurmd $NODE_ARG wrote no pid file (log: $DIR/nodes/$NODE_ARG/slurmd.log)"
  for ((t = 0; t < 300; t++)); do
    st=$(client sinfo -h -n "$NODE_ARG" -N -o %T 2>/dev/null | head -n 1 || true)
    if [ "$(started || true)" != "$before" ]; then
      case "$st" in ''|*'*') ;; *) log "$NODE_ARG: slurmd started (PID $(pidfile_pid "$f")), state $st"; return 0 ;; esac
    fi
    sleep 0.1
  done
  die "$NODE_ARG's slurmd did not register within 30 s (state $st; log: $DIR/nodes/$NODE_ARG/slurmd.log)"
}

do_status() {
  load_env || { echo "no cluster in $DIR"; return 1; }
  local f pid name
  for f in "$DIR/munge/munged.pid" "$DIR/ctld/slurmctld.pid" "$DIR"/nodes/*/slurmd.pid; do
    [ -e "$f" ] || continue
    pid=$(pidfile_pid "$f"); name=${f#"$DIR"/}
    if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then echo "running  $name  PID $pid"; else echo "stopped  $name"; fi
  done
  client sinfo -N || true
  client squeue || true
}

case "$cmd" in
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
  node-kill) do_node_kill ;;
  node-start) do_node_start ;;
  env)
    load_env || die "no cluster in $DIR"
    [ "$C_NODES" -eq 1 ] || die "a cluster of $C_NODES nodes lives in network namespaces: use '$0 exec --dir $DIR -- CMD'"
    echo "export SLURM_CONF=$CONF" ;;
  exec)
    [ $# -ge 1 ] || die "exec needs a command"
    load_env || die "no cluster in $DIR"
    export SLURM_CONF=$CONF
    if [ "$C_NODES" -gt 1 ]; then exec nsenter --net="/run/netns/$C_NS-ctl" -- "$@"; else exec "$@"; fi ;;
  *) die "unknown command '$cmd' (up, down, exec, env, status, node-kill, node-start; see --help)" ;;
esac
