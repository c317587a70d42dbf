#!/usr/bin/env bash
# Build the monthly sunspot number series 1749-2013 as a CSV (3177 rows).
#
# Usage: datasets/build-sunspots.sh [--force] [OUTPUT]
#   OUTPUT defaults to sunspots.csv next to this script
#   (datasets/sunspots.csv). A relative OUTPUT is taken relative to the
#   current directory. If OUTPUT already exists and passes the checks below,
#   the script says so and exits 0; --force rebuilds it anyway.
#
# Output: header "time,value", then one row per month, January 1749 to
# September 2013: time = year + (month-1)/12 as R prints it (1749,
# 1749.08333333333, ...), value = monthly mean sunspot number (>= 0).
#
# Recipe (see shared DATASETS.md): R's built-in `sunspot.month` from the
# `datasets` package of Debian's r-base-core. If Rscript is missing, the
# script installs r-base-core with
# `apt-get install -y --no-install-recommends r-base-core` (needs root;
# about 15-30 s). There is no other source: without R it stops with an error.
# Checks: header, 3177 rows, numeric times increasing by 1/12 from 1749,
# numeric values >= 0.
set -euo pipefail

PKG='r-base-core'
EXPECTED_ROWS=3177
APT=(apt-get -o DPkg::Lock::Timeout=600)

die() { echo "build-sunspots: ERROR: $*" >&2; exit 1; }
log() { echo "build-sunspots: $*"; }

# validate FILE: prints "ok min max mean" or an error description; exit 0/1.
validate() {
  awk -F, -v want_rows="$EXPECTED_ROWS" '
    function fail(msg) { print msg; bad = 1; exit 1 }
    function isnum(s) { return s ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ }
    NR == 1 { if ($0 != "time,value") fail("line 1: header is \"" $0 "\", expected \"time,value\""); next }
    {
      if (NF != 2) fail("line " NR ": " NF " columns, expected 2")
      if (!isnum($1)) fail("line " NR ": time is not a number: \"" $1 "\"")
      if (!isnum($2)) fail("line " NR ": value is not a number: \"" $2 "\"")
      t = $1 + 0; v = $2 + 0; n++
      want_t = 1749 + (n - 1) / 12
      if (t - want_t > 1e-6 || want_t - t > 1e-6) fail("line " NR ": time " $1 ", expected " want_t)
      if (v < 0) fail("line " NR ": negative value " $2)
      if (n == 1 || v < lo) lo = v
      if (n == 1 || v > hi) hi = v
      sum += v
    }
    END {
      if (bad) exit 1
      if (n != want_rows) { print n + 0 " data rows, expected " want_rows; exit 1 }
      printf "ok %g %g %.4f\n", lo, hi, sum / n
    }' < "$1"
}

force=0
out=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force|-f) force=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; [ "$#" -le 1 ] || die "too many arguments"; out=${1:-}; break ;;
    -*) die "unknown option: $1 (usage: $0 [--force] [OUTPUT])" ;;
    *) [ -z "$out" ] || die "more than one OUTPUT given"; out=$1 ;;
  esac
  shift
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
out=${out:-"$script_dir/sunspots.csv"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"

command -v awk >/dev/null 2>&1 || die "'awk' not found in PATH"

if [ "$force" -eq 0 ] && [ -f "$out" ]; then
  if msg=$(validate "$out"); then
    read -r _ lo hi mean <<<"$msg"
    log "$out already exists and is valid ($EXPECTED_ROWS rows, min $lo, max $hi, mean $mean); nothing to do (use --force to rebuild)"
    exit 0
  fi
  log "$out exists but is not valid ($msg): rebuilding"
fi

partial="$out.partial.$$"
cleanup() { rm -f -- "$partial"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
if ! command -v Rscript >/dev/null 2>&1; then
  log "Rscript not found: installing $PKG (no recommends; about 15-30 s)"
  [ "$(id -u)" -eq 0 ] \
    || die "Rscript is missing and installing $PKG needs root: run 'sudo apt-get install --no-install-recommends $PKG' and retry"
  command -v apt-get >/dev/null 2>&1 || die "Rscript is missing and apt-get is not available to install $PKG"
  if ! DEBIAN_FRONTEND=noninteractive "${APT[@]}" -q install -y --no-install-recommends "$PKG"; then
    log "apt-get install failed; refreshing package lists with apt-get update and retrying"
    "${APT[@]}" -q update || die "apt-get update failed; cannot install $PKG"
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" -q install -y --no-install-recommends "$PKG" \
      || die "could not install $PKG (is the Debian archive reachable?); R is the only source this script uses for sunspot.month"
  fi
  command -v Rscript >/dev/null 2>&1 || die "$PKG is installed but Rscript is still not in PATH"
fi
r_version=$(Rscript -e 'cat(R.version$major, ".", R.version$minor, sep = "")' 2>/dev/null || echo unknown)

log "writing sunspot.month from R $r_version's datasets package"
# The path goes in via commandArgs, not spliced into the R code.
Rscript -e 'x <- sunspot.month
  out <- commandArgs(trailingOnly = TRUE)[1]
  write.csv(data.frame(time = as.numeric(time(x)), value = as.numeric(x)),
            out, row.names = FALSE, quote = FALSE)' "$partial" \
  || die "Rscript failed to write sunspot.month"

msg=$(validate "$partial") || die "sunspot.month from R $r_version failed the checks: $msg"
read -r _ lo hi mean <<<"$msg"
mv -f -- "$partial" "$out"
log "wrote $out: $EXPECTED_ROWS rows + header, $(stat -c %s -- "$out") bytes, min $lo, max $hi, mean $mean, from R $r_version ($((SECONDS - start)) s)"
