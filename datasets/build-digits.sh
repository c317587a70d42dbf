#!/usr/bin/env bash
# Build the scikit-learn "digits" data set as a plain CSV (1797 rows).
#
# Usage: datasets/build-digits.sh [--force] [OUTPUT]
#   OUTPUT defaults to digits.csv next to this script (datasets/digits.csv).
#   A relative OUTPUT is taken relative to the current directory. If OUTPUT
#   already exists and passes the checks below, the script says so and
#   exits 0; --force rebuilds it anyway.
#
# Output: no header; 1797 rows of 65 comma-separated integers: the 64 pixel
# values (0..16) of an 8x8 image in row-major order (pixel row 0 first),
# then the label (0..9). Read as a sequence: 8 steps of 8 features.
#
# Recipe (see shared DATASETS.md): download (do not install) Debian's
# python3-sklearn .deb and take
# usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz out of it.
# Data: UCI "Optical Recognition of Handwritten Digits" test set
# (E. Alpaydin, C. Kaynak, 1998), shipped by scikit-learn (BSD-3-Clause).
# Checks: 1797 rows, 65 integer columns, pixels 0..16, labels 0..9 and every
# label present. Needs: apt-get (runs `apt-get update` once if the download
# fails), dpkg-deb, tar, gzip, awk. About 2-5 s, ~2 MB download.
set -euo pipefail

PKG='python3-sklearn'
MEMBER='./usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz'
EXPECTED_ROWS=1797
NCOLS=65
APT=(apt-get -o DPkg::Lock::Timeout=600)

die() { echo "build-digits: ERROR: $*" >&2; exit 1; }
log() { echo "build-digits: $*"; }

# validate FILE: prints "ok <class counts>" or an error description; exit 0/1.
validate() {
  awk -F, -v want_rows="$EXPECTED_ROWS" -v ncols="$NCOLS" '
    function fail(msg) { print msg; bad = 1; exit 1 }
    {
      if (NF != ncols) fail("line " NR ": " NF " columns, expected " ncols)
      for (i = 1; i <= NF; i++) {
        if ($i !~ /^[0-9]+$/) fail("line " NR ", column " i ": not a non-negative integer: \"" $i "\"")
        v = $i + 0
        if (i < NF && v > 16) fail("line " NR ", column " i ": pixel value " v " outside 0..16")
        if (i == NF && v > 9) fail("line " NR ": label " v " outside 0..9")
      }
      count[$NF + 0]++
    }
    END {
      if (bad) exit 1
      if (NR != want_rows) { print NR " rows, expected " want_rows; exit 1 }
      s = ""
      for (c = 0; c <= 9; c++) {
        if (!(c in count)) { print "label " c " never occurs"; exit 1 }
        s = s (c ? " " : "") c ":" count[c]
      }
      print "ok " s
    }' < "$1"
}

force=0
out=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force|-f) force=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; [ "$#" -le 1 ] || die "too many arguments"; out=${1:-}; break ;;
    -*) die "unknown option: $1 (usage: $0 [--force] [OUTPUT])" ;;
    *) [ -z "$out" ] || die "more than one OUTPUT given"; out=$1 ;;
  esac
  shift
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
out=${out:-"$script_dir/digits.csv"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"

for tool in awk; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

if [ "$force" -eq 0 ] && [ -f "$out" ]; then
  if msg=$(validate "$out"); then
    log "$out already exists and is valid ($EXPECTED_ROWS rows; class counts ${msg#ok }); nothing to do (use --force to rebuild)"
    exit 0
  fi
  log "$out exists but is not valid ($msg): rebuilding"
fi

for tool in apt-get dpkg-deb tar gzip stat; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/digits.XXXXXX")
partial="$out.partial.$$"
cleanup() { rm -rf -- "$tmp"; rm -f -- "$partial"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# Let apt's unprivileged _apt user write the .deb here (avoids the
# "Download is performed unsandboxed as root" notice); the dir is ours alone.
chmod 0755 "$tmp"
mkdir "$tmp/deb"
chmod 0777 "$tmp/deb"

start=$SECONDS
log "downloading $PKG (.deb only, not installing; ~2 MB)"
if ! (cd "$tmp/deb" && "${APT[@]}" -q download "$PKG"); then
  log "apt-get download failed; refreshing package lists with apt-get update and retrying"
  [ "$(id -u)" -eq 0 ] || die "apt-get update needs root; run 'sudo apt-get update' and retry"
  "${APT[@]}" -q update || die "apt-get update failed"
  (cd "$tmp/deb" && "${APT[@]}" -q download "$PKG") \
    || die "apt-get download $PKG failed (is the Debian archive reachable?)"
fi
debs=("$tmp"/deb/"$PKG"_*.deb)
[ -f "${debs[0]}" ] || die "no $PKG .deb was downloaded"
deb=${debs[0]}
version=$(dpkg-deb -f "$deb" Version)
log "got $(basename -- "$deb") (version $version, $(stat -c %s -- "$deb") bytes)"

log "extracting ${MEMBER#./} from the .deb"
dpkg-deb --fsys-tarfile "$deb" | tar -xO "$MEMBER" | gunzip > "$tmp/raw.csv" \
  || die "could not extract $MEMBER from $(basename -- "$deb")"

# Canonical form: strip CR and blanks, write each field as a plain integer
# (accepts "16.0"-style values, rejects anything else in validate()).
awk -F, 'BEGIN { OFS = "," }
  { gsub(/[\r \t]/, "") }
  NF == 0 { next }
  { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+(\.0*)?$/) $i = sprintf("%d", $i + 0)
    print }' "$tmp/raw.csv" > "$partial"

msg=$(validate "$partial") || die "digits.csv.gz from $PKG $version failed the checks: $msg"
mv -f -- "$partial" "$out"
log "wrote $out: $EXPECTED_ROWS rows x $NCOLS columns, $(stat -c %s -- "$out") bytes, from $PKG $version ($((SECONDS - start)) s)"
log "class counts ${msg#ok }"
