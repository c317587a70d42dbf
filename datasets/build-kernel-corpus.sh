#!/usr/bin/env bash
# Build the Linux kernel C character-LM corpus (exactly 6,206,996 bytes).
#
# Usage: datasets/build-kernel-corpus.sh [--force] [OUTPUT]
#   OUTPUT defaults to linux-kernel.txt next to this script
#   (datasets/linux-kernel.txt). A relative OUTPUT is taken relative to the
#   current directory. If OUTPUT already exists with the right size the script
#   says so and exits 0; --force rebuilds it anyway.
#
# Recipe (see shared DATASETS.md): download (do not install) Debian's
# linux-source-6.1 .deb, take usr/src/linux-source-6.1.tar.xz out of it,
# unpack only linux-source-6.1/kernel/*, concatenate every kernel/**/*.[ch]
# file in path order (LC_ALL=C sort), keep the first 6,206,996 bytes.
# The text is GPL-2: it is git-ignored and must never be committed.
# Debian's package version drifts with security updates, so the result is
# checked by size and byte vocabulary, not by hash.
# Needs: apt-get (with package lists; runs `apt-get update` once if the
# download fails), dpkg-deb, tar, xz, find, sort, xargs, head. About 15-60 s,
# ~140 MB download, ~400 MB of temporary space.
set -euo pipefail

PKG='linux-source-6.1'
SRC_TOP='linux-source-6.1'
TARBALL="./usr/src/$SRC_TOP.tar.xz"
EXPECTED_SIZE=6206996
MIN_DISTINCT=64      # C source uses ~95+ distinct bytes; far fewer means garbage
APT=(apt-get -o DPkg::Lock::Timeout=600)

die() { echo "build-kernel-corpus: ERROR: $*" >&2; exit 1; }
log() { echo "build-kernel-corpus: $*"; }

# Number of distinct byte values in a file.
distinct_bytes() {
  if command -v perl >/dev/null 2>&1; then
    perl -0777 -ne 'my $n = 0; for my $b (0..255) { $n++ if index($_, chr $b) >= 0 } print "$n\n"' -- "$1"
  else
    od -An -v -tu1 -w1 -- "$1" | LC_ALL=C sort -u | wc -l
  fi
}

force=0
out=''
while [ "$#" -gt 0 ]; do
  case "$1" in
    --force|-f) force=1 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; [ "$#" -le 1 ] || die "too many arguments"; out=${1:-}; break ;;
    -*) die "unknown option: $1 (usage: $0 [--force] [OUTPUT])" ;;
    *) [ -z "$out" ] || die "more than one OUTPUT given"; out=$1 ;;
  esac
  shift
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
out=${out:-"$script_dir/linux-kernel.txt"}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
out_dir=$(dirname -- "$out")
[ -d "$out_dir" ] || die "output directory does not exist: $out_dir"

if [ "$force" -eq 0 ] && [ -f "$out" ]; then
  size=$(stat -c %s -- "$out")
  if [ "$size" -eq "$EXPECTED_SIZE" ]; then
    log "$out already exists with the right size ($size bytes, $(distinct_bytes "$out") distinct bytes); nothing to do (use --force to rebuild)"
    exit 0
  fi
  log "$out exists but has $size bytes, expected $EXPECTED_SIZE: rebuilding"
fi

for tool in apt-get dpkg-deb tar xz find sort xargs head stat; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found in PATH"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kernel-corpus.XXXXXX")
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
log "downloading $PKG (.deb only, not installing; ~140 MB)"
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

log "extracting $TARBALL from the .deb"
dpkg-deb --fsys-tarfile "$deb" | tar -xf - -C "$tmp" "$TARBALL" \
  || die "could not extract $TARBALL from $(basename -- "$deb")"
rm -f -- "$deb"

log "unpacking $SRC_TOP/kernel/ from the source tarball"
tar -xJf "$tmp/$TARBALL" -C "$tmp" --wildcards "$SRC_TOP/kernel/*" \
  || die "could not unpack $SRC_TOP/kernel/ from $TARBALL"
rm -f -- "$tmp/$TARBALL"
[ -d "$tmp/$SRC_TOP/kernel" ] || die "$SRC_TOP/kernel/ missing after unpacking"

log "concatenating kernel/**/*.[ch] in LC_ALL=C path order"
(
  cd "$tmp/$SRC_TOP"
  find kernel -type f -name '*.[ch]' -print0 | LC_ALL=C sort -z | xargs -0 cat --
) > "$tmp/full.txt"
nfiles=$(cd "$tmp/$SRC_TOP" && find kernel -type f -name '*.[ch]' | wc -l)
full_size=$(stat -c %s -- "$tmp/full.txt")
log "$nfiles files, $full_size bytes in total"
[ "$full_size" -ge "$EXPECTED_SIZE" ] \
  || die "kernel/**/*.[ch] of $PKG $version has only $full_size bytes, fewer than the $EXPECTED_SIZE needed"

head -c "$EXPECTED_SIZE" -- "$tmp/full.txt" > "$partial"
size=$(stat -c %s -- "$partial")
[ "$size" -eq "$EXPECTED_SIZE" ] \
  || die "result has $size bytes, expected exactly $EXPECTED_SIZE"
distinct=$(distinct_bytes "$partial")
[ "$distinct" -ge "$MIN_DISTINCT" ] \
  || die "result has only $distinct distinct byte values (expected >= $MIN_DISTINCT); not C source?"
mv -f -- "$partial" "$out"

log "wrote $out: $size bytes, $distinct distinct bytes, from $PKG $version ($((SECONDS - start)) s)"
