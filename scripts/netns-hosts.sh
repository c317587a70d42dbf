#!/usr/bin/env bash
# Several "hosts" on one machine, built from Linux network namespaces, for multi-host MPI
# tests and benchmarks (Open MPI over TCP between them). Needs root (CAP_SYS_ADMIN/NET_ADMIN).
#
# Usage:
#   scripts/netns-hosts.sh up N          create N hosts (idempotent; repairs missing pieces,
#                                        rebuilds when N changed)
#   scripts/netns-hosts.sh down          remove what `up` created (only that)
#   scripts/netns-hosts.sh exec HOST CMD...   run CMD in HOST's namespace; HOST is 1, h1,
#                                        the namespace name or the host's address
#   scripts/netns-hosts.sh status        list the hosts and check they exist
#   scripts/netns-hosts.sh mpirun ARGS...    mpirun started in host 1 over all hosts
#                                        (same as STATE/mpirun.sh ARGS...)
#
# Layout (PREFIX defaults to rnnt):
#   namespace PREFIX-br   holds bridge br0; for host i a veth end named h<i> is enslaved to it
#   namespace PREFIX-h<i> holds lo (up) and eth0 (the other veth end) with SUBNET.<i>/24
# The veth pairs are created directly inside the namespaces (`ip link add ... netns`), so
# nothing is ever added to the root namespace: no interface, no address, no route. The
# hosts have no default route; nothing leaves the private /24. Different PREFIXes give
# fully separate networks (they may even use the same subnet).
#
# Environment:
#   NETNS_PREFIX  name prefix of the namespaces (rnnt)
#   NETNS_STATE   state directory (/tmp/rnntrain-netns)
#   NETNS_SUBNET  first three octets of the /24 (default: the first of 10.213.57, 10.213.58,
#                 ..., 172.31.213 that no root-namespace address or route overlaps)
#
# Files written to the state directory by `up`:
#   hostfile      Open MPI hostfile: one "ADDRESS slots=SLOTS" line per host (SLOTS=1, or
#                 NETNS_SLOTS)
#   hosts         one "NAME ADDRESS NAMESPACE" line per host
#   rsh-agent     stands in for ssh: `rsh-agent [opts] HOST CMD...` runs
#                 `ip netns exec <namespace of HOST> sh -c "CMD..."`
#   mpirun.sh     `mpirun.sh ARGS...` = ip netns exec PREFIX-h1 mpirun --hostfile hostfile
#                 --mca plm_rsh_agent rsh-agent --mca btl self,tcp (restricted to the /24) ARGS
#   env           PREFIX, SUBNET, N, namespace names (sourceable)
#   created       the namespaces this script created (what `down` deletes)
set -euo pipefail

PREFIX=${NETNS_PREFIX:-rnnt}
STATE=${NETNS_STATE:-/tmp/rnntrain-netns}
SLOTS=${NETNS_SLOTS:-1}
BR_NS="$PREFIX-br"
SELF=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)/$(basename -- "${BASH_SOURCE[0]}")

die() { echo "netns-hosts: error: $*" >&2; exit 1; }
log() { echo "netns-hosts: $*" >&2; }

case "$PREFIX" in
  ''|*[!A-Za-z0-9_.-]*) die "NETNS_PREFIX must be letters, digits, '_', '.', '-' (got '$PREFIX')" ;;
esac

ns_exists() { [ -e "/run/netns/$1" ] && ip netns list | awk '{print $1}' | grep -qx -- "$1"; }
host_ns() { echo "$PREFIX-h$1"; }

# --- subnet choice: a /24 that overlaps no root-namespace address or route -------------
ip2int() {
  local IFS=. a b c d
  read -r a b c d <<<"$1"
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}
# overlaps NET/LEN NET/LEN -> 0 if the two prefixes share an address
overlaps() {
  local n1=${1%/*} l1=${1#*/} n2=${2%/*} l2=${2#*/}
  [ "$l1" = "$1" ] && l1=32
  [ "$l2" = "$2" ] && l2=32
  local l=$(( l1 < l2 ? l1 : l2 ))
  local mask=$(( l == 0 ? 0 : (0xffffffff << (32 - l)) & 0xffffffff ))
  [ $(( $(ip2int "$n1") & mask )) -eq $(( $(ip2int "$n2") & mask )) ]
}
root_prefixes() {
  # addresses (with their prefix) and routes of the root namespace, all tables
  ip -4 -o addr show | awk '{print $4}'
  ip -4 route show table all 2>/dev/null | awk '$1 != "default" && $1 != "broadcast" &&
    $1 != "local" && $1 != "unreachable" && $1 != "blackhole" && $1 != "prohibit" {print $1}
    $1 == "local" || $1 == "broadcast" {print $2}'
}
subnet_free() {
  local cand="$1.0/24" p
  while read -r p; do
    [ -n "$p" ] || continue
    [[ "$p" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/[0-9]+)?$ ]] || continue
    if overlaps "$cand" "$p"; then return 1; fi
  done < <(root_prefixes)
  return 0
}
choose_subnet() {
  if [ -n "${NETNS_SUBNET:-}" ]; then
    [[ "$NETNS_SUBNET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "NETNS_SUBNET must be A.B.C (got '$NETNS_SUBNET')"
    subnet_free "$NETNS_SUBNET" || die "NETNS_SUBNET $NETNS_SUBNET.0/24 overlaps an address or route of the root namespace"
    echo "$NETNS_SUBNET"; return
  fi
  local c
  for c in 10.213.57 10.213.58 10.213.59 10.242.17 172.31.213 192.168.213; do
    if subnet_free "$c"; then echo "$c"; return; fi
  done
  die "no free private /24 among the candidates; set NETNS_SUBNET"
}

# --- state --------------------------------------------------------------------------------
load_state() {
  S_N=""; S_SUBNET=""; S_PREFIX=""
  if [ -f "$STATE/env" ]; then
    # shellcheck disable=SC1091
    S_N=$(. "$STATE/env"; echo "${NETNS_N:-}")
    S_SUBNET=$(. "$STATE/env"; echo "${NETNS_SUBNET:-}")
    S_PREFIX=$(. "$STATE/env"; echo "${NETNS_PREFIX:-}")
    [ -z "$S_PREFIX" ] || [ "$S_PREFIX" = "$PREFIX" ] ||
      die "state dir $STATE belongs to prefix '$S_PREFIX', not '$PREFIX' (set NETNS_STATE)"
  fi
}
record_created() {
  mkdir -p "$STATE"
  touch "$STATE/created"
  grep -qx -- "$1" "$STATE/created" || echo "$1" >>"$STATE/created"
}
make_ns() {
  if ! ns_exists "$1"; then
    ip netns add "$1"
    record_created "$1"
  fi
  ip -n "$1" link set lo up
}

write_files() {
  local n=$1 subnet=$2 i tmp
  mkdir -p "$STATE"
  tmp=$(mktemp "$STATE/.tmp.XXXXXX"); chmod 644 "$tmp"
  for i in $(seq 1 "$n"); do echo "$subnet.$i slots=$SLOTS"; done >"$tmp"; mv -f "$tmp" "$STATE/hostfile"
  tmp=$(mktemp "$STATE/.tmp.XXXXXX"); chmod 644 "$tmp"
  for i in $(seq 1 "$n"); do echo "h$i $subnet.$i $(host_ns "$i")"; done >"$tmp"; mv -f "$tmp" "$STATE/hosts"
  tmp=$(mktemp "$STATE/.tmp.XXXXXX"); chmod 644 "$tmp"
  {
    echo "NETNS_PREFIX=$PREFIX"
    echo "NETNS_SUBNET=$subnet"
    echo "NETNS_CIDR=$subnet.0/24"
    echo "NETNS_N=$n"
    echo "NETNS_BRIDGE_NS=$BR_NS"
    echo "NETNS_HOST_NS=\"$(for i in $(seq 1 "$n"); do printf '%s ' "$(host_ns "$i")"; done)\""
    echo "NETNS_ADDRS=\"$(for i in $(seq 1 "$n"); do printf '%s ' "$subnet.$i"; done)\""
    echo "NETNS_STATE=$STATE"
  } >"$tmp"; mv -f "$tmp" "$STATE/env"

  tmp=$(mktemp "$STATE/.tmp.XXXXXX"); chmod 644 "$tmp"
  cat >"$tmp" <<EOF
#!/bin/sh
# rsh agent for Open MPI (--mca plm_rsh_agent $STATE/rsh-agent): called as
# "rsh-agent [ssh-style options] HOST COMMAND..."; runs COMMAND in HOST's network namespace.
# Written by scripts/netns-hosts.sh; HOST is an address or name from $STATE/hosts.
while [ \$# -gt 0 ]; do
  case "\$1" in
    -[46AaCfGgKkMNnqsTtVvXxYy]) shift ;;             # flag-only ssh options
    -[BbcDEeFIiJLlmOopQRSWw]) shift; shift ;;       # ssh options with an argument
    -*) shift ;;
    *) break ;;
  esac
done
[ \$# -ge 1 ] || { echo "rsh-agent: no host" >&2; exit 255; }
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h || \$2 == h || \$3 == h {print \$3; exit}' "$STATE/hosts")
[ -n "\$ns" ] || { echo "rsh-agent: unknown host \$host (see $STATE/hosts)" >&2; exit 255; }
exec ip netns exec "\$ns" sh -c "\$*"
EOF
  chmod 755 "$tmp"; mv -f "$tmp" "$STATE/rsh-agent"

  tmp=$(mktemp "$STATE/.tmp.XXXXXX"); chmod 644 "$tmp"
  cat >"$tmp" <<EOF
#!/bin/sh
# mpirun over the namespace hosts of $STATE (written by scripts/netns-hosts.sh).
# Usage: $STATE/mpirun.sh [mpirun options] PROGRAM ARGS...   (bound it with timeout!)
# Started in host 1; remote orteds are launched through rsh-agent; TCP only, on $subnet.0/24.
exec ip netns exec $(host_ns 1) mpirun --hostfile "$STATE/hostfile" \\
  --mca plm_rsh_agent "$STATE/rsh-agent" \\
  --mca btl self,tcp --mca btl_tcp_if_include $subnet.0/24 \\
  --mca oob_tcp_if_include $subnet.0/24 "\$@"
EOF
  chmod 755 "$tmp"; mv -f "$tmp" "$STATE/mpirun.sh"
}

cmd_up() {
  local n=${1:-}
  [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 250 ] || die "up needs a host count 1..250 (got '${n}')"
  [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
  load_state
  if [ -n "$S_N" ] && [ "$S_N" != "$n" ]; then
    log "rebuilding: $S_N hosts -> $n"
    cmd_down
    load_state
  fi
  local subnet
  if [ -n "$S_SUBNET" ] && { [ -z "${NETNS_SUBNET:-}" ] || [ "$NETNS_SUBNET" = "$S_SUBNET" ]; }; then
    subnet=$S_SUBNET
  else
    subnet=$(choose_subnet)
  fi
  mkdir -p "$STATE"
  # bridge namespace
  make_ns "$BR_NS"
  if ! ip -n "$BR_NS" link show br0 >/dev/null 2>&1; then
    ip -n "$BR_NS" link add br0 type bridge
  fi
  ip -n "$BR_NS" link set br0 up
  local i ns
  for i in $(seq 1 "$n"); do
    ns=$(host_ns "$i")
    make_ns "$ns"
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
      # a stale bridge end (host namespace re-created) would block the name
      ip -n "$BR_NS" link del "h$i" >/dev/null 2>&1 || true
      ip link add eth0 netns "$ns" type veth peer name "h$i" netns "$BR_NS"
    fi
    ip -n "$BR_NS" link set "h$i" master br0
    ip -n "$BR_NS" link set "h$i" up
    if ! ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $subnet.$i/24"; then
      ip -n "$ns" addr flush dev eth0
      ip -n "$ns" addr add "$subnet.$i/24" dev eth0
    fi
    ip -n "$ns" link set eth0 up
  done
  write_files "$n" "$subnet"
  # wait for the links (bridge ports go to forwarding at once: no STP by default)
  # Reachability probe without ping (not installed): a TCP connect to a closed port of the
  # last host is refused at once when the path works and times out when it does not.
  local tries=0 out
  while :; do
    out=$(ip netns exec "$(host_ns 1)" timeout 1 bash -c "exec 3<>/dev/tcp/$subnet.$n/9" 2>&1) && break
    case "$out" in *refused*) break ;; esac
    tries=$((tries + 1))
    [ "$tries" -lt 10 ] || die "host 1 cannot reach $subnet.$n"
    sleep 0.1
  done
  log "up: $n hosts on $subnet.0/24 (namespaces $(host_ns 1)..$(host_ns "$n"), bridge $BR_NS); state in $STATE"
}

cmd_down() {
  [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
  local ns list=""
  if [ -f "$STATE/created" ]; then
    list=$(cat "$STATE/created")
  else
    # No record (state dir lost): only namespaces named exactly as this script names them.
    list=$(ip netns list | awk '{print $1}' | grep -E -x -- "$(printf '%s' "$PREFIX" | sed 's/[.]/\\./g')-(br|h[0-9]+)" || true)
  fi
  for ns in $list; do
    case "$ns" in "$PREFIX"-br|"$PREFIX"-h[0-9]*) ;; *) continue ;; esac
    if ns_exists "$ns"; then
      # refuse to pull the network from under processes still running there
      local pids
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      [ -z "$pids" ] || log "warning: processes still in $ns: $pids (they lose the network)"
      ip netns del "$ns"
    fi
  done
  if [ -d "$STATE" ]; then
    rm -f "$STATE/hostfile" "$STATE/hosts" "$STATE/rsh-agent" "$STATE/mpirun.sh" "$STATE/env" \
      "$STATE/created" "$STATE"/.tmp.*
    rmdir "$STATE" 2>/dev/null || true
  fi
  log "down: removed $(echo "$list" | grep -c . || true) namespace(s) of prefix $PREFIX"
}

resolve_host() {
  local h=$1
  if [ -f "$STATE/hosts" ]; then
    local ns
    ns=$(awk -v h="$h" '$1 == h || $2 == h || $3 == h || $1 == "h" h {print $3; exit}' "$STATE/hosts")
    [ -n "$ns" ] && { echo "$ns"; return; }
  fi
  case "$h" in
    [0-9]|[0-9][0-9]|[0-9][0-9][0-9]) echo "$(host_ns "$h")" ;;
    h[0-9]*) echo "$PREFIX-$h" ;;
    *) echo "$h" ;;
  esac
}

cmd_exec() {
  [ $# -ge 2 ] || die "usage: exec HOST CMD..."
  local ns
  ns=$(resolve_host "$1"); shift
  ns_exists "$ns" || die "no such host namespace: $ns (run: $0 up N)"
  exec ip netns exec "$ns" "$@"
}

cmd_status() {
  [ -f "$STATE/hosts" ] || { echo "no hosts (state dir $STATE)"; return 1; }
  local name addr ns ok=0
  while read -r name addr ns; do
    if ns_exists "$ns"; then echo "$name $addr $ns up"; else echo "$name $addr $ns MISSING"; ok=1; fi
  done <"$STATE/hosts"
  return $ok
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  exec) shift; cmd_exec "$@" ;;
  status) cmd_status ;;
  mpirun) shift; [ -x "$STATE/mpirun.sh" ] || die "not up (no $STATE/mpirun.sh)"; exec "$STATE/mpirun.sh" "$@" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "usage: $0 up N | down | exec HOST CMD... | status | mpirun ARGS... (see --help)" ;;
esac
