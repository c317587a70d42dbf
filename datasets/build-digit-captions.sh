#!/usr/bin/env bash
# Build digit-captions.tsv: each scikit-learn digit image paired with its name in English.
#
# Usage: datasets/build-digit-captions.sh [--force] [OUTPUT]
#   OUTPUT defaults to digit-captions.tsv next to this script
#   (datasets/digit-captions.tsv). A relative OUTPUT is taken relative to the current
#   directory. If OUTPUT already exists and passes the checks below, the script says so
#   and exits 0; --force rebuilds it anyway.
#
# Input: datasets/digits.csv (build it with datasets/build-digits.sh): 1797 rows of the 64
# pixel values (0..16) of an 8x8 image, then the label (0..9).
# Output: 1797 lines "SOURCE<TAB>TARGET", in the order of digits.csv: SOURCE the 64 pixel
# values divided by 16 (in [0,1], exact decimals such as 0.8125), space-separated; TARGET
# the digit's name in lower case ("zero" .. "nine"). For
#   rnntrain prepare --pairs datasets/digit-captions.tsv --source features --target chars
# Checks: 1797 lines, 64 values in [0,1] and a digit name on each, every name present.
# Git-ignored (rebuild it; well under a second). Needs: awk.
set -euo pipefail

EXPECTED_ROWS=1797
NPIXELS=64

die() { echo "build-digit-captions: ERROR: $*" >&2; exit 1; }
log() { echo "build-digit-captions: $*"; }

# validate FILE: prints "ok <name counts>" or an error description; exit 0/1.
validate() {
  awk -F'\t' -v want_rows="$EXPECTED_ROWS" -v npix="$NPIXELS" '
    function fail(msg) { print msg; bad = 1; exit 1 }
    BEGIN { split("zero one two three four five six seven eight nine", names, " ") }
    {
      if (NF != 2) fail("line " NR ": " NF " tab-separated columns, expected 2")
      n = split($1, v, " ")
      if (n != npix) fail("line " NR ": " n " values, expected " npix)
      for (i = 1; i <= n; i++)
        if (v[i] !~ /^[0-9.]+$/ || v[i] + 0 > 1) fail("line " NR ", value " i ": \"" v[i] "\" is not a number in [0,1]")
      count[$2]++
    }
    END {
      if (bad) exit 1
      if (NR != want_rows) { print NR " lines, expected " want_rows; exit 1 }
      s = ""
      for (c = 1; c <= 10; c++) {
        if (!(names[c] in count)) { print "the name " names[c] " never occurs"; exit 1 }
        s = s (c > 1 ? " " : "") names[c] ":" count[names[c]]
      }
      for (name in count) kinds++
      if (kinds != 10) { print "a target is not a digit name"; exit 1 }
      print "ok " s
    }' < "$1"
}

force=0
out=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force|-f) force=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; [ "$#" -le 1 ] || die "too many arguments"; out=${1:-}; break ;;
    -*) die "unknown option: $1 (usage: $0 [--force] [OUTPUT])" ;;
    *) [ -z "$out" ] || die "more than one OUTPUT given"; out=$1 ;;
  esac
  shift
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
in="$script_dir/digits.csv"
out=${out:-"$script_dir/digit-captions.tsv"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"
command -v awk >/dev/null 2>&1 || die "'awk' not found in PATH"
[ -f "$in" ] || die "$in not found (build it first: datasets/build-digits.sh)"

if [ "$force" -eq 0 ] && [ -f "$out" ]; then
  if msg=$(validate "$out"); then
    log "$out already exists and is valid ($EXPECTED_ROWS lines; name counts ${msg#ok }); nothing to do (use --force to rebuild)"
    exit 0
  fi
  log "$out exists but is not valid ($msg): rebuilding"
fi

partial="$out.partial.$$"
trap 'rm -f -- "$partial"' EXIT
trap 'exit 130' INT TERM

# pixel/16 is a multiple of 1/16: %g prints it exactly (0, 0.0625, ..., 0.9375, 1)
LC_ALL=C awk -F, -v npix="$NPIXELS" -v src="$in" '
  BEGIN { split("zero one two three four five six seven eight nine", names, " ") }
  {
    gsub(/\r/, "")
    if (NF != npix + 1) { printf "build-digit-captions: %s:%d: %d columns, expected %d\n", src, NR, NF, npix + 1 > "/dev/stderr"; bad = 1; exit 1 }
    for (i = 1; i <= NF; i++)
      if ($i !~ /^[0-9]+$/ || (i <= npix && $i + 0 > 16) || (i > npix && $i + 0 > 9)) {
        printf "build-digit-captions: %s:%d, column %d: \"%s\" is not a pixel (0..16) or label (0..9)\n", src, NR, i, $i > "/dev/stderr"; bad = 1; exit 1
      }
    line = ""
    for (i = 1; i <= npix; i++) line = line (i > 1 ? " " : "") sprintf("%g", $i / 16)
    printf "%s\t%s\n", line, names[$NF + 1]
  }
  END { if (bad) exit 1 }' "$in" > "$partial" || die "conversion of $in failed"

msg=$(validate "$partial") || die "the captions made from $in failed the checks: $msg"
mv -f -- "$partial" "$out"
log "wrote $out: $EXPECTED_ROWS lines, $(wc -c < "$out") bytes; name counts ${msg#ok }"
