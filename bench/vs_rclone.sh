#!/usr/bin/env bash
# Compares oxidrive with `rclone mount --vfs-cache-mode full` on the same run and disk:
# a native folder, oxidrive over a plain and an encrypted local provider, and rclone over
# a plain local folder (no network anywhere). Prints seconds for each target and ratios.
# Needs root for dropping the page cache between phases.
#
#   bench/vs_rclone.sh [SIZE_MIB]    (default 1024; e.g. 256 for a quick look)
#
# What each row measures (each target runs the same command on its own folder):
#   write            dd of SIZE_MIB from /dev/zero with conv=fsync. The close/fsync in
#                    oxidrive returns once the file is synced in its cache and committed
#                    to its journal; rclone writes its cache file. Both upload later
#                    (rclone 5 s later, --vfs-write-back): no upload is in the time.
#   read after write the whole file with dd after dropping the kernel page cache. Both
#   (cache dropped)  daemons may keep what the write left in their own on-disk caches:
#                    this shows the read path through the daemon, not a provider download.
#   re-read (warm)   the file is read once untimed, then the second read is timed without
#                    dropping anything: shows what the kernel page cache (and the daemons'
#                    choice to keep it across opens) buys.
#   random 4 KiB     2000 preads of 4 KiB at block-aligned offsets drawn from a fixed
#   reads            seed (the same offsets for every target), page cache dropped first.
#   mv there and     the big file renamed and renamed back. On the encrypted provider a
#   back             file's rename rewrites its object (its name is bound into it); with
#                    the file cached whole oxidrive journals it instead and uploads it
#                    under the new name later (not in the time, as for untar).
#   untar            tar -xf of a real source tree (the tar command only; uploads that a
#                    write-back cache defers are not in the time, as for rclone). The
#                    median of three runs, each into an emptied folder.
#   find + stat      find over the untarred tree with stat of every entry (cache dropped).
#   rm -rf           removal of the tree and the big file.
# Before each target of a row and between rows, outside the timings, both daemons are
# let settle so that their background uploads do not run during another target's
# timing: `oxidrive sync --wait` when that subcommand exists, and for rclone a wait
# until its rc `vfs/stats` reports no upload queued or in progress.
#
# Ratios: plain/n and enc/n are oxidrive/native (> 1 is slower than the disk);
# rc/plain and rc/enc are rclone/oxidrive, i.e. how many times faster oxidrive is than
# rclone (> 1 means oxidrive is faster).
set -euo pipefail
SIZE_MIB=${1:-1024}
. "$(dirname "$0")/lib.sh"

bench_setup
bench_mount_oxidrive
PLAIN="$PLAIN_ROOT/bench"
ENC="$ENC_ROOT/bench"
NATIVE="$WORK/native-bench"
mkdir -p "$PLAIN" "$ENC" "$NATIVE"

# `oxidrive sync --wait`, if this build has it, waits for pending uploads.
HAS_SYNC_WAIT=
if "$BIN" sync --help 2>/dev/null | grep -q -- '--wait'; then HAS_SYNC_WAIT=1; fi

# rclone over a plain local folder, full VFS cache, rc on loopback only for vfs/stats.
RCLONE=
RCLONE_RC=
if command -v rclone >/dev/null; then
  RCLONE_MNT=$WORK/rclone-mnt
  mkdir -p "$WORK/stores/rclone" "$RCLONE_MNT" "$WORK/rclone-cache"
  : >"$WORK/rclone.conf"
  RC_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  RCLONE_RC="http://127.0.0.1:$RC_PORT/"
  bench_track_mount "$RCLONE_MNT"
  rclone mount "$WORK/stores/rclone" "$RCLONE_MNT" \
    --config "$WORK/rclone.conf" --cache-dir "$WORK/rclone-cache" \
    --vfs-cache-mode full --vfs-write-back 5s \
    --rc --rc-addr "127.0.0.1:$RC_PORT" --rc-no-auth \
    --log-file "$WORK/rclone.log" --log-level NOTICE &
  bench_track_pid $!
  bench_wait_mounted "$RCLONE_MNT" $! "$WORK/rclone.log"
  RCLONE="$RCLONE_MNT/bench"
  mkdir -p "$RCLONE"
  # awk reads all of it: `head` could end rclone with SIGPIPE, which pipefail reports.
  RCLONE_VERSION=$(rclone version | awk 'NR == 1')
else
  echo "rclone is not installed (apt-get install rclone): its columns are n/a"
  RCLONE_VERSION="rclone: not installed"
fi

bench_tarball

cat >"$WORK/randread.py" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
blocks = os.fstat(fd).st_size // 4096
rng = random.Random(20240501)
for _ in range(int(sys.argv[2])):
    if len(os.pread(fd, 4096, rng.randrange(blocks) * 4096)) != 4096:
        sys.exit("short read")
os.close(fd)
PY

# Lets both daemons finish their background uploads, untimed.
rclone_idle() {
  rclone rc --url "$RCLONE_RC" vfs/stats 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin).get("diskCache", {})
sys.exit(0 if c.get("uploadsInProgress", 0) + c.get("uploadsQueued", 0) == 0 else 1)'
}
settle() {
  if [ -n "$HAS_SYNC_WAIT" ]; then
    "$BIN" sync --wait >/dev/null 2>&1 || echo "warning: oxidrive sync --wait failed" >&2
  fi
  if [ -n "$RCLONE" ]; then
    for _ in $(seq 600); do rclone_idle && return 0; sleep 0.5; done
    echo "warning: rclone uploads still pending after 300 s" >&2
  fi
}

declare -a ROWS
# measure NAME TIMER CMD: runs TIMER CMD DIR for each target, letting the daemons
# settle before each one so that one target's uploads never run in the next one's time.
measure() {
  local name=$1 timer=$2; shift 2
  local native plain enc rcl=n/a
  native=$("$timer" "$@" "$NATIVE")
  settle; plain=$("$timer" "$@" "$PLAIN")
  settle; enc=$("$timer" "$@" "$ENC")
  if [ -n "$RCLONE" ]; then settle; rcl=$("$timer" "$@" "$RCLONE"); fi
  ROWS+=("$(printf '%-34s %8.3f %8.3f %8.3f %8s %8s %8s %8s %8s' "$name" "$native" "$plain" "$enc" "$rcl" \
    "$(ratio "$plain" "$native")" "$(ratio "$enc" "$native")" \
    "$(ratio "$rcl" "$plain")" "$(ratio "$rcl" "$enc")")")
}

seq_write() { dd if=/dev/zero of="$1/big" bs=1M count="$SIZE_MIB" conv=fsync status=none; }
seq_read()  { dd if="$1/big" of=/dev/null bs=1M status=none; }
rand_read() { python3 "$WORK/randread.py" "$1/big" 2000; }
mv_twice()  { mv "$1/big" "$1/big.moved" && mv "$1/big.moved" "$1/big"; }
untar()     { mkdir -p "$1/tree" && tar -C "$1/tree" -xf "$TARBALL"; }
# The median of three timed untars into DIR, the tree removed and the daemons settled
# (untimed) before each: single runs varied by a third here, rclone's most.
untar_median() {
  local times=() _
  for _ in 1 2 3; do
    rm -rf "$1/tree"
    settle
    times+=("$(timeit untar "$1")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}
walk()      { find "$1/tree" -exec stat -c '%s' {} + | wc -l; }
remove()    { rm -rf "$1/tree" "$1/big"; }

measure "write ${SIZE_MIB} MiB (dd, fsync)"       timeit      seq_write
settle
measure "read after write (cache dropped)"         timeit      seq_read
measure "re-read (warm)"                           timeit_warm seq_read
measure "2000 random 4 KiB reads"                  timeit      rand_read
measure "mv there and back"                        timeit      mv_twice
settle
measure "untar $NFILES entries (median of 3)"      untar_median
settle
measure "find + stat walk"                         timeit      walk
measure "rm -rf"                                   timeit      remove

echo
echo "oxidrive vs rclone mount --vfs-cache-mode full vs a native folder, same disk"
echo "($(nproc) cores, $(uname -r), $RCLONE_VERSION; ${SIZE_MIB} MiB file)"
echo "seconds; plain/n, enc/n: oxidrive / native (> 1 slower than the disk);"
echo "rc/plain, rc/enc: rclone / oxidrive (> 1 means oxidrive is faster)"
printf '%-34s %8s %8s %8s %8s %8s %8s %8s %8s\n' "workload" "native" "plain" "enc" "rclone" \
  "plain/n" "enc/n" "rc/plain" "rc/enc"
printf '%s\n' "${ROWS[@]}"
