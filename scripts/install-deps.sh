#!/usr/bin/env bash
# Install everything rnntrain needs to build, test and run, from Debian's packages.
#
# Usage: bash scripts/install-deps.sh [--tests]
#   --tests also installs what only the test suite needs: the SLURM daemons and munge
#   (the SLURM tests start throwaway daemons of their own). Without it nothing that runs
#   as a service is installed, so running the main job never adds daemons to a machine.
#   Debian 12 (or a Debian-based Ubuntu) with apt-get. Runs as root, or through sudo
#   when not root. Idempotent: when every package is already installed it only checks
#   (dpkg-query, well under 2 s) and runs neither `apt-get update` nor `apt-get install`.
#
# Packages and why:
#   build-essential cmake pkg-config   compiler, build system, library discovery
#   libopenmpi-dev openmpi-bin         Open MPI: ranks, gradient all-reduce, mpirun
#   libopenblas-dev                    OpenBLAS: every matrix product (cblas)
#   libopenblas-openmp-dev             its OpenMP build, which rnntrain links when present:
#                                      with --threads K, one pool of threads with ours
#   libhdf5-openmpi-dev hdf5-tools     HDF5: datasets and models; h5dump/h5ls. The build Debian
#                                      pairs with Open MPI; rnntrain itself makes only serial
#                                      HDF5 calls (each file written by one rank), so the
#                                      serial libhdf5-dev would do as well
#   check                              Check: the C unit-test framework
#   python3-h5py python3-numpy python3-torch
#                                      PyTorch reference checks in the test suite and scripts
#   python3-matplotlib                 scripts/plot_metrics.py (learning curves)
#   slurmctld slurmd slurm-client munge   (--tests only)
#                                      SLURM: scripts/slurm-cluster.sh and the SLURM tests
#                                      (which start daemons of their own)
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  libopenblas-openmp-dev
  libhdf5-openmpi-dev hdf5-tools
  check
  python3-h5py python3-numpy python3-torch python3-matplotlib
)
case "${1:-}" in
  --tests) PKGS+=(slurmctld slurmd slurm-client munge) ;;
  "") ;;
  *) echo "install-deps: ERROR: unknown argument '$1' (usage: install-deps.sh [--tests])" >&2; exit 2 ;;
esac

die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
log() { echo "install-deps: $*"; }

command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
  || die "this script needs a Debian/Ubuntu system with apt-get and dpkg-query; install by hand: ${PKGS[*]}"

# Packages of PKGS that are not fully installed (one dpkg-query call for all of them).
missing_packages() {
  local installed p
  installed=" $(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null \
    | awk '$2 == "install" && $3 == "ok" && $4 == "installed" { printf "%s ", $1 }' || true) "
  # (dpkg-query exits 1 when a package is unknown: that package is then simply missing.)
  for p in "${PKGS[@]}"; do
    case "$installed" in *" $p "*) ;; *) echo "$p" ;; esac
  done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  log "all ${#PKGS[@]} packages already installed; nothing to do"
  exit 0
fi
log "missing: ${missing[*]}"

# Root, or sudo when available.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 \
    || die "not root and sudo not found: run this script as root (packages: ${missing[*]})"
  SUDO=(sudo)
fi
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)

start=$SECONDS
log "apt-get update"
"${APT[@]}" -q update \
  || die "apt-get update failed (is the Debian package archive reachable?)"
log "apt-get install ${missing[*]}"
"${APT[@]}" -q -y install --no-install-recommends "${missing[@]}" \
  || die "apt-get install failed for: ${missing[*]}"

mapfile -t still < <(missing_packages)
[ "${#still[@]}" -eq 0 ] || die "still not installed after apt-get install: ${still[*]}"
log "installed ${#missing[@]} package(s) in $((SECONDS - start)) s"
