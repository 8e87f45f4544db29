# Helpers shared by the bench scripts (compare.sh, vs_rclone.sh). Sourced, never run.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_setup                 # cd to the repo, build, $WORK + XDG_* inside it, cleanup trap
#   bench_mount_oxidrive        # mounts "Plain" (encrypt = false) and "Encrypted" at $MNT
#   bench_tarball               # $TARBALL (a real source tree) and $NFILES
#   timeit CMD ARGS...          # drops the page cache, prints the seconds CMD took
#   timeit_warm CMD ARGS...     # runs CMD once untimed, then times a second run, no drop
#
# Everything a script starts goes through bench_track_mount / bench_track_pid, and the
# EXIT trap unmounts and stops exactly those (by mount point and by PID), then removes
# $WORK. Nothing is ever killed by name.

BENCH_MOUNTS=()
BENCH_PIDS=()

bench_track_mount() { BENCH_MOUNTS+=("$1"); }
bench_track_pid() { BENCH_PIDS+=("$1"); }

bench_cleanup() {
  local m p i
  for m in "${BENCH_MOUNTS[@]}"; do
    if mountpoint -q "$m" 2>/dev/null; then
      fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
    fi
  done
  for p in "${BENCH_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null || true
  done
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
  true
}

# Builds the release binary (or takes $OXIDRIVE_BENCH_BIN, to compare two builds) and
# creates a private temp dir; HOME and XDG_* point inside it so no real config, data or
# cache is read or written. Sets BIN, REAL_HOME, WORK.
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  if [ -n "${OXIDRIVE_BENCH_BIN:-}" ]; then
    BIN=$OXIDRIVE_BENCH_BIN
  else
    cargo build --release -p oxidrive -q
    BIN=$PWD/target/release/oxidrive
  fi
  REAL_HOME=$HOME
  WORK=$(mktemp -d /tmp/oxidrive-bench.XXXXXX)
  trap bench_cleanup EXIT
  # Without these a signal would end the script without running the EXIT trap.
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data \
         XDG_STATE_HOME=$WORK/state XDG_CACHE_HOME=$WORK/cache XDG_RUNTIME_DIR=$WORK/run
  mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
}

# Waits up to 10 s for $1 to become a mount point while process $2 lives; on failure
# prints log $3 and exits.
bench_wait_mounted() {
  local mnt=$1 pid=$2 log=$3
  for _ in $(seq 100); do
    mountpoint -q "$mnt" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "mount at $mnt did not come up; log:" >&2
  cat "$log" >&2
  exit 1
}

# Two oxidrive providers on the same disk, one plain and one encrypted, mounted at
# $WORK/mnt. Sets MNT, PLAIN_ROOT and ENC_ROOT (the providers' folders in the mount).
bench_mount_oxidrive() {
  MNT=$WORK/mnt
  mkdir -p "$XDG_CONFIG_HOME/oxidrive" "$WORK/stores/plain" "$WORK/stores/enc" "$MNT"
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
  bench_track_mount "$MNT"
  "$BIN" mount "$MNT" ${OXIDRIVE_MOUNT_ARGS:-} >"$WORK/mount.log" 2>&1 &
  OXIDRIVE_PID=$!
  bench_track_pid $OXIDRIVE_PID
  bench_wait_mounted "$MNT" $OXIDRIVE_PID "$WORK/mount.log"
  PLAIN_ROOT="$MNT/My Drive/Plain"
  ENC_ROOT="$MNT/My Drive/Encrypted"
}

# A real source tree to untar: tokio from the cargo registry, or this repository.
# Sets TARBALL and NFILES.
bench_tarball() {
  local src
  src=$(ls -d "${CARGO_HOME:-$REAL_HOME/.cargo}"/registry/src/*/tokio-1.* 2>/dev/null | head -1 || true)
  [ -d "${src:-}" ] || src=$PWD
  TARBALL=$WORK/tree.tar
  tar -C "$(dirname "$src")" -cf "$TARBALL" --exclude=target "$(basename "$src")"
  NFILES=$(tar -tf "$TARBALL" | wc -l)
}

# Writes dirty pages and empties the kernel page, dentry and inode caches (needs root;
# silently does nothing otherwise). Daemons' own on-disk caches stay as they are.
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# Both print the time on stdout and fail (so `x=$(timeit ...)` stops the script under
# set -e) when the command fails, instead of reporting the time of a failure.
run_quiet() { "$@" >/dev/null || { echo "bench: failed: $*" >&2; return 1; }; }
timeit() { local t0 t1; drop_caches; t0=$(now); run_quiet "$@" || return; t1=$(now); elapsed "$t0" "$t1"; }
timeit_warm() {
  local t0 t1
  run_quiet "$@" || return
  t0=$(now); run_quiet "$@" || return; t1=$(now); elapsed "$t0" "$t1"
}

# a / b with two decimals; "n/a" when either side is missing, "-" when b is 0.
ratio() {
  case "$1$2" in *n/a*) printf 'n/a'; return ;; esac
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) printf "-"; else printf "%.2f", a / b }'
}
