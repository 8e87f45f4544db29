#!/usr/bin/env bash
# The mount over a loopback S3 server (moto_server) against OpenDAL used directly on the
# same server, in one run. Two S3 providers share one bucket: "Plain" (root /plain,
# encrypt = false) and "Encrypted" (root /enc). The direct side is the example
# providers/examples/s3_direct.rs: the operator the mount itself builds from an s3 spec
# (same layers and HTTP transport), driven without FUSE, cache or journal.
#
#   bench/s3.sh [SIZE_MIB]      (default 1024; e.g. 256 for a quick look)
#
# Rows:
#   upload       dd SIZE_MIB of zeros into the provider folder (conv=fsync), then
#                `oxidrive sync --wait`: timed together, until the object is in the
#                bucket. Direct: `s3_direct put-size` (8 MiB parts, one writer).
#   cold read    `oxidrive free FILE` (drops oxidrive's block cache), kernel page cache
#                dropped, then dd the file to /dev/null with bs=1M. Direct: `s3_direct
#                read` of the plain file's own object (8 MiB ranges, one after another,
#                as the crate's downloads do) and `read-all` (one GET) for reference.
#   list         10000 tiny objects created directly in the bucket under plain/many/
#                before the mount starts. `ls -f` through the mount: cold is the first
#                listing (page, dentry and inode caches dropped), warm the one right
#                after. Direct: `s3_direct list` (one listing, paginated by the server).
#   pin          `oxidrive pin` of a folder of 500 tiny objects created directly under
#                plain/pins/ (downloads every file whole into the cache). Direct:
#                `s3_direct read-each` (every object, 8 at a time, as pin has them).
#
# Seconds for each side and "speed", direct seconds / mount seconds: 1.00 is as fast
# as OpenDAL directly, below 1 slower (the goal for the cold read is >= 0.80).
# moto_server answers every ranged GET in a time that grows with the whole object's
# size (about 0.17 s per GET of a 256 MiB object, whatever the range), so on moto the
# read rows mostly count GETs; the "one GET" row shows what a single request costs.
# At the default 1024 MiB a run is therefore long (estimated from 256 MiB runs: about
# 20 minutes, nearly all of it the reads through the mount).
# S3_DELAY_MS=N puts bench/delay_proxy.py between both sides and moto_server: every
# chunk waits N ms each way, a link with latency (moto_server on loopback answers in a
# few ms, so without it the rows mostly measure moto_server itself).
# BENCH_LOGS=DIR keeps the mount's and moto_server's logs (RUST_LOG applies to the mount).
# moto_server comes from target/test-venv (the venv the tests use; created here with
# `python3 -m venv` and `pip install 'moto[server]'` when missing). Run as root so the
# page cache can be dropped; keep the machine otherwise idle.
set -euo pipefail
SIZE_MIB=${1:-1024}
LIST_N=10000
PIN_N=500
BUCKET=bench
. "$(dirname "$0")/lib.sh"
[ -z "${BENCH_LOGS:-}" ] || BENCH_LOGS=$(realpath -m "$BENCH_LOGS")

# Built before bench_setup, which points HOME (and so rustup and cargo) elsewhere.
(cd "$(dirname "$0")/.." && cargo build --release -p oxidrive-providers --example s3_direct -q)
bench_setup
DIRECT_BIN=$PWD/target/release/examples/s3_direct
keep_logs() {
  [ -n "${BENCH_LOGS:-}" ] || return 0
  mkdir -p "$BENCH_LOGS" && cp -f "$WORK"/mount.log "$WORK"/moto.log "$BENCH_LOGS"/ 2>/dev/null || true
}
trap 'keep_logs; bench_cleanup' EXIT

# moto_server from the tests' venv, created the way tests/src/servers.rs does.
VENV=${CARGO_TARGET_DIR:-$PWD/target}/test-venv
if [ ! -x "$VENV/bin/moto_server" ]; then
  echo "moto_server is missing: creating $VENV (python3 -m venv) and running pip install 'moto[server]' in it"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'moto[server]'
fi
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT=http://127.0.0.1:$PORT
mkdir -p "$WORK/moto"
(cd "$WORK/moto" && HOME=$WORK/moto exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT") \
  </dev/null >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
bench_track_pid $MOTO_PID
for _ in $(seq 600); do
  curl -s -o /dev/null "$ENDPOINT/" && break
  kill -0 $MOTO_PID 2>/dev/null || { echo "moto_server exited:" >&2; cat "$WORK/moto.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null -X PUT "$ENDPOINT/$BUCKET" || { echo "cannot create bucket $BUCKET at $ENDPOINT" >&2; exit 1; }
LINK="loopback"
if [ -n "${S3_DELAY_MS:-}" ]; then
  PROXY_PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$VENV/bin/python" "$PWD/bench/delay_proxy.py" "$PROXY_PORT" "$PORT" "$S3_DELAY_MS" </dev/null >"$WORK/proxy.log" 2>&1 &
  bench_track_pid $!
  ENDPOINT=http://127.0.0.1:$PROXY_PORT
  for _ in $(seq 100); do curl -s -o /dev/null "$ENDPOINT/" && break; sleep 0.1; done
  LINK="a link delaying every chunk ${S3_DELAY_MS} ms each way"
fi

direct() { "$DIRECT_BIN" "$ENDPOINT" "$BUCKET" "$@"; }
# The value of NAME=... in s3_direct's one-line output $1.
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# The folder to list, before the mount has seen anything of it.
direct fill plain/many $LIST_N >/dev/null
direct fill plain/pins $PIN_N >/dev/null

MNT=$WORK/mnt
mkdir -p "$XDG_CONFIG_HOME/oxidrive" "$MNT"
for p in Plain:plain:false Encrypted:enc:true; do
  IFS=: read -r name root enc <<<"$p"
  cat >>"$XDG_CONFIG_HOME/oxidrive/config.toml" <<TOML
[[provider]]
name = "$name"
type = "s3"
bucket = "$BUCKET"
endpoint = "$ENDPOINT"
region = "us-east-1"
root = "/$root"
access_key_id = "oxidrive-bench"
secret_access_key = "oxidrive-bench"
encrypt = $enc

TOML
done
export OXIDRIVE_PASSPHRASE="bench passphrase"
bench_track_mount "$MNT"
"$BIN" mount "$MNT" ${OXIDRIVE_MOUNT_ARGS:-} >"$WORK/mount.log" 2>&1 &
OXIDRIVE_PID=$!
# Stopped before moto_server, so an unmount never waits on a server that is gone.
BENCH_PIDS=("$OXIDRIVE_PID" "${BENCH_PIDS[@]}")
bench_wait_mounted "$MNT" $OXIDRIVE_PID "$WORK/mount.log"
PLAIN_ROOT="$MNT/My Drive/Plain"
ENC_ROOT="$MNT/My Drive/Encrypted"

declare -a ROWS
row() { # name mount_s direct_s [size for MiB/s]
  local mbs_m=- mbs_d=-
  if [ -n "${4:-}" ]; then
    mbs_m=$(awk -v s="$4" -v t="$2" 'BEGIN { printf "%.1f", s / t }')
    mbs_d=$(awk -v s="$4" -v t="$3" 'BEGIN { printf "%.1f", s / t }')
  fi
  ROWS+=("$(printf '%-34s %8.3f %8s %8.3f %8s %7s' "$1" "$2" "$mbs_m" "$3" "$mbs_d" "$(ratio "$3" "$2")")")
}

upload() { dd if=/dev/zero of="$1" bs=1M count="$SIZE_MIB" conv=fsync status=none && "$BIN" sync --wait --quiet; }
read_file() { dd if="$1" of=/dev/null bs=1M status=none; }
list_dir() { ls -f "$1" | wc -l; }

# Upload. The direct upload goes to its own key, beside the providers' folders.
drop_caches
out=$(direct put-size direct/big "$SIZE_MIB")
d_up=$(field "$out" secs)
m_up_plain=$(timeit upload "$PLAIN_ROOT/big")
m_up_enc=$(timeit upload "$ENC_ROOT/big")
row "upload ${SIZE_MIB} MiB, plain" "$m_up_plain" "$d_up" "$SIZE_MIB"
row "upload ${SIZE_MIB} MiB, encrypted" "$m_up_enc" "$d_up" "$SIZE_MIB"

# Cold sequential read. Direct: the very object the plain provider's file is.
drop_caches
out=$(direct read plain/big)
[ "$(field "$out" bytes)" = $((SIZE_MIB << 20)) ] || { echo "direct read: $out" >&2; exit 1; }
d_read=$(field "$out" secs)
out=$(direct read-all plain/big)
d_read_all=$(field "$out" secs)
"$BIN" free "$PLAIN_ROOT/big" >/dev/null
m_read_plain=$(timeit read_file "$PLAIN_ROOT/big")
"$BIN" free "$ENC_ROOT/big" >/dev/null
m_read_enc=$(timeit read_file "$ENC_ROOT/big")
row "cold read ${SIZE_MIB} MiB, plain" "$m_read_plain" "$d_read" "$SIZE_MIB"
row "cold read ${SIZE_MIB} MiB, encrypted" "$m_read_enc" "$d_read" "$SIZE_MIB"
row "cold read, plain vs one GET" "$m_read_plain" "$d_read_all" "$SIZE_MIB"

# Listing $LIST_N entries: the mount's first listing of the folder, then the next one.
out=$(direct list plain/many)
[ "$(field "$out" entries)" = $LIST_N ] || { echo "direct list: $out" >&2; exit 1; }
d_list=$(field "$out" secs)
m_list_cold=$(timeit list_dir "$PLAIN_ROOT/many")
m_list_warm=$(timeit_warm list_dir "$PLAIN_ROOT/many")
n=$(list_dir "$PLAIN_ROOT/many")
# `ls -f` shows . and .. too.
[ "$n" = $((LIST_N + 2)) ] || { echo "the mount lists $n entries in many/, not $((LIST_N + 2))" >&2; exit 1; }
row "list $LIST_N entries, cold (ls -f)" "$m_list_cold" "$d_list"
row "list $LIST_N entries, warm (ls -f)" "$m_list_warm" "$d_list"

# Pinning a folder of $PIN_N tiny files (its first listing included).
out=$(direct read-each plain/pins)
[ "$(field "$out" objects)" = $PIN_N ] || { echo "direct read-each: $out" >&2; exit 1; }
d_pin=$(field "$out" secs)
m_pin=$(timeit "$BIN" pin "$PLAIN_ROOT/pins")
row "pin $PIN_N tiny files" "$m_pin" "$d_pin"

echo
echo "oxidrive over S3 (moto_server on loopback, through $LINK) vs OpenDAL directly ($(nproc) cores, $(uname -r))"
echo "seconds and MiB/s; speed = direct s / mount s (1.00 = as fast as OpenDAL directly; goal for cold read >= 0.80)"
printf '%-34s %8s %8s %8s %8s %7s\n' "workload" "mount s" "MiB/s" "direct s" "MiB/s" "speed"
printf '%s\n' "${ROWS[@]}"
warnings=$(grep -cE ' (WARN|ERROR) ' "$WORK/mount.log" || true)
if [ "$warnings" -gt 0 ]; then
  echo
  echo "the mount logged $warnings warnings/errors; the first ones:"
  grep -E ' (WARN|ERROR) ' "$WORK/mount.log" | head -20
fi
