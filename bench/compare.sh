#!/usr/bin/env bash
# Compares the oxidrive mount with its own backing folder, on the same run and disk.
# Prints seconds for each and the ratio mount/native (1.0 = as fast as the disk; the
# higher, the slower). Needs root for dropping the page cache between phases.
#
#   bench/compare.sh [SIZE_MIB]      (default 1024; e.g. 256 for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}

cargo build --release -p oxidrive -q
BIN=$PWD/target/release/oxidrive

REAL_HOME=$HOME
WORK=$(mktemp -d /tmp/oxidrive-bench.XXXXXX)
MNT=$WORK/mnt
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data \
       XDG_STATE_HOME=$WORK/state XDG_CACHE_HOME=$WORK/cache XDG_RUNTIME_DIR=$WORK/run
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
PID=
cleanup() {
  if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"; fi
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  true
}
trap cleanup EXIT

# Two providers on the same disk: one encrypted, one not; the native runs use a plain
# folder beside them.
mkdir -p "$XDG_CONFIG_HOME/oxidrive" "$WORK/stores/plain" "$WORK/stores/enc"
cat >"$XDG_CONFIG_HOME/oxidrive/config.toml" <<TOML
[[provider]]
name = "Plain"
type = "local"
path = "$WORK/stores/plain"
encrypt = false

[[provider]]
name = "Encrypted"
type = "local"
path = "$WORK/stores/enc"
TOML
export OXIDRIVE_PASSPHRASE="bench passphrase"
"$BIN" mount "$MNT" >"$WORK/mount.log" 2>&1 &
PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || { cat "$WORK/mount.log"; exit 1; }
PLAIN="$MNT/My Drive/Plain/bench"
ENC="$MNT/My Drive/Encrypted/bench"
NATIVE="$WORK/native-bench"
mkdir -p "$PLAIN" "$ENC" "$NATIVE"

# A real source tree to untar: a crate from the cargo registry, or this repository.
SRC=$(ls -d "${CARGO_HOME:-$REAL_HOME/.cargo}"/registry/src/*/tokio-1.* 2>/dev/null | head -1 || true)
[ -d "${SRC:-}" ] || SRC=$PWD
TARBALL=$WORK/tree.tar
tar -C "$(dirname "$SRC")" -cf "$TARBALL" --exclude=target "$(basename "$SRC")"
NFILES=$(tar -tf "$TARBALL" | wc -l)

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }
timeit() { local t0 t1; drop_caches; t0=$(now); "$@" >/dev/null; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

declare -a ROWS
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
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
  echo "(rclone is installed; the rclone mount comparison arrives with the block cache, issue #4)"
fi
