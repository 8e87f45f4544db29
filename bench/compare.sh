#!/usr/bin/env bash
# Compares the oxidrive mount with its own backing folder, on the same run and disk.
# Prints seconds for each and the ratio mount/native (1.0 = as fast as the disk; the
# higher, the slower). Needs root for dropping the page cache between phases.
#
#   bench/compare.sh [SIZE_MIB]      (default 1024; e.g. 256 for a quick look)
#
# See bench/vs_rclone.sh for the same kind of run against `rclone mount`.
set -euo pipefail
SIZE_MIB=${1:-1024}
. "$(dirname "$0")/lib.sh"

bench_setup
# Two providers on the same disk: one encrypted, one not; the native runs use a plain
# folder beside them.
bench_mount_oxidrive
PLAIN="$PLAIN_ROOT/bench"
ENC="$ENC_ROOT/bench"
NATIVE="$WORK/native-bench"
mkdir -p "$PLAIN" "$ENC" "$NATIVE"
bench_tarball

declare -a ROWS
measure() {
  local name=$1; shift
  local native plain enc
  native=$(timeit "$@" "$NATIVE")
  plain=$(timeit "$@" "$PLAIN")
  enc=$(timeit "$@" "$ENC")
  ROWS+=("$(printf '%-32s %8.3f %8.3f %8.3f %8s %8s %8s' "$name" "$native" "$plain" "$enc" \
    "$(ratio "$plain" "$native")" "$(ratio "$enc" "$native")" "$(ratio "$enc" "$plain")")")
}

seq_write() { dd if=/dev/zero of="$1/big" bs=1M count="$SIZE_MIB" conv=fsync status=none; }
seq_read()  { dd if="$1/big" of=/dev/null bs=1M status=none; }
untar()     { mkdir -p "$1/tree" && tar -C "$1/tree" -xf "$TARBALL"; }
walk()      { find "$1/tree" -exec stat -c '%s' {} + | wc -l; }
cp_out()    { rm -rf "$WORK/out" && cp -r "$1/tree" "$WORK/out"; }
remove()    { rm -rf "$1/tree" "$1/big"; }

measure "write ${SIZE_MIB} MiB (dd, fsync)" seq_write
measure "read ${SIZE_MIB} MiB (cold)"      seq_read
measure "untar $NFILES entries"            untar
measure "find + stat walk"                  walk
measure "cp -r out of the tree"             cp_out
measure "rm -rf"                            remove

echo
echo "oxidrive mount vs a native folder on the same disk ($(nproc) cores, $(uname -r))"
echo "seconds; ratios > 1 are slower than the reference"
printf '%-32s %8s %8s %8s %8s %8s %8s\n' "workload" "native" "plain" "enc" "plain/n" "enc/n" "enc/pl"
printf '%s\n' "${ROWS[@]}"
if command -v rclone >/dev/null; then
  echo "(rclone is installed: bench/vs_rclone.sh compares with rclone mount --vfs-cache-mode full)"
fi
