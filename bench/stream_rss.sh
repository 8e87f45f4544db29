#!/usr/bin/env bash
# Bounded memory while streaming: reads a SIZE_GIB file (default 10) through the mount
# once from a plain and once from an encrypted provider, sampling the daemon's resident
# memory every 0.2 s. The goal is a peak under 100 MiB whatever the file size: reads
# use memory proportional to the read-ahead window, not to the file. Prints the
# throughput and the peak RSS of each run.
#
#   bench/stream_rss.sh [SIZE_GIB]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE_GIB=${1:-10}
bench_setup
bench_mount_oxidrive

# The plain file is made sparse in the backing folder directly (instant, all zeros);
# the encrypted one must be written through the mount (its format is ours).
truncate -s "${SIZE_GIB}G" "$WORK/stores/plain/stream.bin"
dd if=/dev/zero of="$ENC_ROOT/stream.bin" bs=4M count=$((SIZE_GIB * 256)) conv=fsync status=none
"$BIN" sync --wait --quiet

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$OXIDRIVE_PID/status"; }

stream() {
  local file=$1 peak=0 r t0 t1 pid
  drop_caches
  t0=$(date +%s.%N)
  dd if="$file" of=/dev/null bs=1M status=none &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    r=$(rss_kib)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
  wait "$pid"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v g="$SIZE_GIB" -v p="$peak" -v n="$2" \
    'BEGIN { printf "%-10s %6.1f s  %7.1f MiB/s  peak RSS %6.1f MiB\n", n, b - a, g * 1024 / (b - a), p / 1024 }'
}

echo "streaming a ${SIZE_GIB} GiB file through the mount (daemon RSS at start: $(( $(rss_kib) / 1024 )) MiB)"
stream "$PLAIN_ROOT/stream.bin" plain
stream "$ENC_ROOT/stream.bin" encrypted
